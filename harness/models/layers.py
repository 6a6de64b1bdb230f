"""Layers shared by the architectures: norms (routed through the ``kernels`` switch), attention, MLPs.

Every layer takes plain sizes, not a model config, so any architecture can build from them. Norms are
:class:`~harness.models.base.KernelOp` submodules: they run PyTorch until the model's ``kernels_used`` is
set, then the implementation it names (see :mod:`harness.models.ops`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import ops
from .base import KernelOp


class LayerNorm(KernelOp):
    """LayerNorm over the last dimension, with an optional bias."""

    def __init__(self, d: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x):
        return ops.layer_norm(x, self.weight, self.bias, self.eps, self.kernels)


class RMSNorm(KernelOp):
    """RMSNorm over the last dimension: ``x / sqrt(mean(x^2) + eps) * weight``."""

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return ops.rms_norm(x, self.weight, self.eps, self.kernels)


def rotary_tables(n_ctx: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables (n_ctx, head_dim / 2) of rotary position embeddings (Su et al. 2021)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(n_ctx, dtype=torch.float64), inv_freq)  # (T, head_dim/2)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + head_dim/2) of ``x`` (B, H, T, head_dim) by position-dependent angles."""
    T = x.shape[-2]
    x1, x2 = x.chunk(2, dim=-1)
    c, s = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through ``F.scaled_dot_product_attention``; optional rotary positions."""

    def __init__(self, d_model: int, n_head: int, bias: bool = True):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model {d_model} is not divisible by n_head {n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, rotary=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


GATED_ACTIVATIONS = ("swiglu", "geglu")


def gated_hidden(d_model: int, ratio: int = 4, multiple: int = 8) -> int:
    """Hidden width of a gated MLP with about the weights of a ``ratio``-wide ungated one.

    A gated MLP has three ``d x h`` matrices (gate, value, output) where the ungated MLP has two ``d x ratio d``
    ones, so ``h = 2/3 ratio d`` (8/3 d for ratio 4, as in Shazeer 2020 and LLaMA) keeps ``3 d h ~= 2 ratio d^2``
    weights; ``h`` is rounded to the nearest multiple of ``multiple`` (8; halves up), at least ``multiple``.
    E.g. d = 64: h = 168 (3 d h = 32256 weights against 8 d^2 = 32768)."""
    return max(multiple, multiple * ((2 * ratio * d_model + (3 * multiple) // 2) // (3 * multiple)))


class GatedMLP(nn.Module):
    """Gated linear unit MLP (Shazeer 2020, arXiv 2002.05202): ``proj(act(x W) * (x V))``.

    ``activation`` is ``"swiglu"`` (SiLU/Swish gate, as in LLaMA) or ``"geglu"`` (GELU gate, tanh approximation
    as in the GPT's :class:`MLP`). The gate and value projections are one ``Linear(d, 2 hidden)`` (one matmul,
    then split), which holds the same weights as two ``Linear(d, hidden)``; ``hidden`` is usually
    :func:`gated_hidden`."""

    def __init__(self, d_model: int, hidden: int, bias: bool = True, activation: str = "swiglu"):
        super().__init__()
        if activation not in GATED_ACTIVATIONS:
            raise ValueError(f"activation must be one of {GATED_ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.fc = nn.Linear(d_model, 2 * hidden, bias=bias)  # [gate | value]
        self.proj = nn.Linear(hidden, d_model, bias=bias)

    def forward(self, x):
        gate, value = self.fc(x).chunk(2, dim=-1)
        gate = F.silu(gate) if self.activation == "swiglu" else F.gelu(gate, approximate="tanh")
        return self.proj(gate * value)


class MLP(nn.Module):
    """``Linear(d, ratio d) -> GELU (tanh approximation) -> Linear(ratio d, d)``, as in GPT-2."""

    def __init__(self, d_model: int, ratio: int = 4, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(d_model, ratio * d_model, bias=bias)
        self.proj = nn.Linear(ratio * d_model, d_model, bias=bias)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))
