"""The compute-efficient frontier of a set of learning curves.

Kaplan et al. (2020, Section 6 and Fig. 13) define ``L(C_min)`` as the lower envelope, over model sizes, of
loss against training compute; Hoffmann et al. (2022) Approach 1 reads ``N_opt(C)`` and ``D_opt(C)`` off the
same envelope. Each run contributes its learning curve ``(compute, loss)`` at its evaluation points; the
envelope at compute C is the lowest loss any run had reached by C, and the run that achieves it gives N_opt(C).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .estimator import FitInputError


@dataclass(frozen=True)
class Frontier:
    compute: np.ndarray  # (G,) grid of compute values (log-spaced)
    loss: np.ndarray  # (G,) lowest loss reached by that compute
    n_params: np.ndarray  # (G,) size of the model that reached it
    tokens: np.ndarray  # (G,) tokens that model had seen by then
    run_index: np.ndarray  # (G,) which curve


def learning_curve_frontier(
    curves: Sequence[tuple[float, np.ndarray, np.ndarray]],
    *,
    n_grid: int = 50,
    flops_per_token: Sequence[float] | None = None,
) -> Frontier:
    """Envelope of learning curves.

    ``curves`` holds one ``(n_params, tokens, loss)`` triple per run (tokens and loss at its evaluation
    points, tokens increasing). Compute is ``flops_per_token * tokens`` with ``6 N`` per token by default.
    Between evaluation points a curve is interpolated linearly in (log compute, log loss); a run contributes
    nothing before its first evaluation or after its last.
    """
    if len(curves) < 2:
        raise FitInputError(f"need the learning curves of at least 2 runs for a frontier, got {len(curves)}")
    cs, ls = [], []
    for i, (n, tok, loss) in enumerate(curves):
        tok, loss = np.asarray(tok, dtype=float), np.asarray(loss, dtype=float)
        if tok.shape != loss.shape or tok.ndim != 1 or tok.size < 2:
            raise FitInputError(f"curve {i}: tokens and loss must be 1-d arrays of the same length >= 2")
        if np.any(np.diff(tok) <= 0) or np.any(tok <= 0) or np.any(~np.isfinite(loss)) or np.any(loss <= 0):
            raise FitInputError(f"curve {i}: tokens must be positive and increasing, losses finite and positive")
        fpt = 6.0 * n if flops_per_token is None else float(flops_per_token[i])
        cs.append(np.log(fpt * tok))
        ls.append(np.log(loss))
    lo = min(c[0] for c in cs)
    hi = max(c[-1] for c in cs)
    grid = np.linspace(lo, hi, n_grid)
    best = np.full(n_grid, np.inf)
    who = np.full(n_grid, -1)
    for i, (c, l) in enumerate(zip(cs, ls, strict=True)):
        inside = (grid >= c[0]) & (grid <= c[-1])
        vals = np.full(n_grid, np.inf)
        vals[inside] = np.interp(grid[inside], c, l)
        better = vals < best
        best[better], who[better] = vals[better], i
    n = np.array([curves[i][0] for i in who], dtype=float)
    fpt = np.array([6.0 * curves[i][0] if flops_per_token is None else flops_per_token[i] for i in who])
    compute = np.exp(grid)
    return Frontier(compute=compute, loss=np.exp(best), n_params=n, tokens=compute / fpt, run_index=who)
