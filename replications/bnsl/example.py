"""The BNSL paper's worked example: 4-digit addition, test cross-entropy against training-set size.

The 17 measurements are the ones in the authors' released script (ethancaballero/broken_neural_scaling_laws,
``fit_bnsl_and_extrapolate__4_digit_addition__dataset_size_x-axis.py``, commit ffa608f; the paper's Figure 4
left in arXiv v17's numbering). The first 14 are fitted, the last 3 extrapolated. Two procedures:

* **the authors'** (:func:`authors_fit`, :class:`harness.fit.authors.CaballeroBNSL`): a brute-force grid over
  all six parameters of the 1-break BNSL on the squared error of ``log(y + 1)``, then Levenberg-Marquardt.
* **ours** (:class:`harness.fit.ScalingLaw`, form ``bnsl``): least squares on ``log y`` from the form's grid of
  starts.

The authors' fitted parameters are the values their companion script (``..._noiseless_simulation.py``, same
commit) hard-codes as the ground truth of its simulation.
"""

from __future__ import annotations

import numpy as np

from harness.fit import ScalingLaw
from harness.fit.authors import NAMES, CaballeroBNSL, bnsl1

X = np.array([160, 192, 256, 320, 384, 448, 480, 512, 544, 576, 608, 640, 672, 736, 800, 864, 928], dtype=float)
Y = np.array(
    [
        *(2.13809046, 2.11813418, 2.08955508, 2.06988398, 2.05404987, 2.03837089, 2.02814281, 2.00496872),
        *(1.95576149, 1.86313841, 1.70891537, 1.50637664, 1.29754721, 0.96559684, 0.75856477, 0.64768338),
        0.55695445,
    ]
)
SPLIT = 14  # the first 14 points are fitted
# the authors' fit of the first 14 points (their noiseless-simulation script's ground truth)
PUBLISHED = {
    "a": 0.41388453071629455,
    "b": 2.2772722897737556,
    "c0": 0.055077348404973955,
    "c1": 5.662903816010331,
    "d1": 612.5836172918001,
    "f1": 0.059193036393742314,
}


def rmsle(pred, y) -> float:
    return float(np.sqrt(np.mean((np.log(pred) - np.log(y)) ** 2)))


def authors_fit(x: np.ndarray = X[:SPLIT], y: np.ndarray = Y[:SPLIT]) -> dict[str, float]:
    """The authors' procedure (:class:`harness.fit.authors.CaballeroBNSL`) on the first 14 points."""
    return dict(CaballeroBNSL().fit(x, y).params_)


def our_fit(x: np.ndarray = X[:SPLIT], y: np.ndarray = Y[:SPLIT]) -> ScalingLaw:
    return ScalingLaw("bnsl", loss="mse", form_kwargs={"n_breaks": 1}).fit(x, y)


def extrapolation_rmsle(params: dict[str, float]) -> float:
    """RMSLE (plain log, as the script prints it) of a fit on the 3 held-out points."""
    return rmsle(bnsl1(X[SPLIT:], *(params[k] for k in NAMES)), Y[SPLIT:])
