"""RWKV-4: a recurrent language model trained in parallel (Peng et al. 2023, "RWKV: Reinventing RNNs for the
Transformer Era", arXiv 2305.13048), in plain PyTorch.

    tokens -> token embedding -> LayerNorm (ln0) -> n_layer x Block -> LayerNorm (ln_out) -> output projection
    Block(x):     x = x + TimeMix(LN(x));  x = x + ChannelMix(LN(x))
    TimeMix(x):   x' = x shifted one token right (token shift, zeros at t = 0)
                  k = W_k lerp(x', x, mu_k);  v = W_v lerp(x', x, mu_v);  r = W_r lerp(x', x, mu_r)
                  out = W_o (sigmoid(r) * WKV(w, u, k, v))
    WKV_t:        (sum_{s<t} e^{(t-1-s) w + k_s} v_s + e^{u + k_t} v_t) / (same sums with v = 1),
                  per channel, w = -exp(time_decay) < 0 (decay), u = time_first (bonus of the current token)
    ChannelMix(x): r = sigmoid(W_r lerp(x', x, mu_r));  k = relu(W_k lerp(x', x, mu_k))^2 (4 d hidden)
                  out = r * (W_v k)
    lerp(x', x, mu) = x * mu + x' * (1 - mu)

The WKV is computed in chunks of ``chunk`` = Q tokens (a Python loop over chunks, never over tokens). Within a
chunk, query i weighs token j by ``e^{(i-1-j) w} e^{k_j}`` (j < i) and ``e^u e^{k_i}`` (j = i): the first factors
form a (Q x Q) lower-triangular matrix per channel that is the same for every sequence and chunk, so the chunk's
sums are one batched matmul over channels (an extra row ``e^{(Q-1-j) w}`` gives the chunk's contribution to the
state). Between chunks the state is carried as the reference CUDA kernel carries it: a numerator ``a`` and a
denominator ``b`` scaled by ``e^{-p}``, ``p`` their running max (detached: it cancels between ``a`` and ``b``, so
gradients are exact); the state reaches query i of the next chunk with weight ``e^{i w + p}``.
Stability: the decay factors are at most 1, and keys are clamped to [-60, 60] (RWKV-v2/v3's ``K_CLAMP = 60``,
"e^60 = 1e26"), so every ``e^k`` lies in [1e-26, 1e26]: no sum overflows in fp32, and every denominator holds
its own token's ``e^{u + k_t}``, so none vanishes. Within the clamp the result is the reference kernel's
(running-max) recurrence to rounding, checked against a sequential implementation of it in the tests.
Why not a max subtraction per (query, channel) row: that makes the (Q x Q) matrix depend on the data, a
(B, T, Q, C) tensor pushed through half a dozen element-wise passes, 2-3x slower on CPU in our measurements.

Initialisation follows the reference implementation (BlinkDL/RWKV-LM, RWKV-v4 ``model.py``: the "fancy init" of
the time and channel mixes and ``RWKV_Init``), which the paper's implementation section describes (small init
embedding followed by a LayerNorm, zero-initialised matrices, per-channel decay and mix schedules):

* token embedding uniform in [-1e-4, 1e-4] (the paper's "small init embedding"), followed by ln0;
* time_decay ``-5 + 8 (c / (d-1))^(0.7 + 1.3 l / (L-1))`` (l / (L-1) read as 0 when L = 1, where the
  reference divides by zero), time_first ``log 0.3`` plus a (0.5, -0.5, 0) zigzag
  over channels, mu's ``(c / d)^(1 - l / L)`` (mu_v + 0.3 l / (L-1), mu_r of the time mix to the power 1/2);
* matrices orthogonal with gain ``sqrt(out / in)`` when out > in (else 1); zero for the time mix's key,
  receptance and output and the channel mix's value and receptance; the output head orthogonal with gain
  ``0.5 sqrt(V / d)``.

Simplifications versus the paper / reference code:

* keys clamped to [-60, 60] inside the WKV (above; the v4 kernel needs no clamp, v2/v3 clamped at 60 from above);
* no custom CUDA kernel: the chunked WKV above is plain PyTorch (fp32 inside, whatever the autocast dtype, as the
  kernel computes in fp32), and differentiable by autograd rather than a hand-written backward;
* the reference's extra tricks outside the architecture are left out: its "L2Wrap" logit regulariser, the
  head-QK ("tiny attention") option, its learning-rate and weight-decay schedules (the harness's recipe decides);
* a tied head (``tie_weights``, not in the paper) shares the small-init embedding, so it starts at zero logits;
* ``n_ctx`` only sizes the FLOP count and the data: with no positions, the model runs on any length.
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
from .layers import LayerNorm

# Shape policy for ``shape_for``: the GPT's rule (d_model ~= ASPECT * n_layer, Kaplan et al. 2020, Fig. 5)
# applied to RWKV's (5 + 2 mlp_ratio) d^2 weights per layer (13 d^2 at mlp_ratio 4).
ASPECT = 32
CHUNK = 32  # default WKV chunk: the batched matmul costs O(Q) per token and channel, the loop T / Q steps
MIN_VALUE = -1e38  # the reference kernel's initial running max (finite: -inf - -inf would be NaN)
K_CLAMP = 60.0  # keys are clamped to [-K_CLAMP, K_CLAMP] (RWKV-v2/v3's K_CLAMP; see the module docstring)
# Hoffmann-style FLOPs per channel per token of the recurrent WKV, as the reference kernel does it: output
# (A p + B v) / (A q + B): 6, state update A p + B v, A q + B: 5, four exponentials and two maxima: 6 -> 17.
WKV_FLOPS = 17


@dataclass(frozen=True)
class RWKVArgs(ModelArgs):
    n_layer: int = 2
    d_model: int = 64
    mlp_ratio: int = 4  # channel-mix hidden width / d_model (RWKV-4: 4)
    tie_weights: bool = False  # output projection shares the token embedding (not in the paper)
    chunk: int = CHUNK  # WKV chunk length (an implementation choice: results agree to rounding)

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "mlp_ratio", "chunk")
        self.require_bool("tie_weights")


# ---------------------------------------------------------------------------------------------------- WKV
def wkv(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """RWKV-4's WKV (module docstring) of keys and values ``k``, ``v`` (B, T, C) with decay ``w`` (C,), negative,
    and bonus ``u`` (C,), in chunks of ``chunk`` tokens. Computed in fp32; returned in ``k``'s dtype.

    Keys are clamped to [-K_CLAMP, K_CLAMP] (the module docstring says why); within that range the result is
    the reference kernel's to rounding."""
    B, T, C = k.shape
    out_dtype = k.dtype
    w, u, k, v = w.float(), u.float(), k.float(), v.float()
    k = k.clamp(-K_CLAMP, K_CLAMP)
    Q = max(1, min(chunk, T))
    n = -(-T // Q)
    if n * Q != T:  # pad the end: padded tokens come after every real one, so they reach none of them
        k = F.pad(k, (0, 0, 0, n * Q - T))
        v = F.pad(v, (0, 0, 0, n * Q - T))
    ek = torch.exp(k)  # in [e^-60, e^60]
    # The chunk's weights as one (Q + 1) x Q matrix per channel, the same for every sequence and chunk:
    # row i < Q, query i: e^{(i-1-j) w} for j < i, e^u for j = i, 0 for j > i (times e^{k_j}: the WKV weights);
    # row Q: e^{(Q-1-j) w}, the chunk's contribution to the state after its last token.
    i = torch.arange(Q + 1, device=k.device, dtype=w.dtype)[:, None]
    j = torch.arange(Q, device=k.device, dtype=w.dtype)[None, :]
    below = j < i
    lag = torch.where(below, i - 1 - j, 0.0)  # >= 0 where used (no e^{+|w|} is ever formed)
    weights = torch.where(below, torch.exp(lag * w[:, None, None]), 0.0)
    weights = weights + (i == j) * torch.exp(u)[:, None, None]  # (C, Q + 1, Q)
    # channels first, (C, Q, B, n): the batched matmul runs over channels
    x = torch.stack([ek * v, ek], dim=-1).view(B, n, Q, C, 2).permute(3, 2, 0, 1, 4).reshape(C, Q, B * n * 2)
    y = torch.bmm(weights, x).view(C, Q + 1, B, n, 2)
    within, own = y.split([Q, 1], dim=1)
    num, den = within.unbind(-1)  # (C, Q, B, n): the sums over the chunk's own tokens up to each query
    A, Bn = own[:, 0].unbind(-1)  # (C, B, n): each chunk's own numerator and denominator after its last token

    # The state entering each chunk, as the reference kernel carries it: a, b scaled by e^{-p}, p the running
    # max (detached: it cancels between a and b). The chunk's own sum Bn is at least e^{k_last} >= e^-60.
    wc = w[:, None]
    a = k.new_zeros(C, B)
    b = k.new_zeros(C, B)
    p = k.new_full((C, B), MIN_VALUE)
    states = [(a, b, p)]
    for c in range(n - 1):
        decayed = p + Q * wc
        p_new = torch.maximum(decayed, torch.log(Bn[:, :, c])).detach()
        old, new = torch.exp(decayed - p_new), torch.exp(-p_new)
        a, b, p = old * a + new * A[:, :, c], old * b + new * Bn[:, :, c], p_new
        states.append((a, b, p))
    a, b, p = (torch.stack(s, dim=-1)[:, None] for s in zip(*states, strict=True))  # (C, 1, B, n)

    # The state reaches query i of its chunk decayed i steps: weight e^{i w + p} on (a, b).
    carry = torch.exp((wc * i[:Q, 0])[:, :, None, None] + p)  # (C, Q, B, n)
    out = (num + carry * a) / (den + carry * b)
    return out.permute(2, 3, 1, 0).reshape(B, n * Q, C)[:, :T].to(out_dtype)


# ------------------------------------------------------------------------------------------------- blocks
def _shift(x: torch.Tensor) -> torch.Tensor:
    """Token shift: position t sees x[t - 1] (zeros at t = 0)."""
    return F.pad(x, (0, 0, 1, -1))


def _shifted(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The token-shifted input and its difference to x: ``lerp(x', x, mu) = x' + mu (x - x')``."""
    xx = _shift(x)
    return xx, x - xx


class TimeMix(nn.Module):
    def __init__(self, d: int, layer: int, n_layer: int, chunk: int):
        super().__init__()
        self.chunk = chunk
        r01 = layer / (n_layer - 1) if n_layer > 1 else 0.0  # 0 at the first layer, 1 at the last
        r10 = 1.0 - layer / n_layer  # 1 at the first layer, -> 0
        c = torch.arange(d, dtype=torch.float64)
        ramp = c / d
        decay = -5 + 8 * (c / max(d - 1, 1)) ** (0.7 + 1.3 * r01)
        zigzag = 0.5 * (((c + 1) % 3) - 1)
        self.time_decay = nn.Parameter(decay.float())
        self.time_first = nn.Parameter((math.log(0.3) + zigzag).float())
        self.mu_k = nn.Parameter((ramp**r10).float())
        self.mu_v = nn.Parameter((ramp**r10 + 0.3 * r01).float())
        self.mu_r = nn.Parameter((ramp ** (0.5 * r10)).float())
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)
        for lin in (self.key, self.receptance, self.output):
            lin.zero_init = True

    def forward(self, x):
        xx, dx = _shifted(x)
        k = self.key(xx + self.mu_k * dx)
        v = self.value(xx + self.mu_v * dx)
        r = self.receptance(xx + self.mu_r * dx)
        return self.output(torch.sigmoid(r) * wkv(-torch.exp(self.time_decay), self.time_first, k, v, self.chunk))


class ChannelMix(nn.Module):
    def __init__(self, d: int, ratio: int, layer: int, n_layer: int):
        super().__init__()
        ramp = torch.arange(d, dtype=torch.float64) / d
        r10 = 1.0 - layer / n_layer
        self.mu_k = nn.Parameter((ramp**r10).float())
        self.mu_r = nn.Parameter((ramp**r10).float())
        self.key = nn.Linear(d, ratio * d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(ratio * d, d, bias=False)
        for lin in (self.value, self.receptance):
            lin.zero_init = True

    def forward(self, x):
        xx, dx = _shifted(x)
        k = torch.relu(self.key(xx + self.mu_k * dx)).square()
        return torch.sigmoid(self.receptance(xx + self.mu_r * dx)) * self.value(k)


class Block(nn.Module):
    def __init__(self, cfg: RWKVArgs, layer: int):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model)
        self.att = TimeMix(cfg.d_model, layer, cfg.n_layer, cfg.chunk)
        self.ln2 = LayerNorm(cfg.d_model)
        self.ffn = ChannelMix(cfg.d_model, cfg.mlp_ratio, layer, cfg.n_layer)

    def forward(self, x):
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class RWKV(EmbeddingHeadLM):
    Args = RWKVArgs

    def __init__(self, cfg: RWKVArgs):
        super().__init__()
        self.config = cfg
        d, V = cfg.d_model, cfg.vocab_size
        self.wte = nn.Embedding(V, d)
        self.ln0 = LayerNorm(d)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_out = LayerNorm(d)
        self.head = None if cfg.tie_weights else nn.Linear(d, V, bias=False)
        nn.init.uniform_(self.wte.weight, -1e-4, 1e-4)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                out, inp = m.weight.shape
                if getattr(m, "zero_init", False):
                    nn.init.zeros_(m.weight)
                else:
                    nn.init.orthogonal_(m.weight, gain=math.sqrt(out / inp) if out > inp else 1.0)
        if self.head is not None:
            nn.init.orthogonal_(self.head.weight, gain=0.5 * (math.sqrt(V / d) if V > d else 1.0))

    def embedding_parameters(self):
        return [self.wte.weight] + ([] if self.head is None else [self.head.weight])

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after ln_out."""
        x = self.ln0(self.wte(idx))
        for block in self.blocks:
            x = block(x)
        return self.ln_out(x)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: RWKVArgs) -> ModelCounts:
        L, d, V, f = cfg.n_layer, cfg.d_model, cfg.vocab_size, cfg.mlp_ratio
        mix = 4 * d * d  # time mix: key, value, receptance, output
        channel = 2 * f * d * d + d * d  # channel mix: key d -> f d, value f d -> d, receptance d -> d
        n_kaplan = L * (mix + channel)  # = 13 L d^2 at f = 4
        # per layer: ln1, ln2 (weight + bias), time_decay, time_first, three mu's (time mix), two (channel mix)
        n_non_emb = n_kaplan + L * (2 * 2 * d + 5 * d + 2 * d) + 2 * 2 * d  # + ln0 and ln_out
        emb = V * d + (0 if cfg.tie_weights else V * d)
        # Kaplan: C = 6 N. RWKV has no context term: the WKV's work per token is O(d) per layer whatever n_ctx
        # (WKV_FLOPS d, below; under 1 % of a layer's matmuls at d >= 64), which Kaplan's count leaves out.
        kaplan = 6 * n_kaplan
        # Hoffmann et al. (2022) App. F style, forward per token: embeddings 2 V d, the matmuls (2 per weight),
        # the WKV recurrence as the reference kernel runs it (WKV_FLOPS per channel, the analogue of App. F's
        # attention terms; the other element-wise work, token shift, sigmoid, relu^2, is left out as App. F
        # leaves out activations), output logits 2 d V; training x 3.
        forward = 2 * V * d + L * (2 * (mix + channel) + WKV_FLOPS * d) + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(cls, n: float, *, aspect: float = ASPECT, min_layers: int = 1) -> dict[str, int]:
        """~n Kaplan parameters as (5 + 2 mlp_ratio) n_layer d^2 = 13 n_layer d^2 with d_model ~= aspect *
        n_layer (the GPT's rule); at small n, at least ``min_layers`` layers; d_model a multiple of 8."""
        if (
            isinstance(aspect, bool)
            or not isinstance(aspect, int | float)
            or not (math.isfinite(aspect) and aspect >= 1)
        ):
            raise UserError(f"shape option aspect (d_model / n_layer) must be a finite number >= 1, got {aspect!r}")
        if not isinstance(min_layers, int) or isinstance(min_layers, bool) or min_layers < 1:
            raise UserError(f"shape option min_layers must be a positive whole number, got {min_layers!r}")
        per_layer = 5 + 2 * RWKVArgs.mlp_ratio
        n_layer = max(1, min_layers, round((n / (per_layer * aspect**2)) ** (1 / 3)))
        d = max(8, 8 * round(math.sqrt(n / (per_layer * n_layer)) / 8))
        return {"n_layer": n_layer, "d_model": d}
