"""Fit time against the number of rows: a Chinchilla-form fit of 2,000 and 10,000 synthetic runs.

The default 4,500-start grid is screened on a fixed 512-point subsample on data this large
(``harness.fit.estimator.SCREEN_ABOVE``); the baseline, in the same run, is the unscreened grid on the 2,000
rows (at 10,000 it would take minutes). Goal (issue 15): 10,000 rows in under 15 s on 2 cores, at the same
optimum as the full grid. Results: ``results/bench/cpu/fit_rows.json``.
"""

from __future__ import annotations

import numpy as np
import pytest

import harness.fit.estimator as est
from harness.fit import ScalingLaw
from harness.provenance import REPO_ROOT, provenance, write_json_atomic

RESULTS: dict = {}


def _runs(n: int):
    rng = np.random.default_rng(0)
    N, D = 10 ** rng.uniform(7, 10, n), 10 ** rng.uniform(9, 12, n)
    loss = (1.69 + 406.4 / N**0.34 + 410.7 / D**0.28) * np.exp(rng.normal(0, 0.01, n))
    return np.stack([N, D], axis=1), loss


@pytest.mark.parametrize("n", [2000, 10000])
def test_screened_fit(benchmark, n):
    X, y = _runs(n)
    law = ScalingLaw("chinchilla")
    benchmark.pedantic(law.fit, args=(X, y), rounds=3, iterations=1, warmup_rounds=0)
    assert law.n_screened_ == 4500
    RESULTS[f"screened_{n}"] = {"seconds": benchmark.stats.stats.min, "objective": law.objective_}


def test_full_grid_2000(benchmark, monkeypatch):
    X, y = _runs(2000)
    monkeypatch.setattr(est, "SCREEN_ABOVE", 10**15)
    law = ScalingLaw("chinchilla")
    benchmark.pedantic(law.fit, args=(X, y), rounds=1, iterations=1)
    assert law.n_screened_ is None
    RESULTS["full_2000"] = {"seconds": benchmark.stats.stats.min, "objective": law.objective_}
    if {"screened_2000", "screened_10000"} <= set(RESULTS):
        _report()


def _report():
    s2, s10, f2 = RESULTS["screened_2000"], RESULTS["screened_10000"], RESULTS["full_2000"]
    rel = abs(s2["objective"] - f2["objective"]) / f2["objective"]
    record = {
        "benchmark": "chinchilla form, synthetic runs, default 4,500-start grid",
        "screened_2000": s2,
        "screened_10000": s10,
        "full_grid_2000": f2,
        "speedup_2000": f2["seconds"] / s2["seconds"],
        "objective_rel_diff_2000": rel,
        "target": "10,000 rows < 15 s; same optimum as the full grid (rel diff <= 1e-6)",
        "target_met": bool(s10["seconds"] < 15 and rel <= 1e-6),
        "provenance": provenance(),
    }
    write_json_atomic(REPO_ROOT / "results" / "bench" / "cpu" / "fit_rows.json", record)
    print(
        f"\nrows: 2,000 screened {s2['seconds']:.1f} s vs full grid {f2['seconds']:.1f} s "
        f"({record['speedup_2000']:.1f}x, objective rel diff {rel:.1e}); 10,000 screened {s10['seconds']:.1f} s"
    )
    assert rel <= 1e-6, "screening must reach the full grid's optimum"
