"""Performer: the GPT with causal FAVOR+ linear attention (Choromanski et al. 2020, "Rethinking Attention with
Performers", arXiv 2009.14794), as a decoder-only LM the way Tay et al. (2022, "Scaling Laws vs Model
Architectures", arXiv 2207.10551) scale it: everything is the GPT's (harness/models/gpt.py, built by it) except
the attention.

    tokens -> token embedding (+ learned positions) -> n_layer x Block -> LayerNorm -> output projection
    Block(x):   x = x + FavorAttention(LN(x));  x = x + MLP(LN(x))        (the GPT's Block, attention swapped)
    FavorAttention: q, k, v = split(W_qkv x) per head (optional rotary on q, k), then per head
        phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m),  x' = x / d_head^(1/4),  W: m x d_head orthogonal random rows
        y_t = sum_{s<=t} (phi(q_t) . phi(k_s)) v_s / sum_{s<=t} phi(q_t) . phi(k_s)     (causal linear attention)
        out = W_proj concat_heads(y)

``phi(q) . phi(k)`` is an unbiased estimate of the softmax kernel ``exp(q . k / sqrt(d_head))`` (FAVOR+: positive
orthogonal random features). The m = ``n_features`` projection rows are drawn once at build from a generator seeded
with ``feature_seed`` (one matrix per layer, shared by its heads, as the reference implementation shares it):
blocks of a QR-orthogonalised Gaussian matrix, each row rescaled by the norm of a Gaussian vector. Unlike the
reference code we fix the QR's signs (Q times sign(diag R)): LAPACK's Q has sign patterns tied to the draw, which
biases the row directions and the kernel estimate (by ~17 % at d_head 8 in our check; the tests assert
unbiasedness). They are a buffer, not parameters, and are never redrawn, so a run is deterministic; the paper
redraws them periodically during training (a "feature redraw" interval), which we do not.

Causal prefix sums in chunks of ``chunk`` = Q tokens (a Python loop over chunks only): within a chunk a masked
(Q x Q) product ``(phi(q) phi(k)^T * mask) [v, 1]``; between chunks the running sums ``sum phi(k) v^T`` and
``sum phi(k)`` (an m x (d_head + 1) state per head, the ones column giving the denominator) carried forward.

Stabilisers (both causal, so no future token can reach an earlier position, not even by rounding):

* queries: ``exp(W q' - max_j (W q')_j)``: a per-position constant, which cancels between numerator and
  denominator of that query (as in the reference's ``softmax_kernel``); for the same reason the query's
  ``-|q'|^2 / 2`` and both ``1 / sqrt(m)`` factors are dropped (exactly cancelling constants);
* keys: the reference subtracts one max over the whole sequence, which lets later keys move earlier positions'
  features (only by a constant that cancels, but not bit for bit). Here key s is scaled by ``e^{-M_s}``, M_s the
  running max over positions <= s of ``max_j (W k'_s)_j - |k'_s|^2 / 2``; query t then meets key s with an
  extra factor ``e^{M_s - M_t}`` <= 1 (a (Q x Q) causal "decay" inside a chunk, ``e^{M_end - M_t}`` on the
  carried state), which puts every key a query sees on the same scale ``e^{-M_t}``, cancelling again. All
  factors are <= 1, so nothing overflows. The stabilisers are detached (the output does not depend on them).

The denominator gets ``DEN_EPS`` = 1e-30 added (a guard against 0 / 0 only; the reference adds 1e-4 to every
feature, which changes the kernel where features are small: on our scale a denominator can be ~1e-3).

Initialisation: the GPT's (N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)); the attention's qkv
and proj are the ones the GPT built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .config import ModelCounts
from .gpt import GPT, GPTArgs
from .layers import apply_rotary

N_FEATURES = 64  # m: random features per head (the reference's default is d_head log d_head, ~266 at d_head 64)
CHUNK = 64  # prefix-sum chunk: intra-chunk work O(Q) per token, the loop T / Q steps
DEN_EPS = 1e-30  # guards 0 / 0 only: denominators can be legitimately small (e.g. 1e-3), so no larger eps


@dataclass(frozen=True)
class PerformerArgs(GPTArgs):
    n_features: int = N_FEATURES  # m, random features per head
    feature_seed: int = 0  # seed of the random projections (fixed for the run)
    chunk: int = CHUNK  # prefix-sum chunk length (an implementation choice: results agree to rounding)

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_features", "chunk")
        s = self.feature_seed
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**63:
            raise UserError(f"model.feature_seed must be a whole number in [0, 2**63), got {s!r}")


def orthogonal_features(m: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """(m, d) FAVOR+ projection: stacked blocks of random orthogonal d x d matrices (the last one cut to the rows
    left), each row scaled by the norm of a d-dimensional standard Gaussian (the reference's ``scaling = 0``)."""
    blocks = []
    for _ in range(-(-m // d)):
        q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        blocks.append((q * torch.sign(torch.diagonal(r))).T)  # signs fixed: a uniformly random rotation
    rows = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=1)
    return (norms[:, None] * rows).float()


def favor_features(q: torch.Tensor, k: torch.Tensor, proj: torch.Tensor):
    """Stabilised positive features of queries and keys (B, H, T, d_head) with projection ``proj`` (m, d_head):
    ``phi_q`` (per-position max subtracted), ``phi_k`` scaled by ``e^{-M_s}`` and the running max ``M`` (B, H, T)
    (module docstring). Constants that cancel between numerator and denominator are left out."""
    scale = q.shape[-1] ** -0.25
    qd = (q * scale) @ proj.T  # (B, H, T, m)
    kd = (k * scale) @ proj.T
    phi_q = torch.exp(qd - qd.detach().amax(dim=-1, keepdim=True))
    kd = kd - (k * scale).square().sum(-1, keepdim=True) / 2
    M = torch.cummax(kd.detach().amax(dim=-1), dim=-1).values  # (B, H, T), causal
    phi_k = torch.exp(kd - M[..., None])
    return phi_q, phi_k, M


def causal_linear_attention(
    phi_q: torch.Tensor, phi_k: torch.Tensor, M: torch.Tensor, v: torch.Tensor, chunk: int = CHUNK
) -> torch.Tensor:
    """``y_t = sum_{s<=t} w_ts v_s / sum_{s<=t} w_ts`` with ``w_ts = phi_q[t] . phi_k[s] e^{M_s - M_t}``, in
    chunks of ``chunk`` positions; inputs (B, H, T, *), M (B, H, T), output (B, H, T, d_head)."""
    B, H, T, _m = phi_q.shape
    dv = v.shape[-1]
    Q = max(1, min(chunk, T))
    n = -(-T // Q)
    M = M.detach()
    va = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # the ones column carries the denominator
    if n * Q != T:  # pad the end: padded positions come after every real one, so they reach none of them
        pad = n * Q - T
        phi_q, phi_k, va = (F.pad(x, (0, 0, 0, pad)) for x in (phi_q, phi_k, va))
        M = torch.cat([M, M[..., -1:].expand(B, H, pad)], dim=-1)
    phi_q, phi_k, va = (x.reshape(B, H, n, Q, x.shape[-1]) for x in (phi_q, phi_k, va))
    M = M.reshape(B, H, n, Q)

    # within each chunk: (phi_q phi_k^T * e^{M_s - M_t}, masked to s <= t) [v, 1]
    causal = torch.ones(Q, Q, dtype=torch.bool, device=M.device).tril()
    gap = M[..., None, :] - M[..., :, None]  # (B, H, n, Q_t, Q_s): M_s - M_t, <= 0 where s <= t
    decay = torch.where(causal, torch.exp(torch.where(causal, gap, 0.0)), 0.0)
    out = ((phi_q @ phi_k.transpose(-1, -2)) * decay) @ va  # (B, H, n, Q, dv + 1)

    # each chunk's own contribution to the state after its last position, on the scale e^{-M_last}
    last = M[..., -1]  # (B, H, n)
    own = (phi_k * torch.exp(M - last[..., None])[..., None]).transpose(-1, -2) @ va  # (B, H, n, m, dv + 1)
    # the state entering each chunk (sum over earlier chunks), on the scale of the previous chunk's last M
    states = [torch.zeros_like(own[:, :, 0])]
    for c in range(1, n):
        rescale = torch.exp(last[:, :, c - 2] - last[:, :, c - 1])[..., None, None] if c > 1 else 0.0
        states.append(states[-1] * rescale + own[:, :, c - 1])
    state = torch.stack(states, dim=2)  # (B, H, n, m, dv + 1)
    entry = torch.cat([M[:, :, :1, 0], last[:, :, :-1]], dim=2)  # (B, H, n): the state's scale (chunk 0: none)
    out = out + (phi_q @ state) * torch.exp(entry[..., None] - M)[..., None]

    out = out.reshape(B, H, n * Q, dv + 1)[:, :, :T]
    return out[..., :dv] / (out[..., dv:] + DEN_EPS)


class FavorAttention(nn.Module):
    """Causal FAVOR+ attention on the GPT attention's own ``qkv`` and ``proj`` projections."""

    def __init__(self, qkv: nn.Linear, proj: nn.Linear, n_head: int, features: torch.Tensor, chunk: int):
        super().__init__()
        self.qkv, self.proj, self.n_head, self.chunk = qkv, proj, n_head, chunk
        self.register_buffer("features", features, persistent=False)  # rebuilt from feature_seed, never trained

    def forward(self, x, rotary=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        phi_q, phi_k, M = favor_features(q, k, self.features.to(q.dtype))
        y = causal_linear_attention(phi_q, phi_k, M, v, self.chunk)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Performer(GPT):
    Args = PerformerArgs

    def __init__(self, cfg: PerformerArgs):
        super().__init__(cfg)  # the GPT, with its initialisation; then each block's attention becomes FAVOR+
        generator = torch.Generator().manual_seed(cfg.feature_seed)
        d_head = cfg.d_model // cfg.n_head
        for block in self.blocks:
            features = orthogonal_features(cfg.n_features, d_head, generator)
            block.attn = FavorAttention(block.attn.qkv, block.attn.proj, cfg.n_head, features, cfg.chunk)

    @classmethod
    def counts(cls, cfg: PerformerArgs) -> ModelCounts:
        """The GPT's counts (same weights: the random features are buffers) with the attention's context terms
        replaced by FAVOR+'s, per token and layer, counted as the recurrence does them (linear in T):

        * Kaplan: the GPT's ``6 n_layer n_ctx d`` (query-key products, 2 n_ctx d forward) becomes
          ``6 n_layer m d``: a query meets an m x d_head state per head instead of n_ctx keys;
        * Hoffmann (forward; x 3 for training): logits ``2 T d``, softmax ``3 H T`` and softmax @ V ``2 T d``
          become the feature maps of q and k, ``2 x 2 m d`` (an m x d_head matmul per head each), and reading
          and writing the state, ``2 x 2 m (d + H)`` (phi(q) [S, z] and phi(k) [v, 1]^T, m x (d_head + 1) per
          head); the exponentials and max subtractions are element-wise and left out, as App. F leaves out
          everything element-wise but the softmax.

        The chunked implementation also spends ``2 Q (m + d_head + 1)`` per head and token on the (Q x Q)
        products inside a chunk; that is an implementation cost, not counted here (the tests check it exactly)."""
        gpt = GPT.counts(cfg)
        L, d, T, H, m = cfg.n_layer, cfg.d_model, cfg.n_ctx, cfg.n_head, cfg.n_features
        softmax_attention = 2 * T * d + 3 * H * T + 2 * T * d  # the GPT's per-layer logits, softmax, @V
        favor = 2 * 2 * m * d + 2 * 2 * m * (d + H)
        return dataclasses.replace(
            gpt,
            flops_per_token_kaplan=float(gpt.flops_per_token_kaplan - 6 * L * T * d + 6 * L * m * d),
            flops_per_token_hoffmann=float(gpt.flops_per_token_hoffmann + 3 * L * (favor - softmax_attention)),
        )
