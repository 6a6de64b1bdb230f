"""A stacked-LSTM language model with the GPT's embedding/head conventions (Kaplan et al. compare the two).

tokens -> token embedding -> nn.LSTM(d_model, d_model, n_layer) -> LayerNorm -> output projection
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .base import EmbeddingHeadLM
from .config import ModelArgs, ModelCounts
from .layers import LayerNorm

# Shape policy: LSTM_LAYERS layers (Kaplan et al. 2020, Fig. 7, train 1-, 2- and 4-layer LSTMs), width from N.
LSTM_LAYERS = 2


@dataclass(frozen=True)
class LSTMArgs(ModelArgs):
    n_layer: int = 2
    d_model: int = 64  # embedding and hidden width
    tie_weights: bool = False
    bias: bool = True  # LSTM gate biases (b_ih, b_hh) and the final LayerNorm's bias

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model")
        self.require_bool("tie_weights", "bias")


class LSTM(EmbeddingHeadLM):
    Args = LSTMArgs

    def __init__(self, cfg: LSTMArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rnn = nn.LSTM(cfg.d_model, cfg.d_model, num_layers=cfg.n_layer, batch_first=True, bias=cfg.bias)
        self.ln_f = LayerNorm(cfg.d_model, cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        nn.init.normal_(self.wte.weight, 0.0, 0.02)
        if self.head is not None:
            nn.init.normal_(self.head.weight, 0.0, 0.02)

    def embedding_parameters(self):
        return [self.wte.weight, self.head_weight]

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.wte(idx))
        return self.ln_f(out)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(self.hidden(idx), self.head_weight)

    @classmethod
    def counts(cls, cfg: LSTMArgs) -> ModelCounts:
        L, d, V = cfg.n_layer, cfg.d_model, cfg.vocab_size
        n_kaplan = L * 8 * d * d  # 4 gates x (input + recurrent) weights; no biases
        n_non_emb = n_kaplan + (L * 8 * d if cfg.bias else 0) + (2 * d if cfg.bias else d)  # b_ih + b_hh, ln_f
        emb = V * d + (0 if cfg.tie_weights else V * d)
        # No attention term for a recurrent model: Kaplan's C = 6N. Hoffmann-style full count: embeddings,
        # gate matmuls, output logits (element-wise gate arithmetic, O(d) per token, is left out as in App. F).
        forward = 2 * V * d + L * 2 * 8 * d * d + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(6 * n_kaplan), float(3 * forward))

    @classmethod
    def shape_for(cls, n: float, *, n_layer: int = LSTM_LAYERS) -> dict[str, int]:
        if not isinstance(n_layer, int) or isinstance(n_layer, bool) or n_layer < 1:
            raise UserError(f"shape option n_layer must be a positive whole number, got {n_layer!r}")
        d = max(8, 8 * round(math.sqrt(n / (8 * n_layer)) / 8))
        return {"n_layer": n_layer, "d_model": d}
