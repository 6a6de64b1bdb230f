"""Tier ``ours`` (small-scale): does BNSL extrapolate our own non-monotonic curves better than a power law and
than M4?

Each curve of :mod:`.curves` (one per kind and seed) is split once, by a rule fixed before any fit was run: the
last quarter of its log-x range is held back (:data:`HOLD_BACK`). Every form of :data:`FORMS` is fitted to the
rest by least squares on log y (the objective the BNSL paper and the benchmark use) and scored by RMSLE on the
held-back tail. A form whose fit converges from no start scores as the flat extrapolation of the last fitted
point (what a reader without a law would predict), so a failure is penalised, never dropped.

The claims are about the RMSLE gain of BNSL over a rival, ``RMSLE(rival) - RMSLE(BNSL)``, averaged over seeds,
with a percentile bootstrap over seeds for its interval: the seeds are the independent replicates here (each
draws its own data, initialisation and, for double descent, features).
"""

from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.fit import ScalingLaw
from harness.progress import ProgressFn, no_progress
from harness.provenance import write_json_atomic

from . import curves

# name -> (harness form, its options, screen the start grid). BNSL gets two breaks: both curves rise and then fall
# (double descent: the climb to the interpolation peak and the descent after it; grokking: memorisation, then
# generalisation), and Caballero et al. fit such curves with one break per change of slope (Fig. 5).
FORMS: dict[str, tuple[str, dict, bool | None]] = {
    "power": ("power", {}, None),
    "saturating_power": ("saturating_power", {}, None),
    "M4": ("m4", {}, None),
    "BNSL": ("bnsl", {"n_breaks": 2}, True),
}
RIVALS = ("power", "M4")  # the claims' rivals; saturating_power is shown in the table, not claimed about
HOLD_BACK = 0.25  # fraction of each curve's log-x range held back for scoring
SEEDS = tuple(range(8))
SPECS = (curves.DoubleDescentSpec(), curves.GrokkingSpec())


def split(x: np.ndarray, hold_back: float = HOLD_BACK) -> np.ndarray:
    """Mask of the points fitted: those below the last ``hold_back`` of the log-x range."""
    lx = np.log(x)
    return lx <= lx.min() + (1.0 - hold_back) * (lx.max() - lx.min())


def rmsle(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(pred) - np.log(y)) ** 2)))


@dataclass
class FormFit:
    rmsle: float
    params: dict[str, float] | None  # None: no start converged (scored as the flat extrapolation)
    seconds: float
    error: str | None = None


@dataclass
class CurveFits:
    kind: str
    seed: int
    x: np.ndarray
    y: np.ndarray
    train: np.ndarray
    fits: dict[str, FormFit] = field(default_factory=dict)

    def gain(self, rival: str) -> float:
        return self.fits[rival].rmsle - self.fits["BNSL"].rmsle


def fit_curve(kind: str, seed: int, x: np.ndarray, y: np.ndarray, forms=tuple(FORMS)) -> CurveFits:
    train = split(x)
    out = CurveFits(kind, seed, x, y, train)
    xt, yt, xh, yh = x[train], y[train], x[~train], y[~train]
    for name in forms:
        form, options, screen = FORMS[name]
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "break not identified": the score still counts
                law = ScalingLaw(form, loss="mse", form_kwargs=options, screen=screen).fit(xt, yt)
            pred = law.predict(xh)
            score = rmsle(pred, yh)
            if not math.isfinite(score):
                raise UserError("prediction is not finite on the held-back points")
            out.fits[name] = FormFit(score, dict(law.params_), time.perf_counter() - t0)
        except UserError as exc:
            flat = rmsle(np.full_like(yh, yt[-1]), yh)
            out.fits[name] = FormFit(flat, None, time.perf_counter() - t0, str(exc).splitlines()[0])
    return out


# ----------------------------------------------------------------------------------------------- records
def _generate(spec, seed: int) -> dict[str, Any]:
    return curves.generate(spec, seed)


def ensure_records(
    runs_dir: Path,
    specs=SPECS,
    seeds=SEEDS,
    *,
    train: bool = True,
    workers: int | None = None,
    log=print,
    progress: ProgressFn = no_progress,
) -> dict[tuple[str, int], dict]:
    """Every (kind, seed) record, generated where missing (each written as it finishes, so an interrupted run
    resumes); with ``train`` false, a missing record is an error naming the command that makes it."""
    runs_dir = Path(runs_dir)
    want = {(s.kind, seed): (s, seed, runs_dir / f"{curves.run_id(s, seed)}.json") for s in specs for seed in seeds}
    have = {k: curves.load_record(p, s, seed) for k, (s, seed, p) in want.items() if p.exists()}
    todo = [k for k in want if k not in have]
    if todo and not train:
        raise UserError(
            f"{len(todo)} of {len(want)} curve records missing under {runs_dir} (e.g. {todo[0][0]} seed {todo[0][1]}); "
            "make them with: scaling replicate bnsl --tier ours"
        )
    if todo:
        log(f"bnsl ours: {len(have)} of {len(want)} curves recorded, {len(todo)} to run")
        done = 0

        def finish(k, rec):
            nonlocal done
            write_json_atomic(want[k][2], rec)
            have[k] = rec
            done += 1
            log(f"  {k[0]} seed {k[1]}: {rec['provenance']['wall_seconds']:.0f} s")
            progress(done, len(todo))

        n = max(1, min(workers or 1, len(todo)))
        if n == 1:
            for k in todo:
                finish(k, _generate(want[k][0], k[1]))
        else:
            with ProcessPoolExecutor(n) as pool:
                futs = {pool.submit(_generate, want[k][0], k[1]): k for k in todo}
                for f in as_completed(futs):
                    finish(futs[f], f.result())
    return {k: have[k] for k in want}


# ------------------------------------------------------------------------------------------ measurements
def gains(fits: list[CurveFits], rival: str, n_boot: int, seed: int = 0):
    """Mean gain of BNSL over ``rival`` across seeds and its 95% percentile bootstrap interval over seeds."""
    g = np.array([f.gain(rival) for f in fits])
    if not n_boot or len(g) < 2:
        return float(g.mean()), None
    rng = np.random.default_rng(seed)
    reps = g[rng.integers(0, len(g), (n_boot, len(g)))].mean(axis=1)
    return float(g.mean()), (float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5)))


def table(fits: list[CurveFits]) -> list[dict]:
    """Per kind and form: seeds, failed fits, median and mean held-back RMSLE."""
    rows = []
    for kind in dict.fromkeys(f.kind for f in fits):
        fk = [f for f in fits if f.kind == kind]
        for name in FORMS:
            r = np.array([f.fits[name].rmsle for f in fk])
            rows.append(
                {
                    "kind": kind,
                    "form": name,
                    "seeds": len(fk),
                    "failed": sum(f.fits[name].params is None for f in fk),
                    "median_rmsle": float(np.median(r)),
                    "mean_rmsle": float(r.mean()),
                    "median_seconds": float(np.median([f.fits[name].seconds for f in fk])),
                }
            )
    return rows


def measure_ours(ctx, specs=SPECS, seeds=SEEDS):
    """The tier's measure: records (made or read), fits, the gains with their intervals, a table and figure."""
    from harness.claims import Measurement
    from harness.replication import TierResult

    from .figures import ours_figure

    recs = ensure_records(
        Path(ctx.out_dir) / "runs",
        specs,
        seeds,
        train=ctx.train,
        workers=ctx.workers,
        log=ctx.log,
        progress=ctx.progress("curves"),
    )
    ctx.log(f"bnsl ours: fitting {len(FORMS)} forms to {len(recs)} curves ...")
    bar, fits = ctx.progress("fits"), []
    for i, ((kind, seed), rec) in enumerate(recs.items()):
        c = rec["curve"]
        fits.append(fit_curve(kind, seed, np.asarray(c["x"], float), np.asarray(c["y"], float)))
        bar(i + 1, len(recs))
    m = {}
    for spec in specs:
        fk = [f for f in fits if f.kind == spec.kind]
        for rival in RIVALS:
            point, ci = gains(fk, rival, ctx.n_bootstrap, ctx.seed)
            fails = {n: sum(f.fits[n].params is None for f in fk) for n in ("BNSL", rival)}
            note = (
                f"{len(fk)} seeds; median held-back RMSLE BNSL {np.median([f.fits['BNSL'].rmsle for f in fk]):.4f}, "
                f"{rival} {np.median([f.fits[rival].rmsle for f in fk]):.4f}; failed fits BNSL {fails['BNSL']}, "
                f"{rival} {fails[rival]}"
            )
            key = f"ours.{spec.kind}.gain_vs_{rival.lower()}"
            m[key] = Measurement(point, ci, 0.95 if ci else None, note)
    art = {
        "table": table(fits),
        "hold_back": HOLD_BACK,
        "curves": [
            {
                "kind": f.kind,
                "seed": f.seed,
                "run_id": recs[(f.kind, f.seed)]["run_id"],
                "n_fit": int(f.train.sum()),
                "n_held_back": int((~f.train).sum()),
                "rmsle": {n: ff.rmsle for n, ff in f.fits.items()},
                "params": {n: ff.params for n, ff in f.fits.items()},
                "errors": {n: ff.error for n, ff in f.fits.items() if ff.error},
            }
            for f in fits
        ],
    }
    inputs = {"run_ids": sorted(r["run_id"] for r in recs.values()), "seeds": list(seeds)}
    return TierResult(m, {"ours": ours_figure(fits, specs, FORMS)}, art, inputs)
