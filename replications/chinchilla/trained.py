"""Chinchilla on our own runs: Hoffmann et al.'s Approaches 1, 2 and 3 on the IsoFLOP sweeps of a trained tier.

Every number comes from :mod:`harness.fit.optimal` (the same code as ``scaling isoflop``) on the tier's run
records; this module only says which columns of the records each approach reads, following Hoffmann et al.:

* sizes are total parameters (embeddings included) and compute is each run's own FLOPs under their count
  (Appendix F, ``C_hoffmann`` in a record), so ``k`` = FLOPs per parameter per token is measured from the
  records (about 6.5 for our models, 6 + attention), not assumed;
* Approach 2 reads each run's final validation loss, grouped by the budget it was planned at;
* Approach 1 reads every run's learning curve (the evaluations after step 0), the sizes repeating across
  budgets giving each size several cosine cycles, as in their Section 3.1;
* Approach 3 fits ``E + A/N^alpha + B/D^beta`` to the final losses with their Huber loss and grid of starts.

Tokens per parameter are read at the tier's middle budget (the geometric mean of its smallest and largest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.claims import Measurement
from harness.fit import FitInputError, optimal
from harness.fit.optimal import Allocation
from harness.progress import no_progress
from harness.replication import TierContext, TierResult, run_tier_sweeps
from harness.runs import RunTable

from .constants import LEVEL

SWEEP_ROLES = ("isoflop",)


@dataclass
class TrainedAnalysis:
    """The three approaches on one tier's runs, with what each excluded and why."""

    runs: RunTable
    budgets: np.ndarray  # the planned budgets (FLOPs, Hoffmann et al.'s count)
    k: float  # FLOPs per parameter per token, measured from the records
    middle: float  # budget at which tokens per parameter is read
    allocations: dict[int, Allocation]  # approach -> result (absent: the approach could not be fitted)
    failures: dict[int, str]  # approach -> why it could not be fitted

    def measurements(self) -> dict[str, Measurement]:
        m: dict[str, Measurement] = {}
        for k in (1, 2, 3):
            pre = f"own.approach{k}"
            res = self.allocations.get(k)
            if res is None:
                why = self.failures.get(k, "not fitted")
                for key in ("a", "b", "tokens_per_param", "log10_tokens_per_param"):
                    m[f"{pre}.{key}"] = Measurement.missing(why)
                continue
            note = f"{res.n_bootstrap} bootstrap replicates ({res.n_failed} failed); " + "; ".join(res.notes[:1])
            m[f"{pre}.a"] = Measurement(res.a.value, res.a.ci, LEVEL, note)
            m[f"{pre}.b"] = Measurement(res.b.value, res.b.ci, LEVEL, "b = 1 - a (C = k N D); " + note)
            tpp = res.tokens_per_param.get(self.middle)
            if tpp is None or not np.isfinite(tpp.value):
                for key in ("tokens_per_param", "log10_tokens_per_param"):
                    m[f"{pre}.{key}"] = Measurement.missing(f"no tokens per parameter at C = {self.middle:.3g}")
                continue
            at = f"at C = {self.middle:.3g} FLOPs; " + note
            m[f"{pre}.tokens_per_param"] = Measurement(tpp.value, tpp.ci, LEVEL, at)
            log_ci = None if tpp.ci is None or min(tpp.ci) <= 0 else tuple(float(np.log10(v)) for v in tpp.ci)
            m[f"{pre}.log10_tokens_per_param"] = Measurement(float(np.log10(tpp.value)), log_ci, LEVEL, at)
        return m

    def table(self) -> list[dict]:
        """One row per approach: a, b and tokens per parameter with intervals (the README and notebook table)."""
        rows = []
        for k in (1, 2, 3):
            res = self.allocations.get(k)
            if res is None:
                rows.append({"approach": k, "failed": self.failures.get(k)})
                continue
            tpp = res.tokens_per_param.get(self.middle)
            rows.append(
                {
                    "approach": k,
                    "a": res.a.to_json(),
                    "b": res.b.to_json(),
                    "tokens_per_param": None if tpp is None else tpp.to_json(),
                    "excluded_budgets": [b.budget for b in res.budgets if b.excluded],
                }
            )
        return rows


def curve_rows(runs: RunTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Approach 1's table: one row per (run, evaluation after step 0): run id, total N, tokens seen, val loss."""
    rid, n, d, loss = [], [], [], []
    for rec in runs.records:
        curve = rec["curve"]
        for tok, val in zip(curve["tokens"], curve["val_loss"], strict=True):
            if tok > 0 and val is not None:
                rid.append(rec["run_id"][:16])
                n.append(rec["scale"]["N_total"])
                d.append(tok)
                loss.append(val)
    return np.array(rid, dtype=object), np.array(n, float), np.array(d, float), np.array(loss, float)


def planned_budgets(spec_path) -> np.ndarray:
    """The budgets an IsoFLOP sweep spec plans (every ``C`` of its ``[isoflop]`` tables), sorted."""
    from harness.records import load_spec

    tables = load_spec(spec_path)["isoflop"]
    tables = tables if isinstance(tables, list) else [tables]
    return np.array(sorted({float(c) for t in tables for c in t["C"]}))


def budget_tolerance(budgets: np.ndarray) -> float:
    """How far (dex) a run's compute may sit from its planned budget and still belong to it: half the smallest
    gap between budgets. A run's D is rounded down to whole batches, so its C is at or a little below its
    budget (under 1.5 % on the cpu tier; up to 30 % on the smoke tier's one-step runs)."""
    gaps = np.diff(np.log10(budgets))
    return float(gaps.min() / 2) if gaps.size else 0.1


def analyse(
    runs: RunTable, budgets: np.ndarray, n_bootstrap: int, seed: int = 0, progress=None, log=print
) -> TrainedAnalysis:
    """Approaches 1-3 on one tier's runs, planned at ``budgets`` (see the module docstring)."""
    bar = progress or (lambda label: no_progress)
    N, D, C, L = runs["N_total"], runs["D"], runs["C_hoffmann"], runs["loss"]
    k = optimal.flops_per_param_token(N, D, C)
    middle = float(np.sqrt(budgets.min() * budgets.max()))
    common = {"k": k, "n_bootstrap": n_bootstrap, "seed": seed, "tokens_at": [middle]}
    allocations, failures = {}, {}
    tol = budget_tolerance(budgets)
    no_k = {key: v for key, v in common.items() if key != "k"}  # Approach 3 reads D directly
    steps = {
        2: ("Approach 2 (IsoFLOP profiles)",
            lambda p: optimal.approach2(N, C, L, budgets=budgets, tol_dex=tol, progress=p, **common)),
        1: ("Approach 1 (envelope of learning curves)",
            lambda p: optimal.approach1(*curve_rows(runs), progress=p, **common)),
        3: ("Approach 3 (parametric fit)", lambda p: optimal.approach3(N, D, L, progress=p, **no_k)),
    }  # fmt: skip
    for approach, (label, fit) in steps.items():
        log(f"chinchilla: {label} on {len(runs)} runs, {n_bootstrap} bootstrap replicates ...")
        try:
            allocations[approach] = fit(bar(f"approach {approach}"))
        except FitInputError as exc:
            failures[approach] = str(exc)
            log(f"chinchilla: {label} could not be fitted: {exc}")
    return TrainedAnalysis(runs, budgets, k, middle, allocations, failures)


def measure_trained(ctx: TierContext) -> TierResult:
    """A trained tier (smoke / cpu / gpu): train what is missing (or read the committed records), then judge."""
    from . import figures

    tables = run_tier_sweeps(ctx)
    runs = tables[next(iter(tables))]  # one sweep per trained tier: the IsoFLOP plan
    if runs.failed:
        ctx.log(f"chinchilla: {len(runs.failed)} failed run(s) left out: {', '.join(r for r, _ in runs.failed)}")
    if len(runs) == 0:
        raise FitInputError("the tier has no finished runs")
    an = analyse(runs, planned_budgets(ctx.sweeps[0]), ctx.n_bootstrap, ctx.seed, ctx.progress, ctx.log)
    return TierResult(
        measurements=an.measurements(),
        figures=figures.trained_figures(an),
        artifacts={
            "approaches": {str(k): res.to_json() for k, res in an.allocations.items()},
            "failures": {str(k): why for k, why in an.failures.items()},
            "table": an.table(),
            "flops_per_param_token": an.k,
            "budgets": an.budgets.tolist(),
            "tokens_per_param_at": an.middle,
            "n_bootstrap": ctx.n_bootstrap,
            "seed": ctx.seed,
        },
        inputs={"runs": len(runs), "failed": len(runs.failed), "run_ids": sorted(r["run_id"] for r in runs.records)},
    )
