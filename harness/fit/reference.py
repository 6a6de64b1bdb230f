"""Plain reference implementation of the Hoffmann et al. fit: a Python loop of SciPy L-BFGS-B calls.

This is the procedure as most published audits wrote it (one ``scipy.optimize.minimize`` per grid
start, analytic gradient). It is kept as the baseline that :mod:`harness.fit` is benchmarked and
tested against; it is not used by the library itself.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax


def chinchilla_huber(raw, logN, logD, logL, delta=1e-3, reduction="sum"):
    """Objective and analytic gradient in raw ``(e, a, b, alpha, beta)`` coordinates."""
    e, a, b, alpha, beta = raw
    terms = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])
    pred = logsumexp(terms, axis=0)
    r = pred - logL
    ar = np.abs(r)
    val = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))
    dr = np.clip(r, -delta, delta)
    p = softmax(terms, axis=0)
    grad = np.array(
        [
            (dr * p[2]).sum(),
            (dr * p[0]).sum(),
            (dr * p[1]).sum(),
            -(dr * p[0] * logN).sum(),
            -(dr * p[1] * logD).sum(),
        ]
    )
    scale = 1.0 / len(r) if reduction == "mean" else 1.0
    return val.sum() * scale, grad * scale


def scipy_multistart(starts, logN, logD, logL, delta=1e-3, reduction="sum"):
    """Loop of L-BFGS-B over ``starts`` (n, 5); returns (best raw params, best objective, all objectives)."""
    funs = np.full(len(starts), np.inf)
    xs = np.zeros_like(np.asarray(starts, dtype=float))
    for i, x0 in enumerate(starts):
        res = minimize(
            chinchilla_huber,
            np.asarray(x0, dtype=float),
            args=(logN, logD, logL, delta, reduction),
            jac=True,
            method="L-BFGS-B",
        )
        funs[i], xs[i] = res.fun, res.x
    best = int(np.argmin(funs))
    return xs[best], funs[best], funs
