"""Compute-optimal model size from any table of runs: Hoffmann et al. (2022) Approaches 1, 2 and 3.

Each approach estimates ``N_opt(C) ~ C^a`` and ``D_opt(C) ~ C^b`` with a bootstrap interval:

* **Approach 2** (:func:`approach2`, IsoFLOP profiles, Hoffmann et al. Section 3.2): runs are grouped by
  compute budget; per budget, a parabola in ``log10 N`` is fitted (least squares) to the runs within
  ``window_dex`` of that budget's lowest-loss run, and its vertex is ``N_opt``. A budget is excluded, with its
  reason, when it has too few runs in the window, when the parabola has no minimum, or when the minimum lies
  outside the sizes sampled (an extrapolation, which Hoffmann et al.'s Fig. 3 never uses). Each vertex's
  interval comes from a residual bootstrap of its parabola (the sizes are a design and are kept). Then
  ``log10 N_opt = a log10 C + c`` is fitted across budgets, each weighted by the inverse variance of its
  vertex, so a budget whose minimum is poorly pinned counts less; the exponent's interval refits that line
  on each bootstrap replicate's vertices. The window is what
  Porian et al. (2024, Appendix) and Hoffmann et al. do in spirit: a parabola is a local model of the
  profile, not a global one; 0.5 dex (a factor of ~3 each side) by default.
* **Approach 1** (:func:`approach1`, envelope of learning curves, Section 3.1): at each compute the lowest loss
  any run's learning curve reached, and the size of that run; ``log10 N_opt`` against ``log10 C`` over the
  envelope gives ``a``. The bootstrap resamples whole runs.
* **Approach 3** (:func:`approach3`, parametric, Section 3.3): ``L(N, D) = E + A/N^alpha + B/D^beta`` fitted
  with Hoffmann et al.'s Huber loss and grid of starts; ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)``.

``D_opt = C / (k N_opt)`` with ``k`` FLOPs per parameter per token (6 under Hoffmann et al.'s ``C = 6 N D``;
estimated from the table when it has a tokens column), so Approaches 1 and 2 give ``b = 1 - a``, as in
Hoffmann et al.'s Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..progress import ProgressFn, no_progress
from . import derived
from .estimator import FitInputError, ScalingLaw, percentile_interval
from .frontier import learning_curve_frontier
from .isoflop import fit_profile, group_by_budget

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A value with its bootstrap percentile interval (None without a bootstrap)."""

    value: float
    ci: tuple[float, float] | None = None
    # the finite bootstrap replicates the interval came from (for intervals of differences between estimates)
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, value: float, replicates: np.ndarray) -> Estimate:
        r = np.asarray(replicates, dtype=float)
        r = r[np.isfinite(r)]
        return cls(float(value), percentile_interval(r, LEVEL) if r.size else None, r)

    def to_json(self) -> dict:
        return {"value": self.value, "ci95": list(self.ci) if self.ci is not None else None}


@dataclass(frozen=True)
class Budget:
    """One IsoFLOP budget of Approach 2: its vertex, or why it was excluded."""

    budget: float
    n_runs: int  # runs at this budget
    n_used: int  # runs within the window around its lowest-loss run
    N_opt: Estimate | None = None
    D_opt: Estimate | None = None
    loss_min: float | None = None
    curvature: float | None = None  # k in L = loss_min + k (log10 N - log10 N_opt)^2
    excluded: str | None = None  # reason, when the budget has no usable minimum

    def to_json(self) -> dict:
        out = {"budget": self.budget, "n_runs": self.n_runs, "n_used": self.n_used, "excluded": self.excluded}
        if self.N_opt is not None:
            out |= {"N_opt": self.N_opt.to_json(), "D_opt": self.D_opt.to_json(), "loss_min": self.loss_min}
        return out


@dataclass
class Allocation:
    """What an approach says: the exponents, the budgets it used (Approach 2), tokens per parameter."""

    approach: int
    a: Estimate
    b: Estimate
    log10_k: float  # intercept c of log10 N_opt = a log10 C + c
    flops_per_param_token: float
    n_bootstrap: int
    n_failed: int  # bootstrap replicates that could not give an exponent
    budgets: list[Budget] = field(default_factory=list)
    tokens_per_param: dict[float, Estimate] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # for figures: (C grid, N_opt) of the envelope (Approach 1); each run's budget index (Approach 2, -1: none)
    frontier: tuple[np.ndarray, np.ndarray] | None = None
    group: np.ndarray | None = None

    def n_opt(self, C) -> np.ndarray:
        return 10.0 ** (self.a.value * np.log10(np.asarray(C, dtype=float)) + self.log10_k)

    def to_json(self) -> dict:
        return {
            "approach": self.approach,
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "log10_N_opt_intercept": self.log10_k,
            "flops_per_param_token": self.flops_per_param_token,
            "bootstrap": {"n": self.n_bootstrap, "failed": self.n_failed},
            "budgets": [b.to_json() for b in self.budgets],
            "tokens_per_param": [{"C": c, **e.to_json()} for c, e in self.tokens_per_param.items()],
            "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------- input checks
def _column(values, name: str, n: int | None = None) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise FitInputError(f"{name} must be numbers") from None
    if v.ndim != 1:
        raise FitInputError(f"{name} must be one value per run (1-d), got shape {v.shape}")
    if n is not None and v.size != n:
        raise FitInputError(f"{name} has {v.size} values, the other columns {n}")
    bad = ~np.isfinite(v) | (v <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FitInputError(f"{name} must be finite and positive: row {i} is {v[i]!r}")
    return v


def _check_level_args(n_bootstrap: int, seed: int, tokens_at) -> list[float]:
    if not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise FitInputError(f"n_bootstrap must be a whole number >= 0, got {n_bootstrap!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise FitInputError(f"seed must be a whole number >= 0, got {seed!r}")
    at = [] if tokens_at is None else [float(c) for c in np.atleast_1d(tokens_at)]
    if any(not np.isfinite(c) or c <= 0 for c in at):
        raise FitInputError(f"tokens_at budgets must be finite and positive, got {at}")
    return at


def flops_per_param_token(N, D, C) -> float:
    """``k`` in ``C = k N D``, the table's own FLOP convention (the median over runs)."""
    return float(np.median(np.asarray(C, dtype=float) / (np.asarray(N, dtype=float) * np.asarray(D, dtype=float))))


def infer_budgets(C, tol_dex: float) -> np.ndarray:
    """The distinct budgets of a table: runs whose ``log10 C`` lie within ``tol_dex`` of the first run of a
    group (in increasing C) form one budget, the geometric mean of its runs' C."""
    lc = np.sort(np.log10(np.asarray(C, dtype=float)))
    groups, start = [[lc[0]]], lc[0]
    for x in lc[1:]:
        if x - start <= tol_dex:
            groups[-1].append(x)
        else:
            groups.append([x])
            start = x
    return np.array([10.0 ** np.mean(g) for g in groups])


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares of y = a x + c (weights are inverse variances)."""
    a, c = np.polyfit(x, y, 1, w=np.sqrt(w))
    return float(a), float(c)


def _tokens_per_param(C: float, k: float, a, c):
    return (C / k) / (10.0 ** (np.asarray(a) * np.log10(C) + np.asarray(c))) ** 2


def _exponent_estimates(a: float, c: float, a_boot, c_boot, k: float, tokens_at: list[float]):
    a_boot, c_boot = np.asarray(a_boot, dtype=float), np.asarray(c_boot, dtype=float)
    tpp = {}
    for C in tokens_at:  # D/N = C / (k N^2) with N = N_opt(C)
        tpp[C] = Estimate.of(_tokens_per_param(C, k, a, c), _tokens_per_param(C, k, a_boot, c_boot))
    return Estimate.of(a, a_boot), Estimate.of(1.0 - a, 1.0 - a_boot), tpp


# --------------------------------------------------------------------------------------------- Approach 2
def approach2(
    N,
    C,
    L,
    *,
    budgets=None,
    tol_dex: float = 0.05,
    window_dex: float = 0.5,
    min_points: int = 4,
    k: float = 6.0,
    n_bootstrap: int = 1000,
    seed: int = 0,
    tokens_at=None,
    names: tuple[str, str, str] = ("N", "C", "loss"),
    progress: ProgressFn = no_progress,
) -> Allocation:
    """Hoffmann et al.'s Approach 2 on runs of sizes ``N`` at budgets ``C`` with final losses ``L`` (see the
    module docstring). ``budgets`` default to the table's own (:func:`infer_budgets`); a run belongs to the
    budget within ``tol_dex`` of its C."""
    N = _column(N, names[0])
    C = _column(C, names[1], N.size)
    L = _column(L, names[2], N.size)
    at = _check_level_args(n_bootstrap, seed, tokens_at)
    if not (np.isfinite(window_dex) and window_dex > 0):
        raise FitInputError(f"window_dex must be positive, got {window_dex}")
    if not (np.isfinite(tol_dex) and tol_dex >= 0):
        raise FitInputError(f"tol_dex must be >= 0, got {tol_dex}")
    if min_points < 4:
        raise FitInputError(f"min_points must be >= 4 (a parabola and one degree of freedom), got {min_points}")
    budgets = infer_budgets(C, tol_dex) if budgets is None else _column(budgets, "budgets")
    group = group_by_budget(C, budgets, tol_dex)
    notes = []
    if (group < 0).any():
        notes.append(f"{int((group < 0).sum())} run(s) belong to no budget (C not within {tol_dex} dex of one)")
    u = np.log10(N)
    rng = np.random.default_rng(seed)
    rows, kept, boot_u = [], [], []
    for j, b in enumerate(budgets):
        at_j = np.flatnonzero(group == j)
        if at_j.size < min_points:
            rows.append(
                Budget(float(b), int(at_j.size), int(at_j.size), excluded=f"{at_j.size} run(s), need {min_points}")
            )
            continue
        best = at_j[np.argmin(L[at_j])]
        if u[best] in (u[at_j].min(), u[at_j].max()):
            edge = "smallest" if u[best] == u[at_j].min() else "largest"
            rows.append(
                Budget(
                    float(b),
                    int(at_j.size),
                    0,
                    excluded=f"its lowest loss is at the {edge} size sampled (N = {N[best]:.3g}): no interior minimum",
                )
            )
            continue
        sel = at_j[np.abs(u[at_j] - u[best]) <= window_dex + 1e-12]
        base = dict(budget=float(b), n_runs=int(at_j.size), n_used=int(sel.size))
        if sel.size < min_points:
            rows.append(
                Budget(
                    **base,
                    excluded=f"{sel.size} run(s) within {window_dex} dex of its lowest-loss run, need {min_points}",
                )
            )
            continue
        prof = fit_profile(N[sel], L[sel], b)
        if prof is None:
            rows.append(Budget(**base, excluded="the parabola has no minimum (it opens downward)"))
            continue
        if not prof.vertex_inside:
            rows.append(
                Budget(
                    **base,
                    excluded=(
                        f"its minimum (N = {10**prof.log10_n_opt:.3g}) lies outside the sizes sampled "
                        f"({N[sel].min():.3g} - {N[sel].max():.3g}): an extrapolation"
                    ),
                )
            )
            continue
        # residual bootstrap: the sizes of a profile are a design, not a sample, so each replicate keeps them and
        # redraws the parabola's residuals (inflated by sqrt(n / (n - 3)) for the three fitted coefficients)
        fitted = prof.loss_min + prof.curvature * (u[sel] - prof.log10_n_opt) ** 2
        resid = (L[sel] - fitted) * np.sqrt(sel.size / (sel.size - 3))
        reps = np.full(n_bootstrap, np.nan)
        for r in range(n_bootstrap):
            p = fit_profile(N[sel], fitted + rng.choice(resid, sel.size), b)
            if p is not None:  # a replicate whose parabola opens downward has no vertex
                reps[r] = p.log10_n_opt
        rows.append(Budget(**base, loss_min=prof.loss_min, curvature=prof.curvature))
        kept.append((len(rows) - 1, prof))
        boot_u.append(reps)
        progress(len(kept), len(budgets))
    progress(len(budgets), len(budgets))
    if len(kept) < 3:
        why = "; ".join(f"C = {r.budget:.3g}: {r.excluded}" for r in rows if r.excluded)
        raise FitInputError(
            f"an exponent needs IsoFLOP minima at 3 or more budgets, found {len(kept)} of {len(budgets)}"
            + (f" ({why})" if why else "")
        )
    x = np.log10([p.budget for _, p in kept])
    y = np.array([p.log10_n_opt for _, p in kept])
    B = np.array(boot_u)  # (budgets kept, n_bootstrap)
    if n_bootstrap:
        var = np.array([np.nanvar(r) if np.isfinite(r).sum() >= 2 else np.nan for r in B])
        floor = np.nanmedian(var) * 1e-3 if np.isfinite(var).any() else 1.0
        var = np.where(np.isfinite(var), np.maximum(var, floor), np.nanmax(var) if np.isfinite(var).any() else 1.0)
        w = 1.0 / var
    else:
        w = np.ones_like(x)
    a, c = _weighted_line(x, y, w)
    a_boot, c_boot, failed = [], [], 0
    for r in range(n_bootstrap):
        ok = np.isfinite(B[:, r])
        if ok.sum() < 3:
            failed += 1
            continue
        ar, cr = _weighted_line(x[ok], B[ok, r], w[ok])
        a_boot.append(ar)
        c_boot.append(cr)
    for (i, _), reps, uj in zip(kept, B, y, strict=True):
        n_est = Estimate.of(10.0**uj, 10.0**reps)
        d_est = Estimate.of(rows[i].budget / (k * 10.0**uj), rows[i].budget / (k * 10.0**reps))
        rows[i] = Budget(**{**rows[i].__dict__, "N_opt": n_est, "D_opt": d_est})
    a_est, b_est, tpp = _exponent_estimates(a, c, a_boot, c_boot, k, at)
    notes.append(
        f"{len(kept)} of {len(budgets)} budgets used; parabola window ±{window_dex} dex around each budget's "
        f"lowest-loss run; exponent fit weighted by each vertex's bootstrap variance"
    )
    return Allocation(2, a_est, b_est, c, k, n_bootstrap, failed, rows, tpp, notes, group=group)


# --------------------------------------------------------------------------------------------- Approach 1
def approach1(
    run,
    N,
    D,
    L,
    *,
    k: float = 6.0,
    n_grid: int = 60,
    n_bootstrap: int = 1000,
    seed: int = 0,
    tokens_at=None,
    names: tuple[str, str, str, str] = ("run", "N", "D", "loss"),
    progress: ProgressFn = no_progress,
) -> Allocation:
    """Hoffmann et al.'s Approach 1 on learning curves: one row per (run, evaluation), ``D`` the tokens seen
    by then and ``L`` the loss. The envelope is taken from the end of the run with the least compute to the
    end of the one with the most (before it, the envelope is warmup transients of the smallest model)."""
    at = _check_level_args(n_bootstrap, seed, tokens_at)
    curves = [c for _, c in _curves(run, N, D, L, names)]
    if len({n for n, _, _ in curves}) < 3:
        raise FitInputError(f"the envelope needs learning curves of 3 or more sizes, got {len(curves)} run(s)")

    def fit(cs):
        fr = learning_curve_frontier(cs, n_grid=n_grid, flops_per_token=[k * n for n, _, _ in cs])
        lo = min(k * n * d[-1] for n, d, _ in cs)
        hi = max(k * n * d[-1] for n, d, _ in cs)
        keep = (fr.compute >= lo * (1 - 1e-9)) & (fr.compute <= hi * (1 + 1e-9)) & np.isfinite(fr.loss)
        if keep.sum() < 3 or np.unique(fr.n_params[keep]).size < 2:
            return None
        a, c = np.polyfit(np.log10(fr.compute[keep]), np.log10(fr.n_params[keep]), 1)
        return float(a), float(c), fr, keep

    first = fit(curves)
    if first is None:
        raise FitInputError("the envelope of these curves is made by fewer than 2 sizes: no exponent")
    a, c, fr, keep = first
    rng = np.random.default_rng(seed)
    a_boot, c_boot, failed = [], [], 0
    for r in range(n_bootstrap):
        pick = rng.integers(0, len(curves), len(curves))
        res = fit([curves[i] for i in pick]) if len({curves[i][0] for i in pick}) >= 2 else None
        if res is None:
            failed += 1
        else:
            a_boot.append(res[0])
            c_boot.append(res[1])
        progress(r + 1, n_bootstrap)
    a_est, b_est, tpp = _exponent_estimates(a, c, a_boot, c_boot, k, at)
    notes = [
        f"envelope of {len(curves)} learning curves, {int(keep.sum())} grid points between "
        f"C = {fr.compute[keep].min():.3g} and {fr.compute[keep].max():.3g}; bootstrap over whole runs"
    ]
    return Allocation(1, a_est, b_est, c, k, n_bootstrap, failed, [], tpp, notes, (fr.compute[keep], fr.n_params[keep]))


def _curves(run, N, D, L, names) -> list[tuple[object, tuple[float, np.ndarray, np.ndarray]]]:
    """Rows (run label, N, tokens D, loss) as one learning curve per run: (label, (N, D sorted, L))."""
    run = np.asarray(run)
    N = _column(N, names[1])
    D = _column(D, names[2], N.size)
    L = _column(L, names[3], N.size)
    if run.shape != N.shape:
        raise FitInputError(f"{names[0]} must have one label per row, got {run.size} for {N.size} rows")
    out = []
    for lab in dict.fromkeys(run.tolist()):
        i = np.flatnonzero(run == lab)
        if np.unique(N[i]).size != 1:
            raise FitInputError(f"{names[0]} {lab!r}: its rows give more than one {names[1]}")
        order = np.argsort(D[i])
        d = D[i][order]
        if np.unique(d).size != d.size:
            raise FitInputError(f"{names[0]} {lab!r}: two rows at the same {names[2]} = {d[np.diff(d) == 0][0]:g}")
        out.append((lab, (float(N[i][0]), d, L[i][order])))
    return out


def budget_points(
    run,
    N,
    D,
    L,
    budgets,
    *,
    k=6.0,
    tol: float = 0.1,
    names: tuple[str, str, str, str] = ("run", "N", "D", "loss"),
) -> dict[str, np.ndarray]:
    """IsoFLOP points read off learning curves, as Porian et al. (2024, arXiv:2406.19146, their released
    analysis) do: for each run and each budget ``C`` its curve passes (compute ``k N D``), the loss there,
    interpolated linearly in log loss against log compute between the two evaluations around it (``k``: FLOPs
    per parameter per token, one value or one per row, constant within a run); a budget
    beyond the curve's ends by at most ``tol`` (relative) takes the end's loss; farther, the run has no point at
    that budget. Returns columns ``run``, ``N``, ``C``, ``D`` and ``loss`` for :func:`approach2`.

    Valid only for runs whose learning-rate schedule does not depend on where they are read: a constant rate,
    or one cosine over a horizon fixed for every budget (Kaplan et al.'s schedule). A run whose cosine is matched
    to its own length is at an IsoFLOP point only at its end (Hoffmann et al.)."""
    budgets = _column(budgets, "budgets")
    if not (np.isfinite(tol) and 0 <= tol < 1):
        raise FitInputError(f"tol must be a fraction in [0, 1), got {tol!r}")
    rows: dict[str, list] = {"run": [], "N": [], "C": [], "D": [], "loss": []}
    labels = np.asarray(run)
    k_rows = _column(np.broadcast_to(np.asarray(k, dtype=float), labels.shape), "k", labels.size)
    for lab, (n, d, loss) in _curves(run, N, D, L, names):
        k_run = np.unique(k_rows[labels == lab])
        if k_run.size != 1:
            raise FitInputError(f"{names[0]} {lab!r}: its rows give more than one k (FLOPs per parameter per token)")
        kr = float(k_run[0])
        lc, ll = np.log(kr * n * d), np.log(loss)
        for c in budgets:
            x = np.log(c)
            if lc[0] <= x <= lc[-1]:
                y = float(np.exp(np.interp(x, lc, ll)))
            elif lc[-1] < x <= lc[-1] + np.log1p(tol):
                y = float(loss[-1])
            elif lc[0] - np.log1p(tol) <= x < lc[0]:
                y = float(loss[0])
            else:
                continue
            for key, v in zip(rows, (lab, n, c, c / (kr * n), y), strict=True):
                rows[key].append(v)
    out = {key: np.asarray(v, dtype=object if key == "run" else float) for key, v in rows.items()}
    if not out["C"].size:
        raise FitInputError(f"no learning curve reaches any of the budgets {', '.join(f'{c:.3g}' for c in budgets)}")
    return out


# --------------------------------------------------------------------------------------------- Approach 3
def approach3(
    N,
    D,
    L,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    tokens_at=None,
    names: tuple[str, str, str] = ("N", "D", "loss"),
    progress: ProgressFn = no_progress,
) -> Allocation:
    """Hoffmann et al.'s Approach 3: the parametric fit (their Huber loss, delta 1e-3, and grid of starts),
    with ``a``, ``b`` and tokens per parameter derived from each bootstrap replicate (``C = 6 N D``)."""
    N = _column(N, names[0])
    D = _column(D, names[1], N.size)
    L = _column(L, names[2], N.size)
    at = _check_level_args(n_bootstrap, seed, tokens_at)
    law = ScalingLaw("chinchilla", loss="huber", delta=1e-3).fit(np.stack([N, D], axis=1), L, progress=progress)
    p = law.params_
    a = float(derived.exponent_a(p["alpha"], p["beta"]))
    if n_bootstrap:
        boot = law.bootstrap(n_bootstrap, seed=seed, progress=progress)
        cols = {name: boot.column(name) for name in ("A", "B", "alpha", "beta")}
        n_failed = boot.n_failed
    else:
        cols = {name: np.array([]) for name in ("A", "B", "alpha", "beta")}
        n_failed = 0
    a_boot = derived.exponent_a(cols["alpha"], cols["beta"])
    tpp = {
        C: Estimate.of(
            float(derived.tokens_per_parameter(C, p["A"], p["B"], p["alpha"], p["beta"])),
            derived.tokens_per_parameter(C, cols["A"], cols["B"], cols["alpha"], cols["beta"]),
        )
        for C in at
    }
    c = float(np.log10(derived.n_opt(1.0, p["A"], p["B"], p["alpha"], p["beta"])))
    notes = [
        "L(N, D) = E + A/N^alpha + B/D^beta, Huber loss (delta 1e-3) on log loss, Hoffmann et al.'s grid of starts; "
        f"E = {p['E']:.4g}, A = {p['A']:.4g}, B = {p['B']:.4g}, alpha = {p['alpha']:.4g}, beta = {p['beta']:.4g}",
        *law.warnings_,
    ]
    return Allocation(
        3, Estimate.of(a, a_boot), Estimate.of(1.0 - a, 1.0 - a_boot), c, 6.0, n_bootstrap, n_failed, [], tpp, notes
    )
