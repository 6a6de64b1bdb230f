"""A model defined outside harness/models, as a user's plug-in would be (the seam tests import it by path).

One file, as the registry asks: typed args, analytic counts, a shape policy, a forward pass, and one optional
hook (an auxiliary loss term, to check that the trainer adds and logs it without knowing the model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.models import LanguageModel, ModelArgs, ModelCounts


@dataclass(frozen=True)
class TinyArgs(ModelArgs):
    d_model: int = 8
    aux_weight: float = 0.0  # weight of an L2 penalty on the hidden states, reported as the "l2" aux term

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("d_model")


class TinyLM(LanguageModel):
    """Embedding -> one tanh mixing layer -> output projection (a bigram model with a bottleneck)."""

    Args = TinyArgs

    def __init__(self, cfg: TinyArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.mix = nn.Linear(cfg.d_model, cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def embedding_parameters(self):
        return [self.wte.weight, self.head.weight]

    @classmethod
    def counts(cls, cfg: TinyArgs) -> ModelCounts:
        d, V = cfg.d_model, cfg.vocab_size
        n = d * d
        return ModelCounts(n, n + d, n + d + 2 * V * d, 6.0 * n, 3.0 * (2 * V * d + 2 * n + 2 * d * V))

    @classmethod
    def shape_for(cls, n: float, *, multiple: int = 4) -> dict[str, int]:
        return {"d_model": max(multiple, multiple * round(math.sqrt(n) / multiple))}

    def hidden(self, idx):
        return torch.tanh(self.mix(self.wte(idx)))

    def forward(self, idx, targets):
        return F.cross_entropy(self.head(self.hidden(idx)).flatten(0, 1), targets.flatten())

    def training_loss(self, idx, targets):
        h = self.hidden(idx)
        ce = F.cross_entropy(self.head(h).flatten(0, 1), targets.flatten())
        return ce, ({"l2": self.config.aux_weight * h.pow(2).mean()} if self.config.aux_weight else {})
