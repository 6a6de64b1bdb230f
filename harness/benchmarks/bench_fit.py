"""Multi-start fitting speed: the full 4,500-start Hoffmann grid, batched vs a loop of SciPy calls.

Run with ``nox -s bench`` (or ``pytest harness/benchmarks -o python_files=bench_*.py --benchmark-only -s``).
Both sides fit the same data from the same starts in the same process (batched first: SciPy's BLAS
threads can linger and slow what runs after them); the ratio and both optima are
printed and written to ``results/bench/cpu/fit_multistart.json``. Target: >= 20x at equal optimum
(objective within 1e-6 relative).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.fit import ScalingLaw, hoffmann_grid
from harness.fit.reference import scipy_multistart
from harness.provenance import REPO_ROOT, provenance, write_json_atomic
from replications.chinchilla.data import load_chinchilla

RESULTS = {}


@pytest.fixture(scope="module")
def data():
    return load_chinchilla()


def test_batched_full_grid(benchmark, data):
    law = ScalingLaw("chinchilla")
    benchmark.pedantic(law.fit, args=(data.X, data.loss), rounds=5, iterations=1, warmup_rounds=1)
    RESULTS["batched"] = {
        "seconds": benchmark.stats.stats.min,
        "mean_seconds": benchmark.stats.stats.mean,
        "objective": law.objective_,
    }


def test_scipy_loop_full_grid(benchmark, data):
    starts = hoffmann_grid().numpy()
    args = (np.log(data.N), np.log(data.D), np.log(data.loss))
    t0 = time.perf_counter()
    _x, f, _ = benchmark.pedantic(scipy_multistart, args=(starts, *args), rounds=1, iterations=1)
    RESULTS["scipy"] = {"seconds": time.perf_counter() - t0, "objective": float(f)}
    if (
        "batched" in RESULTS
    ):  # the whole module ran: compare (pytest-benchmark skips plain tests under --benchmark-only)
        _report()


def _report():
    s, b = RESULTS["scipy"], RESULTS["batched"]
    ratio = s["seconds"] / b["seconds"]
    rel = abs(b["objective"] - s["objective"]) / s["objective"]
    record = {
        "benchmark": "chinchilla 4,500-start Hoffmann grid",
        "scipy_loop": s,
        "batched": b,
        "speedup": ratio,
        "objective_rel_diff": rel,
        "target": ">= 20x at objective rel diff <= 1e-6",
        "target_met": bool(ratio >= 20 and rel <= 1e-6),
        "provenance": provenance(),
    }
    write_json_atomic(REPO_ROOT / "results" / "bench" / "cpu" / "fit_multistart.json", record)
    print(
        f"\nmulti-start fit: SciPy loop {s['seconds']:.1f} s, batched {b['seconds']:.2f} s (best of 5): "
        f"{ratio:.1f}x faster; optimum {b['objective']:.10g} vs {s['objective']:.10g} (rel diff {rel:.1e})"
    )
    assert rel <= 1e-6, "the batched fit must reach the SciPy loop's optimum"
    if ratio < 20:  # reported, not asserted: on a shared 2-core VM the ratio moves by +-25% between runs
        print(f"BELOW TARGET: {ratio:.1f}x < 20x")
