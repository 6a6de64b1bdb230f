"""Lightweight and dynamic convolution language models: attention replaced by a causal, softmax-normalised conv.

    tokens -> token embedding (+ learned positions) -> n_layer x ConvBlock -> LayerNorm -> output projection
    ConvBlock(x):  x = x + ConvModule(LN(x));  x = x + MLP(LN(x))
    ConvModule(u): a = GLU(Linear(d, 2d)(u))                         (B, T, d)
                   y[t, c] = sum_{k < K} w[t, h(c), k] a[t - K + 1 + k, c]   (zero left padding: causal)
                   out = Linear(d, d)(y)
    kernel w:      LightConv:   softmax_k(W),            W: (n_head, K), one per layer, the same at every t
                   DynamicConv: softmax_k(Linear(d, n_head K)(a[t])), predicted from the current input at t
    MLP:           Linear(d, 4d) -> GELU -> Linear(4d, d)   (the GPT's, harness.models.layers.MLP)

Wu et al. (2019), "Pay Less Attention with Lightweight and Dynamic Convolutions", arXiv 1901.10430; compared as
language models by Tay et al. (2022), "Scaling Laws vs Model Architectures", arXiv 2207.10551. The two models
share the block and differ only in where the kernel comes from (:class:`LightKernel`, :class:`DynamicKernel`).
Heads: channel c uses head h(c) = c // (d / n_head), so each block of d / n_head channels shares a kernel.

The causal conv: LightConv's kernel is the same at every position, so it runs as a depthwise ``F.conv1d`` over
the left-padded sequence (its (n_head, K) kernel repeated to the d channels); DynamicConv's kernel changes with
t, so it runs as ``unfold`` of the left-padded sequence into (B, T, d, K) windows and one einsum with the
(B, T, n_head, K) kernels (no loop over time). Both count 2 K d FLOPs per token (the counter sees both).

Simplifications versus the paper:

* one kernel size for every layer (``kernel_size``, default 31, Wu et al.'s largest; their decoders grow it
  3, 7, 15, 31, ... with depth); it must be at most n_ctx (wider taps would only ever see padding);
* DropConnect on the normalised kernel ("weight dropout") and all other dropout omitted (the harness trains
  without dropout);
* learned absolute position embeddings as the GPT's (Wu et al. use sinusoidal ones);
* GPT-2 initialisation (N(0, 0.02); the residual output projections, ConvModule's and the MLP's,
  N(0, 0.02 / sqrt(2 n_layer))) instead of fairseq's Xavier; LightConv's raw kernel N(0, 0.02) too, so the
  softmax starts near a uniform average over the window.

Counts: LightConv's (n_head, K) kernel is a stored parameter matrix and DynamicConv's kernel projection
(d x n_head K) a weight matrix: both are in Kaplan's N. FLOPs per token: 2 K d per layer for applying the
conv, plus DynamicConv's kernel prediction 2 d n_head K and its softmax 3 n_head K (App. F's softmax term for
attention, 3 n_head n_ctx, with the window K in place of the context).
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
from .gpt import ASPECT, HEAD_DIM, _check_shape_options, scale_residual_projections
from .layers import MLP, LayerNorm

# Shape policy for ``shape_for``: the GPT's (d_model ~= ASPECT * n_layer, heads of HEAD_DIM channels; Wu et al.
# use 16 heads at d_model 1024, i.e. 64 channels per head), with N per layer = (3 + 2 mlp_ratio) d^2 + the kernel
# term (n_head K for LightConv, d n_head K for DynamicConv).
DEFAULT_KERNEL_SIZE = 31


@dataclass(frozen=True)
class ConvArgs(ModelArgs):
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 1  # kernels per layer (each shared by d_model / n_head channels)
    kernel_size: int = DEFAULT_KERNEL_SIZE  # K, the causal window: position t reads t - K + 1 .. t
    mlp_ratio: int = 4
    tie_weights: bool = False
    bias: bool = True  # biases in the linear layers and LayerNorms

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_layer", "d_model", "n_head", "kernel_size", "mlp_ratio")
        self.require_bool("tie_weights", "bias")
        if self.d_model % self.n_head:
            raise UserError(
                f"model.d_model ({self.d_model}) must be a multiple of model.n_head ({self.n_head}): "
                "each kernel is shared by d_model / n_head channels"
            )
        if self.kernel_size > self.n_ctx:
            raise UserError(
                f"model.kernel_size ({self.kernel_size}) must be at most model.n_ctx ({self.n_ctx}): taps further "
                "back than the context would only ever see padding"
            )


def causal_conv(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Causal depthwise conv of ``a`` (B, T, d) with normalised kernels ``w``: (H, K), the same at every
    position, or (B, T, H, K), one per position. ``y[:, t, c] = sum_k w[.., h(c), k] a[:, t - K + 1 + k, c]``
    with zeros before the start, h(c) = c // (d / H)."""
    B, T, d = a.shape
    H, K = w.shape[-2:]
    padded = F.pad(a, (0, 0, K - 1, 0))  # K - 1 zero positions before t = 0
    if w.dim() == 2:
        weight = w.repeat_interleave(d // H, dim=0).unsqueeze(1)  # (d, 1, K), channel c -> head c // (d / H)
        return F.conv1d(padded.transpose(1, 2), weight, groups=d).transpose(1, 2)
    windows = padded.unfold(1, K, 1).reshape(B, T, H, d // H, K)  # windows[:, t, ..., k] = a[:, t - K + 1 + k]
    return torch.einsum("bthck,bthk->bthc", windows, w).reshape(B, T, d)


class LightKernel(nn.Module):
    """LightConv's kernel: one learned (H, K) matrix per layer, softmax-normalised over the K taps."""

    def __init__(self, cfg: ConvArgs):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cfg.n_head, cfg.kernel_size))

    def forward(self, a):
        return F.softmax(self.weight, dim=-1)


class DynamicKernel(nn.Module):
    """DynamicConv's kernel: predicted at each position from the current input, Linear(d, H K), softmax over K."""

    def __init__(self, cfg: ConvArgs):
        super().__init__()
        self.shape = (cfg.n_head, cfg.kernel_size)
        self.linear = nn.Linear(cfg.d_model, cfg.n_head * cfg.kernel_size, bias=cfg.bias)

    def forward(self, a):
        B, T, _ = a.shape
        return F.softmax(self.linear(a).view(B, T, *self.shape), dim=-1)


class ConvModule(nn.Module):
    def __init__(self, cfg: ConvArgs, kernel: type[nn.Module]):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 2 * cfg.d_model, bias=cfg.bias)
        self.kernel = kernel(cfg)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, u):
        a = F.glu(self.fc(u), dim=-1)  # first half * sigmoid(second half)
        return self.proj(causal_conv(a, self.kernel(a)))


class ConvBlock(nn.Module):
    def __init__(self, cfg: ConvArgs, kernel: type[nn.Module]):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model, cfg.bias)
        self.conv = ConvModule(cfg, kernel)
        self.ln2 = LayerNorm(cfg.d_model, cfg.bias)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, cfg.bias)

    def forward(self, x):
        x = x + self.conv(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class _ConvLM(EmbeddingHeadLM):
    """The shared model; subclasses name their kernel."""

    Args = ConvArgs
    Kernel: type[nn.Module]

    def __init__(self, cfg: ConvArgs):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(ConvBlock(cfg, self.Kernel) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.d_model, cfg.bias)
        self.head = None if cfg.tie_weights else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, LightKernel):
                nn.init.normal_(m.weight, 0.0, 0.02)
        scale_residual_projections(self, cfg.n_layer)  # ConvModule's and the MLP's

    def embedding_parameters(self):
        return [self.wte.weight, self.wpe.weight] + ([] if self.head is None else [self.head.weight])

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, d_model), after the last LayerNorm."""
        T = idx.shape[1]
        if T > self.config.n_ctx:
            raise ValueError(f"sequence length {T} exceeds n_ctx {self.config.n_ctx}")
        x = self.wte(idx) + self.wpe.weight[:T]
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    # ----------------------------------------------------------------------------------- accounting
    dynamic: bool = False

    @classmethod
    def _kernel_weights(cls, d: int, H: int, K: int) -> int:
        return d * H * K if cls.dynamic else H * K

    @classmethod
    def counts(cls, cfg: ConvArgs) -> ModelCounts:
        L, d, V, T, H, K, f = (
            cfg.n_layer,
            cfg.d_model,
            cfg.vocab_size,
            cfg.n_ctx,
            cfg.n_head,
            cfg.kernel_size,
            cfg.mlp_ratio,
        )
        kernel = cls._kernel_weights(d, H, K)
        n_kaplan = L * (2 * d * d + d * d + kernel + 2 * f * d * d)  # fc (d -> 2d), proj, kernel, MLP
        biases = (2 * d + d + (H * K if cls.dynamic else 0) + f * d + d) if cfg.bias else 0
        norms = 2 * d if cfg.bias else d
        n_non_emb = L * (n_kaplan // L + biases + 2 * norms) + norms  # + final LayerNorm
        emb = V * d + T * d + (0 if cfg.tie_weights else V * d)
        # Kaplan: 6 N for the per-token weights plus a window term 6 n_layer K d for applying the conv (Kaplan's
        # attention term 6 n_layer n_ctx d with the window K in place of the context). LightConv's (H, K) kernel
        # is in N though it is one kernel per sequence, not weights each token multiplies: it is left out of the
        # 6 N part (its use is the window term). DynamicConv's kernel projection is an ordinary per-token matmul.
        per_token = n_kaplan - (0 if cls.dynamic else L * H * K)
        kaplan = 6 * per_token + 6 * L * K * d
        # Hoffmann et al. (2022) App. F style, forward per token: embeddings; per layer fc 2*2d*d, the conv
        # 2 K d, proj 2 d d, (dynamic: kernel prediction 2 d H K and its softmax 3 H K), MLP; output logits.
        layer = 2 * 2 * d * d + 2 * K * d + 2 * d * d + 4 * f * d * d
        if cls.dynamic:
            layer += 2 * d * H * K + 3 * H * K
        forward = 2 * V * d + L * layer + 2 * d * V
        return ModelCounts(n_kaplan, n_non_emb, n_non_emb + emb, float(kaplan), float(3 * forward))

    @classmethod
    def shape_for(
        cls, n: float, *, aspect: int = ASPECT, head_dim: int = HEAD_DIM, min_layers: int = 1
    ) -> dict[str, int]:
        """n_layer, d_model, n_head for ~n Kaplan parameters at the default kernel size and mlp_ratio 4:
        N = n_layer (11 d^2 + kernel), the kernel term taken as K d^2 / head_dim for DynamicConv (n_head =
        d / head_dim) and left out for LightConv (n_head K is under 1 % of N)."""
        _check_shape_options(aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        per_d2 = 3 + 2 * 4 + (DEFAULT_KERNEL_SIZE / head_dim if cls.dynamic else 0)
        n_layer = max(1, min_layers, round((n / (per_d2 * aspect**2)) ** (1 / 3)))
        d_float = math.sqrt(n / (per_d2 * n_layer))
        n_head = max(1, round(d_float / head_dim))
        per_head = max(8, 8 * round(d_float / n_head / 8))
        return {"n_layer": n_layer, "d_model": n_head * per_head, "n_head": n_head}


class LightConv(_ConvLM):
    """Lightweight convolutions: a learned softmax-normalised (n_head, K) kernel per layer."""

    Kernel = LightKernel


class DynamicConv(_ConvLM):
    """Dynamic convolutions: the (n_head, K) kernel predicted at each position from the current input."""

    Kernel = DynamicKernel
    dynamic = True
