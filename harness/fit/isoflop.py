"""Hoffmann et al. (2022) Approach 2: IsoFLOP profiles.

For each compute budget C, fit a parabola of loss against log10 N through the runs trained with that
budget; its vertex is N_opt(C). Then fit ``N_opt = k C^a`` (a straight line in log-log). The same
functions serve published points (grouped by budget) and our own IsoFLOP sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimator import FitInputError
from .forms import IsoFlopParabola


@dataclass(frozen=True)
class IsoFlopProfile:
    budget: float
    n_points: int
    log10_n_opt: float
    loss_min: float
    curvature: float  # k in L = L_min + k (log10 N - log10 N_opt)^2
    vertex_inside: bool  # vertex lies within the sampled range of N (else it is an extrapolation)


def group_by_budget(C: np.ndarray, budgets: np.ndarray, tol_dex: float) -> np.ndarray:
    """Index of the budget each run belongs to (|log10 C - log10 budget| <= tol_dex), -1 for none."""
    lc = np.log10(np.asarray(C, dtype=float))[:, None]
    lb = np.log10(np.asarray(budgets, dtype=float))[None, :]
    dist = np.abs(lc - lb)
    idx = np.argmin(dist, axis=1)
    idx[dist[np.arange(len(idx)), idx] > tol_dex] = -1
    return idx


def fit_profile(
    N: np.ndarray, L: np.ndarray, budget: float, weights: np.ndarray | None = None
) -> IsoFlopProfile | None:
    """Weighted least-squares parabola of L on u = log10 N (:meth:`IsoFlopParabola.vertex`); None if it opens
    downward (no minimum) or the points are too few to tell."""
    u = np.log10(np.asarray(N, dtype=float))
    w = np.ones_like(u) if weights is None else np.asarray(weights, dtype=float)
    if np.count_nonzero(w) < 4 or np.unique(u[w > 0]).size < 3:
        return None
    v = IsoFlopParabola.vertex(u, L, w)
    if v is None:
        return None
    u0, loss_min, k = v
    inside = bool(u[w > 0].min() <= u0 <= u[w > 0].max())
    return IsoFlopProfile(float(budget), int(np.count_nonzero(w)), float(u0), float(loss_min), float(k), inside)


def isoflop_profiles(
    N, C, L, budgets, *, tol_dex: float = 0.05, min_points: int = 5, weights: np.ndarray | None = None
) -> list[IsoFlopProfile]:
    """One profile per budget with at least ``min_points`` runs and a vertex inside the sampled N range."""
    N, C, L = (np.asarray(a, dtype=float) for a in (N, C, L))
    w = np.ones_like(N) if weights is None else np.asarray(weights, dtype=float)
    group = group_by_budget(C, budgets, tol_dex)
    out = []
    for j, b in enumerate(budgets):
        sel = (group == j) & (w > 0)
        if sel.sum() < min_points:
            continue
        prof = fit_profile(N[group == j], L[group == j], b, w[group == j])
        if prof is not None and prof.vertex_inside:
            out.append(prof)
    return out


def optimal_size_exponent(profiles: list[IsoFlopProfile]) -> tuple[float, float]:
    """Fit log10 N_opt = a log10 C + c across profiles; returns (a, c)."""
    if len(profiles) < 3:
        raise FitInputError(f"need IsoFLOP minima at 3 or more budgets to fit an exponent, have {len(profiles)}")
    lc = np.log10([p.budget for p in profiles])
    ln = np.array([p.log10_n_opt for p in profiles])
    a, c = np.polyfit(lc, ln, 1)
    return float(a), float(c)
