"""Chinchilla refit audit: Hoffmann et al. (2022) Approach 3 (and 2) on the paper's own points.

Data: Epoch AI's extraction of Hoffmann et al. Figure 4 (Besiroglu et al. 2024), five highest-loss rows
dropped, tokens D = C / (6 N). Everything here is a call into :mod:`harness.fit`; the notebook and the CLI
both call :func:`run`, so no analysis logic lives anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.claims import Measurement
from harness.fit import Bootstrap, ScalingLaw, percentile_interval
from harness.fit import derived as dv
from harness.fit.isoflop import IsoFlopProfile, isoflop_profiles, optimal_size_exponent
from harness.progress import ProgressFn, no_progress
from harness.replication import TierContext, TierResult

from .constants import CHINCHILLA_BUDGET, ISOFLOP_BUDGETS, ISOFLOP_TOL_DEX, LEVEL, PUBLISHED
from .data import CHINCHILLA, ChinchillaData, load_chinchilla

MLE_NO_BOOTSTRAP = (
    "point estimate only: at the optimum every residual divided by the fitted scale lies in the Huber tail, so the "
    "likelihood is piecewise linear there and L-BFGS cannot re-converge bootstrap replicates reliably"
)


@dataclass
class ChinchillaAudit:
    """Everything the audit computed, for claims, figures and the notebook."""

    data: ChinchillaData
    sum_fit: ScalingLaw
    mean_fit: ScalingLaw
    mle_fit: ScalingLaw
    sum_boot: Bootstrap
    profiles: list[IsoFlopProfile]
    approach2_a: float
    approach2_boot: np.ndarray

    def measurements(self) -> dict[str, Measurement]:
        m: dict[str, Measurement] = {}
        sf, sb = self.sum_fit, self.sum_boot
        note = f"{sb.n_resamples} bootstrap refits ({sb.n_failed} failed), seed {sb.seed}"
        for k in ("E", "A", "B", "alpha", "beta", *DERIVED):
            value = sf.params_[k] if k in sf.params_ else derived_point(sf, k)
            m[f"sum_fit.{k}"] = Measurement(value, sb.interval(k, LEVEL), LEVEL, note)
        m["sum_fit.objective"] = Measurement(sf.objective_, note=f"{sf.n_converged_}/{sf.n_starts_} starts converged")
        for k in ("A", "B", "E", "alpha", "beta"):
            m[f"mle_fit.{k}"] = Measurement(self.mle_fit.params_[k], note=MLE_NO_BOOTSTRAP)
        pub_tpp = float(
            dv.tokens_per_parameter(
                CHINCHILLA_BUDGET, PUBLISHED["A"], PUBLISHED["B"], PUBLISHED["alpha"], PUBLISHED["beta"]
            )
        )
        m["published_fit.tokens_per_param"] = Measurement(pub_tpp, note="computed from Hoffmann et al. eq. 10")
        d_sum, d_mean = distance_to_published(sf.params_), distance_to_published(self.mean_fit.params_)
        mp = self.mean_fit.params_
        m["mean_fit.closer_to_published"] = Measurement(
            bool(d_mean < d_sum),
            note=(
                f"relative distance to eq. 10 over (E, alpha, beta): sum fit {d_sum:.3f}, mean fit {d_mean:.3f}; "
                f"mean fit E={mp['E']:.3f} A={mp['A']:.1f} B={mp['B']:.1f} alpha={mp['alpha']:.3f} "
                f"beta={mp['beta']:.3f}"
            ),
        )
        if np.isfinite(self.approach2_a):
            m["approach2.a"] = Measurement(
                self.approach2_a,
                percentile_interval(self.approach2_boot, LEVEL),
                LEVEL,
                f"{len(self.profiles)} IsoFLOP budgets with a minimum inside the sampled sizes; "
                f"{len(self.approach2_boot)} bootstrap refits",
            )
        else:
            m["approach2.a"] = Measurement.missing("fewer than 3 budgets have an IsoFLOP minimum inside the data")
        return m


# Quantities derived from the parameters of the law (columns of parameter values, one per name): the
# compute-optimal exponents and tokens per parameter at the Chinchilla budget. Each is added to the bootstrap
# with ``Bootstrap.derive``, so its interval comes from the same replicates as the parameters'.
DERIVED: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "a": lambda c: dv.exponent_a(c["alpha"], c["beta"]),
    "b": lambda c: dv.exponent_b(c["alpha"], c["beta"]),
    "tokens_per_param": lambda c: dv.tokens_per_parameter(CHINCHILLA_BUDGET, c["A"], c["B"], c["alpha"], c["beta"]),
}


def derived_point(fit: ScalingLaw, key: str) -> float:
    """A derived quantity (see ``DERIVED``) at the fit's own parameters."""
    return float(DERIVED[key]({k: np.array([v]) for k, v in fit.params_.items()})[0])


def distance_to_published(params: dict[str, float]) -> float:
    """Relative distance to Hoffmann et al. eq. 10 over E, alpha and beta (A and B are too poorly determined
    to weigh in: their bootstrap intervals span a factor of two)."""
    return float(np.sqrt(sum(((params[k] - PUBLISHED[k]) / PUBLISHED[k]) ** 2 for k in ("E", "alpha", "beta"))))


def approach2(
    data: ChinchillaData, n_bootstrap: int, seed: int, progress: ProgressFn = no_progress
) -> tuple[list[IsoFlopProfile], float, np.ndarray]:
    profiles = isoflop_profiles(data.N, data.C, data.loss, ISOFLOP_BUDGETS, tol_dex=ISOFLOP_TOL_DEX)
    if len(profiles) < 3:
        return profiles, float("nan"), np.array([])
    a, _ = optimal_size_exponent(profiles)
    rng = np.random.default_rng(seed)
    boots = []
    n = len(data.N)
    for i in range(n_bootstrap):
        w = rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)
        prof = isoflop_profiles(data.N, data.C, data.loss, ISOFLOP_BUDGETS, tol_dex=ISOFLOP_TOL_DEX, weights=w)
        if len(prof) >= 3:
            boots.append(optimal_size_exponent(prof)[0])
        progress(i + 1, n_bootstrap)
    return profiles, a, np.array(boots)


def run(
    n_bootstrap: int = 1000, seed: int = 0, log=print, progress: Callable[[str], ProgressFn] | None = None
) -> ChinchillaAudit:
    """The whole audit; ``progress(label)``, if given, makes the progress callback of each long step (the tier
    passes :meth:`harness.replication.TierContext.progress`)."""
    bar = progress or (lambda label: no_progress)
    data = load_chinchilla()
    log(
        f"chinchilla: {len(data.loss)} points (dropped the {data.n_dropped} highest-loss rows), "
        f"sha256 {data.sha256[:12]}"
    )
    log("chinchilla: Approach 3, Hoffmann grid (4,500 starts), summed Huber loss ...")
    sum_fit = ScalingLaw("chinchilla", loss="huber", delta=1e-3, reduction="sum")
    sum_fit.fit(data.X, data.loss, progress=bar("starts"))
    log("chinchilla: same with the mean of the Huber losses ...")
    mean_fit = ScalingLaw("chinchilla", loss="huber", delta=1e-3, reduction="mean")
    mean_fit.fit(data.X, data.loss, progress=bar("starts"))
    log("chinchilla: maximum-likelihood fit with a free Huber scale ...")
    mle_fit = ScalingLaw("chinchilla", loss="huber_nll", delta=1e-3, reduction="sum")
    mle_fit.fit(data.X, data.loss, progress=bar("starts"))
    log(f"chinchilla: {n_bootstrap} bootstrap refits of the summed-Huber fit ...")
    sum_boot = sum_fit.bootstrap(n_bootstrap, seed=seed, progress=bar("bootstrap refits"))
    for name, fn in DERIVED.items():
        sum_boot.derive(name, fn)
    log("chinchilla: Approach 2 (IsoFLOP parabolas) ...")
    profiles, a2, a2_boot = approach2(data, n_bootstrap, seed, bar("IsoFLOP bootstrap"))
    return ChinchillaAudit(data, sum_fit, mean_fit, mle_fit, sum_boot, profiles, a2, a2_boot)


def measure(ctx: TierContext) -> TierResult:
    """The ``refit`` tier: fits, bootstraps, measurements and figures."""
    from . import figures  # here, not at the top: matplotlib is needed only to draw

    audit = run(ctx.n_bootstrap, ctx.seed, ctx.log, ctx.progress)
    fits = {
        name: {
            "params": f.params_,
            "objective": f.objective_,
            "n_starts": f.n_starts_,
            "n_converged": f.n_converged_,
            "status": f.status_,
        }
        for name, f in (("sum", audit.sum_fit), ("mean", audit.mean_fit), ("mle", audit.mle_fit))
    }
    return TierResult(
        measurements=audit.measurements(),
        figures={
            "isoloss_contours": figures.isoloss_contours(audit),
            "bootstrap_a": figures.bootstrap_exponent(audit),
            "isoflop_profiles": figures.isoflop_profiles(audit),
        },
        artifacts={
            "fits": fits,
            "n_bootstrap": ctx.n_bootstrap,
            "seed": ctx.seed,
            "approach2_profiles": [p.__dict__ for p in audit.profiles],
        },
        inputs={
            "data": CHINCHILLA.name,
            "data_sha256": audit.data.sha256,
            "n_points": len(audit.data.loss),
            "dropped_highest_loss": audit.data.n_dropped,
        },
    )
