"""BNSL-1 fit time per curve of the extrapolation benchmark: the harness fitter against the authors' procedure.

Both sides fit all 92 curves of Alabdulmohsin et al.'s benchmark on each curve's fit split, in the same run:
ours exactly as the ``benchmark`` tier does (``replications.bnsl.analysis.fit_curve``: least squares on log y,
540 starts screened to 64), theirs with ``harness.fit.authors.CaballeroBNSL`` (their 163,840-point grid, then
Levenberg-Marquardt on log(y + 1)). Each curve is timed on its own; the medians, their ratio and both sides'
held-back RMSLE (a failed fit scores 1, as the benchmark counts it) are printed and written to
``results/bench/cpu/bnsl_fit.json``. Goal (issue 15): our median time no slower than theirs, at equal or better
median RMSLE. About 5 minutes on 2 cores (the authors' side is capped at ``CAP_S`` per curve, see there).

Read the RMSLE side with care: the authors' grid is the one their released worked example lays out for its own
x range (10^2 - 10^4 examples); on the benchmark's curves (x up to ~4e9) Levenberg-Marquardt from its best point
often ends outside the form's domain, and such a curve counts as a failed fit. The timing comparison is fair:
both sides do their whole procedure on the same points.
"""

from __future__ import annotations

import multiprocessing
import time
import warnings

import numpy as np
import pytest

from harness.errors import UserError
from harness.fit.authors import CaballeroBNSL
from harness.provenance import REPO_ROOT, provenance, write_json_atomic
from replications.bnsl.analysis import fit_curve, rmsle
from replications.bnsl.data import load_benchmark

RESULTS: dict = {}
FAILED_SCORE = 1.0  # the benchmark's score for a fit that fails (replications/bnsl/analysis.py)
# The authors' Levenberg-Marquardt runs with maxfev = 1e8, as released, and on a few curves runs for many minutes.
# A curve still running after CAP_S seconds is stopped and counted as CAP_S seconds and a failed fit: that only
# understates their time, so the comparison of medians stays fair to them.
CAP_S = 60.0


@pytest.fixture(scope="module")
def curves():
    return load_benchmark().curves


def _ours(curve) -> tuple[float, float | None]:
    fit = fit_curve(curve, ("BNSL",))
    return fit.seconds["BNSL"], fit.rmsle["BNSL"]


def _theirs(curve) -> tuple[float, float | None]:
    x, y = curve.x[curve.train], curve.y[curve.train]
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = CaballeroBNSL().fit(x, y)
        score = rmsle(law.predict(curve.x[~curve.train]), curve.y[~curve.train])
        score = score if np.isfinite(score) else None
    except UserError:
        score = None
    return time.perf_counter() - t0, score


def _every_curve(fit_one, curves, key):
    def run():
        RESULTS[key] = [fit_one(c) for c in curves]

    return run


def _every_curve_capped(fit_one, curves, key):
    """As :func:`_every_curve`, each curve in a forked worker that is stopped after ``CAP_S`` seconds (the time
    is measured inside the worker, so forking costs nothing here)."""

    def run():
        ctx, rows, pool = multiprocessing.get_context("fork"), [], None
        try:
            for c in curves:
                pool = pool or ctx.Pool(1)
                try:
                    rows.append(pool.apply_async(fit_one, (c,)).get(timeout=CAP_S))
                except multiprocessing.TimeoutError:
                    pool.terminate()
                    pool = None
                    rows.append((CAP_S, None))
        finally:
            if pool is not None:
                pool.terminate()
        RESULTS[key] = rows

    return run


def _summary(rows) -> dict:
    seconds = np.array([s for s, _ in rows])
    scores = np.array([FAILED_SCORE if r is None else r for _, r in rows])
    return {
        "curves": len(rows),
        "median_seconds": float(np.median(seconds)),
        "mean_seconds": float(seconds.mean()),
        "max_seconds": float(seconds.max()),
        "median_rmsle": float(np.median(scores)),
        "failed": int(sum(r is None for _, r in rows)),
        "stopped_at_cap": int(sum(s >= CAP_S for s, _ in rows)),
    }


def test_harness_fitter(benchmark, curves):
    benchmark.pedantic(_every_curve(_ours, curves, "ours"), rounds=1, iterations=1)
    assert len(RESULTS["ours"]) == len(curves) == 92


def test_authors_procedure(benchmark, curves):
    benchmark.pedantic(_every_curve_capped(_theirs, curves, "authors"), rounds=1, iterations=1)
    assert len(RESULTS["authors"]) == len(curves)
    if "ours" in RESULTS:
        _report(curves)


def _report(curves):
    ours, theirs = _summary(RESULTS["ours"]), _summary(RESULTS["authors"])
    per_curve = np.array([a[0] / o[0] for o, a in zip(RESULTS["ours"], RESULTS["authors"], strict=True)])
    ratio = theirs["median_seconds"] / ours["median_seconds"]
    record = {
        "benchmark": "BNSL with one break on each of the 92 extrapolation-benchmark curves (fit split)",
        "ours": ours,
        "authors": theirs,
        "speed_ratio_of_medians": ratio,  # > 1: ours faster
        "speed_ratio_per_curve_median": float(np.median(per_curve)),
        "ours_faster_on_curves": int((per_curve > 1).sum()),
        "cap_seconds": CAP_S,
        "target": "ours median seconds <= authors' median seconds, at equal or better median RMSLE",
        "target_met": bool(ratio >= 1 and ours["median_rmsle"] <= theirs["median_rmsle"]),
        "curves": [
            {"key": c.key, "ours": list(o), "authors": list(a)}
            for c, o, a in zip(curves, RESULTS["ours"], RESULTS["authors"], strict=True)
        ],
        "provenance": provenance(),
    }
    write_json_atomic(REPO_ROOT / "results" / "bench" / "cpu" / "bnsl_fit.json", record)
    print(
        f"\nBNSL-1 per curve: ours median {ours['median_seconds']:.3f} s, authors {theirs['median_seconds']:.3f} s "
        f"(authors/ours {ratio:.2f}x; ours faster on {record['ours_faster_on_curves']} of {len(curves)} curves); "
        f"median RMSLE ours {ours['median_rmsle']:.4f} ({ours['failed']} failed), "
        f"authors {theirs['median_rmsle']:.4f} ({theirs['failed']} failed); target met: {record['target_met']}"
    )
