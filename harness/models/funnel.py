"""A causal Funnel Transformer: later blocks run on a mean-pooled (shorter) sequence, then upsample to tokens.

    tokens -> token embedding + learned positions                                         (B, T, d)
    stage 1:   n_layer x Block at full resolution                        -> h1            (B, T, d)
    stage k>1: z = CausalPool(z) (groups of ``pool``), n_layer x Block   -> z_K           (B, T / S, d)
    upsample:  u[t] = z_K[(t + 1) // S - 1]   (zero where t < S - 1)                       S = pool^(n_stage - 1)
    decoder:   x = h1 + u;  decoder_layers x Block at full resolution -> LayerNorm -> output projection
    Block(x):  x = x + Attention(LN(x));  x = x + MLP(LN(x))   (the GPT's block: causal attention, 4d MLP)

Dai et al. (2020), "Funnel-Transformer: Filtering out Sequential Redundancy for Efficient Language Processing",
arXiv 2006.03236; compared by Tay et al. (2022), "Scaling Laws vs Model Architectures", arXiv 2207.10551.

Why it is causal (the proof the tests check numerically). Write S_k = pool^(k-1) for the stride of stage k.
Claim: position j of stage k depends only on tokens t <= (j + 1) S_k - 1, the last token of its group.
Stage 1 (S_1 = 1) is a causal Transformer, so the claim holds. CausalPool averages positions
j pool .. (j + 1) pool - 1 of stage k into position j of stage k + 1; the newest of them depends on tokens
<= ((j + 1) pool - 1 + 1) S_k - 1 = (j + 1) S_{k+1} - 1; a trailing group that is not complete is dropped (it
would hold future tokens for every position that could use it), so stage k + 1 has floor(T_k / pool)
positions; its causal attention and MLP mix position j only with positions <= j, which keeps the claim. Token
t reads z_K at j = floor((t + 1) / S) - 1, the newest position whose group ends at or before t:
(j + 1) S - 1 <= t. So every output at t depends on tokens <= t, and a sequence shorter than n_ctx gives the
same outputs on its prefix.

Simplifications versus the paper:

* plain mean pooling then ordinary causal self-attention at the pooled length (Dai et al.'s "pool-query-only"
  attention, pooled queries over unpooled keys and values, would need a mask of its own for causality);
* upsampling by repetition of the last *complete* group, shifted so no future leaks (Dai et al. repeat each
  position over its own group, which reads the group's future tokens), added to the first stage's output as
  in the paper, then ``decoder_layers`` full-resolution blocks (the paper uses 2);
* learned absolute positions at the input instead of relative attention; no dropout;
* every stage has the same width and ``n_layer`` blocks (the paper's B6-6-6 and similar).

Initialisation as the GPT's (GPT-2): N(0, 0.02), residual output projections N(0, 0.02 / sqrt(2 n_blocks)) with
n_blocks = n_stage n_layer + decoder_layers.

Counts: Kaplan's N is every block's weight matrices (12 d^2 each). FLOPs count the work that runs: a block of
stage k runs on T_k = floor(T_{k-1} / pool) positions, so per token of the n_ctx-token sequence it costs
T_k / n_ctx of a full-resolution block (Kaplan: 6 (T_k / T) 12 d^2 + 6 T_k^2 / T d; Hoffmann: App. F's count
for a sequence of T_k scaled by T_k / T). The pooling and upsampling are element-wise (not counted).
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
from .gpt import ASPECT, HEAD_DIM, Block, _check_shape_options, scale_residual_projections
from .layers import LayerNorm


@dataclass(frozen=True)
class FunnelArgs(ModelArgs):
    n_layer: int = 2  # blocks per stage
    n_stage: int = 2  # stage 1 at full resolution, each later one pooled by ``pool`` again
    decoder_layers: int = 1  # full-resolution blocks after upsampling
    pool: int = 2  # pooling stride between stages
    d_model: int = 64
    n_head: int = 2
    mlp_ratio: int = 4
    tie_weights: bool = False
    bias: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "n_stage", "decoder_layers", "pool", "d_model", "n_head", "mlp_ratio")
        self.require_bool("tie_weights", "bias")
        if self.d_model % self.n_head:
            raise UserError(
                f"model.d_model ({self.d_model}) must be a multiple of model.n_head ({self.n_head}): "
                "each head gets d_model / n_head channels"
            )
        if self.pool < 2 and self.n_stage > 1:
            raise UserError(f"model.pool must be at least 2 (a stride of {self.pool} pools nothing)")
        stride = self.pool ** (self.n_stage - 1)
        if self.n_ctx < stride:
            raise UserError(
                f"model.n_ctx ({self.n_ctx}) is shorter than the funnel's total stride pool^(n_stage - 1) = "
                f"{stride}: its last stage would have no position"
            )

    @property
    def n_blocks(self) -> int:
        return self.n_stage * self.n_layer + self.decoder_layers


def stage_lengths(T: int, pool: int, n_stage: int) -> list[int]:
    """Positions of each stage for a sequence of T tokens: T, floor(T / pool), ... (incomplete groups dropped)."""
    out = [T]
    for _ in range(n_stage - 1):
        out.append(out[-1] // pool)
    return out


def causal_pool(x: torch.Tensor, pool: int) -> torch.Tensor:
    """Mean of each complete group of ``pool`` positions of ``x`` (B, T, d) -> (B, T // pool, d)."""
    B, T, d = x.shape
    n = T // pool
    return x[:, : n * pool].reshape(B, n, pool, d).mean(2)


def causal_upsample(z: torch.Tensor, stride: int, T: int) -> torch.Tensor:
    """Token t of T gets ``z[(t + 1) // stride - 1]``, the newest group that ends at or before t (zeros before
    the first one ends): (B, T // stride, d) -> (B, T, d)."""
    z = F.pad(z, (0, 0, 1, 0))  # row 0: nothing pooled yet
    index = torch.div(torch.arange(1, T + 1, device=z.device), stride, rounding_mode="floor")
    return z[:, index]


def _block(cfg: FunnelArgs) -> Block:
    """The GPT's pre-norm block (attention and MLP with this model's width, heads, ratio and biases)."""
    return Block(cfg.d_model, cfg.n_head, cfg.mlp_ratio, cfg.bias)


class Funnel(EmbeddingHeadLM):
    Args = FunnelArgs

    def __init__(self, cfg: FunnelArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.stages = nn.ModuleList(nn.ModuleList(_block(cfg) for _ in range(cfg.n_layer)) for _ in range(cfg.n_stage))
        self.decoder = nn.ModuleList(_block(cfg) for _ in range(cfg.decoder_layers))
        self.ln_f = LayerNorm(cfg.d_model, cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        scale_residual_projections(self, cfg.n_blocks)

    def embedding_parameters(self):
        return [self.wte.weight, self.wpe.weight] + ([] if self.head is None else [self.head.weight])

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after the last LayerNorm."""
        cfg, T = self.config, idx.shape[1]
        if T > cfg.n_ctx:
            raise ValueError(f"sequence length {T} exceeds n_ctx {cfg.n_ctx}")
        z = self.wte(idx) + self.wpe.weight[:T]
        h1 = None
        for k, stage in enumerate(self.stages):
            if k:
                z = causal_pool(z, cfg.pool)
            if z.shape[1]:  # a short sequence may have no complete group at this stage
                for block in stage:
                    z = block(z)
            if k == 0:
                h1 = z
        if cfg.n_stage > 1:
            z = h1 + causal_upsample(z, cfg.pool ** (cfg.n_stage - 1), T)
        for block in self.decoder:
            z = block(z)
        return self.ln_f(z)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: FunnelArgs) -> ModelCounts:
        d, V, T, H, f = cfg.d_model, cfg.vocab_size, cfg.n_ctx, cfg.n_head, cfg.mlp_ratio
        n_blocks = cfg.n_blocks
        weights = 4 * d * d + 2 * f * d * d  # per block, = 12 d^2 for f = 4
        n_kaplan = n_blocks * weights
        biases = (3 * d + d + f * d + d) if cfg.bias else 0
        norms = 2 * d if cfg.bias else d
        n_non_emb = n_blocks * (weights + biases + 2 * norms) + norms
        emb = V * d + T * d + (0 if cfg.tie_weights else V * d)
        # every block at the length it runs at: the stages', then the decoder's at full resolution
        lengths = [t for t in stage_lengths(T, cfg.pool, cfg.n_stage) for _ in range(cfg.n_layer)]
        lengths += [T] * cfg.decoder_layers
        kaplan = 0.0
        forward = 2 * V * d + 2 * d * V  # embeddings, output logits
        for t in lengths:
            share = t / T  # this block runs on t of the T positions
            kaplan += share * (6 * weights + 6 * t * d)  # Kaplan's 6 N + 6 n_ctx d, at length t
            attn = 2 * 3 * d * d + 2 * t * d + 3 * H * t + 2 * t * d + 2 * d * d  # App. F at length t
            forward += share * (attn + 2 * 2 * f * d * d)
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls, n: float, *, aspect: int = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 1
    ) -> dict[str, int]:
        """n_layer (blocks per stage), d_model, n_head for ~n Kaplan parameters at the default n_stage 2 and
        decoder_layers 1: 12 d^2 (2 n_layer + 1) = n, d_model ~= aspect x (2 n_layer + 1) as the GPT's policy."""
        _check_shape_options(aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        total = (n / (12 * aspect**2)) ** (1 / 3)  # all blocks
        n_layer = max(1, min_layers, round((total - 1) / 2))
        d_float = math.sqrt(n / (12 * (2 * n_layer + 1)))
        n_head = max(1, round(d_float / head_dim))
        per_head = max(8, 8 * round(d_float / n_head / 8))
        return {"n_layer": n_layer, "d_model": n_head * per_head, "n_head": n_head}
