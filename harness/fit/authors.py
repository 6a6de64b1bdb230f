"""Caballero et al.'s own procedure for fitting a 1-break BNSL, as their released scripts do it.

A brute-force grid over all six parameters, minimising the mean squared error of ``log(y + 1)`` with ``b`` and
``d1`` on the scale ``1.25^p - 1``, then Levenberg-Marquardt least squares on ``log(y + 1)`` from the grid's best
point (``scipy.optimize.curve_fit``). :class:`CaballeroBNSL` is a :class:`~harness.fit.ScalingLaw` whose
``fit`` is that procedure, so prediction, extrapolation scores and plots work as for any law; it has no
bootstrap. Reimplemented from the procedure's description (github.com/ethancaballero/broken_neural_scaling_laws,
4-digit-addition script): the grid is evaluated in vectorised blocks instead of one call per point.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.optimize

from .estimator import ConvergenceError, FitInputError, ScalingLaw, validate_xy

# the authors' grid: a, log_1.25(b + 1), c0, c1, log_1.25(d1 + 1), f1 (163,840 points)
GRID = (
    np.arange(0.0, 1.0, 0.1),
    np.arange(0.0, 40.0, 2.5),
    np.arange(0.0, 1.0, 0.25),
    np.arange(0.0, 1.0, 0.25),
    np.arange(0.0, 40.0, 2.5),
    np.arange(0.0, 1.0, 0.25),
)
NAMES = ("a", "b", "c0", "c1", "d1", "f1")


def bnsl1(x, a, b, c0, c1, d1, f1):
    """Caballero et al. eq. (1) with one break, evaluated as written."""
    return a + b * x ** (-c0) * (1 + (x / d1) ** (1 / f1)) ** (-c1 * f1)


def grid_search(x: np.ndarray, y: np.ndarray, grid=GRID, block: int = 8192) -> tuple[np.ndarray, float]:
    """The grid point of least mean squared log(y + 1) error (a NaN or infinite value, e.g. at f1 = 0, never
    wins), in natural parameters."""
    a, pb, c0, c1, pd, f1 = (g.reshape(-1, 1) for g in np.meshgrid(*grid, indexing="ij"))
    b, d1 = 1.25**pb - 1 + 1e-8, 1.25**pd - 1 + 1e-8
    best, best_f = None, math.inf
    target = np.log(y + 1)[None, :]
    with np.errstate(all="ignore"):
        for i in range(0, a.shape[0], block):
            s = slice(i, i + block)
            f = np.mean((np.log(bnsl1(x[None, :], a[s], b[s], c0[s], c1[s], d1[s], f1[s]) + 1) - target) ** 2, axis=1)
            f = np.where(np.isfinite(f), f, np.inf)
            k = int(np.argmin(f))
            if f[k] < best_f:
                best_f = float(f[k])
                best = np.array([v[s][k, 0] for v in (a, b, c0, c1, d1, f1)])
    if best is None:
        raise ConvergenceError("no point of the grid gives a finite error on these data")
    return best, best_f


class CaballeroBNSL(ScalingLaw):
    """A 1-break BNSL fitted by the authors' procedure (see the module docstring). ``objective_`` is their
    mean squared ``log(y + 1)`` error; ``n_starts_`` is the grid's size."""

    def __init__(self, grid=GRID):
        super().__init__("bnsl", loss="mse", form_kwargs={"n_breaks": 1})
        self.grid = grid

    def fit(self, X, y, *, sample_weight=None, progress=None) -> CaballeroBNSL:
        if sample_weight is not None:
            raise FitInputError("the authors' procedure takes no sample weights")
        X, y = validate_xy(X, y, 1, 6, self.form.input_names)
        x = X[:, 0]
        p0, _ = grid_search(x, y, self.grid)

        def model(xx, *p):
            return np.log(bnsl1(xx, *p) + 1)

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # overflow in trial steps, and SciPy's covariance warning
            try:
                popt, _ = scipy.optimize.curve_fit(model, x, np.log(y + 1), p0=p0, maxfev=100_000_000)
            except RuntimeError as exc:
                why = f"Levenberg-Marquardt did not converge from the grid's best point: {exc}"
                raise ConvergenceError(why) from None
        params = dict(zip(NAMES, (float(v) for v in popt), strict=True))
        try:
            raw = self.form.from_natural(np.array([params[k] for k in self.form.param_names]))
        except (ValueError, FloatingPointError):
            raw = np.full(6, np.nan)
        if not np.all(np.isfinite(raw)):
            raise FitInputError(
                f"the authors' procedure ended outside the form's domain (a, b, d1, f1 > 0): "
                f"{', '.join(f'{k} = {v:.4g}' for k, v in params.items())}"
            )
        self.raw_, self.params_ = raw, params
        with np.errstate(all="ignore"):
            self.objective_ = float(np.mean((model(x, *popt) - np.log(y + 1)) ** 2))
        self.n_starts_, self.n_converged_ = int(np.prod([len(g) for g in self.grid])), 1
        self.status_ = "grid search, then Levenberg-Marquardt (the authors' procedure)"
        self.best_start_ = p0
        self.X_, self.y_, self.logx_, self.logy_ = X, y, np.log(X), np.log(y)
        self.sample_weight_ = np.ones_like(y)
        self.n_screened_ = None
        self.warnings_ = self.form.diagnose(self.params_, self.logx_)
        return self

    def bootstrap(self, *args, **kwargs):
        raise FitInputError("the authors' procedure has no bootstrap here; use the harness procedure for intervals")
