"""The plain-PyTorch chunked losses (kernels.chunked): the training loss is bit-identical to the algorithm the
CPU run records were made with, agrees with F.linear + F.cross_entropy, and is used only where it applies;
the per-token loss does not depend on the chunk size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels import chunked


def _frozen_chunked_loss(hidden, weight, targets, chunk=None):
    """A frozen copy of the algorithm (v2, see kernels.chunked): loss and both gradients (for an upstream
    gradient of 1), the same operations in the same order. Do not "fix" it: it pins what CPU run records
    are computed with; a deliberate change of algorithm updates it in the same commit and says so."""
    M = hidden.shape[0]
    chunk = chunk or chunked.chunk_rows(hidden.shape[1], weight.shape[0])
    grad_h = torch.empty_like(hidden)
    grad_w = torch.zeros_like(weight)
    total = hidden.new_zeros(())
    for i in range(0, M, chunk):
        h, t = hidden[i : i + chunk], targets[i : i + chunk]
        logits = h @ weight.T
        top = logits.amax(dim=1, keepdim=True)
        picked = logits.gather(1, t[:, None])
        e = logits.sub_(top).exp_()
        norm = e.sum(dim=1, keepdim=True)
        total += (norm.log() + top - picked).sum()
        p = e.div_(norm)
        p[torch.arange(len(t)), t] -= 1.0
        grad_h[i : i + len(t)] = p @ weight
        grad_w.addmm_(p.T, h)
    scale = torch.ones(()) / M
    return total / M, grad_h * scale, grad_w * scale


def _problem(M, d, V, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(M, d, generator=g)
    w = 0.1 * torch.randn(V, d, generator=g)
    return h.requires_grad_(), w.requires_grad_(), torch.randint(0, V, (M,), generator=g)


@pytest.mark.parametrize(
    ("M", "d", "V"), [(1, 3, 2), (1023, 16, 512), (1024, 24, 512), (2100, 24, 513), (700, 128, 4096)]
)
def test_bit_identical_to_the_frozen_algorithm(M, d, V):
    """M around the 1024-row chunk of V = 512: one partial chunk, one exact chunk, two full chunks plus a
    partial one; and the doubled chunk of a wide model."""
    h, w, t = _problem(M, d, V)
    loss = chunked.linear_cross_entropy(h, w, t)
    gh, gw = torch.autograd.grad(loss, (h, w))
    want = _frozen_chunked_loss(h.detach(), w.detach(), t)
    for got, exp, name in zip((loss, gh, gw), want, ("loss", "grad_hidden", "grad_weight"), strict=True):
        assert got.dtype == exp.dtype and torch.equal(got, exp), name


def test_matches_plain_pytorch_with_any_upstream_gradient():
    h, w, t = _problem(1100, 24, 300)
    loss = chunked.linear_cross_entropy(h, w, t)
    got = torch.autograd.grad(2.5 * loss, (h, w))
    ref = F.cross_entropy(F.linear(h, w), t)
    want = torch.autograd.grad(2.5 * ref, (h, w))
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_applies_only_to_cpu_fp32_training_without_bias_autocast_or_ignored_targets():
    h, w, t = _problem(8, 4, 10)
    assert chunked.applies(h, w, t)
    assert chunked.applies(h.detach(), w, t) and chunked.applies(h, w.detach(), t)  # either needs a gradient
    assert not chunked.applies(h.detach(), w.detach(), t)
    assert not chunked.applies(h, w, t, bias=torch.zeros(10))
    assert not chunked.applies(h.double(), w.double(), t)
    assert not chunked.applies(h.half(), w, t)
    with torch.no_grad():
        assert not chunked.applies(h, w, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not chunked.applies(h, w, t)
    ignored = t.clone()
    ignored[3] = -100
    assert not chunked.applies(h, w, ignored)
    assert not chunked.applies(h.to("meta"), w.to("meta"), t.to("meta"))


def test_per_token_loss_does_not_depend_on_the_chunk():
    h, w, t = _problem(50, 16, 70)
    t = t.view(5, 10)
    t[0, 3] = -100
    h = h.detach().view(5, 10, 16)
    want = F.cross_entropy(F.linear(h, w.detach()).reshape(50, 70), t.reshape(50), reduction="none").view(5, 10)
    for chunk_rows in (0, 1, 7, 50, 64):
        got = chunked.token_cross_entropy(h, w.detach(), t, chunk_rows=chunk_rows)
        assert got.shape == (5, 10) and got.dtype == torch.float32 and got[0, 3] == 0
        torch.testing.assert_close(got, want)


def test_chunk_rows_keeps_a_chunk_of_logits_near_2_mib():
    assert chunked.chunk_rows(24, 4096) == 128 and chunked.chunk_rows(144, 4096) == 256
    assert chunked.chunk_rows(24, 2) == chunked.CHUNK_MAX and chunked.chunk_rows(24, 65536) == 16
