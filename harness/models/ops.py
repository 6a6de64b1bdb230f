"""The two hot operations routed through a ``kernels`` setting: LayerNorm and output projection + loss.

``kernels="torch"`` always uses plain PyTorch. ``"auto"`` uses the fused Triton kernels of
``kernels.ops`` when that module exists, exposes the functions, Triton imports, and the tensor is on CUDA;
otherwise PyTorch. ``"triton"`` demands the kernels (``resolve_kernels`` refuses it where they cannot run).
The model holds the resolved setting (``LanguageModel.kernels_used``), which the functions below receive.
"""

from __future__ import annotations

import functools
import importlib

import torch
import torch.nn.functional as F

from ..errors import UserError


@functools.cache
def _kernel_ops():
    try:
        return importlib.import_module("kernels.ops")
    except ImportError:
        return None


def _has(op: str) -> bool:
    mod = _kernel_ops()
    return mod is not None and callable(getattr(mod, op, None))


def _triton_importable() -> bool:
    mod = _kernel_ops()
    check = getattr(mod, "triton_available", None)
    return bool(check()) if callable(check) else False


def resolve_kernels(setting: str, device: torch.device | str) -> str:
    """What a ``kernels`` setting means on ``device``: ``"triton"`` or ``"torch"``.

    ``"auto"`` is ``"triton"`` on CUDA when ``kernels.ops`` has both ops and ``import triton`` works."""
    cuda = torch.device(device).type == "cuda"
    has_ops = _has("layer_norm") and _has("linear_cross_entropy")
    available = cuda and has_ops and _triton_importable()
    if setting == "triton" and not available:
        why = (
            "it needs a CUDA device"
            if not cuda
            else "kernels.ops with layer_norm and linear_cross_entropy"
            if not has_ops
            else "Triton is not importable (pip install 'scaling-harness[kernels]')"
        )
        raise UserError(f"kernels='triton' cannot run here: {why} (use kernels='auto' or 'torch')")
    if setting == "torch":
        return "torch"
    return "triton" if available else "torch"


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float, kernels: str):
    if kernels == "triton" and x.is_cuda:
        return _kernel_ops().layer_norm(x, weight, bias, eps)
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, kernels: str
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``targets`` (logits never returned)."""
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    if kernels == "triton" and hidden.is_cuda:
        return _kernel_ops().linear_cross_entropy(hidden, weight, targets, bias=bias)
    if (
        not hidden.is_cuda
        and bias is None
        and hidden.dtype == weight.dtype == torch.float32
        and torch.is_grad_enabled()
        and (hidden.requires_grad or weight.requires_grad)
        and not torch.is_autocast_enabled("cpu")
    ):
        return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets)
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits.float(), targets)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Output projection + mean cross-entropy in row chunks, gradients computed during the forward pass.

    Plain PyTorch, CPU only: the (tokens x vocab) logits never exist at once, so each chunk's logits stay
    in cache; on 2 cores at d_model 32-144 and vocab 4096 this is 1.5-2x faster than F.linear +
    F.cross_entropy (results/bench/train_throughput.md). Same loss and gradients to float32 rounding.
    """

    CHUNK = 512

    @staticmethod
    def forward(ctx, hidden, weight, targets):
        M = hidden.shape[0]
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(weight)
        total = hidden.new_zeros(())
        for i in range(0, M, _ChunkedLinearCrossEntropy.CHUNK):
            h = hidden[i : i + _ChunkedLinearCrossEntropy.CHUNK]
            t = targets[i : i + _ChunkedLinearCrossEntropy.CHUNK]
            logits = h @ weight.T
            lse = torch.logsumexp(logits, dim=1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            p = logits.sub_(lse[:, None]).exp_()  # softmax, in place
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
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, chunk_rows: int = 0
) -> torch.Tensor:
    """Per-token cross-entropy (``reduction="none"``) of ``hidden @ weight.T + bias``, shaped like ``targets``.

    Plain PyTorch whatever the ``kernels`` setting (evaluation only, never on the training path). Rows go
    through in chunks of ``chunk_rows`` (default: about 2^24 logits at a time), so the (tokens x vocab)
    logits never exist at once; the cross-entropy is taken in float32 as in :func:`linear_cross_entropy`.
    """
    shape = targets.shape
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    step = chunk_rows or max(1, 2**24 // weight.shape[0])
    out = [
        F.cross_entropy(F.linear(hidden[i : i + step], weight, bias).float(), targets[i : i + step], reduction="none")
        for i in range(0, hidden.shape[0], step)
    ]
    return torch.cat(out).view(shape)
