"""Extrapolation scoring: fit on the small end of the data, score the prediction on the large end.

This is the test that matters for a scaling law (Alabdulmohsin et al. 2022; Caballero et al. 2023):
interpolation error says little about how far a form can be trusted beyond the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimator import FitInputError, ScalingLaw


@dataclass(frozen=True)
class ExtrapolationScore:
    cut: float
    n_fit: int
    n_test: int
    rmsle: float  # root mean squared log error on the held-out (x >= cut) points
    params: dict[str, float]


def rmsle(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(pred) - np.log(y)) ** 2)))


def extrapolation_score(law: ScalingLaw, X, y, cut: float, *, along: int = 0) -> ExtrapolationScore:
    """Fit ``law`` on the points with ``X[:, along] < cut`` and return the RMSLE on the others."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    below = X[:, along] < cut
    if not below.any() or below.all():
        raise FitInputError(
            f"cut {cut:g} leaves no points on one side (x ranges {X[:, along].min():g}..{X[:, along].max():g})"
        )
    law.fit(X[below], y[below])
    pred = law.predict(X[~below])
    return ExtrapolationScore(cut, int(below.sum()), int((~below).sum()), rmsle(pred, y[~below]), dict(law.params_))
