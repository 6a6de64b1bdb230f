"""``ScalingLaw``: fit a functional form to data with many starts at once, and bootstrap it.

The estimator follows scikit-learn's conventions: configuration in the constructor, ``fit(X, y)``
returns ``self``, fitted attributes end in ``_``::

    law = ScalingLaw("chinchilla", loss="huber", delta=1e-3, reduction="sum").fit(ND, L)
    law.params_            # {"E": 1.82, "A": 482., ...}
    law.objective_         # value of the objective at the optimum
    boot = law.bootstrap(n_resamples=1000, seed=0)
    boot.interval("alpha") # (lo, hi) percentile interval
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import norm

from ..errors import UserError
from .forms import Form, get_form
from .objectives import Objective
from .optim import SCIPY_FTOL, SCIPY_GTOL, BatchResult, batched_lbfgs


class FitInputError(UserError, ValueError):
    """Bad input to the fitting API: data that cannot be fitted as given (bad values or shapes, too few or
    too few distinct points), or an argument out of range (an unknown parameter name, a negative count)."""


class FitWarning(UserWarning):
    """The fit converged but the data do not support part of it (see ``ScalingLaw.warnings_``)."""


class NotFittedError(UserError, ValueError, AttributeError):
    """A method that needs a fitted law (``predict``, ``bootstrap``, ...) was called before :meth:`fit`
    (scikit-learn's ``NotFittedError`` is also a ValueError and an AttributeError)."""


class ConvergenceError(UserError, RuntimeError):
    """No start of the optimiser converged; the fit is not returned as if it were a result."""


def _first(bad: np.ndarray, arr: np.ndarray, row_labels: Sequence[str] | None) -> str:
    """Where the first flagged value is, and what it is: ``row 3 (value -1)`` / ``line 5 (value nan)``."""
    i = int(np.flatnonzero(bad)[0])
    where = row_labels[i] if row_labels is not None else f"row {i}"
    return f"{where} (value {arr[i]:g})"


def validate_xy(
    X,
    y,
    n_inputs: int,
    n_params: int,
    input_names: Sequence[str] = (),
    *,
    x_labels: Sequence[str] | None = None,
    y_label: str = "y",
    row_labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert inputs; returns float64 arrays ``X (n, k)``, ``y (n,)``. Errors say what is wrong.

    The one validation layer of every fit (``ScalingLaw.fit`` and ``scaling fit``). Besides shapes, values
    (finite, > 0: fits are in log space) and the number of points (more than ``n_params``), it refuses input
    from which the parameters cannot be determined whatever the optimiser does: fewer distinct input points
    than parameters (e.g. identical rows, a constant x), or, for a form of several inputs, an input that takes
    a single value (its effect cannot be separated from the others'). ``x_labels`` / ``y_label`` /
    ``row_labels`` name columns and rows in the messages (the CLI passes column names and file lines).
    """
    try:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as exc:
        raise FitInputError(f"inputs must be numeric arrays ({exc})") from None
    if X.ndim == 1 and n_inputs == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != n_inputs:
        names = ", ".join(input_names) or f"{n_inputs} column(s)"
        raise FitInputError(f"X must have shape (n_points, {n_inputs}) ({names}); got {X.shape}")
    if y.ndim != 1:
        raise FitInputError(f"y must be one-dimensional; got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise FitInputError(f"X has {X.shape[0]} rows but y has {y.shape[0]} values: lengths must match")
    if row_labels is not None and len(row_labels) != y.shape[0]:
        raise ValueError(f"row_labels must name every row ({y.shape[0]}), got {len(row_labels)}")
    if x_labels is None:
        x_labels = [f"X column {j}" + (f" ({input_names[j]})" if j < len(input_names) else "") for j in range(n_inputs)]
    columns = [(x_labels[j], X[:, j]) for j in range(n_inputs)] + [(y_label, y)]
    for label, arr in columns:
        bad = ~np.isfinite(arr)
        if bad.any():
            raise FitInputError(
                f"{label} has {int(bad.sum())} NaN or infinite value(s), the first at {_first(bad, arr, row_labels)}"
                " (a number beyond +-1.8e308 overflows to infinity); drop or fix those rows"
            )
    for label, arr in columns:
        bad = arr <= 0
        if bad.any():
            raise FitInputError(
                f"{label} has {int(bad.sum())} non-positive value(s), the first at {_first(bad, arr, row_labels)}; "
                "scaling laws are fitted in log space, so every input and target must be > 0"
            )
    n = X.shape[0]
    if n <= n_params:
        raise FitInputError(f"{n} points are too few to fit {n_params} parameters: need at least {n_params + 1}")
    distinct = np.unique(X, axis=0).shape[0]
    if distinct < n_params:
        what = x_labels[0] if n_inputs == 1 else f"({', '.join(x_labels)})"
        raise FitInputError(
            f"the data cannot determine the fit: the {n} rows hold only {distinct} distinct value(s) of {what}, "
            f"fewer than the {n_params} parameters; the inputs must take at least {n_params} distinct values"
        )
    if n_inputs > 1:
        for label, arr in columns[:-1]:
            if np.all(arr == arr[0]):
                raise FitInputError(
                    f"the data cannot determine the fit: {label} takes the single value {arr[0]:g} in all {n} rows, "
                    "so its effect cannot be separated from the other terms; use data in which it varies"
                )
    return X, y


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Central percentile interval of ``values`` at ``level``: their ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles (numpy's default, linear interpolation). Every bootstrap interval of the harness and of the
    replications is this one function, so they all mean the same thing by "95% interval"."""
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("a percentile interval needs at least one value, got none")
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class Bootstrap:
    """Bootstrap replicates of a fit: ``samples`` has one row per replicate that converged."""

    param_names: tuple[str, ...]
    samples: np.ndarray  # (n_ok, P) natural parameters
    n_resamples: int
    n_failed: int
    seed: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    weights: np.ndarray | None = None  # (n_ok, n_points) each replicate's multiplicities of the fitted points

    def column(self, name: str) -> np.ndarray:
        if name in self.extra:
            return self.extra[name]
        if name not in self.param_names:
            derived = f"; derived: {', '.join(self.extra)}" if self.extra else ""
            raise FitInputError(
                f"name {name!r} is not a parameter of this fit (parameters: {', '.join(self.param_names)}{derived})"
            )
        return self.samples[:, self.param_names.index(name)]

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of a parameter (or of a derived quantity added with :meth:`derive`)."""
        column = self.column(name)
        if column.size == 0:
            why = f"none of the {self.n_resamples} replicates converged" if self.n_resamples else "no replicates"
            raise ConvergenceError(f"no bootstrap interval for {name!r}: {why}")
        return percentile_interval(column, level)

    def derive(self, name: str, fn: Callable[[dict[str, np.ndarray]], np.ndarray]) -> np.ndarray:
        """Add a derived quantity computed from the parameter columns, e.g. ``a = beta/(alpha+beta)``."""
        cols = {k: self.samples[:, i] for i, k in enumerate(self.param_names)}
        self.extra[name] = np.asarray(fn(cols), dtype=float)
        return self.extra[name]


EVAL_BLOCK_ELEMENTS = 1 << 17  # rows x points per evaluation block (float64: 1 MB per temporary)

# Screening of the default start grid on large data: every start is first optimised for SCREEN_ITERS iterations
# on a fixed subsample of SCREEN_POINTS points, and only the SCREEN_KEEP best go on to the full data. Fit time
# then grows with the number of points at SCREEN_KEEP starts, not at the whole grid's. It applies only above
# SCREEN_ABOVE starts x points, which no committed result reaches (the largest, Hoffmann et al.'s 4,500-start
# grid on 240 points, is 1.1e6), so small fits are exactly as before.
SCREEN_ABOVE = 2_000_000
SCREEN_POINTS = 512
SCREEN_ITERS = 25
SCREEN_KEEP = 64


class ScalingLaw:
    """Fit a scaling-law ``form`` by minimising ``loss`` over log residuals from many starts at once.

    Parameters
    ----------
    form: a registered form name (``"chinchilla"``, ``"kaplan"``, ``"power"``, ``"saturating_power"``,
        ``"bnsl"``, ``"isoflop_parabola"``, ``"m1"`` ... ``"m4"``) or a :class:`Form` instance.
    loss, delta, reduction: see :mod:`harness.fit.objectives`. ``loss`` defaults to the form's own
        (``Form.default_loss``: ``"huber"``, or ``"mse"`` for a form its paper fitted by squared error).
    starts: raw starting points ``(n_starts, P)``; default: the form's own grid (screened down to the
        ``SCREEN_KEEP`` best on large data, see ``SCREEN_ABOVE``; ``n_screened_`` is then the grid's size).
    gtol, ftol, max_iter: optimiser stopping rules (SciPy L-BFGS-B defaults).
    form_kwargs: options of a form given by name (``Form.options()``, e.g. ``{"n_breaks": 2}`` for ``"bnsl"``).
    screen: screen the default start grid before the full fit (see ``SCREEN_ABOVE``): None (default) on large
        data only, True whenever the grid has more than ``SCREEN_KEEP`` starts (e.g. BNSL's 540 on a short
        curve: 4 - 18x faster on the extrapolation benchmark, at the same optimum in our checks), False never.
    """

    def __init__(
        self,
        form: str | Form = "chinchilla",
        *,
        loss: str | None = None,
        delta: float = 1e-3,
        reduction: str = "sum",
        starts: np.ndarray | torch.Tensor | None = None,
        gtol: float = SCIPY_GTOL,
        ftol: float = SCIPY_FTOL,
        max_iter: int = 15000,
        form_kwargs: dict | None = None,
        screen: bool | None = None,
    ):
        self.form = form if isinstance(form, Form) else get_form(form, **(form_kwargs or {}))
        loss = self.form.default_loss if loss is None else loss
        self.objective = Objective(loss=loss, delta=delta, reduction=reduction)
        self.starts = starts
        if not (isinstance(max_iter, int) and not isinstance(max_iter, bool) and max_iter >= 1):
            raise FitInputError(f"max_iter must be a whole number >= 1, got {max_iter!r}")
        for name, tol in (("gtol", gtol), ("ftol", ftol)):
            if not (isinstance(tol, int | float) and tol >= 0 and np.isfinite(tol)):
                raise FitInputError(f"{name} must be a finite number >= 0, got {tol!r}")
        self.gtol, self.ftol, self.max_iter = gtol, ftol, max_iter
        if screen not in (None, True, False):
            raise FitInputError(f"screen must be None (automatic), True or False, got {screen!r}")
        self.screen = screen

    # ------------------------------------------------------------------ fitting
    @property
    def param_names(self) -> tuple[str, ...]:
        extra = ("sigma",) if self.objective.n_extra else ()
        return tuple(self.form.param_names) + extra

    def _raw_starts(self, logx, logy) -> torch.Tensor:
        if self.starts is None:
            try:
                grid = self.form.start_grid(logx, logy)
            except ValueError as exc:  # e.g. a grid too large for the form's options
                raise FitInputError(str(exc)) from None
        elif isinstance(self.starts, torch.Tensor):
            grid = self.starts.detach()
        else:
            try:
                grid = torch.as_tensor(np.asarray(self.starts, dtype=float))
            except (TypeError, ValueError) as exc:
                raise FitInputError(f"starts must be a numeric array of shape (n_starts, P) ({exc})") from None
        grid = grid.to(torch.float64)
        widths = {self.form.n_params, self.form.n_params + self.objective.n_extra}
        if grid.ndim != 2 or grid.shape[1] not in widths or grid.shape[0] == 0:
            raise FitInputError(
                f"starts must have shape (n_starts >= 1, {self.form.n_params}); got {tuple(grid.shape)}"
            )
        if not torch.isfinite(grid).all():
            raise FitInputError("starts must be finite (no NaN or infinity)")
        if self.objective.n_extra and grid.shape[1] == self.form.n_params:
            # Start the Huber scale where it is optimal for the starting residuals: in the linear regime
            # of the Huber density, sigma* = delta * mean|r|.
            with torch.no_grad():
                pred = self.form.log_predict(grid, torch.as_tensor(logx))
            mad = (pred - torch.as_tensor(logy)[None, :]).abs().mean(dim=1).clamp_min(1e-12)
            grid = torch.cat([grid, torch.log(self.objective.delta * mad)[:, None]], dim=1)
        return grid

    def _make_fg(self, logx, logy, weights):
        form, obj, P = self.form, self.objective, self.form.n_params
        logx_t, logy_t = torch.as_tensor(logx), torch.as_tensor(logy)
        unit = weights.shape[0] == 1 and bool((weights == 1).all())

        # Evaluate in blocks of rows whose (rows x points) temporaries fit in cache (~1 MB each): on the
        # 4,500-start grid this is 4x faster than one pass over the whole batch, which is memory-bound.
        block = max(16, EVAL_BLOCK_ELEMENTS // max(1, logy_t.shape[0]))

        def one_block(x, rows, need_grad):
            w = weights if weights.shape[0] == 1 else weights[rows]
            pred, ctx = form.forward(x[:, :P], logx_t, need_grad)
            f, dpred, dextra = obj(pred, logy_t, w, x[:, P:] if obj.n_extra else None, need_grad, unit)
            if not need_grad:
                return f, None
            g = form.vjp(ctx, dpred)
            if dextra is not None:
                g = torch.cat([g, dextra], dim=1)
            return f, g

        def f_and_g(x, rows, need_grad):
            if x.shape[0] <= block:
                return one_block(x, rows, need_grad)
            parts = [one_block(x[i : i + block], rows[i : i + block], need_grad) for i in range(0, x.shape[0], block)]
            f = torch.cat([p[0] for p in parts])
            return f, (torch.cat([p[1] for p in parts]) if need_grad else None)

        return f_and_g

    def _run(self, logx, logy, starts, weights, progress=None) -> BatchResult:
        closed = getattr(self.form, "closed_form", None)
        if closed is not None and self.objective.loss == "mse" and weights.shape[0] == 1:
            raw = closed(logx, np.exp(logy), weights[0].numpy())
            if raw is not None:
                starts = torch.as_tensor(raw)[None, :]
        return batched_lbfgs(
            self._make_fg(logx, logy, weights),
            starts,
            gtol=self.gtol,
            ftol=self.ftol,
            max_iter=self.max_iter,
            on_iteration=progress,
        )

    def _screen(self, logx, logy, w, starts: torch.Tensor) -> torch.Tensor:
        """The SCREEN_KEEP most promising starts, each advanced SCREEN_ITERS iterations on a fixed subsample (the
        same points every time: evenly spaced in the data's order after sorting by the inputs)."""
        order = np.lexsort(logx.T[::-1])
        sub = order[np.unique(np.linspace(0, len(logy) - 1, SCREEN_POINTS).round().astype(int))]
        fg = self._make_fg(logx[sub], logy[sub], torch.as_tensor(w[sub])[None, :])
        res = batched_lbfgs(fg, starts, gtol=self.gtol, ftol=self.ftol, max_iter=SCREEN_ITERS)
        fun = torch.where(torch.isfinite(res.fun), res.fun, torch.full_like(res.fun, math.inf))
        keep = torch.argsort(fun, stable=True)[:SCREEN_KEEP]
        return res.x[keep].clone()

    def fit(self, X, y, *, sample_weight=None, progress: Callable[[int, int], None] | None = None) -> ScalingLaw:
        """Fit the form to ``X`` (n, n_inputs) and positive targets ``y`` (n,). Returns ``self``.

        ``progress(starts_finished, n_starts)`` is called as the multi-start optimisation goes (e.g. a
        :class:`harness.progress.ProgressLine`); it cannot change the result."""
        P = self.form.n_params + self.objective.n_extra
        X, y = validate_xy(X, y, self.form.n_inputs, P, self.form.input_names)
        logx, logy = np.log(X), np.log(y)
        w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if w.shape != y.shape or (w < 0).any() or not np.isfinite(w).all():
            raise FitInputError("sample_weight must be finite, non-negative and have one value per point")
        starts = self._raw_starts(logx, logy)
        self.n_screened_ = None
        large = starts.shape[0] * len(y) > SCREEN_ABOVE
        want = large if self.screen is None else self.screen
        if self.starts is None and starts.shape[0] > SCREEN_KEEP and want:
            self.n_screened_ = int(starts.shape[0])
            starts = self._screen(logx, logy, w, starts)
        res = self._run(logx, logy, starts, torch.as_tensor(w)[None, :], progress)
        self._store(res, starts)
        self.X_, self.y_, self.logx_, self.logy_, self.sample_weight_ = X, y, logx, logy, w
        self.warnings_ = self.form.diagnose(self.params_, logx)
        for msg in self.warnings_:
            warnings.warn(msg, FitWarning, stacklevel=2)
        return self

    def _store(self, res: BatchResult, starts: torch.Tensor):
        conv = res.converged & torch.isfinite(res.fun)
        self.n_starts_ = int(res.fun.shape[0])
        self.n_converged_ = int(conv.sum())
        self.start_objectives_ = res.fun.numpy().copy()
        self.start_raw_ = res.x.numpy().copy()
        self.start_status_ = res.status.numpy().copy()
        if self.n_converged_ == 0:
            reasons = {BatchResult.STATUS_TEXT[int(s)] for s in res.status.unique()}
            raise ConvergenceError(
                f"none of the {self.n_starts_} starts converged ({'; '.join(sorted(reasons))}); "
                "check the data, the form, or pass wider starts / a larger max_iter"
            )
        fun = torch.where(conv, res.fun, torch.full_like(res.fun, math.inf))
        best = int(torch.argmin(fun))
        self.best_start_ = starts[best].numpy().copy()
        self.raw_ = res.x[best].numpy().copy()
        self.objective_ = float(res.fun[best])
        self.status_ = BatchResult.STATUS_TEXT[int(res.status[best])]
        self.n_iter_ = int(res.n_iter[best])
        self.grad_max_ = float(res.grad_max[best])
        with np.errstate(over="ignore"):
            natural = self._natural(self.raw_[None, :])[0]
        self.params_ = dict(zip(self.param_names, (float(v) for v in natural), strict=True))
        overflowed = [k for k, v in self.params_.items() if not math.isfinite(v)]
        if overflowed:
            raise FitInputError(
                f"the fitted {', '.join(overflowed)} {'overflows' if len(overflowed) == 1 else 'overflow'} double "
                "precision (the best fit needs a value beyond 1.8e308): the data's scale is outside what the form "
                "can represent; rescale the columns (other units) or check them"
            )

    def _natural(self, raw: np.ndarray) -> np.ndarray:
        P = self.form.n_params
        nat = self.form.to_natural(raw[:, :P])
        if self.objective.n_extra:
            nat = np.concatenate([nat, np.exp(raw[:, P:])], axis=1)
        return nat

    def _check_fitted(self):
        if not hasattr(self, "params_"):
            raise NotFittedError("this ScalingLaw is not fitted yet: call fit(X, y) first")

    def predict(self, X) -> np.ndarray:
        """Predictions at ``X`` of shape (n, n_inputs) (or (n,) for a one-input form); every value must be > 0."""
        self._check_fitted()
        k = self.form.n_inputs
        try:
            X = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise FitInputError(f"X must be a numeric array ({exc})") from None
        if X.ndim <= 1 and k == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2 or X.shape[1] != k:
            raise FitInputError(
                f"X must have shape (n_points, {k}) ({', '.join(self.form.input_names)}) for form "
                f"{self.form.name!r}; got {X.shape}"
            )
        if not (np.isfinite(X).all() and (X > 0).all()):
            raise FitInputError("X must be finite and > 0 (the form is evaluated in log space)")
        with torch.no_grad():
            out = self.form.log_predict(
                torch.as_tensor(self.raw_[None, : self.form.n_params]), torch.as_tensor(np.log(X))
            )
        return np.exp(out[0].numpy())

    # ------------------------------------------------------- poorly determined parameters
    # A parameter is "poorly determined" when its 95% interval, in the coordinates the optimiser moves in
    # (the log of a positive parameter, an exponent as it is), is wider than UNDETERMINED_DECADES decades for a
    # positive parameter, or than UNDETERMINED_REL_WIDTH times the estimate's magnitude for any other (a
    # central interval that wide reaches past zero: the data do not even fix the sign).
    UNDETERMINED_DECADES = 3.0
    UNDETERMINED_REL_WIDTH = 2.0

    def _log_jacobian(self) -> np.ndarray:
        """d log prediction / d raw parameter at the fit, (n_points, n_form_params), by central differences
        (one batched evaluation of the form, whatever the form)."""
        P = self.form.n_params
        raw = self.raw_[:P]
        h = 1e-5 * np.maximum(1.0, np.abs(raw))
        pts = np.repeat(raw[None, :], 2 * P, axis=0)
        pts[np.arange(P), np.arange(P)] += h
        pts[P + np.arange(P), np.arange(P)] -= h
        with torch.no_grad():
            out = self.form.log_predict(torch.as_tensor(pts), torch.as_tensor(self.logx_)).numpy()
        return ((out[:P] - out[P:]) / (2 * h)[:, None]).T

    def _linearised_halfwidths(self, z: float) -> np.ndarray:
        """``z`` standard errors of each raw form parameter from the Gauss-Newton covariance of the log-space
        fit, ``s^2 (J^T W J)^-1`` with ``s^2 = sum w r^2 / (sum w - P)``; ``inf`` along directions in which the
        predictions do not change at all (singular values below 1e-8 of the largest)."""
        P = self.form.n_params
        J = self._log_jacobian()
        w = self.sample_weight_
        with torch.no_grad():
            pred = self.form.log_predict(torch.as_tensor(self.raw_[None, :P]), torch.as_tensor(self.logx_))[0]
        r = pred.numpy() - self.logy_
        s2 = float(np.sum(w * r * r) / max(float(w.sum()) - P, 1.0))
        A = np.sqrt(w)[:, None] * J
        if not np.isfinite(A).all():
            return np.full(P, np.inf)
        _, sv, vt = np.linalg.svd(A, full_matrices=False)
        if sv[0] == 0:
            return np.full(P, np.inf)
        keep = sv > 1e-8 * sv[0]
        var = s2 * np.sum(vt[keep] ** 2 / sv[keep, None] ** 2, axis=0)
        null = (np.abs(vt[~keep]) > 1e-3).any(axis=0)
        return np.where(null, np.inf, z * np.sqrt(var))

    def poorly_determined(self, boot: Bootstrap | None = None, level: float = 0.95) -> dict[str, str]:
        """The parameters the data do not determine, each with the evidence, e.g. ``{"E": "95% bootstrap
        interval [0.001, 2e+180]: 183 decades"}``; empty when every parameter is determined.

        Criterion: the parameter's ``level`` interval in raw coordinates is wider than
        ``UNDETERMINED_DECADES`` (3) decades for a positive parameter (one fitted as a log), or than
        ``UNDETERMINED_REL_WIDTH`` (2) times the magnitude of its estimate for another. The interval is the
        bootstrap percentile interval when ``boot`` is given; otherwise the linearised one, estimate
        +- z standard errors from the Gauss-Newton covariance ``s^2 (J^T W J)^-1`` of the log residuals (J the
        Jacobian of the log prediction in raw coordinates, W the sample weights, ``s^2`` the weighted mean
        squared log residual on ``sum w - P`` degrees of freedom). Either way, a parameter with a component
        along a direction in which no prediction changes (a singular value of ``W^1/2 J`` below 1e-8 of the
        largest) is reported: no data of this design determine it, whatever a bootstrap shows. Costs one
        batched evaluation of the form with 2P parameter vectors (central differences) and an SVD of an
        (n, P) matrix. The noise scale ``sigma`` of ``huber_nll`` is judged only from a bootstrap."""
        self._check_fitted()
        P = self.form.n_params
        logc = list(self.form.log_coordinates) + [True] * self.objective.n_extra  # sigma is positive
        z = float(norm.ppf(0.5 + level / 2))
        ln10 = math.log(10.0)
        est = self.raw_
        if boot is not None:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                raw = self.form.from_natural(boot.samples[:, :P])
                if self.objective.n_extra:
                    raw = np.concatenate([raw, np.log(boot.samples[:, P:])], axis=1)
        half = self._linearised_halfwidths(z)
        names = self.param_names if boot is not None else self.param_names[:P]
        q = [(1 - level) / 2, (1 + level) / 2]
        out: dict[str, str] = {}
        for i, name in enumerate(names):
            if i < P and not math.isfinite(half[i]):  # no prediction changes along it: no data determine it
                out[name] = "a combination of parameters changes no prediction: the Jacobian at the fit is singular"
                continue
            if boot is not None:
                if raw.shape[0] == 0:
                    continue
                col = np.clip(np.where(np.isnan(raw[:, i]), np.inf, raw[:, i]), -1e300, 1e300)
                lo, hi = np.quantile(col, q)
                width = math.inf if max(abs(lo), abs(hi)) >= 1e300 else float(hi - lo)
                nat_lo, nat_hi = np.quantile(np.nan_to_num(boot.samples[:, i], nan=np.inf), q)
                source = f"{level:.0%} bootstrap interval [{nat_lo:.3g}, {nat_hi:.3g}]"
            else:
                width = 2 * float(half[i])
                source = f"linearised {level:.0%} interval"
            scale = abs(float(est[i]))
            if logc[i] and width > self.UNDETERMINED_DECADES * ln10:
                span = f"{width / ln10:.3g} decades"
            elif not logc[i] and width > self.UNDETERMINED_REL_WIDTH * scale:
                span = f"{width / scale:.3g} x |estimate| wide" if scale > 0 else "wide, around 0"
            else:
                continue
            out[name] = f"{source}: {span if math.isfinite(width) else 'unbounded'}"
        return out

    def distinct_optima(self, k: int = 8, rtol: float = 1e-3) -> np.ndarray:
        """Up to k converged end points with distinct parameters, best first (raw coordinates)."""
        self._check_fitted()
        order = np.argsort(np.where(self.start_status_ <= 1, self.start_objectives_, np.inf))
        picked: list[np.ndarray] = []
        for i in order:
            if not np.isfinite(self.start_objectives_[i]) or self.start_status_[i] > 1:
                break
            r = self.start_raw_[i]
            if all(np.max(np.abs(r - p) / (np.abs(p) + 1e-3)) > rtol for p in picked):
                picked.append(r)
            if len(picked) == k:
                break
        return np.array(picked)

    # ---------------------------------------------------------------- bootstrap
    def bootstrap(
        self,
        n_resamples: int = 1000,
        *,
        seed: int = 0,
        groups: np.ndarray | None = None,
        starts: np.ndarray | None = None,
        n_starts_from_fit: int = 8,
        chunk_rows: int = 20000,
        gtol: float = 1e-9,
        ftol: float = 1e-13,
        max_iter: int = 3000,
        progress: Callable[[int, int], None] | None = None,
    ) -> Bootstrap:
        """Resample points with replacement, refit each replicate, return the distribution of parameters.

        A resample is a vector of multiplicities, so every replicate is the same problem with other weights
        and all replicates are fitted in one batch. Each replicate starts from the ``n_starts_from_fit``
        distinct optima of the full fit (plus ``starts`` if given): the replicate optimum lies near them,
        and restarting the full 4,500-point grid a thousand times buys nothing but time.

        Replicates are optimised to tight tolerances (``gtol=1e-9``, ``ftol=1e-13``) whatever the fit used:
        SciPy's default ``ftol`` (2.2e-9) is effectively absolute for objectives below 1, and with it a
        replicate started at the full-data optimum stops after a step or two, which gives intervals far too
        narrow. An interval must describe the estimator, not where an optimiser gave up. Replicates still
        running after ``max_iter`` iterations count as failed and are reported in ``n_failed``.

        ``groups`` (one label per point) makes it a cluster bootstrap: whole groups are resampled, e.g. the
        points of one learning curve, which are not independent of each other and would give intervals too
        narrow if resampled one by one.

        ``progress(replicates_refit, n_resamples)`` is called as the refits go (a replicate counts as refit
        once as many rows as it has starts have stopped); it cannot change the result.
        """
        self._check_fitted()
        # n_resamples = 0 gives an empty Bootstrap (which has no intervals), as it always has
        for name, value, least in (("n_resamples", n_resamples, 0), ("n_starts_from_fit", n_starts_from_fit, 1)):
            if not (isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= least):
                raise FitInputError(f"{name} must be a whole number >= {least}, got {value!r}")
        if not (isinstance(chunk_rows, int | np.integer) and chunk_rows >= 1):
            raise FitInputError(f"chunk_rows must be a whole number >= 1, got {chunk_rows!r}")
        rng = np.random.default_rng(seed)
        n = self.y_.shape[0]
        if groups is None:
            p = self.sample_weight_ / self.sample_weight_.sum()
            counts = rng.multinomial(n, p, size=n_resamples).astype(float)
        else:
            groups = np.asarray(groups)
            if groups.shape != (n,):
                raise FitInputError(f"groups must give one label per fitted point ({n}), got shape {groups.shape}")
            labels, index = np.unique(groups, return_inverse=True)
            if len(labels) < 2:
                raise FitInputError("a cluster bootstrap needs at least 2 groups")
            g = rng.multinomial(len(labels), np.full(len(labels), 1.0 / len(labels)), size=n_resamples)
            counts = g[:, index].astype(float) * self.sample_weight_[None, :]
        base = self.distinct_optima(n_starts_from_fit)
        if starts is not None:
            base = np.concatenate([base, np.asarray(starts, dtype=float)], axis=0)
        K = base.shape[0]
        per_chunk = max(1, chunk_rows // K)
        best_raw = np.full((n_resamples, base.shape[1]), np.nan)
        for lo in range(0, n_resamples, per_chunk):
            hi = min(n_resamples, lo + per_chunk)
            R = hi - lo
            w = torch.as_tensor(np.repeat(counts[lo:hi], K, axis=0))
            x0 = torch.as_tensor(np.tile(base, (R, 1)))

            def on_iteration(finished, _rows, lo=lo):  # a replicate counts once as many rows as it has starts
                progress(lo + finished // K, n_resamples)

            res = batched_lbfgs(
                self._make_fg(self.logx_, self.logy_, w),
                x0,
                gtol=gtol,
                ftol=ftol,
                max_iter=max_iter,
                on_iteration=on_iteration if progress is not None else None,
            )
            # A line search that can no longer decrease the objective at a point whose gradient already meets
            # SciPy's default gtol is at the optimum to working precision: count it as converged.
            usable = res.converged | ((res.status == 3) & (res.grad_max <= SCIPY_GTOL))
            fun = torch.where(usable, res.fun, torch.full_like(res.fun, math.inf)).view(R, K)
            idx = torch.argmin(fun, dim=1)
            ok = torch.isfinite(fun.gather(1, idx[:, None]))[:, 0]
            xs = res.x.view(R, K, -1)[torch.arange(R), idx]
            best_raw[lo:hi][ok.numpy()] = xs[ok].numpy()
        good = ~np.isnan(best_raw).any(axis=1)
        with np.errstate(over="ignore"):  # a replicate's parameter may overflow: inf, a poorly determined one
            samples = self._natural(best_raw[good])
        return Bootstrap(self.param_names, samples, n_resamples, int((~good).sum()), seed, weights=counts[good])
