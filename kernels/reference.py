"""Plain PyTorch reference implementations of every fused kernel in this package.

These define what the Triton kernels must compute (the tests compare against them) and are what
``kernels.ops`` runs for ``backend="torch"``. They are deliberately the obvious eager code: the
cross-entropy reference materialises the full ``(T, V)`` logits (and an fp32 copy of them), which is
exactly the memory cost the fused kernel avoids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # same default as torch.nn.functional.cross_entropy


def layer_norm_ref(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    residual: torch.Tensor | None = None,
):
    """LayerNorm over the last dimension. With ``residual``, normalises ``s = x + residual`` and returns
    ``(norm(s), s)`` (the pre-norm transformer pattern: ``s`` is the new residual stream)."""
    s = x if residual is None else x + residual
    y = F.layer_norm(s, (s.shape[-1],), weight, bias, eps)
    return y if residual is None else (y, s)


def rms_norm_ref(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    eps: float = 1e-6,
    residual: torch.Tensor | None = None,
):
    """RMSNorm over the last dimension, ``x / sqrt(mean(x^2) + eps) * weight``, computed in fp32 and cast
    back to ``x.dtype``. With ``residual``, returns ``(rms_norm(x + residual), x + residual)``."""
    s = x if residual is None else x + residual
    sf = s.float()
    y = sf * torch.rsqrt(sf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.float()
    y = y.to(s.dtype)
    return y if residual is None else (y, s)


def linear_cross_entropy_ref(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T + bias`` (logits upcast to fp32) against ``targets``;
    targets equal to ``ignore_index`` count neither in the loss nor in the mean."""
    hidden = hidden.reshape(-1, hidden.shape[-1])
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits.float(), targets.reshape(-1), ignore_index=ignore_index)
