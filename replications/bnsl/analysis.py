"""BNSL refit: every form on every curve of the extrapolation benchmark, fitted on the curve's fit split and
scored on its extrapolation split.

Forms (``harness.fit``): M1-M4 as Alabdulmohsin et al. (2022) define them and BNSL with one break (Caballero
et al. 2023, eq. 1). Each is fitted by least squares on log y (the benchmark's metric is RMSLE, the root mean
squared log error) from the form's own grid of starts, BNSL's 540 screened down to 64 (``screen=True``), and
scored by RMSLE on the held-out points. A fit that converges from no start scores as missing for that form
and is counted. Everything is a call into :mod:`harness.fit`; the notebook and the CLI both call :func:`run`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from harness.errors import UserError
from harness.fit import ScalingLaw
from harness.progress import ProgressFn, no_progress

from .constants import METHODS
from .data import DOMAINS, Benchmark, Curve


def rmsle(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(pred) - np.log(y)) ** 2)))


@dataclass
class CurveFit:
    curve: Curve
    rmsle: dict[str, float | None] = field(default_factory=dict)  # method -> extrapolation RMSLE (None: failed)
    params: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def fit_curve(curve: Curve, methods: tuple[str, ...] = tuple(METHODS)) -> CurveFit:
    out = CurveFit(curve)
    x, y = curve.x[curve.train], curve.y[curve.train]
    for m in methods:
        form, options, screen = METHODS[m]
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. BNSL's "break not identified": the score still counts
                law = ScalingLaw(form, loss="mse", form_kwargs=options, screen=screen).fit(x, y)
            pred = law.predict(curve.x[~curve.train])
            score = rmsle(pred, curve.y[~curve.train])
            out.rmsle[m] = score if math.isfinite(score) else None
            out.params[m] = dict(law.params_)
        except UserError as exc:  # FitInputError / ConvergenceError: this form on this curve has no score
            out.rmsle[m] = None
            out.errors[m] = str(exc).splitlines()[0]
        out.seconds[m] = time.perf_counter() - t0
    return out


@dataclass
class BenchmarkFits:
    fits: list[CurveFit]
    methods: tuple[str, ...]
    sha256: dict[str, str]

    def domain(self, d: str) -> list[CurveFit]:
        return [f for f in self.fits if f.curve.domain == d]

    def best_fraction(self, method: str, among: tuple[str, ...], domain: str | None = None) -> float:
        """Fraction of curves (of ``domain``, or all) that ``method`` wins among ``among`` (see :func:`win_shares`)."""
        fits = self.fits if domain is None else self.domain(domain)
        return float(win_shares(fits, among)[:, among.index(method)].mean())

    def margin(self, method: str, among: tuple[str, ...], n_boot: int, seed: int = 0):
        """:func:`win_margin` of ``method`` among ``among`` and its bootstrap replicates (curves resampled)."""
        shares = win_shares(self.fits, among)
        k = among.index(method)
        rng = np.random.default_rng(seed)
        reps = [win_margin(shares[rng.integers(0, len(shares), len(shares))], k) for _ in range(n_boot)]
        return win_margin(shares, k), np.array(reps)

    def table(self) -> list[dict]:
        """Per domain and method: curves, failures, median and mean RMSLE with the mean's standard error."""
        rows = []
        for d in (*DOMAINS, None):
            fits = self.fits if d is None else self.domain(d)
            for m in self.methods:
                v = np.array([f.rmsle[m] for f in fits if f.rmsle.get(m) is not None])
                rows.append(
                    {
                        "domain": d or "all",
                        "method": m,
                        "curves": len(fits),
                        "failed": len(fits) - len(v),
                        "median_rmsle": float(np.median(v)) if len(v) else None,
                        "mean_rmsle": float(v.mean()) if len(v) else None,
                        "sem_rmsle": float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None,
                        "best_fraction": self.best_fraction(m, self.methods, d),
                    }
                )
        return rows


def win_shares(fits: list[CurveFit], methods: tuple[str, ...]) -> np.ndarray:
    """(curves, methods): each curve's win credit, as Alabdulmohsin et al.'s released notebook counts it: RMSLE
    truncated to 3 decimals, a failed fit scored 1, and a tie sharing the credit equally."""
    out = np.zeros((len(fits), len(methods)))
    for i, f in enumerate(fits):
        r = np.array([1.0 if f.rmsle.get(m) is None else math.floor(f.rmsle[m] * 1000) / 1000 for m in methods])
        best = r == r.min()
        out[i, best] = 1.0 / best.sum()
    return out


def win_margin(shares: np.ndarray, k: int) -> float:
    """Method ``k``'s fraction of curves won minus the best other method's."""
    frac = shares.mean(axis=0)
    # shares are multiples of 1/60 per curve: rounding to 1e-12 removes float noise (a tie is exactly 0)
    return round(float(frac[k] - np.delete(frac, k).max()), 12) + 0.0  # + 0.0: a tie is 0, never -0


def run(bench: Benchmark, methods: tuple[str, ...] = tuple(METHODS), progress: ProgressFn = no_progress):
    fits = []
    for i, c in enumerate(bench.curves):
        fits.append(fit_curve(c, methods))
        progress(i + 1, len(bench.curves))
    return BenchmarkFits(fits, methods, bench.sha256)


# ------------------------------------------------------------------------------------------------ tiers
SMOKE_CURVES = 4  # the smoke tier fits the first curve of each domain


def example_measurements(n_boot: int) -> tuple[dict, dict]:
    """The worked example: the authors' procedure against their published fit, and our fitter on the same data."""
    from harness.claims import Measurement

    from . import example as ex

    theirs = ex.authors_fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = ex.our_fit()
    m = {f"example.authors.{k}": Measurement(v, note="the authors' procedure, rerun here") for k, v in theirs.items()}
    m["example.authors.extrapolation_rmsle"] = Measurement(ex.extrapolation_rmsle(theirs), note="3 held-out points")
    m["example.ours.extrapolation_rmsle"] = Measurement(
        ex.extrapolation_rmsle(ours.params_), note="harness fitter: least squares on log y, 540 starts"
    )
    m["example.ours.d1"] = Measurement(ours.params_["d1"], note="the break's location, harness fitter")
    art = {"authors": theirs, "ours": dict(ours.params_), "published": ex.PUBLISHED}
    return m, art


def benchmark_measurements(fits: BenchmarkFits, n_boot: int, seed: int) -> dict:
    from harness.claims import Measurement

    m = {}
    all_forms, m_forms = fits.methods, tuple(x for x in fits.methods if x != "BNSL")
    for key, method, among in (("bnsl_win_margin", "BNSL", all_forms), ("m4_win_margin", "M4", m_forms)):
        if method not in among:
            continue
        point, reps = fits.margin(method, among, n_boot, seed)
        ci = (float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))) if n_boot else None
        fr = {x: fits.best_fraction(x, among) for x in among}
        note = f"{len(fits.fits)} curves; share of curves won: " + ", ".join(f"{x} {v:.2f}" for x, v in fr.items())
        m[f"benchmark.{key}"] = Measurement(point, ci, 0.95 if ci else None, note)
    return m


def measure_tier(which: str):
    """The ``measure`` of tier ``which``: "example", "benchmark", or "smoke" (the example and one curve per
    domain of the benchmark)."""
    from harness.replication import TierContext, TierResult

    def measure(ctx: TierContext) -> TierResult:
        from . import figures
        from .data import load_benchmark

        m, art, figs, inputs = {}, {}, {}, {}
        if which in ("example", "smoke"):
            em, art["example"] = example_measurements(ctx.n_bootstrap)
            m |= em
            figs["example"] = figures.example_figure(art["example"])
        if which in ("benchmark", "smoke"):
            bench = load_benchmark()
            if which == "smoke":
                firsts = [bench.by_domain(d)[0] for d in DOMAINS]
                bench = Benchmark(firsts, bench.sha256, bench.n_duplicates)
            ctx.log(f"bnsl: {len(METHODS)} forms on {len(bench.curves)} curves ...")
            fits = run(bench, progress=ctx.progress("curves"))
            m |= benchmark_measurements(fits, ctx.n_bootstrap, ctx.seed)
            art["table"] = fits.table()
            art["curves"] = [
                {"curve": f.curve.key, "rmsle": f.rmsle, "seconds": f.seconds, "errors": f.errors} for f in fits.fits
            ]
            figs["benchmark"] = figures.benchmark_figure(fits)
            inputs = {"data_sha256": bench.sha256, "n_curves": len(bench.curves)}
        return TierResult(m, figs, art, inputs)

    return measure
