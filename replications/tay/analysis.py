"""Tay et al. (2022) on the arena: every architecture against the vanilla Transformer, and the measurements
its claims refer to.

The vanilla Transformer of the paper is T5's; ours is the arena's baseline ``gpt`` (LayerNorm, GELU MLP,
learned positions), decoder-only. The paper's "GLU" variant is closest to our ``transformer_pp`` (SwiGLU,
RMSNorm, rotary), which is also Gu and Dao's Transformer++. Per entrant the arena gives: the power law
L = A C^-alpha with its bootstrap interval (the paper fits a line in log-log space), the gap to gpt's law at the
entrant's median compute (the level) and its slope in nats per decade of compute (the trend), each with a 95%
bootstrap interval. A rising gap (trend > 0) is an architecture that scales worse.

All training goes through :func:`harness.arena.run_arena` into the tier's run cache (results/tay/TIER), so
``scaling audit tay`` re-plans the same runs and reads their records without training.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable

import numpy as np

from harness import arena
from harness.claims import Measurement
from harness.replication import TierContext, TierResult
from harness.sweep import DEFAULT_WORKERS

BASELINE = "gpt"
# Tay et al.'s architectures (their vanilla Transformer is the baseline; Evolved Transformer is not built here)
TAY_ARCHS = (
    "transformer_pp",
    "switch",
    "universal",
    "performer",
    "funnel",
    "albert",
    "mos",
    "lightconv",
    "dynamicconv",
    "mixer",
)
OTHERS = ("lstm", "mamba", "rwkv")  # Kaplan et al.'s LSTM, Gu and Dao's Mamba, and RWKV (reported, no claim)
ENTRANTS = TAY_ARCHS + OTHERS
SMOKE_ENTRANTS = ("performer",)  # one entrant pushes every step through (CI time is short)
LEVEL = arena.LEVEL
# A swap of two architectures' order between the smallest and the largest size counts only when both gaps exceed
# this: 2.5x the seed-to-seed standard deviation of the final loss measured in the Kaplan cpu tier (0.02 nats),
# so a counted swap is not one run's noise
RANK_MARGIN = 0.05


def points(entry: dict) -> dict[str, np.ndarray]:
    """An arena entrant's size-sweep runs as the arrays :func:`harness.arena.compare_points` takes."""
    runs = entry["runs"]
    return {
        "run_id": np.array([r["run_id"] for r in runs]),
        "C": np.array([r["C"] for r in runs], dtype=float),
        "N": np.array([r["N_active"] for r in runs], dtype=float),
        "L": np.array([r["loss"] for r in runs], dtype=float),
    }


def _interval(pair) -> tuple[float, float] | None:
    """A bootstrap interval as the claims take it; None when there was no bootstrap (unbounded, or null in JSON)."""
    if pair is None or any(v is None or not np.isfinite(v) for v in pair):
        return None
    return float(pair[0]), float(pair[1])


def _trend(comp: dict, what: str) -> Measurement:
    if "trend_per_decade" not in comp:
        return Measurement.missing(f"{what}: {comp.get('why', 'no comparison')}")
    ci = _interval(comp["trend_interval"])
    return Measurement(comp["trend_per_decade"], ci, LEVEL if ci else None, f"{what}, nats per decade of compute")


def _level(comp: dict, what: str) -> Measurement:
    if "gap_at_median_C" not in comp:
        return Measurement.missing(f"{what}: {comp.get('why', 'no comparison')}")
    g = comp["gap_at_median_C"]
    ci = _interval(g.get("interval"))
    return Measurement(g["gap"], ci, LEVEL if ci else None, f"{what} at C = {g['C']:.3g} FLOPs, nats")


def by_size(summary: dict, names: tuple[str, ...]) -> dict[str, list[float]]:
    """Each entrant's final losses in order of size (its runs sorted by active parameters)."""
    out = {}
    for name in names:
        e = summary["entrants"].get(name)
        if e and e["runs"]:
            out[name] = [r["loss"] for r in sorted(e["runs"], key=lambda r: r["N_active"])]
    return out


def robust_swaps(losses: dict[str, list[float]], margin: float = RANK_MARGIN) -> list[tuple[str, str]]:
    """Pairs (a, b) where a is better than b by more than ``margin`` at the smallest size and worse than b by
    more than ``margin`` at the largest: the ranking at one scale reversed at the other, beyond noise."""
    swaps = []
    for a, b in itertools.permutations(losses, 2):
        small = losses[b][0] - losses[a][0]
        large = losses[a][-1] - losses[b][-1]
        if small > margin and large > margin:
            swaps.append((a, b))
    return swaps


def measurements(summary: dict, n_boot: int, seed: int = 0) -> tuple[dict[str, Measurement], dict]:
    ents = summary["entrants"]
    m: dict[str, Measurement] = {}
    for name, e in ents.items():
        power = e["fits"].get("power", {})
        if "params" in power:
            ci = _interval(power.get("intervals", {}).get("alpha"))
            m[f"{name}.alpha"] = Measurement(power["params"]["alpha"], ci, LEVEL if ci else None, "L = A C^-alpha")
        if name == BASELINE:
            continue
        m[f"{name}.gap_trend"] = _trend(e["comparison"], f"{name} minus {BASELINE}'s law: slope")
        m[f"{name}.gap_level"] = _level(e["comparison"], f"{name} minus {BASELINE}'s law")
    # the best scaling among Tay's architectures: the lowest trend; its interval bounds every entrant's (the
    # lowest lower end and the lowest upper end), so it is no narrower than any single entrant's
    trends = {n: m[f"{n}.gap_trend"] for n in TAY_ARCHS if f"{n}.gap_trend" in m}
    trends = {n: t for n, t in trends.items() if t.value is not None}
    if trends and any(t.ci is None for t in trends.values()):
        lowest = min(trends, key=lambda n: trends[n].value)
        m["vanilla.lowest_other_trend"] = Measurement(trends[lowest].value, note=f"lowest: {lowest}; no bootstrap")
    elif trends:
        lowest = min(trends, key=lambda n: trends[n].value)
        lo = min(t.ci[0] for t in trends.values())
        hi = min(t.ci[1] for t in trends.values())
        m["vanilla.lowest_other_trend"] = Measurement(
            trends[lowest].value,
            (lo, hi),
            LEVEL,
            f"lowest gap trend of the {len(trends)} architectures vs {BASELINE} ({lowest}); nats per decade",
        )
    else:
        m["vanilla.lowest_other_trend"] = Measurement.missing("none of Tay's architectures was trained in this tier")
    artifacts: dict = {}
    if "mamba" in ents and "transformer_pp" in ents:
        comp = arena.compare_points(points(ents["mamba"]), points(ents["transformer_pp"]), n_boot, seed)
        m["mamba_vs_transformer_pp.gap_trend"] = _trend(comp, "mamba minus transformer_pp's law: slope")
        m["mamba_vs_transformer_pp.gap_level"] = _level(comp, "mamba minus transformer_pp's law")
        artifacts["mamba_vs_transformer_pp"] = comp
    else:
        m["mamba_vs_transformer_pp.gap_trend"] = Measurement.missing("mamba or transformer_pp not trained")
    losses = by_size(summary, (BASELINE, *TAY_ARCHS))
    if len(losses) >= 3:
        swaps = robust_swaps(losses)
        m["ranking.robust_swaps"] = Measurement(
            len(swaps),
            note=f"{len(losses)} architectures; pairs reversed by > {RANK_MARGIN} nats both ways: "
            + (", ".join(f"{a} over {b}" for a, b in swaps) or "none"),
        )
        from scipy.stats import kendalltau

        names = list(losses)
        tau = kendalltau([losses[n][0] for n in names], [losses[n][-1] for n in names]).statistic
        m["ranking.kendall_tau"] = Measurement(float(tau), note="smallest vs largest size, 1 = same order")
        artifacts["ranking"] = {
            "margin_nats": RANK_MARGIN,
            "losses_by_size": losses,
            "swaps": [list(s) for s in swaps],
            "kendall_tau": float(tau),
        }
    else:
        m["ranking.robust_swaps"] = Measurement.missing("fewer than three of Tay's architectures trained")
    return m, artifacts


def measure_tier(tier: str, entrants: tuple[str, ...]) -> Callable[[TierContext], TierResult]:
    """The ``measure`` of one tier: the arena's tier of the same name on ``entrants`` against gpt."""

    def measure(ctx: TierContext) -> TierResult:
        from .figures import ranking_figure

        summary = arena.run_arena(
            list(entrants),
            baseline=BASELINE,
            tier=tier,
            out=ctx.out_dir,
            workers=ctx.workers or DEFAULT_WORKERS,
            n_boot=ctx.n_bootstrap,
            train=ctx.train,
            write=False,
            stream=sys.stderr,
        )
        m, artifacts = measurements(summary, ctx.n_bootstrap, ctx.seed)
        table = summary.pop("table")
        summary.pop("out", None)
        artifacts = {"arena": summary, "arena_table": table, **artifacts}
        figures = {"arena": arena.figure(summary)}
        if "ranking" in artifacts:
            figures["ranking"] = ranking_figure(artifacts["ranking"])
        runs = sorted({r["run_id"] for e in summary["entrants"].values() for r in e["runs"]})
        return TierResult(m, figures, artifacts, {"size_sweep_runs": runs})

    return measure
