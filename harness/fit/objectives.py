"""Fitting objectives on log-space residuals ``r = log L_pred - log L``.

* ``huber``: Hoffmann et al. (2022) Appendix D.2, Huber loss with threshold ``delta`` (1e-3 there),
  ``0.5 r^2`` for ``|r| <= delta`` and ``delta (|r| - delta / 2)`` beyond.
* ``mse``: squared log error, ``r^2`` (Caballero et al. fit BNSL by mean squared log error).
* ``huber_nll``: the negative log-likelihood of a Huber-distributed residual with a free scale sigma
  (Besiroglu et al. 2024, "Chinchilla scaling: a replication attempt"). It adds one raw parameter,
  ``log_sigma``, after the form's own.

``reduction`` is ``"sum"`` (Hoffmann et al. write a sum) or ``"mean"``. They have the same minimiser, but not
the same result from a finite-tolerance optimiser: the absolute stopping rules of L-BFGS fire 1/n sooner on
a mean. That difference is a finding of the Chinchilla audit, so it is a parameter, never a hidden choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.stats import norm

LOSSES = ("huber", "mse", "huber_nll")
REDUCTIONS = ("sum", "mean")


def huber_log_normaliser(delta: float) -> float:
    """log of the normalising constant of the density ``exp(-huber_delta(z))`` on the real line."""
    z = math.sqrt(2 * math.pi) * (1 - 2 * norm.sf(delta)) + 2 * math.exp(-0.5 * delta**2) / delta
    return math.log(z)


@dataclass(frozen=True)
class Objective:
    loss: str = "huber"
    delta: float = 1e-3
    reduction: str = "sum"

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduction!r}; choose 'sum' or 'mean'")
        if not self.delta > 0:
            raise ValueError("delta must be positive")

    @property
    def n_extra(self) -> int:
        """Raw parameters the objective adds to the form's (the Huber scale for ``huber_nll``)."""
        return 1 if self.loss == "huber_nll" else 0

    def pointwise(self, r: torch.Tensor, extra: torch.Tensor | None):
        """Per-point loss and its derivative in r (and in log sigma for ``huber_nll``)."""
        d = self.delta
        if self.loss == "mse":
            return r * r, 2 * r, None
        if self.loss == "huber":
            # 0.5 r^2 inside delta, delta (|r| - delta/2) outside: torch's fused kernel is exactly this
            val = torch.nn.functional.huber_loss(r, torch.zeros_like(r), reduction="none", delta=d)
            return val, r.clamp_(-d, d), None
        log_sigma = extra[:, :1]
        sigma = log_sigma.exp()
        z = r / sigma
        az = z.abs()
        rho = torch.where(az <= d, 0.5 * z * z, d * (az - 0.5 * d))
        psi = z.clamp(-d, d)
        val = rho + log_sigma + huber_log_normaliser(d)
        return val, psi / sigma, 1.0 - psi * z

    def __call__(self, pred, logy, weights, extra, need_grad, unit_weights=False):
        """Objective per row, and (when asked) d/d pred of shape (b, n) and d/d extra of shape (b, n_extra).

        ``unit_weights`` says that every weight is 1 (the plain fit), which skips the products."""
        r = pred - logy[None, :]
        val, dr, dextra = self.pointwise(r, extra)
        w = weights
        unit = unit_weights
        scale = 1.0 / w.sum(dim=-1, keepdim=True) if self.reduction == "mean" else 1.0
        wv = val if unit else w * val
        f = (wv * scale).sum(dim=1) if self.reduction == "mean" else wv.sum(dim=1)
        if not need_grad:
            return f, None, None
        wdr = dr if unit else w * dr
        gx = None if dextra is None else ((dextra if unit else w * dextra) * scale).sum(dim=1, keepdim=True)
        return f, wdr * scale, gx
