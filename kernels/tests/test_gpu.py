"""GPU-only checks (skipped without CUDA): bf16 (``tl.dot``-free kernels, but bf16 is only trustworthy on
real hardware) and fp32 at realistic sizes, and the peak-memory win of the fused linear cross-entropy."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from kernels import cross_entropy as ce
from kernels import norms
from kernels.reference import layer_norm_ref, linear_cross_entropy_ref, rms_norm_ref

from .conftest import assert_close

pytestmark = pytest.mark.gpu
DT = [torch.bfloat16, torch.float32]


def _leaf(*shape, dtype, scale=1.0, shift=0.0):
    return (torch.randn(*shape, device="cuda") * scale + shift).to(dtype).requires_grad_()


def _upcast(ts):
    return [t.detach().float().requires_grad_() if t is not None else None for t in ts]


@pytest.mark.parametrize("dtype", DT, ids=["bf16", "fp32"])
@pytest.mark.parametrize("N", [768, 1000, 4096])
@pytest.mark.parametrize("kind", ["layer", "rms", "layer+res", "rms+res"])
def test_norms_on_gpu(kind, N, dtype):
    torch.manual_seed(0)
    M = 2048
    x, w = _leaf(M, N, dtype=dtype, scale=2), _leaf(N, dtype=dtype, scale=0.2, shift=1)
    b = _leaf(N, dtype=dtype, scale=0.2) if kind.startswith("layer") else None
    r = _leaf(M, N, dtype=dtype) if kind.endswith("res") else None
    xf, wf, bf, rf = _upcast([x, w, b, r])
    if kind.startswith("layer"):
        out, ref = norms.layer_norm(x, w, b, 1e-5, residual=r), layer_norm_ref(xf, wf, bf, 1e-5, residual=rf)
    else:
        out, ref = norms.rms_norm(x, w, 1e-6, residual=r), rms_norm_ref(xf, wf, 1e-6, residual=rf)
    outs, refs = (out, ref) if r is not None else ((out,), (ref,))
    for o, e in zip(outs, refs, strict=True):
        assert_close(o, e, dtype, "out")
    gys = [torch.randn_like(e) for e in refs]
    ins = [t for t in (x, r, w, b) if t is not None]
    ins_ref = [t for t in (xf, rf, wf, bf) if t is not None]
    got = torch.autograd.grad(outs, ins, [g.to(dtype) for g in gys])
    want = torch.autograd.grad(refs, ins_ref, gys)
    for a, e in zip(got, want, strict=True):
        assert_close(a, e, dtype, "grad")


@pytest.mark.parametrize("dtype", DT, ids=["bf16", "fp32"])
@pytest.mark.parametrize(("T", "d", "V"), [(2048, 256, 8192), (1000, 384, 50257)])
def test_linear_cross_entropy_on_gpu(T, d, V, dtype):
    torch.manual_seed(0)
    h, w = _leaf(T, d, dtype=dtype), _leaf(V, d, dtype=dtype, scale=d**-0.5 * 3)
    b = _leaf(V, dtype=dtype)
    t = torch.randint(0, V, (T,), device="cuda")
    t[::17] = -100
    loss = ce.linear_cross_entropy(h, w, t, b)
    hf, wf, bf = _upcast([h, w, b])
    ref = linear_cross_entropy_ref(hf, wf, t, bf)
    assert_close(loss, ref, dtype, "loss")
    for a, e in zip(torch.autograd.grad(loss, (h, w, b)), torch.autograd.grad(ref, (hf, wf, bf)), strict=True):
        assert_close(a, e, dtype, "grad")


def _peak_mib(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    del out
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def test_fused_loss_cuts_peak_memory_4x_at_vocab_50k():
    """Issue 5: at vocabulary 50k the fused loss (forward + backward) should need >= 4x less peak memory
    than eager ``F.cross_entropy(F.linear(h, W).float(), y)``."""
    T, d, V = 8192, 768, 50257
    h, w = _leaf(T, d, dtype=torch.bfloat16), _leaf(V, d, dtype=torch.bfloat16, scale=0.05)
    t = torch.randint(0, V, (T,), device="cuda")
    fused = _peak_mib(lambda: torch.autograd.grad(ce.linear_cross_entropy(h, w, t), (h, w)))
    eager = _peak_mib(lambda: torch.autograd.grad(linear_cross_entropy_ref(h, w, t), (h, w)))
    assert eager >= 4 * fused, f"eager {eager:.0f} MiB vs fused {fused:.0f} MiB"
