"""The Kaplan-Chinchilla discrepancy at small scale: Porian et al.'s (2024, arXiv:2406.19146) ladder of corrections.

Five rungs, each Approach 2 (IsoFLOP profiles, :func:`harness.fit.optimal.approach2`) on our own runs of the
cpu tier's sizes, each rung changing one thing (Porian et al., Fig. 1, panels a - e):

* (a) **Kaplan et al.**: their optimiser and schedule (recipe ``kaplan-long``: eq. D.1 learning rate, Adam betas
  (0.9, 0.95), a 1.2 M-token warmup for every size, one cosine over a 1e8-token horizon for every run) and their
  count: non-embedding N, C = 6 N D. One long run per size (``sweeps/cpu-ladder/long.toml``), read at every
  budget its learning curve passes (:func:`harness.fit.optimal.budget_points`), as their schedule allows;
* (b) **+ every parameter and FLOP counted** (Hoffmann et al.'s count: total N, the whole model's FLOPs, the
  last layer's included): the same runs, read at the cpu tier's budgets;
* (c) **+ warmup of ~N tokens** (recipe ``kaplan-short``, ``short.toml``): new long runs, read as (b);
* (d) **+ cosine matched to each run** (recipe ``kaplan-matched``, ``matched.toml``): one run per IsoFLOP point,
  the cpu tier's plan, final losses;
* (e) **+ tuned AdamW** (our LR(N) rule and beta2 0.99: the ``tuned`` recipe): the cpu tier's own runs
  (``results/chinchilla/cpu``).

Curve points inside a run's warmup are transients and never read (Porian et al. drop them too). Each rung's a has
a bootstrap interval (Approach 2's residual bootstrap); the interval of a change between rungs pairs their
replicates in order (the rungs' bootstraps are independent, so this is the interval of a difference of
independent estimates; rungs (a) and (b) share runs, for which it is conservative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.claims import Measurement
from harness.fit import optimal
from harness.fit.optimal import Allocation, Estimate
from harness.replication import TierContext, TierResult, load_tier_sweeps, run_tier_sweeps
from harness.runs import RunTable

from .constants import CPU_ISOFLOP_SPEC, LEVEL, RUNGS
from .trained import budget_tolerance, planned_budgets

# Rung (a) reads the long runs in Kaplan et al.'s count (C = 6 N D with non-embedding N), which puts the same
# runs at about 10 - 50x smaller C than Hoffmann et al.'s count: 5 budgets over the 1.5 decades those curves
# cover with 6 or more sizes each (chosen from the plan before any ladder run existed).
KAPLAN_COUNT_BUDGETS = np.geomspace(1e11, 3.2e12, 5)
CHANGES = {  # measurement -> (rung, the rung before it): the change in a that one correction makes
    "ladder.delta_count": ("b", "a"),
    "ladder.delta_warmup": ("c", "b"),
    "ladder.delta_decay": ("d", "c"),
    "ladder.delta_tuning": ("e", "d"),
}


def curve_table(runs: RunTable, count: str) -> dict[str, np.ndarray]:
    """Every run's learning curve after its warmup, one row per evaluation: run id, N, tokens, loss and k (FLOPs
    per parameter per token) in Kaplan et al.'s count (``"kaplan"``: non-embedding N, k = 6) or Hoffmann et
    al.'s (``"hoffmann"``: total N, the whole model's FLOPs per token over N)."""
    rows: dict[str, list] = {"run": [], "N": [], "D": [], "loss": [], "k": []}
    for rec in runs.records:
        s, r = rec["scale"], rec["resolved"]
        n, k = (s["N_kaplan"], 6.0) if count == "kaplan" else (s["N_total"], s["C_hoffmann"] / (s["N_total"] * s["D"]))
        warm = r["warmup_steps"] * rec["config"]["batch_tokens"]
        for tok, val in zip(rec["curve"]["tokens"], rec["curve"]["val_loss"], strict=True):
            if tok > warm and val is not None:
                for key, v in zip(rows, (rec["run_id"][:16], n, tok, val, k), strict=True):
                    rows[key].append(v)
    return {key: np.asarray(v, dtype=object if key == "run" else float) for key, v in rows.items()}


def from_curves(runs: RunTable, count: str, budgets: np.ndarray, n_bootstrap: int, seed: int, progress) -> Allocation:
    """Approach 2 on IsoFLOP points read off long runs' curves (rungs a - c)."""
    t = curve_table(runs, count)
    pts = optimal.budget_points(t["run"], t["N"], t["D"], t["loss"], budgets, k=t["k"])
    k = 6.0 if count == "kaplan" else float(np.median(t["k"]))
    return optimal.approach2(
        pts["N"], pts["C"], pts["loss"], budgets=budgets, tol_dex=budget_tolerance(budgets), k=k,
        n_bootstrap=n_bootstrap, seed=seed, progress=progress,
    )  # fmt: skip


def from_finals(runs: RunTable, budgets: np.ndarray, n_bootstrap: int, seed: int, progress) -> Allocation:
    """Approach 2 on final losses of one run per IsoFLOP point (rungs d, e), as the cpu tier does."""
    N, D, C = runs["N_total"], runs["D"], runs["C_hoffmann"]
    k = optimal.flops_per_param_token(N, D, C)
    return optimal.approach2(
        N, C, runs["loss"], budgets=budgets, tol_dex=budget_tolerance(budgets), k=k,
        n_bootstrap=n_bootstrap, seed=seed, progress=progress,
    )  # fmt: skip


def difference(later: Estimate, earlier: Estimate) -> Estimate:
    """later - earlier, its interval from the two bootstraps' replicates paired in order."""
    lr, er = later.replicates, earlier.replicates
    n = 0 if lr is None or er is None else min(lr.size, er.size)
    return Estimate.of(later.value - earlier.value, lr[:n] - er[:n] if n else np.array([]))


@dataclass
class Ladder:
    rungs: dict[str, Allocation]
    failures: dict[str, str]  # rung -> why Approach 2 could not be fitted

    def measurements(self) -> dict[str, Measurement]:
        m: dict[str, Measurement] = {}
        for rung, res in self.rungs.items():
            m[f"ladder.{rung}.a"] = Measurement(res.a.value, res.a.ci, LEVEL, RUNGS[rung])
        pairs = {"ladder.gap": ("a", "e"), **CHANGES}  # a(first) - a(second)
        for key, (first, second) in pairs.items():
            missing = [r for r in (first, second) if r not in self.rungs]
            if missing:
                why = "; ".join(f"rung ({r}): {self.failures.get(r, 'not fitted')}" for r in missing)
                m[key] = Measurement.missing(why)
                continue
            d = difference(self.rungs[first].a, self.rungs[second].a)
            note = f"a({first}) - a({second}); intervals of independent bootstraps paired in order"
            m[key] = Measurement(d.value, d.ci, LEVEL, note)
            if key == "ladder.delta_decay":
                reps = None if d.replicates is None or not d.replicates.size else np.abs(d.replicates)
                ci = None if reps is None else optimal.percentile_interval(reps, LEVEL)
                m["ladder.abs_delta_decay"] = Measurement(abs(d.value), ci, LEVEL, "|" + note + "|")
        return m


def analyse_ladder(tables: dict[str, RunTable], budgets: np.ndarray, n_bootstrap: int, seed: int = 0,
                   progress=None, log=print) -> Ladder:  # fmt: skip
    """The five rungs from the runs of each ladder sweep (``tables``: ``long``, ``short``, ``matched``, ``tuned``)."""
    bar = progress or (lambda label: optimal.no_progress)
    steps = {
        "a": lambda p: from_curves(tables["long"], "kaplan", KAPLAN_COUNT_BUDGETS, n_bootstrap, seed, p),
        "b": lambda p: from_curves(tables["long"], "hoffmann", budgets, n_bootstrap, seed, p),
        "c": lambda p: from_curves(tables["short"], "hoffmann", budgets, n_bootstrap, seed, p),
        "d": lambda p: from_finals(tables["matched"], budgets, n_bootstrap, seed, p),
        "e": lambda p: from_finals(tables["tuned"], budgets, n_bootstrap, seed, p),
    }
    rungs, failures = {}, {}
    for rung, fit in steps.items():
        log(f"chinchilla: ladder rung ({rung}) {RUNGS[rung]} ...")
        try:
            rungs[rung] = fit(bar(f"rung {rung}"))
        except optimal.FitInputError as exc:
            failures[rung] = str(exc)
            log(f"chinchilla: rung ({rung}) could not be fitted: {exc}")
    return Ladder(rungs, failures)


def measure_ladder(ctx: TierContext) -> TierResult:
    """Tier ``cpu-ladder``: train (or read) the three ladder sweeps, read the cpu tier's runs for rung (e)."""
    from dataclasses import replace

    from . import figures

    own = run_tier_sweeps(ctx)
    by_role = {path.stem: own[name] for path, name in zip(ctx.sweeps, own, strict=True)}
    cpu = (CPU_ISOFLOP_SPEC,)  # rung (e): the cpu tier's committed runs, read back, never trained from here
    cpu_ctx = replace(ctx, tier="cpu", out_dir=ctx.out_dir.parent / "cpu", train=False, sweeps=cpu)
    by_role["tuned"] = next(iter(load_tier_sweeps(cpu_ctx).values()))
    lad = analyse_ladder(by_role, planned_budgets(cpu[0]), ctx.n_bootstrap, ctx.seed, ctx.progress, ctx.log)
    return TierResult(
        measurements=lad.measurements(),
        figures={"ladder": figures.ladder(lad)} if lad.rungs else {},
        artifacts={
            "rungs": {r: {"label": RUNGS[r], **res.to_json()} for r, res in lad.rungs.items()},
            "failures": lad.failures,
            "kaplan_count_budgets": KAPLAN_COUNT_BUDGETS.tolist(),
            "n_bootstrap": ctx.n_bootstrap,
            "seed": ctx.seed,
        },
        inputs={role: len(t) for role, t in by_role.items()},
    )
