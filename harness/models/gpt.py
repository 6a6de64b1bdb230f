"""A decoder-only Transformer (GPT), pre-norm, readable in one sitting.

    tokens -> token embedding (+ learned positions) -> n_layer x Block -> LayerNorm -> output projection
    Block(x):  x = x + Attention(LN(x));  x = x + MLP(LN(x))
    Attention: causal, multi-head, through F.scaled_dot_product_attention; optional rotary positions.
    MLP:       Linear(d, 4d) -> GELU -> Linear(4d, d)                      (mlp = "gelu", the default)
               Linear(d, 2h) -> [gate | value] -> act(gate) * value -> Linear(h, d)
                   (mlp = "swiglu" / "geglu": the GLU variants of Shazeer 2020, arXiv 2002.05202, the "GLU
                   Transformer" of Tay et al. 2022; act = SiLU / GELU; h = gated_hidden(d, mlp_ratio), the
                   multiple of 8 nearest 2/3 mlp_ratio d, so the MLP keeps ~2 mlp_ratio d^2 weights)

Initialisation follows GPT-2 / nanoGPT: N(0, 0.02), residual output projections scaled by 1/sqrt(2 n_layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import EmbeddingHeadLM
from .config import ModelArgs, ModelCounts
from .layers import (
    GATED_ACTIVATIONS,
    MLP,
    CausalSelfAttention,
    GatedMLP,
    LayerNorm,
    RMSNorm,
    gated_hidden,
    rotary_tables,
)

# Shape policy for ``shape_for``: d_model ~= ASPECT * n_layer (Kaplan et al. 2020, Fig. 5, find loss nearly
# independent of the aspect ratio d_model / n_layer between ~20 and ~200; 32 keeps the smallest models deep
# enough to have one layer per ~1e4 parameters), heads of HEAD_DIM channels (at least one head), d_model a
# multiple of 8.
ASPECT = 32
HEAD_DIM = 64


POSITION_SETTINGS = ("learned", "rotary")
MLP_SETTINGS = ("gelu", *GATED_ACTIVATIONS)  # "gelu" | "swiglu" | "geglu"


@dataclass(frozen=True)
class GPTArgs(ModelArgs):
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 2
    mlp_ratio: int = 4
    tie_weights: bool = False  # output projection shares the token embedding
    pos: str = "learned"  # "learned" absolute positions | "rotary" (RoPE in every attention layer)
    bias: bool = True  # biases in the linear layers and LayerNorms
    mlp: str = "gelu"  # "gelu" (GPT-2) | "swiglu" | "geglu" (gated, hidden width gated_hidden(d_model, mlp_ratio))

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "n_head", "mlp_ratio")
        self.require_choice("pos", POSITION_SETTINGS)
        self.require_choice("mlp", MLP_SETTINGS)
        self.require_bool("tie_weights", "bias")
        check_heads(self.d_model, self.n_head, self.pos)


def check_heads(d_model: int, n_head: int, pos: str) -> None:
    """The attention shape a config must have: whole heads, and an even head dimension for rotary positions."""
    if d_model % n_head:
        raise UserError(
            f"model.d_model ({d_model}) must be a multiple of model.n_head ({n_head}): "
            "each head gets d_model / n_head channels"
        )
    if pos == "rotary" and (d_model // n_head) % 2:
        raise UserError(
            f"model.pos = 'rotary' needs an even head dimension, but d_model / n_head = "
            f"{d_model} / {n_head} = {d_model // n_head}"
        )


def _check_shape_options(*, aspect, head_dim, min_layers) -> None:
    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(aspect, bool) or not isinstance(aspect, int | float) or not (math.isfinite(aspect) and aspect >= 1):
        raise UserError(f"shape option aspect (d_model / n_layer) must be a finite number >= 1, got {aspect!r}")
    if not whole(head_dim) or head_dim < 8:
        raise UserError(f"shape option head_dim must be a whole number >= 8 (channels per head), got {head_dim!r}")
    if not whole(min_layers) or min_layers < 1:
        raise UserError(f"shape option min_layers must be a positive whole number, got {min_layers!r}")


def make_mlp(d_model: int, mlp_ratio: int, bias: bool, mlp: str = "gelu") -> nn.Module:
    """The GPT's MLP: the GELU ``MLP`` (``"gelu"``), or a ``GatedMLP`` of width ``gated_hidden(d_model,
    mlp_ratio)`` (``"swiglu"``, ``"geglu"``)."""
    if mlp == "gelu":
        return MLP(d_model, mlp_ratio, bias)
    return GatedMLP(d_model, gated_hidden(d_model, mlp_ratio), bias, mlp)


def mlp_weights(d_model: int, mlp_ratio: int, mlp: str = "gelu") -> tuple[int, int]:
    """(weights, bias entries) of :func:`make_mlp`'s MLP."""
    d = d_model
    if mlp == "gelu":
        return 2 * mlp_ratio * d * d, mlp_ratio * d + d
    h = gated_hidden(d, mlp_ratio)
    return 3 * d * h, 2 * h + d


def block_counts(d_model: int, n_head: int, n_ctx: int, mlp_ratio: int, bias: bool, mlp: str = "gelu"):
    """Counts of one :class:`Block`: (Kaplan weight matrices, all its parameters, Hoffmann forward FLOPs per
    token). Models that apply a block several times (ALBERT, the Universal Transformer) count it from here."""
    d, T, H = d_model, n_ctx, n_head
    mlp_w, mlp_b = mlp_weights(d, mlp_ratio, mlp)
    weights = 4 * d * d + mlp_w  # qkv + out projection + MLP; = 12 d^2 for the ratio-4 GELU MLP
    biases = (3 * d + d + mlp_b) if bias else 0
    norms = 2 * (2 * d if bias else d)  # two LayerNorms: weight (+ bias)
    # Hoffmann et al. (2022) Appendix F, per token (sequence terms divided by seq_len), forward:
    attn = 2 * 3 * d * d + 2 * T * d + 3 * H * T + 2 * T * d + 2 * d * d  # qkv, logits, softmax, @V, out
    dense = 2 * mlp_w  # every MLP weight is one multiply-accumulate per token
    return weights, weights + biases + norms, attn + dense


def depth_for(n: float, aspect: float = ASPECT, min_layers: int = 1) -> int:
    """The shape policy's depth for ``n`` Kaplan parameters: 12 L d^2 = n with d = aspect * L gives
    L = (n / (12 aspect^2))^(1/3); at small n the aspect ratio gives way to ``min_layers`` (Kaplan et al.
    Sec. 3.1: one-layer models fall off the trend)."""
    return max(1, min_layers, round((n / (12 * aspect**2)) ** (1 / 3)))


def width_for(n_block: float, head_dim: int = HEAD_DIM) -> dict[str, int]:
    """``d_model`` and ``n_head`` of a block with about ``n_block = 12 d^2`` weights: heads of ~``head_dim``
    channels (at least one), each a multiple of 8 channels."""
    d_float = math.sqrt(n_block / 12)
    n_head = max(1, round(d_float / head_dim))
    per_head = max(8, 8 * round(d_float / n_head / 8))
    return {"d_model": n_head * per_head, "n_head": n_head}


class Block(nn.Module):
    """Pre-norm block ``x + Attention(N(x))``, then ``x + MLP(N(x))`` (the MLP from :func:`make_mlp`); the norm
    N is a LayerNorm (with a bias if ``bias``) or, with ``norm="rmsnorm"``, an RMSNorm (gain only)."""

    def __init__(
        self,
        d_model: int,
        n_head: int,
        mlp_ratio: int = 4,
        bias: bool = True,
        mlp: str = "gelu",
        norm: str = "layernorm",
    ):
        super().__init__()
        if norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {norm!r}")
        self.ln1 = LayerNorm(d_model, bias) if norm == "layernorm" else RMSNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, bias)
        self.ln2 = LayerNorm(d_model, bias) if norm == "layernorm" else RMSNorm(d_model)
        self.mlp = make_mlp(d_model, mlp_ratio, bias, mlp)

    def forward(self, x, rotary=None):
        x = x + self.attn(self.ln1(x), rotary)
        return x + self.mlp(self.ln2(x))


def scale_residual_projections(model: nn.Module, n_layer: int) -> None:
    """GPT-2's scaled init of the residual stream's output projections: every parameter named ``*proj.weight``
    drawn from N(0, 0.02 / sqrt(2 n_layer)), two residual branches per layer."""
    for name, p in model.named_parameters():
        if name.endswith("proj.weight"):
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))


def gpt2_init(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation of a whole model: N(0, 0.02) for every Linear and Embedding weight, zero biases
    (:meth:`GPT._init`), then :func:`scale_residual_projections`."""
    model.apply(GPT._init)
    scale_residual_projections(model, n_layer)


class GPT(EmbeddingHeadLM):
    Args = GPTArgs

    def __init__(self, cfg: GPTArgs):
        super().__init__()
        if cfg.d_model % cfg.n_head:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by n_head {cfg.n_head}")
        if cfg.pos == "rotary" and (cfg.d_model // cfg.n_head) % 2:
            raise ValueError("rotary positions need an even head dimension")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model) if cfg.pos == "learned" else None
        if cfg.pos == "rotary":
            cos, sin = rotary_tables(cfg.n_ctx, cfg.d_model // cfg.n_head)
            self.register_buffer("rot_cos", cos, persistent=False)
            self.register_buffer("rot_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_head, cfg.mlp_ratio, cfg.bias, cfg.mlp) for _ in range(cfg.n_layer)
        )
        self.ln_f = LayerNorm(cfg.d_model, cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        gpt2_init(self, cfg.n_layer)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def embedding_parameters(self):
        return [p for p in (self.wte.weight, self.wpe.weight if self.wpe else None, self.head_weight) if p is not None]

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after the last LayerNorm."""
        T = idx.shape[1]
        if T > self.config.n_ctx:
            raise ValueError(f"sequence length {T} exceeds n_ctx {self.config.n_ctx}")
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe.weight[:T]
        rotary = (self.rot_cos, self.rot_sin) if self.config.pos == "rotary" else None
        for block in self.blocks:
            x = block(x, rotary)
        return self.ln_f(x)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return F.linear(self.hidden(idx), self.head_weight)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: GPTArgs) -> ModelCounts:
        L, d, V, T = cfg.n_layer, cfg.d_model, cfg.vocab_size, cfg.n_ctx
        weights, params, block_flops = block_counts(d, cfg.n_head, T, cfg.mlp_ratio, cfg.bias, cfg.mlp)
        n_kaplan = L * weights  # = 12 L d^2 for the ratio-4 GELU MLP (Kaplan et al. Table 1)
        norms = 2 * d if cfg.bias else d  # weight (+ bias) of the final LayerNorm
        n_non_emb = L * params + norms
        emb = V * d + (T * d if cfg.pos == "learned" else 0) + (0 if cfg.tie_weights else V * d)
        kaplan = 6 * n_kaplan + 6 * L * T * d
        # Hoffmann et al. (2022) Appendix F (see block_counts): embeddings + layers + output logits
        forward = 2 * V * d + L * block_flops + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls, n: float, *, aspect: int = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 1
    ) -> dict[str, int]:
        _check_shape_options(aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        n_layer = depth_for(n, aspect, min_layers)
        return {"n_layer": n_layer, **width_for(n / n_layer, head_dim)}
