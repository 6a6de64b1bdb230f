"""Tay replication: its measurements on synthetic arena results whose answers are known, and the rank-swap rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import arena
from replications.tay import REPLICATION
from replications.tay.analysis import BASELINE, RANK_MARGIN, measurements, robust_swaps

C = np.geomspace(1e10, 1e13, 5)


def _runs(label: str, losses) -> list[dict]:
    return [
        {
            "run_id": f"{label[:8]:<8}{i:08x}".replace(" ", "0"),
            "status": "finished",
            "loss": {"val_final": float(v)},
            "scale": {"C_hoffmann": float(c), "N_active": float(c) / 1e6},
            "resolved": {"peak_lr": 1e-3},
        }
        for i, (c, v) in enumerate(zip(C, losses, strict=True))
    ]


def _summary(gap_per_decade: dict[str, float], offset: dict[str, float], n_boot: int = 200) -> dict:
    rng = np.random.default_rng(0)
    base = 8.0 * C**-0.1
    decades = np.log10(C / C[0])
    results = {
        BASELINE: {"lr": arena.LRChoice([], 0, 0), "runs": _runs(BASELINE, base * np.exp(rng.normal(0, 1e-3, 5)))}
    }
    for name, g in gap_per_decade.items():
        losses = base + offset.get(name, 0.0) + g * decades + rng.normal(0, 1e-3, 5)
        results[name] = {"lr": arena.LRChoice([], 0, 0), "runs": _runs(name, losses)}
    return arena._jsonable(arena.analyse(results, BASELINE, arena.TIERS["smoke"], n_boot=n_boot))


def test_measurements_recover_known_trends_levels_and_the_lowest_trend():
    s = _summary({"performer": 0.1, "switch": -0.05, "mamba": 0.0, "transformer_pp": 0.0}, {"switch": -0.3})
    m, art = measurements(s, n_boot=200)
    assert m["performer.gap_trend"].value == pytest.approx(0.1, abs=0.01)
    assert m["performer.gap_trend"].ci[0] > 0  # scales worse, and the interval says so
    assert m["switch.gap_level"].value < -0.2 and m["switch.gap_level"].ci[1] < 0
    low = m["vanilla.lowest_other_trend"]  # switch scales better than the baseline: the lowest of Tay's archs
    assert low.value == pytest.approx(-0.05, abs=0.01) and "switch" in low.note
    assert low.ci[0] <= min(m[f"{n}.gap_trend"].ci[0] for n in ("performer", "switch", "transformer_pp"))
    assert abs(m["mamba_vs_transformer_pp.gap_trend"].value) < 0.01  # same law, so no trend between them
    assert "mamba_vs_transformer_pp" in art and m[f"{BASELINE}.alpha"].value == pytest.approx(0.1, abs=0.01)


def test_rank_swaps_count_only_reversals_beyond_the_margin_at_both_ends():
    losses = {"a": [3.0, 2.0], "b": [3.2, 1.8], "c": [3.0 + RANK_MARGIN / 2, 2.0 - RANK_MARGIN / 2]}
    # a and c lead b at the small size and trail it at the large one, by > 0.1 each way; a and c reverse too,
    # but only by half the margin, so that pair does not count
    assert robust_swaps(losses) == [("a", "b"), ("c", "b")]
    assert robust_swaps({"a": [3.0, 2.0], "b": [3.1, 1.9]}, margin=0.2) == []


def test_missing_entrants_are_missing_measurements_not_errors():
    m, _ = measurements(_summary({"lstm": 0.02}, {}, n_boot=20), n_boot=20)
    assert m["vanilla.lowest_other_trend"].value is None and m["ranking.robust_swaps"].value is None
    assert m["mamba_vs_transformer_pp.gap_trend"].value is None and m["lstm.gap_trend"].value is not None


def test_every_claim_names_a_measurement_the_tier_produces():
    s = _summary(
        {
            n: 0.0
            for n in (
                "transformer_pp",
                "performer",
                "albert",
                "mixer",
                "lightconv",
                "dynamicconv",
                "switch",
                "lstm",
                "mamba",
            )
        },
        {},
        n_boot=0,
    )
    m, _ = measurements(s, n_boot=0)  # no intervals needed: only which measurements exist
    assert {c.measured for c in REPLICATION.claims().claims} <= set(m)
    assert all(c.kind == "small-scale" for c in REPLICATION.claims().claims)


def test_audit_rederives_the_committed_cpu_verdicts(capsys):
    # results/tay/cpu holds the tier's committed run records (14 architectures): the audit reads them back without
    # training and --strict checks every verdict against the one recorded for the tier in claims.toml. Every
    # interval-decided verdict there sits well clear of its bound, so 200 resamples decide it as 1,000 do.
    from harness.cli import main

    assert main(["audit", "tay", "--tier", "cpu", "--bootstrap", "200", "--strict", "--format", "json"]) == 0
    claims = json.loads(capsys.readouterr().out)["claims"]
    assert {c["verdict"] for c in claims} == {"PASS", "FAIL", "INCONCLUSIVE"} and len(claims) == 11
