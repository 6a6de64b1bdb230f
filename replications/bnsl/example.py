"""The BNSL paper's worked example: 4-digit addition, test cross-entropy against training-set size.

The 17 measurements are the ones in the authors' released script (ethancaballero/broken_neural_scaling_laws,
``fit_bnsl_and_extrapolate__4_digit_addition__dataset_size_x-axis.py``, commit ffa608f; the paper's Figure 4
left in arXiv v17's numbering). The first 14 are fitted, the last 3 extrapolated. Two procedures:

* **the authors'** (:func:`authors_fit`): a brute-force grid over all six parameters of the 1-break BNSL,
  minimising the mean squared error of ``log(y + 1)`` with ``b`` and ``d1`` on the scale ``1.25^p - 1``, then
  Levenberg-Marquardt least squares on ``log(y + 1)`` from the grid's best point (``scipy.optimize.curve_fit``).
  The grid is evaluated here in vectorised blocks rather than point by point; it is the same grid.
* **ours** (:class:`harness.fit.ScalingLaw`, form ``bnsl``): least squares on ``log y`` from the form's grid of
  starts.

The authors' fitted parameters are the values their companion script (``..._noiseless_simulation.py``, same
commit) hard-codes as the ground truth of its simulation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.optimize

from harness.fit import ScalingLaw

X = np.array([160, 192, 256, 320, 384, 448, 480, 512, 544, 576, 608, 640, 672, 736, 800, 864, 928], dtype=float)
Y = np.array(
    [
        *(2.13809046, 2.11813418, 2.08955508, 2.06988398, 2.05404987, 2.03837089, 2.02814281, 2.00496872),
        *(1.95576149, 1.86313841, 1.70891537, 1.50637664, 1.29754721, 0.96559684, 0.75856477, 0.64768338),
        0.55695445,
    ]
)
SPLIT = 14  # the first 14 points are fitted
NAMES = ("a", "b", "c0", "c1", "d1", "f1")
# the authors' fit of the first 14 points (their noiseless-simulation script's ground truth)
PUBLISHED = {
    "a": 0.41388453071629455,
    "b": 2.2772722897737556,
    "c0": 0.055077348404973955,
    "c1": 5.662903816010331,
    "d1": 612.5836172918001,
    "f1": 0.059193036393742314,
}
# the authors' grid: a, log_1.25(b + 1), c0, c1, log_1.25(d1 + 1), f1 (163,840 points)
GRID = (
    np.arange(0.0, 1.0, 0.1),
    np.arange(0.0, 40.0, 2.5),
    np.arange(0.0, 1.0, 0.25),
    np.arange(0.0, 1.0, 0.25),
    np.arange(0.0, 40.0, 2.5),
    np.arange(0.0, 1.0, 0.25),
)


def bnsl1(x, a, b, c0, c1, d1, f1):
    """Caballero et al. eq. (1) with one break."""
    return a + b * x ** (-c0) * (1 + (x / d1) ** (1 / f1)) ** (-c1 * f1)


def rmsle(pred, y) -> float:
    return float(np.sqrt(np.mean((np.log(pred) - np.log(y)) ** 2)))


def _grid_objective(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The grid point of least mean squared log(y + 1) error (a NaN or infinite value, e.g. at f1 = 0, never
    wins), on the authors' scale for b and d1."""
    a, pb, c0, c1, pd, f1 = (g.reshape(-1, 1) for g in np.meshgrid(*GRID, indexing="ij"))
    b, d1 = 1.25**pb - 1 + 1e-8, 1.25**pd - 1 + 1e-8
    best, best_f = None, math.inf
    n = a.shape[0]
    with np.errstate(all="ignore"):
        for i in range(0, n, 8192):
            s = slice(i, i + 8192)
            pred = bnsl1(x[None, :], a[s], b[s], c0[s], c1[s], d1[s], f1[s])
            f = np.mean((np.log(pred + 1) - np.log(y + 1)[None, :]) ** 2, axis=1)
            f = np.where(np.isfinite(f), f, np.inf)
            k = int(np.argmin(f))
            if f[k] < best_f:
                best_f = float(f[k])
                best = np.array([a[s][k, 0], b[s][k, 0], c0[s][k, 0], c1[s][k, 0], d1[s][k, 0], f1[s][k, 0]])
    return best, best_f


def authors_fit(x: np.ndarray = X[:SPLIT], y: np.ndarray = Y[:SPLIT]) -> dict[str, float]:
    """The authors' procedure: the grid, then Levenberg-Marquardt on log(y + 1) from its best point."""
    p0, _ = _grid_objective(x, y)

    def model(xx, *p):
        return np.log(bnsl1(xx, *p) + 1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow warnings of trial steps, as in the original
        popt, _ = scipy.optimize.curve_fit(model, x, np.log(y + 1), p0=p0, maxfev=100_000_000)
    return dict(zip(NAMES, (float(v) for v in popt), strict=True))


def our_fit(x: np.ndarray = X[:SPLIT], y: np.ndarray = Y[:SPLIT]) -> ScalingLaw:
    return ScalingLaw("bnsl", loss="mse", form_kwargs={"n_breaks": 1}).fit(x, y)


def extrapolation_rmsle(params: dict[str, float]) -> float:
    """RMSLE (plain log, as the script prints it) of a fit on the 3 held-out points."""
    return rmsle(bnsl1(X[SPLIT:], *(params[k] for k in NAMES)), Y[SPLIT:])
