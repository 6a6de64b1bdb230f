"""A user's architecture as the arena's bring-your-own protocol has it: a plain ``nn.Module`` and a factory.

Nothing here imports the harness: a gated causal convolution language model (embedding -> depthwise causal
conv + gate -> output projection), built by ``factory(vocab_size, n_ctx, size)``, returning logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GatedConvLM(nn.Module):
    def __init__(self, vocab_size: int, d: int, kernel: int = 4):
        super().__init__()
        self.kernel = kernel
        self.emb = nn.Embedding(vocab_size, d)
        self.conv = nn.Conv1d(d, d, kernel, groups=d)
        self.gate = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, vocab_size, bias=False)
        nn.init.normal_(self.emb.weight, 0, 0.02)
        nn.init.normal_(self.out.weight, 0, 0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)  # (B, T, d)
        h = self.conv(F.pad(x.transpose(1, 2), (self.kernel - 1, 0))).transpose(1, 2)  # causal: left padding only
        a, b = self.gate(h).chunk(2, dim=-1)
        return self.out(x + a * torch.sigmoid(b))


def factory(vocab_size: int, n_ctx: int, size: int) -> nn.Module:
    """About ``size`` non-embedding weights: the gate's 2 d^2 dominate."""
    return GatedConvLM(vocab_size, max(8, 8 * round(math.sqrt(size / 2) / 8)))


class Leaky(nn.Module):
    """Not causal: every position sees the mean of the whole sequence (the arena must refuse it)."""

    def __init__(self, vocab_size: int, d: int):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, d)
        self.out = nn.Linear(d, vocab_size)

    def forward(self, idx):
        x = self.emb(idx)
        return self.out(x + x.mean(dim=1, keepdim=True))


def leaky_factory(vocab_size: int, n_ctx: int, size: int) -> nn.Module:
    return Leaky(vocab_size, 16)
