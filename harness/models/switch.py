"""A decoder-only Switch Transformer: the GPT with top-1 routed mixtures of experts in place of some MLPs.

Fedus, Zoph & Shazeer (2021), "Switch Transformers: Scaling to Trillion Parameter Models with Simple and
Efficient Sparsity", arXiv:2101.03961.

    tokens -> token embedding (+ learned positions) -> n_layer x Block -> LayerNorm -> output projection
    Block(x):  x = x + Attention(LN(x));  x = x + FFN(LN(x))
    FFN:       a Switch layer in layers i with i % moe_every == 0, the GPT's dense MLP in the others
    Switch(x): p = softmax(x W_r)              router, W_r: d -> n_expert, no bias
               e = argmax_i p_i                 top-1 ("switch") routing, one expert per token
               y = p_e * MLP_e(x)               expert output scaled by its gate probability
               (capacity_factor > 0: each expert takes at most ceil(capacity_factor * tokens / n_expert)
                tokens of the batch, in token order; the overflow gets y = 0 and so skips the layer
                through the residual connection, as in the paper's Sec. 2.2)
    aux:       alpha * n_expert * sum_i f_i P_i per Switch layer (eq. 4), summed over the Switch layers;
               f_i = fraction of the batch's tokens whose argmax is expert i (before any dropping),
               P_i = mean router probability of expert i

Every expert is the GPT's MLP (layers.MLP: d -> mlp_ratio d -> GELU -> d). Dispatch is vectorised: tokens
are sorted by expert (a stable argsort, so token order decides who overflows) and each expert runs once on
its contiguous slice (a loop over experts, not tokens); outputs are scattered back with index_copy.

Choices and simplifications versus the paper, and why:

* Expert frequency: a Switch layer every ``moe_every`` = 2 layers by default, as in the paper's T5-based
  Switch-Base/Large/XXL (Table 9, "expert freq." 1/2; Switch-C has one in every layer: ``moe_every = 1``).
  The Switch layers are layers 0, moe_every, 2 moe_every, ... so that every model, even a one-layer one, has
  at least one.
* Decoder-only (GPT) instead of the paper's T5 encoder-decoder, pre-norm, GELU experts, GPT-2 init (normal
  0.02, residual projections scaled by 1/sqrt(2 n_layer), the router too) instead of the paper's
  truncated-normal "scale 0.1" init: at our widths the GPT-2 init is already as small.
* No router jitter noise, no expert dropout (deterministic; the harness trains without dropout), and the
  whole model in one precision (the paper's "selective precision" casts the router to fp32; here the router
  softmax is always taken in fp32).
* Capacity: ``capacity_factor <= 0`` (default) drops nothing (every token reaches its expert, whatever the
  load), which is deterministic and exact on small models. With a positive factor the same capacity applies
  in training and evaluation (the paper has a separate eval factor). Caveat: capacity is shared by all the
  tokens of a batch, so whether a token is dropped depends on the other tokens of the batch, later positions
  of its own sequence included: with dropping the model is no longer strictly causal (the routing itself is
  per token, so it is causal without dropping).
* The auxiliary losses of the Switch layers are summed (one eq.-4 term per layer), alpha = 0.01 as in the
  paper; the paper's "router z-loss" came later (ST-MoE) and is left out.

Counts. ``n_kaplan`` counts the weight matrices of ALL experts (plus the router and the rest of the
non-embedding matrices); ``n_total`` every parameter; ``n_active`` the parameters one token passes through
(one expert per Switch layer, the router and everything else, embeddings included). Both FLOP counts are of
the ACTIVE path (one expert per token, no dropping) plus the router matmul: Kaplan's
``6 N_active + 6 n_layer n_ctx d_model`` with ``N_active`` the active Kaplan N (:meth:`Switch.active_kaplan`),
and Hoffmann's App. F count of the GPT plus ``2 d n_expert`` per Switch layer for the router.

Shape policy: the GPT's shape for the dense model of the same ACTIVE size (``n`` is the active Kaplan N; the
router adds ``d n_expert`` per Switch layer, under 1% at our sizes), with ``n_expert`` given alongside.
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
from .gpt import ASPECT, GPT, HEAD_DIM, POSITION_SETTINGS, check_heads, gpt2_init
from .layers import MLP, CausalSelfAttention, LayerNorm, rotary_tables
from .ops import linear_cross_entropy


@dataclass(frozen=True)
class SwitchArgs(ModelArgs):
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 2
    mlp_ratio: int = 4  # each expert: d -> mlp_ratio d -> d, the GPT's MLP
    tie_weights: bool = False
    pos: str = "learned"  # "learned" | "rotary", as the GPT
    bias: bool = True
    n_expert: int = 8
    moe_every: int = 2  # a Switch layer in layers 0, moe_every, 2 moe_every, ... (the paper: every other FFN)
    capacity_factor: float = 0.0  # <= 0: no capacity, nothing dropped; > 0: expert capacity as in the paper
    aux_alpha: float = 0.01  # weight of the load-balancing loss (eq. 4)

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "n_head", "mlp_ratio", "n_expert", "moe_every")
        self.require_choice("pos", POSITION_SETTINGS)
        self.require_bool("tie_weights", "bias")
        for name in ("capacity_factor", "aux_alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise UserError(f"model.{name} must be a finite number, got {v!r}")
        if self.aux_alpha < 0:
            raise UserError(f"model.aux_alpha must be >= 0, got {self.aux_alpha!r}")
        check_heads(self.d_model, self.n_head, self.pos)


def n_switch_layers(cfg: SwitchArgs) -> int:
    """How many layers hold a Switch layer (layers 0, moe_every, 2 moe_every, ...)."""
    return len(range(0, cfg.n_layer, cfg.moe_every))


class SwitchFFN(nn.Module):
    """Top-1 routed mixture of ``n_expert`` MLPs. ``forward`` returns (output, aux loss unweighted by alpha,
    per-expert token fractions f)."""

    def __init__(self, d_model: int, ratio: int, n_expert: int, bias: bool, capacity_factor: float):
        super().__init__()
        self.n_expert = n_expert
        self.capacity_factor = capacity_factor
        self.router = nn.Linear(d_model, n_expert, bias=False)
        self.experts = nn.ModuleList(MLP(d_model, ratio, bias) for _ in range(n_expert))

    def capacity(self, n_tokens: int) -> int | None:
        """Tokens each expert takes from a batch of ``n_tokens`` (None: no limit)."""
        if self.capacity_factor <= 0:
            return None
        return math.ceil(self.capacity_factor * n_tokens / self.n_expert)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape, E = x.shape, self.n_expert
        xf = x.reshape(-1, shape[-1])
        N = xf.shape[0]
        probs = torch.softmax(self.router(xf).float(), dim=-1)  # (N, E), in fp32 whatever x's dtype
        gate, expert = probs.max(dim=-1)  # top-1
        counts = torch.bincount(expert, minlength=E)
        frac = counts.float() / N  # f_i (eq. 5): argmax fractions, before dropping
        aux = E * torch.sum(frac * probs.mean(dim=0))  # eq. 4 without alpha
        order = torch.argsort(expert, stable=True)  # tokens grouped by expert, in token order within each
        cap = self.capacity(N)
        kept, outs, start = [], [], 0
        for e, c in enumerate(counts.tolist()):  # one host sync per layer; a loop over experts, not tokens
            take = c if cap is None else min(c, cap)
            if take:
                rows = order[start : start + take]
                kept.append(rows)
                outs.append(self.experts[e](xf.index_select(0, rows)))
            start += c
        rows = torch.cat(kept)
        y = torch.cat(outs) * gate.index_select(0, rows).to(xf.dtype).unsqueeze(-1)
        out = xf.new_zeros(xf.shape).index_copy(0, rows, y)  # dropped tokens: 0 (the residual carries them)
        return out.reshape(shape), aux, frac.detach()


class SwitchBlock(nn.Module):
    def __init__(self, cfg: SwitchArgs, switch: bool):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model, cfg.bias)
        self.attn = CausalSelfAttention(cfg.d_model, cfg.n_head, cfg.bias)
        self.ln2 = LayerNorm(cfg.d_model, cfg.bias)
        if switch:
            self.ffn = SwitchFFN(cfg.d_model, cfg.mlp_ratio, cfg.n_expert, cfg.bias, cfg.capacity_factor)
        else:
            self.ffn = MLP(cfg.d_model, cfg.mlp_ratio, cfg.bias)

    def forward(self, x, rotary=None):
        """(x, aux, fractions); aux and fractions are None in a dense layer."""
        x = x + self.attn(self.ln1(x), rotary)
        if isinstance(self.ffn, SwitchFFN):
            y, aux, frac = self.ffn(self.ln2(x))
            return x + y, aux, frac
        return x + self.ffn(self.ln2(x)), None, None


class Switch(EmbeddingHeadLM):
    Args = SwitchArgs

    def __init__(self, cfg: SwitchArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model) if cfg.pos == "learned" else None
        if cfg.pos == "rotary":
            cos, sin = rotary_tables(cfg.n_ctx, cfg.d_model // cfg.n_head)
            self.register_buffer("rot_cos", cos, persistent=False)
            self.register_buffer("rot_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(SwitchBlock(cfg, i % cfg.moe_every == 0) for i in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.d_model, cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        gpt2_init(self, cfg.n_layer)  # scales the residual-stream outputs: attention and every expert
        self._last_fractions: torch.Tensor | None = None

    def embedding_parameters(self):
        return [p for p in (self.wte.weight, self.wpe.weight if self.wpe else None, self.head_weight) if p is not None]

    @property
    def expert_fractions(self) -> torch.Tensor | None:
        """Per-expert token fractions f_i of the last forward pass, (n_switch_layers, n_expert), each row
        summing to 1 (argmax routing, before any capacity dropping); None before the first pass."""
        return self._last_fractions

    def hidden_and_aux(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states (B, T, d_model) and the weighted load-balancing loss (alpha x sum over layers)."""
        T = idx.shape[1]
        if T > self.config.n_ctx:
            raise ValueError(f"sequence length {T} exceeds n_ctx {self.config.n_ctx}")
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe.weight[:T]
        rotary = (self.rot_cos, self.rot_sin) if self.config.pos == "rotary" else None
        auxes, fracs = [], []
        for block in self.blocks:
            x, aux, frac = block(x, rotary)
            if aux is not None:
                auxes.append(aux)
                fracs.append(frac)
        self._last_fractions = torch.stack(fracs)
        return self.ln_f(x), self.config.aux_alpha * torch.stack(auxes).sum()

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        return self.hidden_and_aux(idx)[0]

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return F.linear(self.hidden(idx), self.head_weight)

    def training_loss(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h, aux = self.hidden_and_aux(idx)
        loss = linear_cross_entropy(h, self.head_weight, None, targets, self.kernels_used)
        return loss, {"load_balance": aux}

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def active_kaplan(cls, cfg: SwitchArgs) -> int:
        """Kaplan N of the active path: the GPT's 12 L d^2 (for mlp_ratio 4) plus the routers' d n_expert."""
        L, d, f = cfg.n_layer, cfg.d_model, cfg.mlp_ratio
        return L * (4 * d * d + 2 * f * d * d) + n_switch_layers(cfg) * d * cfg.n_expert

    @classmethod
    def counts(cls, cfg: SwitchArgs) -> ModelCounts:
        L, d, V, T, H, f, E = (
            cfg.n_layer,
            cfg.d_model,
            cfg.vocab_size,
            cfg.n_ctx,
            cfg.n_head,
            cfg.mlp_ratio,
            cfg.n_expert,
        )
        M = n_switch_layers(cfg)
        mlp_w = 2 * f * d * d  # one MLP's (one expert's) weight matrices
        mlp_b = (f * d + d) if cfg.bias else 0
        attn_w, attn_b = 4 * d * d, (4 * d if cfg.bias else 0)
        norms = 2 * d if cfg.bias else d  # weight (+ bias) per LayerNorm
        n_kaplan = L * attn_w + (L - M) * mlp_w + M * (E * mlp_w + d * E)  # ALL experts, routers included
        n_non_emb = L * (attn_w + attn_b + 2 * norms) + (L - M) * (mlp_w + mlp_b) + M * (E * (mlp_w + mlp_b) + d * E)
        n_non_emb += norms  # final LayerNorm
        emb = V * d + (T * d if cfg.pos == "learned" else 0) + (0 if cfg.tie_weights else V * d)
        n_total = n_non_emb + emb
        n_active = n_total - M * (E - 1) * (mlp_w + mlp_b)  # one expert per Switch layer
        kaplan = 6 * cls.active_kaplan(cfg) + 6 * L * T * d
        # Hoffmann et al. (2022) App. F, forward per token, the active path: the GPT's count plus the router
        attn = 2 * 3 * d * d + 2 * T * d + 3 * H * T + 2 * T * d + 2 * d * d  # qkv, logits, softmax, @V, out
        dense = 2 * mlp_w  # one expert (or the dense MLP)
        forward = 2 * V * d + L * (attn + dense) + M * 2 * d * E + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_total, float(kaplan), float(3 * forward), n_active=n_active)

    @classmethod
    def shape_for(
        cls, n: float, *, n_expert: int = 8, aspect: int = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 1
    ) -> dict[str, int]:
        """The GPT's shape for a dense model of ``n`` (active) Kaplan parameters, with ``n_expert`` experts."""
        if not isinstance(n_expert, int) or isinstance(n_expert, bool) or n_expert < 1:
            raise UserError(f"shape option n_expert must be a positive whole number, got {n_expert!r}")
        shape = GPT.shape_for(n, aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        return {**shape, "n_expert": n_expert}
