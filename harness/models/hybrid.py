"""A Mamba-attention hybrid: Mamba blocks with an attention block every ``attn_every`` layers (Jamba-style).

Lieber et al. (2024), "Jamba: A Hybrid Transformer-Mamba Language Model", arXiv 2403.19887; the Mamba block is
:mod:`harness.models.mamba`'s (Gu & Dao 2023, arXiv 2312.00752).

    tokens -> token embedding -> n_layer x (MambaBlock | AttentionBlock) -> RMSNorm -> logits (tied by default)
    layer i is an AttentionBlock if i % attn_every == attn_every // 2, else a MambaBlock
    MambaBlock(x):      x = x + MambaMixer(RMSNorm(x))                     (mamba.py's, imported)
    AttentionBlock(x):  x = x + Attention(RMSNorm(x));  x = x + MLP(RMSNorm(x))
    Attention: causal multi-head (layers.CausalSelfAttention), no positional encoding of any kind
    MLP:       Linear(d, 4d) -> GELU -> Linear(4d, d)                     (layers.MLP)

With attn_every = 4 (the default) the layers run M M A M | M M A M | ...: one attention block per four layers,
at the middle of each group as Jamba places its one attention layer per eight (attention at offset 4 of 8).
Jamba's 1:7 ratio would leave the arena's small models (2 to ~10 layers) with at most one attention layer, or
none; 1:3 gives every model from 3 layers up at least one, and attn_every = 8 gives Jamba's ratio. The first
layer is always a Mamba block, so the sequence order reaches the attention through the Mamba layers' causal
convolutions and scans: no positions are needed, as Jamba found (no RoPE, no learned positions). Any T works.

Accounting: as the GPT for the attention blocks (Kaplan N 4 d^2 + 2 mlp_ratio d^2, Hoffmann's attention logits,
softmax and softmax @ V, Kaplan's 6 n_ctx d context term per attention block) and as :mod:`harness.models.mamba`
for the Mamba blocks (their conv and the element-wise part of the scan are FLOPs the counter does not see).

Shape policy (:meth:`Hybrid.shape_for`): the Mamba depth (twice the GPT's depth for n), at least enough layers
for one attention block (attn_every // 2 + 1, assuming the default attn_every); then the width, heads of ~64
channels, whose exact Kaplan count is nearest n.

Versus Jamba: no mixture of experts (Jamba replaces every other MLP by a 16-expert MoE); no MLP after the Mamba
mixers (Jamba has one in every layer; here a Mamba block is the Mamba paper's mixer-only block and the
attention block is the GPT's block, so the model interpolates between the two arena entrants); GELU MLPs
rather than SwiGLU; RMSNorm everywhere as Jamba; no biases by default (Mamba's); GPT-2 initialisation with
every residual output projection scaled by 1/sqrt(number of residual branches: one per Mamba block, two per
attention block); no dropout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from .config import MAX_DIMENSION, ModelArgs, ModelCounts
from .gpt import ASPECT, HEAD_DIM, _check_shape_options, depth_for
from .layers import MLP, CausalSelfAttention, RMSNorm
from .mamba import (
    MambaBlock,
    ResidualStackLM,
    dt_rank_for,
    mamba_width_for,
    mixer_counts,
    mixer_options,
)

ATTN_EVERY = 4  # one attention block per ATTN_EVERY layers (Jamba: 8)


@dataclass(frozen=True)
class HybridArgs(ModelArgs):
    n_layer: int = 4
    d_model: int = 64
    attn_every: int = ATTN_EVERY  # layer i is attention if i % attn_every == attn_every // 2
    n_head: int = 1  # attention heads
    mlp_ratio: int = 4  # attention blocks' MLP width / d_model
    d_state: int = 16  # Mamba blocks, as harness.models.mamba
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0  # 0: ceil(d_model / 16)
    scan_chunk: int = 0  # 0: auto
    tie_weights: bool = True
    bias: bool = False  # biases in the Mamba in/out projections and in the attention blocks' linear layers

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "attn_every", "n_head", "mlp_ratio", "d_state", "d_conv", "expand")
        self.require_bool("tie_weights", "bias")
        for name, zero in (("dt_rank", "ceil(d_model / 16)"), ("scan_chunk", "chosen from the batch and width")):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_DIMENSION:
                raise UserError(f"model.{name} must be a whole number >= 0 (0: {zero}), got {v!r}")
        if self.attn_every < 2:
            raise UserError(
                f"model.attn_every must be at least 2 (one attention block per attn_every layers), got "
                f"{self.attn_every}: with 1 every layer is attention without positions; use model 'gpt'"
            )
        if self.n_layer <= self.attn_every // 2:
            raise UserError(
                f"model.n_layer ({self.n_layer}) gives no attention block: layer i is attention when "
                f"i % attn_every == {self.attn_every // 2}; use at least {self.attn_every // 2 + 1} layers, a smaller "
                "attn_every, or model 'mamba'"
            )
        if self.d_model % self.n_head:
            raise UserError(
                f"model.d_model ({self.d_model}) must be a multiple of model.n_head ({self.n_head}): "
                "each head gets d_model / n_head channels"
            )


def is_attention(i: int, attn_every: int) -> bool:
    """Whether layer ``i`` of a hybrid is an attention block."""
    return i % attn_every == attn_every // 2


class AttentionBlock(nn.Module):
    """Pre-norm ``x + Attention(RMSNorm(x))``, then ``x + MLP(RMSNorm(x))``; no positions."""

    def __init__(self, d_model: int, n_head: int, mlp_ratio: int, bias: bool):
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, bias)
        self.norm2 = RMSNorm(d_model)
        self.mlp = MLP(d_model, mlp_ratio, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def attention_block_counts(d: int, n_head: int, n_ctx: int, f: int, bias: bool) -> dict[str, int]:
    """An attention block's Kaplan ``weights``, exact ``params`` and forward FLOPs per token (``hoffmann``)."""
    weights = 4 * d * d + 2 * f * d * d  # qkv, out, MLP in and out
    biases = (3 * d + d + f * d + d) if bias else 0
    attn = 2 * 3 * d * d + 2 * n_ctx * d + 3 * n_head * n_ctx + 2 * n_ctx * d + 2 * d * d  # as the GPT's counts
    return {"weights": weights, "params": weights + biases + 2 * d, "hoffmann": attn + 4 * f * d * d}


class Hybrid(ResidualStackLM):
    Args = HybridArgs

    def __init__(self, cfg: HybridArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(
            AttentionBlock(cfg.d_model, cfg.n_head, cfg.mlp_ratio, cfg.bias)
            if is_attention(i, cfg.attn_every)
            else MambaBlock(cfg.d_model, **mixer_options(cfg))
            for i in range(cfg.n_layer)
        )
        self.norm_f = RMSNorm(cfg.d_model)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        n_attn = sum(isinstance(b, AttentionBlock) for b in self.blocks)
        out_std = 0.02 / math.sqrt((cfg.n_layer - n_attn) + 2 * n_attn)  # one std per residual branch count
        nn.init.normal_(self.wte.weight, 0.0, 0.02)
        if self.head is not None:
            nn.init.normal_(self.head.weight, 0.0, 0.02)
        for block in self.blocks:
            if isinstance(block, MambaBlock):
                block.mixer.reset_parameters(out_std)
                continue
            for lin in (block.attn.qkv, block.mlp.fc):
                nn.init.normal_(lin.weight, 0.0, 0.02)
            for lin in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(lin.weight, 0.0, out_std)
            for lin in (block.attn.qkv, block.attn.proj, block.mlp.fc, block.mlp.proj):
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def layer_counts(cls, cfg: HybridArgs) -> tuple[int, dict[str, int], dict[str, int]]:
        """(number of attention blocks, one Mamba mixer's counts, one attention block's counts)."""
        d = cfg.d_model
        n_attn = sum(is_attention(i, cfg.attn_every) for i in range(cfg.n_layer))
        m = mixer_counts(d, cfg.d_state, cfg.d_conv, cfg.expand, dt_rank_for(d, cfg.dt_rank), cfg.bias)
        a = attention_block_counts(d, cfg.n_head, cfg.n_ctx, cfg.mlp_ratio, cfg.bias)
        return n_attn, m, a

    @classmethod
    def counts(cls, cfg: HybridArgs) -> ModelCounts:
        d, V, T = cfg.d_model, cfg.vocab_size, cfg.n_ctx
        n_attn, m, a = cls.layer_counts(cfg)
        n_mamba = cfg.n_layer - n_attn
        n_kaplan = n_mamba * m["weights"] + n_attn * a["weights"]
        n_non_emb = n_mamba * (m["params"] + d) + n_attn * a["params"] + d  # + Mamba blocks' norms, final norm
        emb = V * d * (1 if cfg.tie_weights else 2)
        kaplan = 6 * n_kaplan + 6 * n_attn * T * d  # the context term of the attention blocks only
        forward = 2 * V * d + n_mamba * (m["matmul"] + m["elementwise"]) + n_attn * a["hoffmann"] + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls, n: float, *, aspect: float = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 2
    ) -> dict[str, int]:
        """``n_layer`` = twice the GPT's depth (as Mamba's policy), at least ``min_layers`` and at least one
        attention block's worth (default attn_every); ``d_model`` the multiple of 8 whose Kaplan count is nearest
        n, ``n_head`` = d_model / ~head_dim (d_model rounded to a multiple of 8 n_head)."""
        _check_shape_options(aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        n_layer = max(min_layers, ATTN_EVERY // 2 + 1, 2 * depth_for(n, aspect))
        defaults = HybridArgs()
        n_attn = sum(is_attention(i, ATTN_EVERY) for i in range(n_layer))

        def model_weights(d: int) -> int:
            m = mixer_counts(d, defaults.d_state, defaults.d_conv, defaults.expand, dt_rank_for(d), False)
            return (n_layer - n_attn) * m["weights"] + n_attn * (4 + 2 * defaults.mlp_ratio) * d * d

        d = mamba_width_for(n, model_weights)
        n_head = max(1, round(d / head_dim))
        d = max(8 * n_head, 8 * n_head * round(d / (8 * n_head)))
        return {"n_layer": n_layer, "d_model": d, "n_head": n_head}
