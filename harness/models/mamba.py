"""Mamba: a selective state-space language model (no attention, no MLP, no positions).

Gu & Dao (2023), "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv 2312.00752.

    tokens -> token embedding -> n_layer x Block -> RMSNorm -> logits = h @ token_embedding^T (tied by default)
    Block(x):  x = x + Mixer(RMSNorm(x))
    Mixer(x):  x, z = split(in_proj(x))                          d -> 2 d_inner (d_inner = expand d, expand 2)
               x = SiLU(causal depthwise conv1d(x))               width d_conv = 4, per channel, with a bias
               dt_low, B, C = split(x_proj(x))                     d_inner -> dt_rank + 2 d_state (no bias)
               dt = softplus(dt_proj(dt_low))                      dt_rank -> d_inner (its bias is dt's bias)
               y = SelectiveScan(x, dt, A = -exp(A_log), B, C) + D x
               out_proj(y * SiLU(z))                               d_inner -> d
    SelectiveScan, per channel d and state n (h has shape (batch, d_inner, d_state)):
               h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,   y_t = C_t . h_t      (zero-order-hold A, Euler B)

The scan (:func:`selective_scan`) is chunked: the sequence is cut into chunks of ``scan_chunk`` steps and the
only Python loop is over chunks, carrying the state from one chunk to the next. Inside a chunk the recurrence
is solved in parallel by recursive doubling (Hillis & Steele 1986; Blelloch 1990 for first-order linear
recurrences): after step k, position t holds the decay product over its last 2k steps and the contribution of
their inputs, so log2(scan_chunk) whole-chunk tensor operations give every state of the chunk. Every factor is
a product of decays exp(dt A) in (0, 1]: nothing can overflow (a decay below 1e-38 underflows to 0, as the
sequential recurrence does), and no exponent of a positive number or of a difference of cumulative sums is
ever taken. Backward is written out: a reverse scan of the same form, from the last chunk to the first. It
keeps the forward pass's decays and states when they are small (``SAVE_STATES_BYTES`` per call), else it
recomputes them chunk by chunk from the saved chunk-entry states, as the paper's fused kernel recomputes
(Sec. 3.3.2), so large models never hold (batch, T, d_inner, d_state) tensors for backward. The state is laid
out time-major, (T, batch, d_state, d_inner): a chunk is one contiguous block, in cache on a CPU. The default
``scan_chunk = 0`` picks the chunk (:func:`scan_chunk_for`); results do not depend on it beyond rounding.

Why not the Mamba-2 chunked "segment sum" form (exp(cumsum_t - cumsum_s) for s <= t inside a chunk)? With
Mamba-1's decay per (channel, state) it materialises a (chunk x chunk x d_inner x d_state) tensor of
exponentials per chunk: chunk times the recurrence's work and ~chunk / 2 exponentials per state element.
Measured on this project's CPU (batch 16, T 128, d_inner 112, d_state 16, forward + backward, one thread):
0.7 s (chunk 2) to 7 s (chunk 32) with autograd, against 0.12 s for a plain loop over time steps and ~0.04 s
for this scan (chunk 4). Both forms are exact; the tests check this one against a sequential loop, values and
gradients, for several chunk sizes (dividing T or not), with and without recomputation.

Accounting (:meth:`Mamba.counts`). Kaplan's N (``n_kaplan``): the four weight matrices of each mixer, in_proj
(2 d_inner d), x_proj (d_inner (dt_rank + 2 d_state)), dt_proj (dt_rank d_inner) and out_proj (d d_inner),
about 6.25 d^2 + 64 d per layer for expand 2 and d_state 16. The conv kernel (d_inner d_conv) and bias, A_log
(d_inner d_state), D (d_inner), dt_proj's bias and the RMSNorm gains are non-embedding parameters but not
Kaplan's N (they do not multiply the activations as matrices). Kaplan FLOPs: 6 N (no context-length term).
Hoffmann FLOPs, forward, per token and layer: 2 x the Kaplan weights (matmuls), the depthwise conv
2 d_conv d_inner, and the scan 7 d_inner d_state, counted per (channel, state) as dt A and its exponential
(2), the input dt B x (1), the update a h + input (2) and the readout C . h (2); element-wise work outside the
scan (SiLU, softplus, the gate, D x, norms) is left out as Appendix F leaves it out. (VMamba's FLOP counter,
Liu et al. 2024, charges 9 d_inner d_state for the same scan.) Embedding 2 V d and logits 2 d V as for the
GPT; training = 3 x forward. The FLOP counter of :mod:`harness.models.measure` sees the matmuls and the
readout (a batched matmul), not the conv (shifted multiply-adds, see :meth:`MambaMixer.causal_conv`) nor the
other 5 d_inner d_state.

Shape policy (:meth:`Mamba.shape_for`): twice the GPT's depth for the same n (the paper's models have twice
the layers of the GPT-3 model of the same size, e.g. 24 layers at d 768 for 125M: a Mamba layer has ~6 d^2
matrix weights, half of a Transformer layer's 12 d^2), at least ``min_layers``; then the width, a multiple of
8, whose exact Kaplan count is nearest n.

Versus the paper: tied embeddings as the paper's language models (and mamba_ssm's MambaLMHeadModel); linear
weights initialised N(0, 0.02) as the GPT here, out_proj scaled by 1/sqrt(n_layer) (one residual branch per
layer, mamba_ssm's rescaling) instead of PyTorch's default uniform; dt_proj, its bias, A_log (S4D-real,
A_n = -(n + 1)) and D as the paper; no dropout; fp32 throughout (the scan runs in fp32 under autocast
too), its exponentials as exp2 of dt (A log2 e) (the same function, faster on a CPU); real (not complex) A,
as the paper's language models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import EmbeddingHeadLM
from .config import MAX_DIMENSION, ModelArgs, ModelCounts
from .gpt import ASPECT, depth_for
from .layers import RMSNorm

DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4  # the paper's dt initialisation: log-uniform in [1e-3, 1e-1]
SCAN_FLOPS_PER_STATE = 7  # forward FLOPs per token, channel and state of the selective scan (see docstring)
READOUT_FLOPS_PER_STATE = 2  # ... of which the readout C . h, a batched matmul the FLOP counter sees
LOG2E = math.log2(math.e)
CPU_CHUNK_ELEMENTS = 2**17  # the automatic chunk's size on a CPU (see scan_chunk_for)
SAVE_STATES_BYTES = 2**27  # backward keeps the scan's decays and states up to this size (per call), else recomputes
MIN_LAYERS = 2  # shape policy: at least two Mamba layers (one GPT layer's worth)


@dataclass(frozen=True)
class MambaArgs(ModelArgs):
    n_layer: int = 4
    d_model: int = 64
    d_state: int = 16  # N, the state size per channel
    d_conv: int = 4  # width of the causal depthwise convolution
    expand: int = 2  # d_inner = expand * d_model
    dt_rank: int = 0  # rank of dt's projection; 0: ceil(d_model / 16), the paper's "auto"
    scan_chunk: int = 0  # steps per chunk of the selective scan; 0: auto (scan_chunk_for). Speed only
    tie_weights: bool = True  # logits use the token embedding (the paper's language models)
    bias: bool = False  # biases in in_proj and out_proj (the paper has none; the conv and dt_proj always do)

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "d_state", "d_conv", "expand")
        self.require_bool("tie_weights", "bias")
        for name, zero in (("dt_rank", "ceil(d_model / 16)"), ("scan_chunk", "chosen from the batch and width")):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_DIMENSION:
                raise UserError(f"model.{name} must be a whole number >= 0 (0: {zero}), got {v!r}")


def dt_rank_for(d_model: int, dt_rank: int = 0) -> int:
    """The rank of dt's projection: ``dt_rank``, or the paper's ceil(d_model / 16) for 0."""
    return dt_rank or math.ceil(d_model / 16)


def mixer_counts(d_model: int, d_state: int, d_conv: int, expand: int, dt_rank: int, bias: bool) -> dict[str, int]:
    """One mixer's (without its block's norm) ``weights`` (Kaplan's N), exact ``params``, and forward FLOPs per
    token: ``matmul`` (the projections and the scan's readout, batched matmuls: what the FLOP counter sees)
    and ``elementwise`` (the conv and the rest of the scan, which it does not see). ``dt_rank`` is resolved."""
    d, di, n, r = d_model, expand * d_model, d_state, dt_rank
    weights = 2 * di * d + di * (r + 2 * n) + r * di + di * d  # in_proj, x_proj, dt_proj, out_proj
    extra = di * d_conv + di + di + di * n + di + ((2 * di + d) if bias else 0)  # conv w+b, dt bias, A_log, D
    matmul = 2 * weights + READOUT_FLOPS_PER_STATE * di * n
    elementwise = 2 * d_conv * di + (SCAN_FLOPS_PER_STATE - READOUT_FLOPS_PER_STATE) * di * n
    return {"weights": weights, "params": weights + extra, "matmul": matmul, "elementwise": elementwise}


# ----------------------------------------------------------------------------------------- selective scan
def _doubling(f: torch.Tensor, b: torch.Tensor, reverse: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """Solve h_i = f_i h_{i-1} + b_i (reverse: h_i = f_i h_{i+1} + b_i) along dim 0 of one chunk, from zero.

    ``b``: (Q, ...) inputs; ``f``: (Q - 1, ...) the decays linking neighbours (forward: the decay of steps
    1..Q-1; reverse: of steps i + 1 for i = 0..Q-2). Recursive doubling: before step k, ``f`` holds the decay
    product over k steps and position i of ``b`` the recurrence over its last (next) k inputs. Returns a new
    tensor (``out`` when given); neither input is modified."""
    q, k = b.shape[0], 1
    if q == 1:
        return b if out is None else out.copy_(b)
    while k < q:
        nb = out if (2 * k >= q and out is not None) else torch.empty_like(b)
        if reverse:
            nb[q - k :] = b[q - k :]
            torch.addcmul(b[:-k], f, b[k:], out=nb[:-k])
        else:
            nb[:k] = b[:k]
            torch.addcmul(b[k:], f, b[:-k], out=nb[k:])
        b = nb
        if 2 * k < q:  # decay products over 2k steps
            f = f[:-k] * f[k:] if reverse else f[k:] * f[:-k]
        k *= 2
    return b


class _SelectiveScan(torch.autograd.Function):
    """y = SelectiveScan(u, dt, A, B, C) on time-major fp32 tensors: u, dt (T, b, D); A2 = A log2(e) as (N, D);
    B, C (T, b, N). Returns y (T, b, D). Backward keeps the decays and states of the forward pass when they
    take at most ``SAVE_STATES_BYTES``, else recomputes them chunk by chunk from the saved chunk-entry states
    (the same operations: the gradients are the same bit for bit). Each loop works on per-chunk views made
    once (``split``), so a chunk costs a dozen or two tensor operations."""

    @staticmethod
    def forward(ctx, u, dt, A2, Bm, Cm, chunk: int):
        T, b, D = u.shape
        N = A2.shape[0]
        n = (T + chunk - 1) // chunk
        save = 2 * T * b * N * D * u.element_size() <= SAVE_STATES_BYTES
        y = u.new_empty(T, b, D)
        dt_c, B_c = dt[:, :, None, :].split(chunk), Bm[:, :, :, None].split(chunk)  # (Q, b, 1, D), (Q, b, N, 1)
        v_c, C_c = (dt * u)[:, :, None, :].split(chunk), Cm[:, :, None, :].split(chunk)  # (Q, b, 1, D), (Q, b, 1, N)
        y_c = y[:, :, None, :].split(chunk)
        a_all, h_all = (u.new_empty(T, b, N, D), u.new_empty(T, b, N, D)) if save else (None, None)
        a_c, h_c = (a_all.split(chunk), h_all.split(chunk)) if save else ([None] * n, [None] * n)
        states = None if save else u.new_zeros(n, b, N, D)  # the state entering each chunk
        state = None
        for i in range(n):
            a = torch.mul(dt_c[i], A2, out=a_c[i]).exp2_()  # exp(dt A), (Q, b, N, D)
            x = B_c[i] * v_c[i]  # dt B u
            if state is not None:
                x[0].addcmul_(a[0], state)  # the state entering the chunk, folded into its first step
                if states is not None:
                    states[i].copy_(state)
            h = _doubling(a[1:], x, reverse=False, out=h_c[i])
            torch.matmul(C_c[i], h, out=y_c[i])  # y_t = C_t . h_t
            state = h[-1]
        ctx.save_for_backward(u, dt, A2, Bm, Cm, *((a_all, h_all) if save else (states,)))
        ctx.chunk = chunk
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        u, dt, A2, Bm, Cm, *kept = ctx.saved_tensors
        chunk = ctx.chunk
        T = u.shape[0]
        n = (T + chunk - 1) // chunk
        gy = gy.contiguous()
        g_v, g_B, g_C, g_dt = torch.empty_like(u), torch.empty_like(Bm), torch.empty_like(Cm), torch.empty_like(dt)
        g_A2 = torch.zeros_like(A2)
        dt_c, B_c, Br_c = dt[:, :, None, :].split(chunk), Bm[:, :, :, None].split(chunk), Bm[:, :, None, :].split(chunk)
        v_c, Cn_c = (dt * u)[:, :, None, :].split(chunk), Cm[:, :, :, None].split(chunk)
        gy_c, g_dt_c = gy[:, :, None, :].split(chunk), g_dt.split(chunk)
        g_v_c, g_B_c, g_C_c = (z[:, :, None, :].split(chunk) for z in (g_v, g_B, g_C))
        if len(kept) == 2:
            a_c, h_c = kept[0].split(chunk), kept[1].split(chunk)
        g_acc = None  # sum over full chunks of dL/d(dt A2) * dt, reduced at the end (one op per chunk)
        carry = None  # a_{t1} g_{t1}: what the next chunk's first state passes back to this chunk's last
        for i in reversed(range(n)):
            if len(kept) == 2:
                a, h = a_c[i], h_c[i]
                state = h_c[i - 1][-1] if i > 0 else None
            else:  # recompute this chunk's decays and states, as the forward pass did
                state = kept[0][i] if i > 0 else None
                a = torch.mul(dt_c[i], A2).exp2_()
                x = B_c[i] * v_c[i]
                if state is not None:
                    x[0].addcmul_(a[0], state)
                h = _doubling(a[1:], x, reverse=False)
            torch.matmul(gy_c[i], h.transpose(-1, -2), out=g_C_c[i])
            r = Cn_c[i] * gy_c[i]  # dL/dh_t through y_t
            if carry is not None:
                r[-1] += carry
            g = _doubling(a[1:], r, reverse=True)  # dL/dh_t = r_t + a_{t+1} dL/dh_{t+1}
            carry = a[0] * g[0] if i > 0 else None
            torch.matmul(Br_c[i], g, out=g_v_c[i])  # dL/d(dt u)
            torch.matmul(v_c[i], g.transpose(-1, -2), out=g_B_c[i])
            # dL/d(dt A2) = dL/dh_t * h_{t-1} * a_t * ln 2 (d exp2(s)/ds = exp2(s) ln 2; ln 2 applied at the end)
            if state is None:
                g[0] = 0
            else:
                g[0] *= state
            g[1:] *= h[:-1]
            g *= a
            torch.sum(g * A2, -2, out=g_dt_c[i])
            if g.shape[0] < chunk:
                g_A2 += (g * dt_c[i]).sum((0, 1))
            elif g_acc is None:
                g_acc = g * dt_c[i]
            else:
                g_acc.addcmul_(g, dt_c[i])
        if g_acc is not None:
            g_A2 += g_acc.sum((0, 1))
        ln2 = math.log(2)
        g_dt *= ln2
        g_A2 *= ln2
        g_dt.addcmul_(g_v, u)
        return g_v * dt, g_dt, g_A2, g_B, g_C, None


def scan_chunk_for(batch: int, d_state: int, d_inner: int, device: torch.device) -> int:
    """The automatic chunk (``scan_chunk = 0``). On a CPU, the largest power of two (4 to 64) whose chunk of
    states, chunk x batch x d_state x d_inner, holds at most CPU_CHUNK_ELEMENTS floats (half a MiB: a chunk's
    few tensors stay in cache, and fewer chunks cost less Python). Measured, forward + backward, one thread:
    batch 16 x d_inner 112: chunk 4 fastest (8: +4-10 %, 16: +25 %); batch 16 x 272: 2 and 4 alike, 8 +50 %;
    batch 4 x 112: 16 fastest. Elsewhere (a GPU) 64: fewer, larger kernels (not measured here)."""
    if device.type != "cpu":
        return 64
    q = max(1, CPU_CHUNK_ELEMENTS // (batch * d_state * d_inner))
    return min(64, max(4, 1 << (q.bit_length() - 1)))


def selective_scan(
    u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, chunk: int = 0
):
    """The selective scan of Mamba-1, without the D skip: y_t = C_t . h_t, h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t.

    u, dt: (batch, T, d_inner); A: (d_inner, d_state), negative; B, C: (batch, T, d_state). Returns y
    (batch, T, d_inner) in u's dtype; computed in fp32 (autocast off) in chunks of ``chunk`` steps (0: auto,
    :func:`scan_chunk_for`). The chunk changes only the speed (and the rounding, not the result)."""
    if chunk < 0:
        raise ValueError(f"chunk must be a positive number of steps or 0 (auto), got {chunk}")
    if chunk == 0:
        chunk = scan_chunk_for(u.shape[0], A.shape[1], A.shape[0], u.device)
    dtype = u.dtype
    with torch.autocast(device_type=u.device.type, enabled=False):
        tm = [z.float().transpose(0, 1).contiguous() for z in (u, dt, B, C)]  # time-major
        A2 = (A.float() * LOG2E).t().contiguous()  # exp(dt A) = exp2(dt A log2 e)
        y = _SelectiveScan.apply(tm[0], tm[1], A2, tm[2], tm[3], min(chunk, u.shape[1]))
    return y.transpose(0, 1).to(dtype)


# ----------------------------------------------------------------------------------------- the mixer
class MambaMixer(nn.Module):
    """The Mamba (S6) mixer of one block, (batch, T, d_model) -> (batch, T, d_model); see the module docstring."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int = 0,
        bias: bool = False,
        scan_chunk: int = 0,
    ):
        super().__init__()
        d_inner, r = expand * d_model, dt_rank_for(d_model, dt_rank)
        self.d_inner, self.d_state, self.dt_rank, self.scan_chunk = d_inner, d_state, r, scan_chunk
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv_weight = nn.Parameter(torch.empty(d_inner, d_conv))  # causal depthwise conv, per channel
        self.conv_bias = nn.Parameter(torch.empty(d_inner))
        self.x_proj = nn.Linear(d_inner, r + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(r, d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def reset_parameters(self, out_std: float) -> None:
        """GPT-2-style N(0, 0.02) matrices (out_proj: N(0, out_std)); dt_proj, A_log, D as the paper; the conv
        as PyTorch's default for a depthwise nn.Conv1d (mamba_ssm's), U(+-1/sqrt(d_conv))."""
        bound = self.conv_weight.shape[1] ** -0.5
        nn.init.uniform_(self.conv_weight, -bound, bound)
        nn.init.uniform_(self.conv_bias, -bound, bound)
        for lin in (self.in_proj, self.x_proj):
            nn.init.normal_(lin.weight, 0.0, 0.02)
        nn.init.normal_(self.out_proj.weight, 0.0, out_std)
        for lin in (self.in_proj, self.out_proj):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        bound = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        with torch.no_grad():  # softplus(bias) = dt, log-uniform in [DT_MIN, DT_MAX] (the paper's dt init)
            u = torch.rand(self.d_inner)
            dt = torch.exp(u * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN)).clamp(min=DT_FLOOR)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
            self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
            self.D.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xi, z = self.in_proj(x).chunk(2, dim=-1)
        xi = F.silu(self.causal_conv(xi))
        dt, Bm, Cm = self.x_proj(xi).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))
        y = selective_scan(xi, dt, -torch.exp(self.A_log), Bm, Cm, self.scan_chunk) + xi * self.D
        return self.out_proj(y * F.silu(z))

    def causal_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise causal conv over time, (batch, T, d_inner): out_t = bias + sum_j w_j x_{t - (d_conv-1) + j}
        (nn.Conv1d's cross-correlation with d_conv - 1 zeros on the left), as d_conv shifted multiply-adds:
        on a CPU several times faster than nn.Conv1d's depthwise kernel, forward and backward."""
        T, k = x.shape[1], self.conv_weight.shape[1]
        xp = F.pad(x, (0, 0, k - 1, 0))
        out = torch.addcmul(self.conv_bias, xp[:, :T], self.conv_weight[:, 0])
        for j in range(1, k):  # over the conv's taps, not time
            out = torch.addcmul(out, xp[:, j : j + T], self.conv_weight[:, j])
        return out


class MambaBlock(nn.Module):
    """``x + Mixer(RMSNorm(x))``."""

    def __init__(self, d_model: int, **mixer):
        super().__init__()
        self.norm = RMSNorm(d_model)
        self.mixer = MambaMixer(d_model, **mixer)

    def forward(self, x):
        return x + self.mixer(self.norm(x))


def mixer_options(cfg) -> dict:
    """The :class:`MambaMixer` keyword arguments of an args object with Mamba's fields."""
    return {
        "d_state": cfg.d_state,
        "d_conv": cfg.d_conv,
        "expand": cfg.expand,
        "dt_rank": cfg.dt_rank,
        "bias": cfg.bias,
        "scan_chunk": cfg.scan_chunk,
    }


def no_decay_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: matrices decayed, except A_log (mamba_ssm's _no_weight_decay, like D); vectors not."""
    decay, rest = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not name.endswith("A_log") else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def mamba_width_for(n_per_layer: float, layer_weights) -> int:
    """The d_model (a multiple of 8, at least 8) whose ``layer_weights(d)`` is nearest ``n_per_layer`` (in ratio)."""
    d = 8
    while layer_weights(2 * d) <= n_per_layer:  # doubling, then bisection, over multiples of 8
        d *= 2
    lo, hi = d, 2 * d  # layer_weights(lo) <= target < layer_weights(hi), unless lo = 8 is already above
    while hi - lo > 8:
        mid = 8 * ((lo + hi) // 16)
        lo, hi = (mid, hi) if layer_weights(mid) <= n_per_layer else (lo, mid)
    return min((lo, hi), key=lambda w: abs(math.log(layer_weights(w) / n_per_layer)))


def check_mamba_shape_options(aspect, min_layers) -> None:
    if isinstance(aspect, bool) or not isinstance(aspect, int | float) or not (math.isfinite(aspect) and aspect >= 1):
        raise UserError(
            f"shape option aspect (d_model / GPT-equivalent layers) must be a finite number >= 1, got {aspect!r}"
        )
    if not isinstance(min_layers, int) or isinstance(min_layers, bool) or min_layers < 1:
        raise UserError(f"shape option min_layers must be a positive whole number, got {min_layers!r}")


class ResidualStackLM(EmbeddingHeadLM):
    """What Mamba and the hybrid share: token embedding ``wte`` (no positions), a stack ``blocks`` of residual
    blocks, a final RMSNorm ``norm_f``, and an output ``head`` (None: tied to ``wte``). Subclasses build those."""

    def embedding_parameters(self):
        return [self.wte.weight] + ([] if self.head is None else [self.head.weight])

    def param_groups(self, weight_decay: float) -> list[dict]:
        return no_decay_param_groups(self, weight_decay)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after the last RMSNorm. No positions: any T works."""
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x)
        return self.norm_f(x)


class Mamba(ResidualStackLM):
    Args = MambaArgs

    def __init__(self, cfg: MambaArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(MambaBlock(cfg.d_model, **mixer_options(cfg)) for _ in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.d_model)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        nn.init.normal_(self.wte.weight, 0.0, 0.02)
        if self.head is not None:
            nn.init.normal_(self.head.weight, 0.0, 0.02)
        for block in self.blocks:
            block.mixer.reset_parameters(0.02 / math.sqrt(cfg.n_layer))  # one residual branch per layer

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: MambaArgs) -> ModelCounts:
        L, d, V = cfg.n_layer, cfg.d_model, cfg.vocab_size
        m = mixer_counts(d, cfg.d_state, cfg.d_conv, cfg.expand, dt_rank_for(d, cfg.dt_rank), cfg.bias)
        n_kaplan = L * m["weights"]
        n_non_emb = L * (m["params"] + d) + d  # + each block's RMSNorm, + the final one
        emb = V * d * (1 if cfg.tie_weights else 2)
        forward = 2 * V * d + L * (m["matmul"] + m["elementwise"]) + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(6 * n_kaplan), float(3 * forward))

    @classmethod
    def shape_for(cls, n: float, *, aspect: float = ASPECT, min_layers: int = MIN_LAYERS) -> dict[str, int]:
        """``n_layer`` = twice the GPT's depth for n (at least ``min_layers``); ``d_model`` the multiple of 8
        whose Kaplan count (default d_state, expand, dt_rank) is nearest n. ``aspect`` is the GPT's
        d_model / n_layer, so here d_model ~= aspect * n_layer / 2."""
        check_mamba_shape_options(aspect, min_layers)
        n_layer = max(min_layers, 2 * depth_for(n, aspect))
        defaults = MambaArgs()

        def layer_weights(d: int) -> int:
            return mixer_counts(d, defaults.d_state, defaults.d_conv, defaults.expand, dt_rank_for(d), False)["weights"]

        return {"n_layer": n_layer, "d_model": mamba_width_for(n / n_layer, layer_weights)}
