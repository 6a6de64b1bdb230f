"""Counts measured on a built module, for models that do not count themselves (and to check those that do).

:func:`measured_counts` builds nothing: it takes a module whose ``logits(idx)`` (or ``forward(idx)``) returns
(B, T, V) logits and measures

* parameters: every parameter once; "embedding" parameters are those of the ``nn.Embedding`` modules (token
  and position tables) and of the output projection, taken to be the last ``nn.Linear`` with ``vocab_size``
  outputs; the rest are non-embedding, and their matrices are Kaplan et al.'s N;
* FLOPs: one forward pass over ``n_ctx`` tokens under ``torch.utils.flop_counter.FlopCounterMode`` with the
  math attention backend (so attention's two matmuls are counted, as Hoffmann et al. App. F count them), plus
  ``2 V d`` per token for each vocabulary embedding (App. F counts the lookup as a one-hot matmul); times 3
  for training (backward = 2 x forward). Fused ops the counter does not know (``nn.LSTM``, ``nn.GRU``) and
  element-wise work (norms, activations, softmax, gates, scans done
  with element-wise ops) is not counted, as App. F leaves it out; a model whose main cost is element-wise
  (an SSM scan written without matmuls) is under-counted here and should give its own ``counts``.

Kaplan's count for a measured model is ``C = 6 N`` per token (Kaplan et al. 2020, eq. 2.2 and Sec. 2.1: the
context-dependent term is small at their ``d_model / n_ctx``, and ``6 N`` is the count they use throughout);
the arena compares architectures in Hoffmann's count, which includes attention.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelCounts


def embedding_parameters(module: nn.Module, vocab_size: int) -> list[nn.Parameter]:
    """Parameters of the module's embedding tables and of its output projection (each once)."""
    heads = [m for m in module.modules() if isinstance(m, nn.Linear) and m.out_features == vocab_size]
    tables = [m for m in module.modules() if isinstance(m, nn.Embedding)]
    seen: dict[int, nn.Parameter] = {}
    for m in tables + heads[-1:]:
        for p in m.parameters(recurse=False):
            seen.setdefault(id(p), p)
    return list(seen.values())


def forward_flops(module: nn.Module, n_ctx: int, vocab_size: int, batch: int = 1) -> float:
    """Matmul FLOPs of one forward pass over ``batch`` sequences of ``n_ctx`` tokens (math attention)."""
    call = getattr(module, "logits", None) or module
    idx = torch.randint(0, vocab_size, (batch, n_ctx), generator=torch.Generator().manual_seed(0))
    device = next(module.parameters()).device if any(True for _ in module.parameters()) else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            call(idx.to(device))
    finally:
        module.train(was_training)
    return float(counter.get_total_flops())


def measured_counts(module: nn.Module, n_ctx: int, vocab_size: int) -> ModelCounts:
    """Parameter and FLOP counts of a built module (see the module docstring for the conventions)."""
    params = {id(p): p for p in module.parameters()}
    emb = {id(p) for p in embedding_parameters(module, vocab_size)}
    n_total = sum(p.numel() for p in params.values())
    non_emb = [p for i, p in params.items() if i not in emb]
    n_non_embedding = sum(p.numel() for p in non_emb)
    n_kaplan = sum(p.numel() for p in non_emb if p.dim() >= 2)  # weight matrices only: no biases or gains
    lookup = sum(
        2 * vocab_size * m.embedding_dim
        for m in module.modules()
        if isinstance(m, nn.Embedding) and m.num_embeddings == vocab_size
    )
    fwd = forward_flops(module, n_ctx, vocab_size) / n_ctx + lookup
    if fwd < 2 * n_kaplan:
        warnings.warn(
            f"{type(module).__name__}: the FLOP counter saw {fwd:.4g} forward FLOPs per token, fewer than 2 per "
            f"non-embedding weight ({2 * n_kaplan:.4g}); it does not count fused ops such as nn.LSTM, so give "
            "the model its own counts (see harness.models.base)",
            stacklevel=2,
        )
    return ModelCounts(n_kaplan, n_non_embedding, n_total, float(6 * n_kaplan), float(3 * fwd))
