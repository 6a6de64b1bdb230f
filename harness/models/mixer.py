"""A causal MLP-Mixer language model: token mixing by a learned, lower-triangular map over positions.

    tokens -> token embedding (no position embedding) -> n_layer x MixerBlock -> LayerNorm -> output projection
    MixerBlock(x):  x = x + TokenMix(LN(x));  x = x + MLP(LN(x))
    TokenMix(u):    y[:, t, :] = sum_{s <= t} W[t, s] u[:, s, :] (+ b[t])     W: (n_ctx, n_ctx) per layer, tril
                    token_mlp = true:  y = tril(W2) GELU(tril(W1) u + b1) + b2  (a token MLP with n_ctx hidden)
    MLP:            Linear(d, 4d) -> GELU -> Linear(4d, d)   (the GPT's channel MLP, harness.models.layers.MLP)

MLP-Mixer: Tolstikhin et al. (2021), "MLP-Mixer: An all-MLP Architecture for Vision", arXiv 2105.01601; used
as a (causal) language model by Tay et al. (2022), "Scaling Laws vs Model Architectures", arXiv 2207.10551.

Causality. Mixer's token MLP mixes all positions, so a language model masks it: the token-mixing weight of each
layer is one stored (n_ctx x n_ctx) matrix used through ``torch.tril`` in the forward pass, so row t (the output
at position t) only reads positions s <= t and the entries above the diagonal get no gradient and do nothing
(they are also zero at initialisation). Every channel shares the same map, as in Mixer. A sequence of
T < n_ctx tokens uses the top-left (T x T) block, so the output at t is the same whatever follows it or however
long the sequence is. The mixer has no position embedding: W is indexed by absolute position.

Simplifications versus the paper (Mixer's token MLP is Linear(S, D_S) -> GELU -> Linear(D_S, S)):

* default (``token_mlp = false``): a single masked linear map over time with no activation, the simplest causal
  form (the channel MLP and the LayerNorms give the block its non-linearity);
* ``token_mlp = true``: Mixer's two-layer token MLP made causal. Its hidden units must themselves be indexed by
  position for the composition to be causal, so the hidden width is D_S = n_ctx and both layers are
  lower-triangular (a product of lower-triangular maps, with an element-wise GELU between, is causal);
* no dropout, no stochastic depth (the harness trains without either).

Initialisation (GPT-2 conventions): embeddings, channel MLP and output projection N(0, 0.02); the token-mixing
map that writes into the residual stream (W, or W2 with the token MLP) N(0, 0.02 / sqrt(2 n_layer)), like the
GPT's residual output projections; W1 N(0, 0.02) like the GPT's MLP fc; biases zero. Row t of a masked map
then has std 0.02 / sqrt(2 n_layer) * sqrt(t + 1) of its (unit-variance, LayerNormed) input at the start:
the residual updates are small at every position, so the first loss is ~log V, and they grow with the row's
length only as sqrt(n_ctx) (0.16 at n_ctx = 1024, n_layer = 8).

Counts. The stored (n_ctx x n_ctx) matrices are non-embedding weight matrices and count fully in Kaplan's N
(and in n_non_embedding), although the mask leaves only n_ctx (n_ctx + 1) / 2 of each in use. FLOPs count the
masked map as the full (T x T) @ (T x d) matmul that runs, 2 T d per token per layer forward (4 T d with the
token MLP).
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
from .gpt import ASPECT
from .layers import MLP, LayerNorm

# Shape policy for ``shape_for``: as the GPT's, d_model ~= ASPECT * n_layer (the same Kaplan et al. 2020 Fig. 5
# argument; Tay et al. 2022 give every architecture the Transformer's shapes), d_model a multiple of 8. The
# token-mixing matrices (n_ctx^2 per layer) are part of N, so the policy needs the context length: its option
# ``n_ctx`` must be the run's model.n_ctx (default ModelArgs' 128).
DEFAULT_SHAPE_N_CTX = 128


@dataclass(frozen=True)
class MixerArgs(ModelArgs):
    n_layer: int = 2
    d_model: int = 64
    mlp_ratio: int = 4  # channel MLP hidden = mlp_ratio * d_model
    token_mlp: bool = False  # two lower-triangular token layers with a GELU between (hidden n_ctx), not one
    tie_weights: bool = False  # output projection shares the token embedding
    bias: bool = True  # biases in the linear layers, the token-mixing maps and the LayerNorms

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "mlp_ratio")
        self.require_bool("token_mlp", "tie_weights", "bias")


class CausalTokenMix(nn.Module):
    """``y = tril(W)[:T, :T] @ u (+ b[:T])`` over the sequence dimension of ``u`` (B, T, d); with ``hidden``,
    Mixer's token MLP with both layers lower-triangular: ``tril(W2) GELU(tril(W1) u + b1) + b2``."""

    def __init__(self, n_ctx: int, hidden: bool, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_ctx, n_ctx))  # the map into the residual stream
        self.bias = nn.Parameter(torch.zeros(n_ctx)) if bias else None
        self.weight_in = nn.Parameter(torch.zeros(n_ctx, n_ctx)) if hidden else None
        self.bias_in = nn.Parameter(torch.zeros(n_ctx)) if hidden and bias else None

    @staticmethod
    def _tril_map(weight, bias, u):
        T = u.shape[1]
        y = torch.matmul(torch.tril(weight[:T, :T]), u)  # (T, T) @ (B, T, d): row t reads s <= t only
        return y if bias is None else y + bias[:T, None]

    def forward(self, u):
        if self.weight_in is not None:
            u = F.gelu(self._tril_map(self.weight_in, self.bias_in, u), approximate="tanh")
        return self._tril_map(self.weight, self.bias, u)


class MixerBlock(nn.Module):
    def __init__(self, cfg: MixerArgs):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model, cfg.bias)
        self.token = CausalTokenMix(cfg.n_ctx, cfg.token_mlp, cfg.bias)
        self.ln2 = LayerNorm(cfg.d_model, cfg.bias)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, cfg.bias)

    def forward(self, x):
        x = x + self.token(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CausalMixer(EmbeddingHeadLM):
    Args = MixerArgs

    def __init__(self, cfg: MixerArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(MixerBlock(cfg) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.d_model, cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        residual = 0.02 / math.sqrt(2 * cfg.n_layer)
        with torch.no_grad():
            for block in self.blocks:
                nn.init.normal_(block.mlp.proj.weight, 0.0, residual)
                block.token.weight.copy_(torch.tril(torch.randn(cfg.n_ctx, cfg.n_ctx) * residual))
                if block.token.weight_in is not None:
                    block.token.weight_in.copy_(torch.tril(torch.randn(cfg.n_ctx, cfg.n_ctx) * 0.02))

    def embedding_parameters(self):
        return [self.wte.weight] if self.head is None else [self.wte.weight, self.head.weight]

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after the last LayerNorm."""
        T = idx.shape[1]
        if T > self.config.n_ctx:
            raise ValueError(f"sequence length {T} exceeds n_ctx {self.config.n_ctx}")
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: MixerArgs) -> ModelCounts:
        L, d, V, T, f = cfg.n_layer, cfg.d_model, cfg.vocab_size, cfg.n_ctx, cfg.mlp_ratio
        maps = 2 if cfg.token_mlp else 1  # (T x T) token-mixing matrices per layer
        # the full stored (T x T) matrices, though the mask uses only T (T + 1) / 2 entries of each
        token_weights = maps * T * T
        n_kaplan = L * (token_weights + 2 * f * d * d)
        biases = (maps * T + f * d + d) if cfg.bias else 0  # token-map biases (one per position) + channel MLP
        norms = 2 * d if cfg.bias else d
        n_non_emb = L * (token_weights + 2 * f * d * d + biases + 2 * norms) + norms  # + final LayerNorm
        emb = V * d + (0 if cfg.tie_weights else V * d)
        # Kaplan: 6 x the per-token weights (the channel MLP) plus a context term for the token mixing, as
        # Kaplan's 6 n_layer n_ctx d for attention: the (T x T) maps are applied once per sequence, 2 T d FLOPs
        # per token per map forward (not 2 per weight per token), so they are not in the 6 N part.
        kaplan = 6 * L * 2 * f * d * d + 6 * L * maps * T * d
        # Hoffmann et al. (2022) App. F style, forward per token: embeddings, per layer the masked token map(s)
        # counted as the full (T x T) @ (T x d) matmul that runs (2 T d each) and the channel MLP, output logits.
        forward = 2 * V * d + L * (maps * 2 * T * d + 4 * f * d * d) + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls,
        n: float,
        *,
        n_ctx: int = DEFAULT_SHAPE_N_CTX,
        aspect: float = ASPECT,
        mlp_ratio: int = 4,
        token_mlp: bool = False,
    ) -> dict[str, int]:
        """n_layer and d_model for ~n Kaplan parameters, N = n_layer (maps n_ctx^2 + 2 mlp_ratio d_model^2).

        ``n_ctx``, ``mlp_ratio`` and ``token_mlp`` must be the run's (they are part of N but not returned); the
        ``aspect`` d_model / n_layer is kept as the GPT's. Where one layer's token maps alone exceed ~n (e.g.
        n = 1e4 at n_ctx = 128: 16384 per map), the smallest model (one layer, d_model 8) is the answer."""
        for name, v in (("n_ctx", n_ctx), ("mlp_ratio", mlp_ratio)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UserError(f"shape option {name} must be a positive whole number, got {v!r}")
        if (
            isinstance(aspect, bool)
            or not isinstance(aspect, int | float)
            or not (math.isfinite(aspect) and aspect >= 1)
        ):
            raise UserError(f"shape option aspect (d_model / n_layer) must be a finite number >= 1, got {aspect!r}")
        if token_mlp not in (0, 1):  # sweep grids give numbers; 0/1 and false/true both work
            raise UserError(f"shape option token_mlp must be true or false, got {token_mlp!r}")
        token = (2 if token_mlp else 1) * n_ctx * n_ctx

        def n_of(layers: float) -> float:  # continuous N(L) with d = aspect * L
            return layers * (token + 2 * mlp_ratio * (aspect * layers) ** 2)

        lo, hi = 0.0, 1.0
        while n_of(hi) < n:
            hi *= 2
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if n_of(mid) < n else (lo, mid)
        n_layer = max(1, round(hi))
        rest = n / n_layer - token  # what is left per layer for the channel MLP
        d = math.sqrt(rest / (2 * mlp_ratio)) if rest > 0 else 0.0
        return {"n_layer": n_layer, "d_model": max(8, 8 * round(d / 8))}
