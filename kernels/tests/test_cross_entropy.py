"""Fused linear + cross-entropy (chunked, Triton) against the eager reference: loss and the gradients of
hidden, weight and bias in fp32 and fp16, masked vocabulary tails, tail chunks, ignored targets; and the
memory property: no (T, V) tensor is ever created."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

pytest.importorskip("triton")

from kernels import cross_entropy as ce
from kernels.reference import linear_cross_entropy_ref

from .conftest import assert_close


def _problem(T, d, V, dtype, device, bias=False, n_ignored=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(T, d, generator=g)
    w = torch.randn(V, d, generator=g) / d**0.5 * 3  # logits of order a few units
    b = torch.randn(V, generator=g) if bias else None
    t = torch.randint(0, V, (T,), generator=g)
    if n_ignored:
        t[torch.randperm(T, generator=g)[:n_ignored]] = -100
    cast = lambda x: None if x is None else x.to(device=device, dtype=dtype).requires_grad_()  # noqa: E731
    return cast(h), cast(w), t.to(device), cast(b)


def _check(T, d, V, dtype, device, chunk, bias=False, n_ignored=0, grad_scale=1.0):
    h, w, t, b = _problem(T, d, V, dtype, device, bias, n_ignored)
    loss = ce.linear_cross_entropy(h, w, t, b, chunk=chunk)
    assert loss.dtype == torch.float32 and loss.shape == ()
    hr, wr = h.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    br = b.detach().float().requires_grad_() if b is not None else None
    ref = linear_cross_entropy_ref(hr, wr, t, br)
    assert_close(loss, ref, dtype, "loss")
    params, ref_params = [h, w] + ([b] if bias else []), [hr, wr] + ([br] if bias else [])
    got = torch.autograd.grad(loss * grad_scale, params)
    want = torch.autograd.grad(ref * grad_scale, ref_params)
    for a, e, name in zip(got, want, ("d_hidden", "d_weight", "d_bias"), strict=False):
        assert a.dtype == dtype and a.shape == e.shape
        assert_close(a, e, dtype, name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize(
    ("T", "d", "V", "chunk"),
    [
        (37, 48, 1000, 16),  # 3 chunks, the last one of 5 rows; V masked tail inside one 1024 block
        (12, 32, 2500, 5),  # V spans three 1024 blocks, the last partly masked
        (9, 16, 50, 64),  # chunk larger than T: a single chunk
    ],
    ids=["T37-V1000", "T12-V2500", "T9-V50"],
)
def test_matches_reference(T, d, V, chunk, dtype, bias, device):
    _check(T, d, V, dtype, device, chunk, bias=bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_ignored_targets_and_grad_scale(dtype, device):
    """-100 targets count neither in the loss nor in the mean; an upstream gradient != 1 scales every grad."""
    _check(29, 24, 300, dtype, device, chunk=8, bias=True, n_ignored=7, grad_scale=2.5)


def test_batched_input_and_default_chunk(device):
    h = torch.randn(2, 11, 16, device=device, requires_grad=True)
    w = torch.randn(70, 16, device=device, requires_grad=True)
    t = torch.randint(0, 70, (2, 11), device=device)
    loss = ce.linear_cross_entropy(h, w, t)  # default chunk
    hr, wr = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ref = linear_cross_entropy_ref(hr, wr, t)
    assert_close(loss, ref, torch.float32, "loss")
    for a, e in zip(torch.autograd.grad(loss, (h, w)), torch.autograd.grad(ref, (hr, wr)), strict=True):
        assert a.shape == e.shape
        assert_close(a, e, torch.float32, "grad")


def test_default_chunk():
    assert ce.default_chunk(8192, 50257, 768) == 1024  # the floor: 8 chunks of 1024 x 50257 logits
    assert ce.default_chunk(65536, 32768, 4096) == 8192  # 8192 x 32768 logits ~ 65536 x 4096 hidden
    assert ce.default_chunk(10, 100, 1000) == 10  # never more than T
    assert ce.default_chunk(1, 50000, 8) == 1


def test_frozen_weight_and_no_grad(device):
    h, w, t, _ = _problem(20, 16, 90, torch.float32, device)
    w.requires_grad_(False)
    loss = ce.linear_cross_entropy(h, w, t, chunk=7)
    (gh,) = torch.autograd.grad(loss, (h,))
    hr = h.detach().clone().requires_grad_()
    (ghr,) = torch.autograd.grad(linear_cross_entropy_ref(hr, w, t), (hr,))
    assert_close(gh, ghr, torch.float32, "d_hidden")
    with torch.no_grad():
        loss_ng = ce.linear_cross_entropy(h, w, t, chunk=7)
    assert not loss_ng.requires_grad
    assert_close(loss_ng, loss.detach(), torch.float32, "loss")


def test_all_targets_ignored_gives_nan_like_torch(device):
    h, w, t, _ = _problem(6, 8, 20, torch.float32, device)
    t[:] = -100
    loss = ce.linear_cross_entropy(h, w, t, chunk=4)
    assert torch.isnan(loss) and torch.isnan(linear_cross_entropy_ref(h, w, t))
    gh, gw = torch.autograd.grad(loss, (h, w))
    assert gh.abs().sum() == 0 and gw.abs().sum() == 0  # no token contributes


def test_row_kernel_is_stable_for_large_logits(device):
    """Online softmax must not overflow: logits of +-1e4 in fp32 give finite loss and exact gradients."""
    V = 1500
    logits = torch.randn(7, V, device=device) * 1e4
    targets = torch.randint(0, V, (7,), device=device)
    targets[2] = -100
    ref_loss = F.cross_entropy(logits, targets, reduction="none", ignore_index=-100)
    lg = logits.clone().requires_grad_()
    (ref_grad,) = torch.autograd.grad(F.cross_entropy(lg, targets, reduction="sum"), (lg,))
    buf = logits.clone()
    loss = ce.cross_entropy_rows_(buf, targets, torch.ones(1, device=device))
    assert torch.isfinite(loss).all()
    assert_close(loss, ref_loss, torch.float32, "row loss")
    assert_close(buf, ref_grad, torch.float32, "row grad")  # written in place over the logits


def test_backward_twice_is_refused(device):
    h, w, t, _ = _problem(8, 8, 30, torch.float32, device)
    loss = ce.linear_cross_entropy(h, w, t, chunk=4)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError):
        loss.backward()


class _RecordAllocations(TorchDispatchMode):
    """Records every tensor an aten op returns in fresh memory (forward and backward): outputs whose storage
    is not that of an input. Views and in-place ops (including the Triton interpreter's byte-level views and
    copies of existing buffers) are not allocations and are not recorded."""

    def __init__(self):
        super().__init__()
        self.allocs: list[tuple[tuple[int, ...], int]] = []  # (shape, storage bytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        seen = set()
        for a in torch.utils._pytree.tree_leaves((args, kwargs)):
            if isinstance(a, torch.Tensor):
                seen.add(a.untyped_storage().data_ptr())
            elif isinstance(a, torch.UntypedStorage):
                seen.add(a.data_ptr())
        out = func(*args, **kwargs)
        for o in torch.utils._pytree.tree_leaves(out):
            if isinstance(o, torch.Tensor) and o.untyped_storage().data_ptr() not in seen:
                self.allocs.append((tuple(o.shape), o.untyped_storage().nbytes()))
        return out


def test_never_materialises_full_logits(device):
    """No op in forward or backward allocates as much memory as the (T, V) logits; the largest logits-shaped
    allocation is one chunk. The same probe on the eager reference sees (T, V) allocations (positive control)."""
    T, d, V, chunk = 64, 16, 1000, 16
    h, w, t, b = _problem(T, d, V, torch.float32, device, bias=True)
    full_logits_bytes = T * V * 4
    with _RecordAllocations() as rec:
        loss = ce.linear_cross_entropy(h, w, t, b, chunk=chunk)
        loss.backward()
    assert rec.allocs, "the probe recorded nothing"
    biggest = max(nbytes for _, nbytes in rec.allocs)
    assert biggest <= chunk * V * 4 < full_logits_bytes, f"an allocation of {biggest} bytes"
    logits_like = [shape for shape, _ in rec.allocs if len(shape) == 2 and shape[1] == V]
    assert max(s[0] for s in logits_like) == chunk
    assert logits_like.count((chunk, V)) == T // chunk  # one logits block per chunk, nothing else that wide
    with _RecordAllocations() as rec_ref:
        hr, wr, br = (x.detach().clone().requires_grad_() for x in (h, w, b))
        linear_cross_entropy_ref(hr, wr, t, br).backward()
    assert (T, V) in [shape for shape, _ in rec_ref.allocs]
    assert max(nbytes for _, nbytes in rec_ref.allocs) >= full_logits_bytes


def test_autocast_runs_matmuls_in_the_autocast_dtype(device):
    """Under autocast the fused loss matches the eager reference under the same autocast (bf16 matmuls);
    grads come back in the parameters' fp32."""
    h, w, t, _ = _problem(20, 16, 300, torch.float32, device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = ce.linear_cross_entropy(h, w, t, chunk=8)
        ref = linear_cross_entropy_ref(h, w, t)
    assert loss.dtype == torch.float32
    assert_close(loss, ref, torch.bfloat16, "loss")
    got, want = torch.autograd.grad(loss, (h, w)), torch.autograd.grad(ref, (h, w))
    for a, e in zip(got, want, strict=True):
        assert a.dtype == torch.float32
        assert_close(a, e, torch.bfloat16, "grad")
