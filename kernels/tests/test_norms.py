"""Triton LayerNorm / RMSNorm (optionally fused with the residual add) against the PyTorch reference:
outputs and every gradient, fp32 and fp16, non-power-of-two widths (masked tails), odd row counts."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from kernels import norms
from kernels.reference import layer_norm_ref, rms_norm_ref

from .conftest import assert_close

DTYPES = [torch.float32, torch.float16]
SHAPES = [(3, 7, 100), (5, 64), (2, 1, 1000)]  # N=100, 1000: masked tail of a 128 / 1024 block


def _run(kind, x, w, b, residual, eps):
    if kind == "layer":
        return norms.layer_norm(x, w, b, eps, residual=residual)
    return norms.rms_norm(x, w, eps, residual=residual)


def _ref(kind, x, w, b, residual, eps):
    if kind == "layer":
        return layer_norm_ref(x, w, b, eps, residual=residual)
    return rms_norm_ref(x, w, eps, residual=residual)


def _leaf(t, dtype, device):
    return None if t is None else t.to(device=device, dtype=dtype).requires_grad_()


def _check(kind, shape, dtype, device, residual: bool, affine=(True, True), eps=1e-5, seed=0):
    """Kernel in ``dtype`` vs the reference in fp32 on the same (rounded) inputs."""
    g = torch.Generator().manual_seed(seed)
    N = shape[-1]
    x0 = torch.randn(shape, generator=g) * 2 + 0.5
    r0 = torch.randn(shape, generator=g) if residual else None
    w0 = 1 + 0.3 * torch.randn(N, generator=g) if affine[0] else None
    b0 = 0.3 * torch.randn(N, generator=g) if affine[1] and kind == "layer" else None
    ins = [_leaf(t, dtype, device) for t in (x0, r0, w0, b0)]
    ref_ins = [None if t is None else t.detach().float().requires_grad_() for t in ins]
    out = _run(kind, *ins[:1], ins[2], ins[3], ins[1], eps)
    ref = _ref(kind, *ref_ins[:1], ref_ins[2], ref_ins[3], ref_ins[1], eps)
    outs, refs = (out, ref) if residual else ((out,), (ref,))
    for o, rf, name in zip(outs, refs, ("y", "s"), strict=False):
        assert o.dtype == dtype and o.shape == shape
        assert_close(o, rf, dtype, name)
    grads = [torch.randn(shape, generator=g).to(device) for _ in outs]
    diff = [t for t in ins if t is not None]
    diff_ref = [t for t in ref_ins if t is not None]
    got = torch.autograd.grad(outs, diff, [gg.to(dtype) for gg in grads])
    want = torch.autograd.grad(refs, diff_ref, grads)
    for a, e, name in zip(got, want, ["dx", "dres", "dw", "db"] if residual else ["dx", "dw", "db"], strict=False):
        assert a.dtype == dtype
        assert_close(a, e, dtype, name)


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_norm_matches_reference(kind, dtype, shape, residual, device):
    _check(kind, shape, dtype, device, residual)


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("affine", [(False, False), (True, False)], ids=["no-affine", "weight-only"])
def test_norm_without_affine_params(kind, affine, device):
    _check(kind, (6, 33), torch.float32, device, residual=False, affine=affine)


def test_layer_norm_width_one_and_large_eps(device):
    # N=1: the centred input is zero, the output is the bias; dx must be exactly zero
    _check("layer", (4, 1), torch.float32, device, residual=False, eps=1e-2)
    _check("rms", (4, 3), torch.float32, device, residual=True, eps=0.5)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_strided_input_rows(kind, device):
    """Rows that are not adjacent in memory (a column slice of a wider tensor) are read through their stride."""
    big = torch.randn(9, 150, device=device)
    x = big[:, 10:110].requires_grad_()  # stride(0) = 150, N = 100
    w = torch.randn(100, device=device, requires_grad=True)
    out = _run(kind, x, w, None, None, 1e-5)
    xr = x.detach().clone().requires_grad_()
    wr = w.detach().clone().requires_grad_()
    ref = _ref(kind, xr, wr, None, None, 1e-5)
    assert_close(out, ref, torch.float32, "y")
    gy = torch.randn_like(ref)
    for a, e in zip(torch.autograd.grad(out, (x, w), gy), torch.autograd.grad(ref, (xr, wr), gy), strict=True):
        assert_close(a, e, torch.float32, "grad")


def test_frozen_weight_and_unused_outputs(device):
    """Weight without grad still scales dx; using only ``s`` (not ``y``) gives dx = ds exactly."""
    x = torch.randn(5, 40, device=device, requires_grad=True)
    r = torch.randn(5, 40, device=device, requires_grad=True)
    w = torch.randn(40, device=device)  # frozen
    y, _ = norms.rms_norm(x, w, 1e-6, residual=r)
    xr, rr = x.detach().clone().requires_grad_(), r.detach().clone().requires_grad_()
    yr, _ = rms_norm_ref(xr, w, 1e-6, residual=rr)
    gy = torch.randn_like(yr)
    dx, dr = torch.autograd.grad(y, (x, r), gy)
    dxr, drr = torch.autograd.grad(yr, (xr, rr), gy)
    assert_close(dx, dxr, torch.float32, "dx")
    assert_close(dr, drr, torch.float32, "dres")
    assert dx.data_ptr() != dr.data_ptr()  # separate tensors: accumulating into one must not change the other
    _, s2 = norms.layer_norm(x, None, None, 1e-5, residual=r)
    gs = torch.randn_like(s2)
    dx2, dr2 = torch.autograd.grad(s2, (x, r), gs)
    torch.testing.assert_close(dx2, gs, rtol=0, atol=0)
    torch.testing.assert_close(dr2, gs, rtol=0, atol=0)


def test_shape_errors(device):
    x = torch.randn(4, 8, device=device)
    with pytest.raises(ValueError, match="weight"):
        norms.layer_norm(x, torch.ones(7, device=device), None)
    with pytest.raises(ValueError, match="residual"):
        norms.rms_norm(x, None, residual=torch.randn(4, 9, device=device))


def test_empty_input_gives_zero_param_grads(device):
    x = torch.randn(0, 12, device=device, requires_grad=True)
    w = torch.randn(12, device=device, requires_grad=True)
    b = torch.randn(12, device=device, requires_grad=True)
    y = norms.layer_norm(x, w, b)
    assert y.shape == (0, 12)
    dx, dw, db = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
    assert dx.shape == (0, 12) and not dw.any() and not db.any()
