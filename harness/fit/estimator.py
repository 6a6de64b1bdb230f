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

from ..errors import UserError
from .forms import Form, get_form
from .objectives import Objective
from .optim import SCIPY_FTOL, SCIPY_GTOL, BatchResult, batched_lbfgs


class FitInputError(UserError, ValueError):
    """The data cannot be fitted as given (bad values, shapes or too few points)."""


class FitWarning(UserWarning):
    """The fit converged but the data do not support part of it (see ``ScalingLaw.warnings_``)."""


class ConvergenceError(UserError, RuntimeError):
    """No start of the optimiser converged; the fit is not returned as if it were a result."""


def validate_xy(X, y, n_inputs: int, n_params: int, input_names: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert inputs; returns float64 arrays ``X (n, k)``, ``y (n,)``. Errors say what is wrong."""
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
    for name, arr in (("X", X), ("y", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise FitInputError(f"{name} contains {int(bad.sum())} NaN or infinite value(s); drop or fix those rows")
        if (arr <= 0).any():
            raise FitInputError(
                f"{name} contains {int((arr <= 0).sum())} non-positive value(s); scaling laws are fitted in log "
                "space, so every input and target must be > 0"
            )
    if X.shape[0] <= n_params:
        raise FitInputError(
            f"{X.shape[0]} points are too few to fit {n_params} parameters: need at least {n_params + 1}"
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
        return self.samples[:, self.param_names.index(name)]

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of a parameter (or of a derived quantity added with :meth:`derive`)."""
        return percentile_interval(self.column(name), level)

    def derive(self, name: str, fn: Callable[[dict[str, np.ndarray]], np.ndarray]) -> np.ndarray:
        """Add a derived quantity computed from the parameter columns, e.g. ``a = beta/(alpha+beta)``."""
        cols = {k: self.samples[:, i] for i, k in enumerate(self.param_names)}
        self.extra[name] = np.asarray(fn(cols), dtype=float)
        return self.extra[name]


EVAL_BLOCK_ELEMENTS = 1 << 17  # rows x points per evaluation block (float64: 1 MB per temporary)


class ScalingLaw:
    """Fit a scaling-law ``form`` by minimising ``loss`` over log residuals from many starts at once.

    Parameters
    ----------
    form: a registered form name (``"chinchilla"``, ``"kaplan"``, ``"power"``, ``"saturating_power"``,
        ``"bnsl"``, ``"isoflop_parabola"``, ``"m1"`` ... ``"m4"``) or a :class:`Form` instance.
    loss, delta, reduction: see :mod:`harness.fit.objectives`. ``loss`` defaults to the form's own
        (``Form.default_loss``: ``"huber"``, or ``"mse"`` for a form its paper fitted by squared error).
    starts: raw starting points ``(n_starts, P)``; default: the form's own grid.
    gtol, ftol, max_iter: optimiser stopping rules (SciPy L-BFGS-B defaults).
    form_kwargs: options of a form given by name (``Form.options()``, e.g. ``{"n_breaks": 2}`` for ``"bnsl"``).
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

    # ------------------------------------------------------------------ fitting
    @property
    def param_names(self) -> tuple[str, ...]:
        extra = ("sigma",) if self.objective.n_extra else ()
        return tuple(self.form.param_names) + extra

    def _raw_starts(self, logx, logy) -> torch.Tensor:
        grid = self.form.start_grid(logx, logy) if self.starts is None else torch.as_tensor(self.starts)
        grid = grid.to(torch.float64)
        widths = {self.form.n_params, self.form.n_params + self.objective.n_extra}
        if grid.ndim != 2 or grid.shape[1] not in widths or grid.shape[0] == 0:
            raise FitInputError(
                f"starts must have shape (n_starts >= 1, {self.form.n_params}); got {tuple(grid.shape)}"
            )
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

    def _run(self, logx, logy, starts, weights) -> BatchResult:
        closed = getattr(self.form, "closed_form", None)
        if closed is not None and self.objective.loss == "mse" and weights.shape[0] == 1:
            raw = closed(logx, np.exp(logy), weights[0].numpy())
            if raw is not None:
                starts = torch.as_tensor(raw)[None, :]
        return batched_lbfgs(
            self._make_fg(logx, logy, weights), starts, gtol=self.gtol, ftol=self.ftol, max_iter=self.max_iter
        )

    def fit(self, X, y, *, sample_weight=None) -> ScalingLaw:
        """Fit the form to ``X`` (n, n_inputs) and positive targets ``y`` (n,). Returns ``self``."""
        P = self.form.n_params + self.objective.n_extra
        X, y = validate_xy(X, y, self.form.n_inputs, P, self.form.input_names)
        logx, logy = np.log(X), np.log(y)
        w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if w.shape != y.shape or (w < 0).any() or not np.isfinite(w).all():
            raise FitInputError("sample_weight must be finite, non-negative and have one value per point")
        starts = self._raw_starts(logx, logy)
        res = self._run(logx, logy, starts, torch.as_tensor(w)[None, :])
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
        natural = self._natural(self.raw_[None, :])[0]
        self.params_ = dict(zip(self.param_names, (float(v) for v in natural), strict=True))

    def _natural(self, raw: np.ndarray) -> np.ndarray:
        P = self.form.n_params
        nat = self.form.to_natural(raw[:, :P])
        if self.objective.n_extra:
            nat = np.concatenate([nat, np.exp(raw[:, P:])], axis=1)
        return nat

    def _check_fitted(self):
        if not hasattr(self, "params_"):
            raise RuntimeError("this ScalingLaw is not fitted yet: call fit(X, y) first")

    def predict(self, X) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X, dtype=float)
        if X.ndim == 1 and self.form.n_inputs == 1:
            X = X[:, None]
        with torch.no_grad():
            out = self.form.log_predict(
                torch.as_tensor(self.raw_[None, : self.form.n_params]), torch.as_tensor(np.log(X))
            )
        return np.exp(out[0].numpy())

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
        """
        self._check_fitted()
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
        done = 0
        for lo in range(0, n_resamples, per_chunk):
            hi = min(n_resamples, lo + per_chunk)
            R = hi - lo
            w = torch.as_tensor(np.repeat(counts[lo:hi], K, axis=0))
            x0 = torch.as_tensor(np.tile(base, (R, 1)))
            res = batched_lbfgs(self._make_fg(self.logx_, self.logy_, w), x0, gtol=gtol, ftol=ftol, max_iter=max_iter)
            # A line search that can no longer decrease the objective at a point whose gradient already meets
            # SciPy's default gtol is at the optimum to working precision: count it as converged.
            usable = res.converged | ((res.status == 3) & (res.grad_max <= SCIPY_GTOL))
            fun = torch.where(usable, res.fun, torch.full_like(res.fun, math.inf)).view(R, K)
            idx = torch.argmin(fun, dim=1)
            ok = torch.isfinite(fun.gather(1, idx[:, None]))[:, 0]
            xs = res.x.view(R, K, -1)[torch.arange(R), idx]
            best_raw[lo:hi][ok.numpy()] = xs[ok].numpy()
            done = hi
            if progress is not None:
                progress(done, n_resamples)
        good = ~np.isnan(best_raw).any(axis=1)
        samples = self._natural(best_raw[good])
        return Bootstrap(self.param_names, samples, n_resamples, int((~good).sum()), seed, weights=counts[good])
