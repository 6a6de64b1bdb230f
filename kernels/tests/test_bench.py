"""The GPU benchmark script: refuses to run without CUDA, and its whole code path works (checked on CPU
through the interpreter with --cpu-smoke, whose timings are not results)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from kernels import bench_gpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_exits_cleanly_without_cuda():
    out = subprocess.run([sys.executable, "-m", "kernels.bench_gpu"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no CUDA device" in out.stderr and "Nothing was measured" in out.stderr


def test_cpu_smoke_run_writes_complete_records(tmp_path, device):
    if device.type != "cpu":
        pytest.skip("smoke mode is the CPU interpreter path")
    rc = bench_gpu.main(["--cpu-smoke", "--out", str(tmp_path), "--warmup", "0", "--reps", "1", "--dtype", "float32"])
    assert rc == 0
    (path,) = tmp_path.glob("kernels_*.json")
    doc = json.loads(path.read_text())
    assert doc["meta"]["triton"] and doc["meta"]["torch"] == torch.__version__
    recs = doc["records"]
    assert {r["op"] for r in recs} == {"layer_norm", "rms_norm", "add_rms_norm", "linear_cross_entropy"}
    assert all("error" not in r for r in recs), [r.get("error") for r in recs]
    for r in recs:  # every implementation agrees with the fp32 reference (fp32 inputs here)
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0
        assert max(r["max_abs_err"].values()) < 1e-4, r


def test_cpu_smoke_refuses_the_results_folder():
    with pytest.raises(SystemExit):
        bench_gpu.main(["--cpu-smoke"])
