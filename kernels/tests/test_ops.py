"""Dispatch (kernels.ops): which backend each setting resolves to, the one error type (KernelUnavailable) where
Triton cannot run, that the Triton path really runs the kernels, that the torch path of the loss is the
chunked one exactly where it applies, and that ``import kernels.ops`` stays cheap (no Triton import)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from kernels import ops, reference

from .conftest import assert_close

HAS_TRITON = importlib.util.find_spec("triton") is not None


def test_import_does_not_import_triton():
    code = "import sys, kernels, kernels.ops; assert 'triton' not in sys.modules, 'triton imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_torch_backend_is_always_the_reference():
    for dev in ("cpu", "cuda", "meta"):
        assert ops.resolve_backend("torch", dev) == "torch"


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of auto, triton, torch, got 'cuda'"):
        ops.resolve_backend("cuda", "cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.layer_norm(torch.randn(2, 4), None, None, backend="fast")


def test_kernel_unavailable_is_a_runtime_error():
    assert issubclass(ops.KernelUnavailable, RuntimeError)


def test_auto_uses_triton_only_on_cuda(monkeypatch):
    monkeypatch.setattr(ops, "triton_available", lambda: True)
    assert ops.resolve_backend("auto", "cpu") == "torch"  # even under TRITON_INTERPRET
    assert ops.resolve_backend("auto", torch.device("cuda", 0)) == "triton"
    monkeypatch.setattr(ops, "triton_available", lambda: False)
    assert ops.resolve_backend("auto", "cuda") == "torch"


def test_triton_without_triton_installed_is_an_error(monkeypatch):
    monkeypatch.setattr(ops, "triton_available", lambda: False)
    for dev in ("cuda", "cpu"):
        with pytest.raises(ops.KernelUnavailable, match=r"Triton is not importable \(pip install"):
            ops.resolve_backend("triton", dev)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setattr(ops, "triton_available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ops.KernelUnavailable, match="on CPU they need the Triton interpreter, TRITON_INTERPRET=1"):
        ops.resolve_backend("triton", "cpu")
    assert ops.resolve_backend("triton", "cuda") == "triton"  # the interpreter only matters on CPU
    with pytest.raises(ops.KernelUnavailable, match="not meta"):
        ops.resolve_backend("triton", "meta")


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_on_cpu_under_the_interpreter(device):
    """CPU is allowed under TRITON_INTERPRET=1 (conftest.py sets it when there is no GPU)."""
    if device.type != "cpu":
        pytest.skip("the kernels of this session are compiled for the GPU")
    assert ops.resolve_backend("triton", "cpu") == ops.resolve_backend("triton", torch.device("cpu")) == "triton"


def test_torch_backend_matches_plain_pytorch():
    x = torch.randn(3, 10)
    w, b = torch.randn(10), torch.randn(10)
    torch.testing.assert_close(ops.layer_norm(x, w, b, backend="torch"), torch.nn.functional.layer_norm(x, (10,), w, b))
    ms = x.pow(2).mean(-1, keepdim=True)
    torch.testing.assert_close(ops.rms_norm(x, w, 1e-6, backend="torch"), x / torch.sqrt(ms + 1e-6) * w)
    h, W, t = torch.randn(2, 5, 10), torch.randn(30, 10), torch.randint(0, 30, (2, 5))
    want = torch.nn.functional.cross_entropy(h.reshape(10, 10) @ W.T, t.reshape(10))
    torch.testing.assert_close(ops.linear_cross_entropy(h, W, t, backend="torch"), want)
    # auto on CPU is the reference too
    torch.testing.assert_close(ops.linear_cross_entropy(h, W, t), want)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_backend_runs_the_kernels(device):
    """backend='triton' goes through the Triton autograd Functions (visible in grad_fn) and agrees with
    backend='torch'; on CUDA, 'auto' picks the same path."""
    x = torch.randn(4, 6, 50, device=device, requires_grad=True)
    w = torch.randn(50, device=device, requires_grad=True)
    b = torch.randn(50, device=device, requires_grad=True)
    backends = ["triton"] + (["auto"] if device.type == "cuda" else [])
    for backend in backends:
        y = ops.layer_norm(x, w, b, 1e-5, backend=backend)
        assert "_NormFunction" in type(y.grad_fn).__name__
        assert_close(y, ops.layer_norm(x, w, b, 1e-5, backend="torch"), torch.float32, "layer_norm")
        y = ops.rms_norm(x, w, 1e-6, backend=backend)
        assert "_NormFunction" in type(y.grad_fn).__name__
        assert_close(y, ops.rms_norm(x, w, 1e-6, backend="torch"), torch.float32, "rms_norm")
        W = torch.randn(77, 50, device=device, requires_grad=True)
        t = torch.randint(0, 77, (4, 6), device=device)
        loss = ops.linear_cross_entropy(x, W, t, backend=backend)
        assert "_LinearCrossEntropy" in type(loss.grad_fn).__name__
        assert_close(loss, ops.linear_cross_entropy(x, W, t, backend="torch"), torch.float32, "loss")


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_kernels_built_without_interpreter_are_refused_on_cpu(device, monkeypatch):
    if device.type != "cpu":
        pytest.skip("only meaningful on CPU")
    from kernels import norms

    monkeypatch.setattr(norms, "INTERPRETED", False)
    for call in (
        lambda: ops.resolve_backend("triton", "cpu"),  # already seen when resolving: the trainer fails early
        lambda: ops.layer_norm(torch.randn(2, 8), None, None, backend="triton"),
    ):
        with pytest.raises(ops.KernelUnavailable, match=r"kernels\.norms was imported before TRITON_INTERPRET=1"):
            call()


def test_reference_residual_variants_return_the_sum():
    x, r, w = torch.randn(3, 8), torch.randn(3, 8), torch.randn(8)
    y, s = reference.rms_norm_ref(x, w, residual=r)
    torch.testing.assert_close(s, x + r)
    torch.testing.assert_close(y, reference.rms_norm_ref(x + r, w))


def test_torch_loss_is_chunked_exactly_where_it_applies():
    """backend="torch" (and "auto" on CPU) computes the loss with kernels.chunked for CPU fp32 training and
    with the eager reference otherwise; both agree with plain PyTorch."""
    g = torch.Generator().manual_seed(0)
    h, W = torch.randn(2, 300, 12, generator=g), 0.3 * torch.randn(40, 12, generator=g)
    t = torch.randint(0, 40, (2, 300), generator=g)
    want = torch.nn.functional.cross_entropy(h.reshape(-1, 12) @ W.T, t.reshape(-1))
    hr = h.clone().requires_grad_()
    for backend in ("torch", "auto"):
        loss = ops.linear_cross_entropy(hr, W, t, backend=backend)
        assert type(loss.grad_fn).__name__ == "_ChunkedLinearCrossEntropyBackward"
        torch.testing.assert_close(loss, want)
    ignored = t.clone()
    ignored[0, :5] = -100
    loss = ops.linear_cross_entropy(hr, W, ignored, backend="torch")  # the chunked loss cannot ignore targets
    assert type(loss.grad_fn).__name__ != "_ChunkedLinearCrossEntropyBackward"
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(h.reshape(-1, 12) @ W.T, ignored.reshape(-1)))
    with torch.no_grad():
        torch.testing.assert_close(ops.linear_cross_entropy(hr, W, t, backend="torch"), want)


def test_token_cross_entropy_is_per_token_plain_pytorch():
    h, W, t = torch.randn(3, 7, 10), torch.randn(30, 10), torch.randint(0, 30, (3, 7))
    t[1, 2] = -100
    want = torch.nn.functional.cross_entropy((h @ W.T).reshape(21, 30), t.reshape(21), reduction="none").view(3, 7)
    for chunk_rows in (0, 4):
        got = ops.token_cross_entropy(h, W, t, chunk_rows=chunk_rows)
        assert got.shape == t.shape and got[1, 2] == 0
        torch.testing.assert_close(got, want)
