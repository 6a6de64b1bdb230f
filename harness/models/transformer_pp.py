"""Transformer++: the LLaMA-style decoder that Gu & Dao (2023, "Mamba", arXiv 2312.00752) use as their
strong Transformer baseline (after Touvron et al. 2023, "LLaMA", arXiv 2302.13971).

    tokens -> token embedding -> n_layer x Block -> RMSNorm -> output projection (untied by default)
    Block(x):  x = x + Attention(RMSNorm(x));  x = x + SwiGLU(RMSNorm(x))
    Attention: causal, multi-head, rotary positions (RoPE, Su et al. 2021) in every layer, no absolute positions
    SwiGLU:    Linear(d, 2h) -> [gate | value] -> SiLU(gate) * value -> Linear(h, d)
    no biases anywhere (linear layers and norms); RMSNorm has a gain only

The SwiGLU width ``h = gated_hidden(d, mlp_ratio)`` is the multiple of 8 nearest ``2/3 mlp_ratio d`` (8/3 d
for the default ratio 4, as in LLaMA), so the MLP's three ``d x h`` matrices hold ~``8 d^2`` weights, as the
GPT's two ``d x 4d`` GELU matrices do, and a block keeps ~``12 d^2`` weights: Transformer++ and the GPT have
the same N at the same shape, and the same shape policy (:meth:`GPT.shape_for`). The gate and value
projections are one ``Linear(d, 2h)`` (one matmul; the same weights as LLaMA's separate ``w1``, ``w3``).

Versus the papers: initialisation is the GPT's (GPT-2: N(0, 0.02), residual output projections scaled by
1/sqrt(2 n_layer)) rather than LLaMA's; the Mamba paper's "higher learning rates" belong to the training
recipe, not to this file. Everything else (RoPE, SwiGLU, RMSNorm, no biases, untied head) is as described.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .base import EmbeddingHeadLM
from .config import ModelArgs, ModelCounts
from .gpt import ASPECT, GPT, HEAD_DIM, Block, block_counts, gpt2_init
from .layers import RMSNorm, rotary_tables


@dataclass(frozen=True)
class TransformerPPArgs(ModelArgs):
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 2
    mlp_ratio: int = 4  # SwiGLU width gated_hidden(d_model, mlp_ratio): ~2 mlp_ratio d^2 weights, as a GELU MLP's
    tie_weights: bool = False  # output projection shares the token embedding

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "n_head", "mlp_ratio")
        self.require_bool("tie_weights")
        if self.d_model % self.n_head:
            raise UserError(
                f"model.d_model ({self.d_model}) must be a multiple of model.n_head ({self.n_head}): "
                "each head gets d_model / n_head channels"
            )
        if (self.d_model // self.n_head) % 2:
            raise UserError(
                f"Transformer++ uses rotary positions, which need an even head dimension, but d_model / n_head = "
                f"{self.d_model} / {self.n_head} = {self.d_model // self.n_head}"
            )


class TransformerPP(EmbeddingHeadLM):
    Args = TransformerPPArgs

    def __init__(self, cfg: TransformerPPArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        cos, sin = rotary_tables(cfg.n_ctx, cfg.d_model // cfg.n_head)
        self.register_buffer("rot_cos", cos, persistent=False)
        self.register_buffer("rot_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_head, cfg.mlp_ratio, bias=False, mlp="swiglu", norm="rmsnorm")
            for _ in range(cfg.n_layer)
        )
        self.ln_f = RMSNorm(cfg.d_model)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        gpt2_init(self, cfg.n_layer)  # scales the residual-stream outputs: attention and SwiGLU

    def embedding_parameters(self):
        return [self.wte.weight] + ([] if self.head is None else [self.head.weight])

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after the last RMSNorm."""
        if idx.shape[1] > self.config.n_ctx:
            raise ValueError(f"sequence length {idx.shape[1]} exceeds n_ctx {self.config.n_ctx}")
        x = self.wte(idx)
        rotary = (self.rot_cos, self.rot_sin)
        for block in self.blocks:
            x = block(x, rotary)
        return self.ln_f(x)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: TransformerPPArgs) -> ModelCounts:
        L, d, V, T = cfg.n_layer, cfg.d_model, cfg.vocab_size, cfg.n_ctx
        # per block: weights 4 d^2 + 3 d h; parameters add the two RMSNorm gains (2d), no biases
        weights, params, block_flops = block_counts(d, cfg.n_head, T, cfg.mlp_ratio, bias=False, mlp="swiglu")
        n_kaplan = L * weights
        n_non_emb = L * params + d  # + final RMSNorm gain
        emb = V * d + (0 if cfg.tie_weights else V * d)  # no position table: RoPE has no parameters
        kaplan = 6 * n_kaplan + 6 * L * T * d  # Kaplan et al. eq. 2.2, as the GPT
        # Hoffmann et al. App. F: embeddings 2Vd + layers (attention as the GPT's, SwiGLU 2 * 3dh) + logits 2dV;
        # the rotary rotation and the SiLU gate are element-wise and, like the softmax's exp, not matmuls
        forward = 2 * V * d + L * block_flops + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls, n: float, *, aspect: int = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 1
    ) -> dict[str, int]:
        """The GPT's policy (d_model ~= aspect n_layer, heads of ~head_dim channels, 12 n_layer d^2 ~= n):
        a Transformer++ block has ~12 d^2 weights too. Heads are multiples of 8 channels, so RoPE's even head
        dimension always holds."""
        return GPT.shape_for(n, aspect=aspect, head_dim=head_dim, min_layers=min_layers)
