"""The GPU kernel benchmark (``python -m harness.benchmarks.gpu_kernels``): refuses to run without CUDA, its
whole code path works (checked on CPU through the Triton interpreter with --cpu-smoke, whose timings are not
results), and the smoke run cannot write into the results folder.

The smoke run goes in a subprocess: it sets TRITON_INTERPRET=1 and builds the kernels in interpreter mode,
which must not leak into the kernel tests of this pytest process (on a GPU machine they run compiled)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from harness.benchmarks import gpu_kernels, gpu_train_step

MODULE = "harness.benchmarks.gpu_kernels"
HAS_TRITON = importlib.util.find_spec("triton") is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_exits_with_status_2_without_cuda():
    out = subprocess.run([sys.executable, "-m", MODULE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no CUDA device" in out.stderr and "Nothing was measured" in out.stderr


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'scaling-harness[kernels]')")
def test_cpu_smoke_run_writes_complete_records(tmp_path):
    args = ["--cpu-smoke", "--out", str(tmp_path), "--warmup", "0", "--reps", "1", "--dtype", "float32"]
    out = subprocess.run([sys.executable, "-m", MODULE, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    (path,) = tmp_path.glob("kernels_*.json")
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == MODULE
    assert doc["meta"]["triton"] and doc["meta"]["torch"] == torch.__version__ and doc["meta"]["interpreted"]
    recs = doc["records"]
    assert {r["op"] for r in recs} == {"layer_norm", "rms_norm", "add_rms_norm", "linear_cross_entropy"}
    assert all("error" not in r for r in recs), [r.get("error") for r in recs]
    assert {"eager", "triton"} <= {r["impl"] for r in recs}
    for r in recs:  # every implementation agrees with the fp32 reference (fp32 inputs here)
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0
        assert max(r["max_abs_err"].values()) < 1e-4, r


@pytest.mark.parametrize("bench", [gpu_kernels, gpu_train_step], ids=["gpu_kernels", "gpu_train_step"])
def test_cpu_smoke_refuses_the_results_folder(bench, tmp_path, monkeypatch, capsys):
    """--cpu-smoke without --out (i.e. into the default results folder) is a usage error (status 2) that says
    why, before anything runs or is written. Both GPU benchmarks share the rule."""
    results = tmp_path / "results" / "bench" / "gpu"
    monkeypatch.setattr(bench, "DEFAULT_OUT", results)  # the default --out, and what the check compares
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # restored after the test, whatever main does
    with pytest.raises(SystemExit) as exc:
        bench.main(["--cpu-smoke"])
    assert exc.value.code == 2
    assert "--cpu-smoke needs --out (its timings must not land in results/bench/gpu)" in capsys.readouterr().err
    assert not results.exists()
