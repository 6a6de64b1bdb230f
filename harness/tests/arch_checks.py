"""The checks every architecture passes (the arena's entry ticket), shared by the per-architecture tests.

* :func:`check_trains`: a few dozen AdamW steps on a tiny, learnable stream lower the loss well below
  ``log V`` (the model can learn, and its gradients reach every parameter);
* :func:`check_causal`: changing tokens from position ``t`` on never changes a logit before ``t`` and does
  change some logit from ``t`` on;
* :func:`check_counts`: the analytic ``counts`` match the built module's parameters exactly and its
  measured matmul FLOPs (:mod:`harness.models.measure`) within ``flop_rtol``;
* :func:`check_shape_policy`: ``shape_for(n)`` gives about ``n`` Kaplan parameters over three decades.
"""

from __future__ import annotations

import math

import torch

from harness.models import ModelConfig, build_model, model_counts, shape_for_n
from harness.models.measure import measured_counts


def periodic_stream(vocab: int, batch: int, n_ctx: int, period: int = 5, seed: int = 0):
    """(idx, targets) where each row repeats a random phrase of ``period`` tokens: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    phrase = torch.randint(0, vocab, (batch, period), generator=g)
    seq = phrase.repeat(1, n_ctx // period + 2)[:, : n_ctx + 1]
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def check_trains(name: str, steps: int = 60, lr: float = 3e-3, drop: float = 0.5, **fields) -> tuple[float, float]:
    """Train ``steps`` AdamW steps on :func:`periodic_stream`; the loss must fall below ``drop * log V``.

    Also checks that the first loss is near ``log V`` (a small initialisation predicts near-uniformly) and that
    every parameter gets a gradient. Returns (first loss, last loss)."""
    torch.manual_seed(0)
    cfg = ModelConfig.make(name, **fields)
    model = build_model(cfg)
    x, y = periodic_stream(cfg.vocab_size, 8, cfg.n_ctx)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for step in range(steps):
        loss, aux = model.training_loss(x, y)
        total = loss + sum(aux.values()) if aux else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, f"{name}: no gradient reaches {missing}"
        opt.step()
        losses.append(loss.item())
    log_v = math.log(cfg.vocab_size)
    assert abs(losses[0] - log_v) < 0.25 * log_v, f"{name}: first loss {losses[0]:.3f}, log V = {log_v:.3f}"
    assert losses[-1] < drop * log_v, f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps"
    return losses[0], losses[-1]


def check_causal(name: str, t: int | None = None, **fields) -> None:
    """Changing tokens at positions >= t changes no logit at positions < t (and changes some at >= t)."""
    torch.manual_seed(0)
    cfg = ModelConfig.make(name, **fields)
    model = build_model(cfg).eval()
    T = cfg.n_ctx
    t = T // 2 + 1 if t is None else t
    x = torch.randint(0, cfg.vocab_size, (3, T))
    x2 = x.clone()
    x2[:, t:] = (x2[:, t:] + 1) % cfg.vocab_size
    with torch.no_grad():
        a, b = model.logits(x), model.logits(x2)
    assert a.shape == (3, T, cfg.vocab_size), a.shape
    leak = (a[:, :t] - b[:, :t]).abs().max().item()
    assert leak <= 1e-6 * max(1.0, a.abs().max().item()), f"{name}: a future token moved an earlier logit by {leak:g}"
    assert not torch.allclose(a[:, t:], b[:, t:]), f"{name}: changing tokens from {t} on changed nothing"


def check_counts(name: str, flop_rtol: float = 0.05, **fields) -> None:
    """Analytic parameter counts equal the built module's; Hoffmann FLOPs within ``flop_rtol`` of measured.

    ``flop_rtol`` covers what the FLOP counter leaves out by convention (softmax, element-wise terms); an
    architecture whose analytic count deliberately includes work the counter cannot see says so in its test."""
    cfg = ModelConfig.make(name, **fields)
    model, counts = build_model(cfg), model_counts(cfg)
    assert model.measured_total_params() == counts.n_total, (model.measured_total_params(), counts.n_total)
    assert model.measured_non_embedding_params() == counts.n_non_embedding, (
        model.measured_non_embedding_params(),
        counts.n_non_embedding,
    )
    measured = measured_counts(model, cfg.n_ctx, cfg.vocab_size)
    rel = abs(measured.flops_per_token_hoffmann / counts.flops_per_token_hoffmann - 1)
    assert rel <= flop_rtol, (
        f"{name}: Hoffmann FLOPs/token analytic {counts.flops_per_token_hoffmann:.6g}, "
        f"measured {measured.flops_per_token_hoffmann:.6g} ({rel:.1%} apart)"
    )


def check_shape_policy(name: str, decades=(1e4, 1e5, 1e6), tol: float = 1.6, **options) -> None:
    """``shape_for(n)`` gives a model within a factor ``tol`` of ``n`` Kaplan parameters at each ``n``."""
    for n in decades:
        shape = shape_for_n(n, name, **options)
        achieved = model_counts(ModelConfig.make(name, **shape)).n_kaplan
        assert 1 / tol < achieved / n < tol, (name, n, shape, achieved)
