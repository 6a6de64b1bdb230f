"""Output projection + cross-entropy in plain PyTorch, a chunk of rows at a time: the ``torch`` backend's
memory-light paths (no Triton; they run wherever PyTorch does).

* :func:`linear_cross_entropy` is the CPU training loss. ``kernels.ops.linear_cross_entropy`` with the torch
  backend uses it when :func:`applies` (CPU tensors, no bias, fp32 hidden and weight, grad enabled with
  hidden or weight requiring it, no CPU autocast, no ignored target) and the eager reference otherwise. It
  works as the Triton kernel in :mod:`kernels.cross_entropy` does on a GPU, in chunks of
  :func:`chunk_rows` rows with the gradients computed during the forward pass, so the (tokens x vocab)
  logits never exist at once and each chunk's logits stay in cache (results/bench/train_throughput.md has
  the measurements). Same loss and gradients as the reference to float32 rounding.
* :func:`token_cross_entropy` is the per-token loss for evaluation (``reduction="none"``), in chunks of
  about 2^24 logits.

The operations and their order are part of the project's promise of bit-identical run records for the same
config, seed and thread count: a change to either changes every CPU run's numbers (the tests pin the
training loss to a frozen copy of this algorithm, bit for bit).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .reference import IGNORE_INDEX

CHUNK_MAX = 1024  # most rows per chunk of the training loss (see chunk_rows)

__all__ = ["CHUNK_MAX", "applies", "chunk_rows", "linear_cross_entropy", "token_cross_entropy"]


def applies(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bias: torch.Tensor | None = None
) -> bool:
    """Whether :func:`linear_cross_entropy` computes this loss (``hidden`` (M, d), ``targets`` (M,)).

    Only where it pays and is exact: on CPU (a GPU has the Triton kernel), in fp32 (its softmax is computed
    in the logits' dtype), without bias or autocast (it has no bias gradient and no dtype casts), when a
    gradient is wanted (it always computes both), and with no target equal to ``IGNORE_INDEX`` (its mean
    counts every row). Checking the targets costs no device sync on CPU."""
    return (
        hidden.device.type == "cpu"
        and bias is None
        and hidden.dtype == weight.dtype == torch.float32
        and torch.is_grad_enabled()
        and (hidden.requires_grad or weight.requires_grad)
        and not torch.is_autocast_enabled("cpu")
        and not bool((targets == IGNORE_INDEX).any())
    )


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, ``hidden`` (M, d), ``weight`` (V, d),
    ``targets`` (M,) in ``[0, V)``; see :func:`applies` for the inputs it is meant for."""
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets)


def chunk_rows(d: int, vocab: int) -> int:
    """Rows per chunk: logits of about 2 MiB (2^19 fp32 values, which stay in a core's L2 cache), twice that
    when ``d`` > 96, where the chunk's matmuls dominate and larger tiles pay. Measured on 2 cores, vocab 4096:
    128 rows at d 24 and 64, 256 at d 144 were the fastest of 64 - 512 (results/bench/train_throughput.md)."""
    rows = max(16, (2**19) // max(1, vocab))
    return min(CHUNK_MAX, rows * (2 if d > 96 else 1))


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Both gradients are computed in the forward pass, chunk by chunk; the backward only scales them.

    Per chunk, one exponential pass: ``e = exp(z - max z)``, ``lse = max z + log sum e``, softmax ``e / sum e``
    (algorithm v2; v1, used for records made before it, called ``logsumexp`` and then exponentiated again,
    in chunks of 512 rows: 1.3 - 2x slower at d_model 24 - 144, equal up to float32 rounding)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets):
        M = hidden.shape[0]
        chunk = chunk_rows(hidden.shape[1], weight.shape[0])
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(weight)
        total = hidden.new_zeros(())
        for i in range(0, M, chunk):
            h = hidden[i : i + chunk]
            t = targets[i : i + chunk]
            logits = h @ weight.T
            top = logits.amax(dim=1, keepdim=True)
            picked = logits.gather(1, t[:, None])
            e = logits.sub_(top).exp_()  # in place: the chunk's logits become exp(z - max z)
            norm = e.sum(dim=1, keepdim=True)
            total += (norm.log() + top - picked).sum()
            p = e.div_(norm)  # softmax, in place
            p[torch.arange(len(t)), t] -= 1.0  # d(loss_row)/d(logits)
            grad_h[i : i + len(t)] = p @ weight
            grad_w.addmm_(p.T, h)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.rows = M
        return total / M

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.rows
        return grad_h * scale, grad_w * scale, None


def token_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk_rows: int = 0,
) -> torch.Tensor:
    """Per-token cross-entropy (``reduction="none"``) of ``hidden @ weight.T + bias``, shaped like ``targets``.

    Rows go through in chunks of ``chunk_rows`` (default: about 2^24 logits at a time), so the (tokens x vocab)
    logits never exist at once; each chunk's logits are upcast to float32 as in the reference loss. Targets
    equal to ``IGNORE_INDEX`` get a loss of 0."""
    shape = targets.shape
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    step = chunk_rows or max(1, 2**24 // weight.shape[0])
    out = [
        F.cross_entropy(F.linear(hidden[i : i + step], weight, bias).float(), targets[i : i + step], reduction="none")
        for i in range(0, hidden.shape[0], step)
    ]
    return torch.cat(out).view(shape)
