"""The GPT with a Mixture-of-Softmaxes output layer (MoS).

Yang, Dai, Salakhutdinov & Cohen (2017), "Breaking the Softmax Bottleneck: A High-Rank RNN Language Model",
arXiv:1711.03953 (one of the variants Tay et al. 2022, arXiv:2207.10551, scale).

    tokens -> the GPT body (embeddings, n_layer x Block, final LayerNorm) -> h (B, T, d)
    prior:     log pi = log_softmax(h W_pi^T)               W_pi: d -> K, no bias
    contexts:  h_k = tanh(W_k h + b_k),  k = 1..K             all K as one Linear(d, K d)
    output:    log p(v) = logsumexp_k [ log pi_k + log_softmax_v(h_k W_out^T)_v ]
               W_out (V x d) is the GPT's output projection, shared by the K components (as in the paper),
               tied to the token embedding when ``tie_weights``
    loss:      -log p(target), computed in log space (log_softmax per component, logsumexp over k), in fp32

The body is :class:`~harness.models.gpt.GPT` itself (this class subclasses it and adds the two projections);
``hidden(idx)`` is the GPT's (the body's final normed hidden states), and ``logits(idx)`` returns log p, the
log of the mixture probabilities: valid logits (softmax(log p) = p), so argmax and causality checks work.

Choices and simplifications versus the paper, and why:

* A Transformer body instead of the paper's AWD-LSTM; no dropout on h_k (the harness trains without dropout,
  the paper's variational dropouts belong to its LSTM recipe).
* The context projection has a bias (``bias``), the prior none, as in the paper's released code; both are
  initialised N(0, 0.02) like the GPT's linears, so the initial mixture is near uniform (loss ~ log V).
* K (``n_softmax``) = 4 by default (the paper uses 15 at d = 960-ish; at our widths a few components
  suffice to lift the rank bound, and the output cost grows as K).

Counts: W_pi (K d) and W_k (K d^2, + K d bias) are non-embedding (Kaplan N gains K d^2 + K d); the shared
W_out stays an embedding parameter, as for the GPT. FLOPs: the output logits cost K x 2 d V per token
(forward), the projections 2 d K d + 2 d K; the rest is the GPT's count (Hoffmann App. F, times 3).
Loss: ``forward`` goes through a chunked mixture cross-entropy written here in plain PyTorch (as
:mod:`kernels.chunked` does for the plain softmax: gradients computed in the forward pass, a few thousand
logits at a time, 2.5x faster on CPU than autograd through the full logits), so the K x (B T V) logits never
exist at once; the ``kernels`` setting has no effect on it (there is no Triton kernel for a mixture).
``logits(idx)`` and ``token_losses`` with grad enabled do build all K x (B T V) logits (fine at our sizes:
K = 4, B T = 2048, V = 4096 is 32 M floats).

Shape policy: the GPT's (aspect ratio, head size), with d_model solved from (12 n_layer + K) d^2 = n so the
Kaplan N including the MoS projections is about ``n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kernels.chunked import chunk_rows

from ..errors import UserError
from .config import ModelCounts
from .gpt import ASPECT, GPT, HEAD_DIM, GPTArgs, _check_shape_options


def _chunk_tokens(n_softmax: int, d: int, vocab: int, device: torch.device) -> int:
    """Tokens per chunk of the mixture loss: about 2^19 fp32 logits (K per token) on a CPU, the size that stays
    in cache (:func:`kernels.chunked.chunk_rows`); about 2^27 on a GPU (fewer, larger launches)."""
    if device.type == "cpu":
        return max(1, chunk_rows(d, vocab) // n_softmax)
    return max(1, 2**27 // (n_softmax * vocab))


def _mixture_chunk(c, weight, log_pi, t, grads: bool):
    """One chunk: contexts ``c`` (m, K, d), ``log_pi`` (m, K), targets ``t`` (m,). Returns log p(target) (m,)
    and, with ``grads``, d(-log p)/d logits (m, K, V) and d(-log p)/d log pi (m, K)."""
    m, K, d = c.shape
    z = F.linear(c.reshape(m * K, d), weight).view(m, K, -1)
    top = z.amax(dim=-1, keepdim=True)
    at = t.view(m, 1, 1).expand(m, K, 1)
    picked = z.gather(-1, at)
    e = z.sub_(top).exp_()  # in place: exp(z - max z)
    norm = e.sum(dim=-1, keepdim=True)
    a = log_pi + (picked - top - norm.log()).squeeze(-1)  # log pi_k + log_softmax_k(target)
    log_p = torch.logsumexp(a, dim=-1)
    if not grads:
        return log_p, None, None
    r = torch.exp(a - log_p.unsqueeze(-1))  # posterior of the components given the target
    g = e.mul_(r.unsqueeze(-1) / norm)  # r_k softmax_k, in place
    g.scatter_add_(-1, at, -r.unsqueeze(-1))  # - r_k at the target: d(-log p)/dz = r_k (softmax_k - onehot)
    return log_p, g, -r


def mixture_nll(contexts, weight, log_pi, targets) -> torch.Tensor:
    """-log p(target) (B, T) of the mixture, chunk by chunk, no gradient (evaluation)."""
    B, T, K, d = contexts.shape
    c, lp, t = contexts.reshape(B * T, K, d), log_pi.reshape(B * T, K), targets.reshape(B * T)
    with torch.autocast(contexts.device.type, enabled=False):
        c, w = c.float(), weight.float()
        step = _chunk_tokens(K, d, w.shape[0], c.device)
        out = [
            -_mixture_chunk(c[i : i + step], w, lp[i : i + step], t[i : i + step], False)[0]
            for i in range(0, B * T, step)
        ]
    return torch.cat(out).view(B, T)


class _MixtureCrossEntropy(torch.autograd.Function):
    """Mean -log p(target) of the mixture with every gradient computed in the forward pass, chunk by chunk (as
    :mod:`kernels.chunked` does for the softmax): the K x (B T V) logits never exist at once and each chunk's
    stay in cache. Inputs: contexts (B, T, K, d), weight (V, d), log pi (B, T, K) fp32, targets (B, T)."""

    @staticmethod
    def forward(ctx, contexts, weight, log_pi, targets):
        B, T, K, d = contexts.shape
        M = B * T
        c, lp, t = contexts.reshape(M, K, d), log_pi.reshape(M, K), targets.reshape(M)
        with torch.autocast(contexts.device.type, enabled=False):
            c, w = c.float(), weight.float()
            step = _chunk_tokens(K, d, w.shape[0], c.device)
            grad_c, grad_w, grad_pi = torch.empty_like(c), torch.zeros_like(w), torch.empty_like(lp)
            total = c.new_zeros(())
            for i in range(0, M, step):
                ci = c[i : i + step]
                m = ci.shape[0]
                log_p, g, grad_pi[i : i + m] = _mixture_chunk(ci, w, lp[i : i + step], t[i : i + step], True)
                total -= log_p.sum()
                g = g.view(m * K, -1)
                grad_c[i : i + m] = (g @ w).view(m, K, d)
                grad_w.addmm_(g.T, ci.reshape(m * K, d))
        ctx.save_for_backward(grad_c.view(contexts.shape), grad_w, grad_pi.view(log_pi.shape))
        ctx.dtypes = (contexts.dtype, weight.dtype)
        ctx.rows = M
        return total / M

    @staticmethod
    def backward(ctx, grad_out):
        grad_c, grad_w, grad_pi = ctx.saved_tensors
        scale = grad_out / ctx.rows
        return (grad_c * scale).to(ctx.dtypes[0]), (grad_w * scale).to(ctx.dtypes[1]), grad_pi * scale, None


@dataclass(frozen=True)
class MoSArgs(GPTArgs):
    n_softmax: int = 4  # K, mixture components

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("n_softmax")


class MixtureOfSoftmaxes(GPT):
    Args = MoSArgs

    def __init__(self, cfg: MoSArgs):
        super().__init__(cfg)
        K, d = cfg.n_softmax, cfg.d_model
        self.prior = nn.Linear(d, K, bias=False)
        self.latent = nn.Linear(d, K * d, bias=cfg.bias)
        for m in (self.prior, self.latent):
            self._init(m)

    def mixture_inputs(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log pi (B, T, K) in fp32, contexts h_k (B, T, K, d)) of final hidden states ``h`` (B, T, d)."""
        B, T, d = h.shape
        log_pi = torch.log_softmax(self.prior(h).float(), dim=-1)
        return log_pi, torch.tanh(self.latent(h)).view(B, T, self.config.n_softmax, d)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """log p (B, T, V): the log of the mixture probabilities."""
        log_pi, contexts = self.mixture_inputs(self.hidden(idx))
        z = F.linear(contexts, self.head_weight).float()
        return torch.logsumexp(log_pi.unsqueeze(-1) + torch.log_softmax(z, dim=-1), dim=2)

    def token_losses(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """-log p(target) of every position (B, T), in fp32. Without grad (evaluation), chunk by chunk."""
        h = self.hidden(idx)
        log_pi, contexts = self.mixture_inputs(h)
        if not torch.is_grad_enabled():
            return mixture_nll(contexts, self.head_weight, log_pi, targets)
        z = F.linear(contexts, self.head_weight).float()
        B, T, K, V = z.shape
        # log_softmax_k(target) per component through the fused cross-entropy (backward: softmax - one-hot)
        log_q = -F.cross_entropy(z.view(-1, V), targets.unsqueeze(-1).expand(B, T, K).reshape(-1), reduction="none")
        return -torch.logsumexp(log_pi + log_q.view(B, T, K), dim=-1)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_pi, contexts = self.mixture_inputs(self.hidden(idx))
        if not torch.is_grad_enabled():  # evaluation: the chunked loss without its gradients
            return mixture_nll(contexts, self.head_weight, log_pi, targets).mean()
        return _MixtureCrossEntropy.apply(contexts, self.head_weight, log_pi, targets)

    # ----------------------------------------------------------------------------------- accounting
    @classmethod
    def counts(cls, cfg: MoSArgs) -> ModelCounts:
        base = GPT.counts(cfg)
        K, d, V = cfg.n_softmax, cfg.d_model, cfg.vocab_size
        weights = K * d + K * d * d  # W_pi, W_k: non-embedding matrices
        extra = weights + (K * d if cfg.bias else 0)  # + the context bias
        # forward per token: the prior and context projections, and K - 1 more output projections than the GPT
        forward = 2 * d * K + 2 * d * K * d + (K - 1) * 2 * d * V
        return ModelCounts(
            base.n_kaplan + weights,
            base.n_non_embedding + extra,
            base.n_total + extra,
            base.flops_per_token_kaplan + 6 * weights,
            base.flops_per_token_hoffmann + 3 * forward,
        )

    @classmethod
    def shape_for(
        cls,
        n: float,
        *,
        n_softmax: int = 4,
        aspect: int = ASPECT,
        head_dim: int = HEAD_DIM,
        min_layers: int = 1,
    ) -> dict[str, int]:
        """The GPT's policy (n_layer from the aspect ratio, heads of ``head_dim``) with d_model from
        (12 n_layer + n_softmax) d^2 = n, so the MoS projections are inside the budget."""
        _check_shape_options(aspect=aspect, head_dim=head_dim, min_layers=min_layers)
        if not isinstance(n_softmax, int) or isinstance(n_softmax, bool) or n_softmax < 1:
            raise UserError(f"shape option n_softmax must be a positive whole number, got {n_softmax!r}")
        n_layer = max(1, min_layers, round((n / (12 * aspect**2)) ** (1 / 3)))
        d_float = math.sqrt(n / (12 * n_layer + n_softmax))
        n_head = max(1, round(d_float / head_dim))
        per_head = max(8, 8 * round(d_float / n_head / 8))
        return {"n_layer": n_layer, "d_model": n_head * per_head, "n_head": n_head, "n_softmax": n_softmax}
