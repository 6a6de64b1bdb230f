"""The training-step benchmark (``python -m harness.benchmarks.gpu_train_step``): refuses to run without CUDA,
its whole code path works on CPU with --cpu-smoke (tiny model; kernels "triton" through the Triton
interpreter; compile and CUDA graphs recorded as skipped; the numbers are not results), and (tested with
the kernel benchmark's) the smoke run cannot write into the results folder.

The smoke run goes in a subprocess: it sets TRITON_INTERPRET=1 and builds the kernels in interpreter mode,
which must not leak into the kernel tests of this pytest process (on a GPU machine they run compiled)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch

from harness.benchmarks import gpu_train_step as bts

MODULE = "harness.benchmarks.gpu_train_step"
HAS_TRITON = importlib.util.find_spec("triton") is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_exits_with_status_2_without_cuda(tmp_path, capsys):
    assert bts.main(["--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_cpu_smoke_writes_every_configuration(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", MODULE, "--cpu-smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    (path,) = tmp_path.glob("train_step_*.json")
    doc = json.loads(path.read_text())
    meta, method = doc["meta"], doc["method"]
    assert doc["benchmark"] == MODULE
    assert meta["torch"] == torch.__version__ and meta["device"].startswith("cpu")
    assert method["flops_count"] == "flops_per_token_hoffmann" and method["peak_flops"] == 989.4e12

    recs = doc["records"]
    assert {(r["mode"], r["kernels"]) for r in recs} == {(m, k) for m in bts.MODES for k in bts.KERNELS}
    for r in recs:
        if r["mode"] != "eager":
            assert "skipped" in r and "error" not in r, r
            continue
        if r["kernels"] == "triton" and not HAS_TRITON:  # the unified rule: "triton" is an error, not a fallback
            assert "Triton is not importable" in r["error"], r
            continue
        assert "error" not in r, r
        assert r["kernels_resolved"] == r["kernels"]
        if r["kernels"] == "triton":
            assert r["kernels_effective"] == "triton (Triton interpreter on CPU)"
        for key in ("tokens_per_s", "mfu", "mfu_kaplan", "step_ms", "timed_s", "flops_per_token_hoffmann"):
            assert _positive(r[key]), (key, r)
        assert math.isclose(r["mfu"], r["tokens_per_s"] * r["flops_per_token_hoffmann"] / bts.H100_BF16_DENSE_PEAK)
        assert math.isfinite(r["loss_last"])

    sweep = doc["sweep"]
    ran = [s for s in sweep if "skipped" not in s]
    assert {s["concurrency"] for s in ran} == {1, 2} and all(s["mode"] == "eager" for s in ran)
    for s in ran:
        assert "error" not in s, s
        for key in ("runs_per_hour", "runs_per_hour_with_startup", "tokens_per_s", "window_s"):
            assert _positive(s[key]), (key, s)
    assert all(s["mode"] == "cudagraph" for s in sweep if "skipped" in s)


def test_a_failing_configuration_is_recorded_not_raised():
    spec = {
        "model": {"name": "gpt", "n_layer": 1, "d_model": 16, "n_head": 3, "n_ctx": 8, "vocab_size": 32},
        "batch_tokens": 16,
        "device": "cpu",
        "precision": "fp32",
        "warmup": 1,
        "steps": 1,
        "kernels": "torch",
        "mode": "eager",
    }
    rec = bts.run_in_process(spec)  # d_model 16 is not a multiple of 3 heads
    assert "error" in rec and "must be a multiple of model.n_head" in rec["error"]
