"""ALBERT as a causal decoder: a factorised embedding and ONE Transformer block shared by every layer.

Lan et al. (2019), "ALBERT: A Lite BERT for Self-supervised Learning of Language Representations",
arXiv 1909.11942; as a decoder-only language model in Tay et al. (2022), "Scaling Laws vs Model
Architectures", arXiv 2207.10551.

    tokens -> token embedding (V x E) + learned positions (n_ctx x E)        E = min(emb_dim, d_model)
           -> Linear(E, d)                                                   factorised embedding, in
           -> the same Block applied n_layer times                           cross-layer parameter sharing
           -> LayerNorm -> Linear(d, E)                                      factorised embedding, out
           -> logits = h @ token_embedding^T                                 tied by default (tie_weights)
    Block(x):  x = x + Attention(LN(x));  x = x + MLP(LN(x))    (the GPT's Block: causal MHA, GELU 4d MLP)

Accounting. ``n_kaplan`` counts the shared block's weight matrices ONCE (12 d^2 for the ratio-4 MLP): they are
the parameters the model has. The FLOP counts count every one of the n_layer applications. The two
factorisation matrices (E x d in, d x E out, with their biases) are embedding parameters, as ALBERT counts
them (its embedding parameters are O(V E + E H), Sec. 3.1): they are in ``n_total`` but not in ``n_kaplan`` nor
``n_non_embedding``, and, like the embeddings, not in Kaplan's 6N FLOPs; Hoffmann's count includes their
matmuls (2 E d each per token).

Shape policy (:meth:`ALBERT.shape_for`): n_layer from the GPT's depth rule for the same n (d ~= 32 n_layer
for a 12 n_layer d^2 model), then the width whose ONE block has ~n weights (12 d^2 ~= n), heads of ~64
channels. At equal N an ALBERT is therefore sqrt(n_layer) times wider than the GPT and spends ~n_layer times
its block FLOPs per token: the trade-off Tay et al. measure.

Versus the papers: causal (decoder-only) rather than ALBERT's bidirectional masked-LM encoder, hence no
sentence-order loss; pre-norm blocks (ALBERT/BERT are post-norm) with the GPT's GELU MLP and GPT-2
initialisation (residual output projections scaled by 1/sqrt(2 n_layer): the shared block is still applied
n_layer times); the output side is LayerNorm -> Linear(d, E) -> tied logits, without the GELU + LayerNorm of
ALBERT's masked-LM head transform, the output bias, or the LayerNorm after the embedding; no dropout.
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

EMB_DIM = 128  # ALBERT's E (Lan et al. use E = 128 for all their main models)


@dataclass(frozen=True)
class ALBERTArgs(ModelArgs):
    n_layer: int = 2  # applications of the one shared block
    d_model: int = 64
    n_head: int = 2
    mlp_ratio: int = 4
    emb_dim: int = EMB_DIM  # factorised embedding width E, capped at d_model (see emb_width)
    tie_weights: bool = True  # logits use the token embedding, as ALBERT's masked-LM decoder does
    bias: bool = True  # biases in the linear layers and LayerNorms

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "n_head", "mlp_ratio", "emb_dim")
        self.require_bool("tie_weights", "bias")
        if self.d_model % self.n_head:
            raise UserError(
                f"model.d_model ({self.d_model}) must be a multiple of model.n_head ({self.n_head}): "
                "each head gets d_model / n_head channels"
            )

    @property
    def emb_width(self) -> int:
        """The embedding width E the model uses: ``emb_dim``, but at most ``d_model`` (a factorisation wider
        than the model would add parameters rather than save them)."""
        return min(self.emb_dim, self.d_model)


class ALBERT(EmbeddingHeadLM):
    Args = ALBERTArgs

    def __init__(self, cfg: ALBERTArgs):
        super().__init__()
        self.config = cfg
        E, d = cfg.emb_width, cfg.d_model
        self.wte = nn.Embedding(cfg.vocab_size, E)
        self.wpe = nn.Embedding(cfg.n_ctx, E)
        self.emb_in = nn.Linear(E, d, bias=cfg.bias)
        self.block = Block(d, cfg.n_head, cfg.mlp_ratio, cfg.bias)  # shared by all n_layer applications
        self.ln_f = LayerNorm(d, cfg.bias)
        self.emb_out = nn.Linear(d, E, bias=cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(E, cfg.vocab_size, bias=False)
        gpt2_init(self, cfg.n_layer)

    def embedding_parameters(self):
        params = [self.wte.weight, self.wpe.weight, *self.emb_in.parameters(), *self.emb_out.parameters()]
        return params + ([] if self.head is None else [self.head.weight])

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, E): the last LayerNorm's output projected back to the embedding width."""
        T = idx.shape[1]
        if T > self.config.n_ctx:
            raise ValueError(f"sequence length {T} exceeds n_ctx {self.config.n_ctx}")
        x = self.emb_in(self.wte(idx) + self.wpe.weight[:T])
        for _ in range(self.config.n_layer):
            x = self.block(x)
        return self.emb_out(self.ln_f(x))

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: ALBERTArgs) -> ModelCounts:
        L, d, V, T, E = cfg.n_layer, cfg.d_model, cfg.vocab_size, cfg.n_ctx, cfg.emb_width
        weights, params, block_flops = block_counts(d, cfg.n_head, T, cfg.mlp_ratio, cfg.bias)
        n_kaplan = weights  # the shared block, once
        n_non_emb = params + (2 * d if cfg.bias else d)  # + final LayerNorm
        factorisation = 2 * E * d + ((d + E) if cfg.bias else 0)  # emb_in, emb_out (weights + biases)
        emb = V * E + T * E + factorisation + (0 if cfg.tie_weights else V * E)
        kaplan = 6 * L * weights + 6 * L * T * d  # every application: 6 N per layer + attention's context term
        # Hoffmann et al. App. F: embedding 2VE, E -> d 2Ed, n_layer block applications, d -> E 2dE, logits 2EV
        forward = 2 * V * E + 2 * E * d + L * block_flops + 2 * d * E + 2 * E * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls, n: float, *, aspect: int = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 1
    ) -> dict[str, int]:
        """n_layer as the GPT's for ``n`` (:func:`~harness.models.gpt.depth_for`); width so that the one
        shared block has ~n weights (12 d^2 ~= n); emb_dim stays its default (128, capped at d_model)."""
        _check_shape_options(aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        return {"n_layer": depth_for(n, aspect, min_layers), **width_for(n, head_dim)}
