"""Universal Transformer as a causal decoder: one block applied n_layer times, with a coordinate embedding
(position + recurrence step) added before every application.

Dehghani et al. (2018), "Universal Transformers", arXiv 1807.03819; one of the architectures of Tay et al.
(2022), "Scaling Laws vs Model Architectures", arXiv 2207.10551.

    tokens -> token embedding (V x d)
           -> for t = 1..n_layer:  x = x + P^t;  x = Block(x)        the same Block every step
           -> LayerNorm -> output projection (untied by default)
    P^t_i = position_i + step_t                                       the paper's coordinate embedding
        coords = "sinusoidal" (default): the paper's fixed signal, on the token embeddings' scale (x 0.02),
            P^t_{i,2j} = 0.02 (sin(i / 10^(8j/d)) + sin(t / 10^(8j/d))), likewise cos for channel 2j+1;
            no parameters
        coords = "learned": learned tables (n_ctx x d) and (n_layer x d), N(0, 0.02) like the GPT's positions
    Block(x):  x = x + Attention(LN(x));  x = x + MLP(LN(x))  (the GPT's Block: causal MHA, GELU 4d MLP)

Accounting as :mod:`harness.models.albert`'s: ``n_kaplan`` counts the shared block's weight matrices ONCE; the
FLOP counts count every application. The coordinate tables are embeddings (of position and of depth: not in
``n_kaplan`` nor ``n_non_embedding``); adding them is element-wise and costs no counted FLOPs. Shape policy
as ALBERT's: n_layer from the GPT's depth rule for n, width so that the one block has ~n weights.

Versus the paper: decoder-only and causal (no encoder, no encoder-decoder attention); a fixed number of steps
without Adaptive Computation Time (the paper's base UT, Sec. 2.1; its ACT halting, Sec. 2.2, is left out, as
a per-token halting loop does not fit a fixed FLOP budget per token); pre-norm blocks (the paper is post-norm)
with the GPT's GELU MLP as the transition function (the paper: a ReLU feed-forward or separable convolution)
and GPT-2 initialisation (residual output projections scaled by 1/sqrt(2 n_layer), as the block is applied
n_layer times); no dropout. The fixed sinusoids are multiplied by 0.02, the GPT-2 init scale of the token
embeddings: the paper's unit-amplitude signal sits next to embeddings of about unit size (its tensor2tensor
code scales them by sqrt(d)), but next to N(0, 0.02) embeddings it would swamp the tokens at first (a tiny
model then learns markedly slower: the tied 60-step check stalls at 2.55 nats against 0.34 scaled); the
scale keeps the paper's token-to-coordinate ratio at this initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .base import EmbeddingHeadLM
from .config import ModelArgs, ModelCounts
from .gpt import ASPECT, HEAD_DIM, Block, _check_shape_options, block_counts, depth_for, gpt2_init, width_for
from .layers import LayerNorm

COORD_SETTINGS = ("learned", "sinusoidal")
EMB_STD = 0.02  # GPT-2 embedding init; the fixed sinusoids are scaled to it (see the module docstring)


@dataclass(frozen=True)
class UniversalArgs(ModelArgs):
    n_layer: int = 2  # recurrence steps: applications of the one shared block
    d_model: int = 64
    n_head: int = 2
    mlp_ratio: int = 4
    coords: str = "sinusoidal"  # "sinusoidal" (the paper's fixed signal, x 0.02) | "learned" position + step tables
    tie_weights: bool = False  # output projection shares the token embedding
    bias: bool = True  # biases in the linear layers and LayerNorms

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "n_head", "mlp_ratio")
        self.require_choice("coords", COORD_SETTINGS)
        self.require_bool("tie_weights", "bias")
        if self.d_model % self.n_head:
            raise UserError(
                f"model.d_model ({self.d_model}) must be a multiple of model.n_head ({self.n_head}): "
                "each head gets d_model / n_head channels"
            )


def coordinate_signal(n_layer: int, n_ctx: int, d_model: int, scale: float = 1.0) -> torch.Tensor:
    """The paper's fixed coordinate embedding (n_layer, n_ctx, d_model) times ``scale``: position i = 0..n_ctx-1
    and step t = 1..n_layer, each through sin (even channels) and cos (odd channels) at wavelengths
    10000^(2j/d) (Dehghani et al. Sec. 2.1)."""
    inv_freq = 1.0 / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (ceil(d/2),)

    def signal(positions: torch.Tensor) -> torch.Tensor:
        angles = torch.outer(positions.double(), inv_freq)
        out = torch.empty(len(positions), d_model, dtype=torch.float64)
        out[:, 0::2] = angles.sin()
        out[:, 1::2] = angles.cos()[:, : d_model // 2]
        return out

    pos = signal(torch.arange(n_ctx))  # (T, d)
    step = signal(torch.arange(1, n_layer + 1))  # (L, d)
    return (scale * (pos[None] + step[:, None])).float()


class UniversalTransformer(EmbeddingHeadLM):
    Args = UniversalArgs

    def __init__(self, cfg: UniversalArgs):
        super().__init__()
        self.config = cfg
        d = cfg.d_model
        self.wte = nn.Embedding(cfg.vocab_size, d)
        if cfg.coords == "learned":
            self.wpe = nn.Embedding(cfg.n_ctx, d)
            self.wse = nn.Embedding(cfg.n_layer, d)  # step (recurrence-depth) embedding
        else:
            self.wpe = self.wse = None
            self.register_buffer("coord", coordinate_signal(cfg.n_layer, cfg.n_ctx, d, EMB_STD), persistent=False)
        self.block = Block(d, cfg.n_head, cfg.mlp_ratio, cfg.bias)  # shared by all n_layer steps
        self.ln_f = LayerNorm(d, cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(d, cfg.vocab_size, bias=False)
        gpt2_init(self, cfg.n_layer)

    def embedding_parameters(self):
        tables = [] if self.wpe is None else [self.wpe.weight, self.wse.weight]
        return [self.wte.weight, *tables] + ([] if self.head is None else [self.head.weight])

    def coordinates(self, T: int) -> torch.Tensor:
        """P^t for t = 1..n_layer over the first T positions: (n_layer, T, d_model)."""
        if self.wpe is None:
            return self.coord[:, :T]
        return self.wpe.weight[:T][None] + self.wse.weight[:, None]

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after the last LayerNorm."""
        T = idx.shape[1]
        if T > self.config.n_ctx:
            raise ValueError(f"sequence length {T} exceeds n_ctx {self.config.n_ctx}")
        x = self.wte(idx)
        for p in self.coordinates(T):  # a loop over recurrence steps (depth), not over time
            x = self.block(x + p)
        return self.ln_f(x)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: UniversalArgs) -> ModelCounts:
        L, d, V, T = cfg.n_layer, cfg.d_model, cfg.vocab_size, cfg.n_ctx
        weights, params, block_flops = block_counts(d, cfg.n_head, T, cfg.mlp_ratio, cfg.bias)
        n_kaplan = weights  # the shared block, once
        n_non_emb = params + (2 * d if cfg.bias else d)  # + final LayerNorm
        coords = (T + L) * d if cfg.coords == "learned" else 0  # position and step tables
        emb = V * d + coords + (0 if cfg.tie_weights else V * d)
        kaplan = 6 * L * weights + 6 * L * T * d  # every step: 6 N per layer + attention's context term
        # Hoffmann et al. App. F: embedding 2Vd, n_layer block applications, logits 2dV (adding P^t: element-wise)
        forward = 2 * V * d + L * block_flops + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls, n: float, *, aspect: int = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 1
    ) -> dict[str, int]:
        """n_layer as the GPT's for ``n`` (:func:`~harness.models.gpt.depth_for`); width so that the one
        shared block has ~n weights (12 d^2 ~= n)."""
        _check_shape_options(aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        return {"n_layer": depth_for(n, aspect, min_layers), **width_for(n, head_dim)}
