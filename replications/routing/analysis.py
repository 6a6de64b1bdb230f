"""Routing refit: Clark et al. (2022) eq. (1) on the authors' own released runs, per router.

For each router (S-Base, RL-R, Hash): its top-1 runs routing every other block and the dense runs (E = 1),
final validation loss, eq. (1) fitted by least squares on log L with the saturating E_hat (all six parameters
together, from a grid of saturation parameters at which the four linear ones are solved exactly), bootstrap
intervals over runs. Also the dense power law L = (N_c/N)^alpha_N, the size at which routing stops helping
(N_cutoff, where b + c log10 N = 0), and the paper's qualitative claims measured on the runs themselves.
Everything is a call into :mod:`harness.fit`; the notebook and the CLI both call :func:`run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.claims import Measurement
from harness.fit import Bootstrap, ScalingLaw, percentile_interval
from harness.progress import ProgressFn, no_progress
from harness.replication import TierContext, TierResult

from .constants import FIT_TOL, KEY, LEVEL, ROUTERS
from .data import ROUTING, RoutingRuns, load_routing

COEFFICIENTS = ("a", "b", "c", "d", "E_start", "E_max")


def log10_n_cutoff(cols: dict[str, np.ndarray]) -> np.ndarray:
    """log10 of the dense size at which d log L / d log E_hat = b + c log10 N reaches 0 (+inf if c <= 0)."""
    c = np.asarray(cols["c"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, -np.asarray(cols["b"], dtype=float) / c, np.inf)


@dataclass
class RouterFit:
    router: str
    runs: RoutingRuns  # the router's grid (its runs and the dense ones)
    law: ScalingLaw
    boot: Bootstrap

    @property
    def X(self) -> np.ndarray:
        return np.stack([self.runs.N, self.runs.E], axis=1)

    def rms_log10(self) -> float:
        """Root-mean-square residual of the fit in log10 L (the scale the paper's coefficients live on)."""
        pred = self.law.predict(self.X)
        return float(np.sqrt(np.mean(np.log10(pred / self.runs.loss) ** 2)))

    def rms_log10_table3(self) -> float:
        """The same residual for the published law (Table 3, coefficients as printed to three decimals)."""
        from .constants import TABLE3

        pred = self.law.form.predict(TABLE3[self.router], self.X)
        return float(np.sqrt(np.mean(np.log10(pred / self.runs.loss) ** 2)))

    def routing_helps_every_size(self) -> tuple[bool, str]:
        """Whether, at every dense size of the grid, every routed run has a lower loss than the dense run(s)."""
        r, worst = self.runs, []
        for n in np.unique(r.N[r.E > 1]):
            dense = r.loss[(r.N == n) & (r.E == 1)]
            if dense.size == 0:
                continue
            routed = r.loss[(r.N == n) & (r.E > 1)]
            worst.append((float(np.max(routed) - np.mean(dense)), n))
        ok = all(gap < 0 for gap, _ in worst)
        gap, n = max(worst)
        return ok, f"{len(worst)} sizes; the smallest improvement is {-gap:.4f} nats (N = {n:.3g})"


@dataclass
class RoutingAudit:
    """Everything the refit computed, for claims, figures and the notebook."""

    runs: RoutingRuns
    fits: dict[str, RouterFit]
    dense_law: ScalingLaw
    dense_boot: Bootstrap
    gaps: dict[str, tuple[float, np.ndarray, int]]  # other router -> (mean log10 gap, bootstrap, n cells)

    def measurements(self) -> dict[str, Measurement]:
        m: dict[str, Measurement] = {}
        for router, f in self.fits.items():
            k = KEY[router]
            note = (
                f"{len(f.runs)} runs ({int(np.sum(f.runs.E > 1))} routed, {int(np.sum(f.runs.E == 1))} dense), "
                f"rms residual {f.rms_log10():.4f} in log10 L; {f.boot.n_resamples} bootstrap refits "
                f"({f.boot.n_failed} failed)"
            )
            for p in COEFFICIENTS:
                m[f"{k}.{p}"] = Measurement(f.law.params_[p], f.boot.interval(p, LEVEL), LEVEL, note)
            point = float(log10_n_cutoff({p: np.array([v]) for p, v in f.law.params_.items()})[0])
            m[f"{k}.log10_n_cutoff"] = Measurement(point, f.boot.interval("log10_n_cutoff", LEVEL), LEVEL, note)
            ok, why = f.routing_helps_every_size()
            m[f"{k}.routing_helps_every_size"] = Measurement(ok, note=why)
        for other, (gap, boot, n_cells) in self.gaps.items():
            k = f"s_base_vs_{KEY[other]}"
            m[f"{k}.mean_log10_gap"] = Measurement(
                gap,
                percentile_interval(boot, LEVEL),
                LEVEL,
                f"S-Base minus {other} in log10 L, averaged over the {n_cells} (N, E) cells both trained; "
                "cells resampled",
            )
            diff = self.fits["S-Base"].boot.column("log10_n_cutoff")
            diff = diff[: min(len(diff), len(self.fits[other].boot.column("log10_n_cutoff")))]
            diff = diff - self.fits[other].boot.column("log10_n_cutoff")[: len(diff)]
            s, o = (float(self._point_cutoff(r)) for r in ("S-Base", other))
            m[f"{k}.log10_n_cutoff_diff"] = Measurement(
                s - o,
                percentile_interval(diff, LEVEL),
                LEVEL,
                "independent bootstraps of the two fits, paired by index",
            )
        dp, db = self.dense_law.params_, self.dense_boot
        dnote = f"{len(self.dense_law.y_)} dense runs; {db.n_resamples} bootstrap refits ({db.n_failed} failed)"
        m["dense.alpha_N"] = Measurement(dp["alpha"], db.interval("alpha", LEVEL), LEVEL, dnote)
        m["dense.N_c"] = Measurement(dp["A"] ** (1 / dp["alpha"]), db.interval("N_c", LEVEL), LEVEL, dnote)
        return m

    def _point_cutoff(self, router: str) -> float:
        return float(log10_n_cutoff({p: np.array([v]) for p, v in self.fits[router].law.params_.items()})[0])


def fit_router(runs: RoutingRuns, router: str, n_bootstrap: int, seed: int, progress: ProgressFn) -> RouterFit:
    grid = runs.main_grid(router)
    law = ScalingLaw("routing", loss="mse", **FIT_TOL)
    law.fit(np.stack([grid.N, grid.E], axis=1), grid.loss)
    boot = law.bootstrap(n_bootstrap, seed=seed, progress=progress)
    boot.derive("log10_n_cutoff", log10_n_cutoff)
    return RouterFit(router, grid, law, boot)


def matched_gap(runs: RoutingRuns, other: str, n_bootstrap: int, seed: int) -> tuple[float, np.ndarray, int]:
    """Mean over the (N, E) cells that S-Base and ``other`` both trained of log10 L(S-Base) - log10 L(other),
    and its bootstrap over cells (a cell with several seeds counts once, at its mean)."""
    a, b = runs.main_grid("S-Base"), runs.main_grid(other)

    def cells(r: RoutingRuns) -> dict[tuple[float, float], float]:
        out: dict[tuple[float, float], list[float]] = {}
        for n, e, loss in zip(r.N, r.E, r.loss, strict=True):
            if e > 1:
                out.setdefault((float(n), float(e)), []).append(float(loss))
        return {c: float(np.mean(v)) for c, v in out.items()}

    ca, cb = cells(a), cells(b)
    shared = sorted(set(ca) & set(cb))
    d = np.array([np.log10(ca[c]) - np.log10(cb[c]) for c in shared])
    rng = np.random.default_rng(seed)
    boot = np.array([rng.choice(d, size=len(d), replace=True).mean() for _ in range(n_bootstrap)])
    return float(d.mean()), boot, len(shared)


def run(
    n_bootstrap: int = 1000, seed: int = 0, log=print, progress: Callable[[str], ProgressFn] | None = None
) -> RoutingAudit:
    """The whole refit; ``progress(label)``, if given, makes the progress callback of each bootstrap."""
    bar = progress or (lambda label: no_progress)
    runs = load_routing()
    log(f"routing: {len(runs)} runs ({runs.n_rows} evaluations), final losses, sha256 {runs.sha256[:12]}")
    fits = {}
    for i, router in enumerate(ROUTERS):
        log(f"routing: eq. (1) for {router}, {n_bootstrap} bootstrap refits ...")
        fits[router] = fit_router(runs, router, n_bootstrap, seed + i, bar(f"{router} bootstrap"))
    dense = runs.main_grid("S-Base")
    dense = dense.select(dense.E == 1)
    log(f"routing: dense law on {len(dense)} runs ...")
    dense_law = ScalingLaw("power", loss="mse", **FIT_TOL).fit(dense.N, dense.loss)
    dense_boot = dense_law.bootstrap(n_bootstrap, seed=seed, progress=bar("dense bootstrap"))
    dense_boot.derive("N_c", lambda c: c["A"] ** (1 / c["alpha"]))
    gaps = {other: matched_gap(runs, other, n_bootstrap, seed) for other in ROUTERS[1:]}
    return RoutingAudit(runs, fits, dense_law, dense_boot, gaps)


def measure(ctx: TierContext) -> TierResult:
    """The ``refit`` tier: fits, bootstraps, measurements and the figure."""
    from . import figures  # here, not at the top: matplotlib is needed only to draw

    audit = run(ctx.n_bootstrap, ctx.seed, ctx.log, ctx.progress)
    fits = {
        router: {
            "params": f.law.params_,
            "objective": f.law.objective_,
            "rms_log10": f.rms_log10(),
            "rms_log10_table3": f.rms_log10_table3(),
            "n_runs": len(f.runs),
            "n_starts": f.law.n_starts_,
            "n_converged": f.law.n_converged_,
        }
        for router, f in audit.fits.items()
    }
    fits["Dense"] = {"params": audit.dense_law.params_, "objective": audit.dense_law.objective_}
    return TierResult(
        measurements=audit.measurements(),
        figures={"routing_laws": figures.routing_laws(audit)},
        artifacts={"fits": fits, "n_bootstrap": ctx.n_bootstrap, "seed": ctx.seed},
        inputs={"data": ROUTING.name, "data_sha256": audit.runs.sha256, "n_runs": len(audit.runs)},
    )
