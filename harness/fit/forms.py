"""Functional forms of scaling laws.

Every form predicts a positive quantity (a loss, an error rate) and is fitted in log space, as all four
replicated papers do. A form is a small object with

* ``name`` and ``param_names`` (the paper's own parameters, e.g. ``E, A, B, alpha, beta``);
* ``raw_names``: the unconstrained coordinates the optimiser moves in (``A = exp(a)`` and so on);
* ``log_predict(raw, logx)``: vectorised over a batch of parameter vectors, ``raw`` of shape
  ``(b, P)`` and ``logx`` of shape ``(n, k)`` (natural logs of the inputs), returning ``(b, n)``;
* ``to_natural`` / ``from_natural`` between raw and paper parameters;
* ``start_grid(logx, logy)``: sensible starting points (a grid over plausible ranges);
* ``bounds``: plausible natural-parameter ranges, used to build grids and to flag suspicious fits;
* ``default_loss``: the fitting loss its paper used (``"huber"`` unless the form says otherwise);
* its options: the constructor's arguments (``Form.options()``, e.g. BNSL's ``n_breaks``).

Forms are registered by name (``get_form("chinchilla")``) so the CLI, claims files and users can refer to
them by string; ``register_form`` adds a new one. What a form declares about itself (its default loss, its
options) is read from it, so the CLI and the estimator need no case for any particular form.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch

_FORMS: dict[str, type[Form]] = {}


def register_form(name: str):
    """Class decorator: make a form available as ``get_form(name)``."""

    def deco(cls):
        if name in _FORMS:
            raise ValueError(f"a form named {name!r} is already registered")
        cls.name = name
        _FORMS[name] = cls
        return cls

    return deco


def form_class(name: str) -> type[Form]:
    """The class registered under ``name`` (its ``default_loss`` and ``options()`` without building one)."""
    try:
        return _FORMS[name]
    except KeyError:
        raise ValueError(f"unknown form {name!r}; known forms: {', '.join(sorted(_FORMS))}") from None


def get_form(name: str, **kwargs) -> Form:
    """Instantiate a registered form by name (``kwargs`` are its options, e.g. ``n_breaks``)."""
    cls = form_class(name)
    unknown = sorted(set(kwargs) - set(cls.options()))
    if unknown:
        have = ", ".join(cls.options()) or "none"
        raise ValueError(f"form {name!r} has no option {', '.join(map(repr, unknown))} (its options: {have})")
    return cls(**kwargs)


def available_forms() -> list[str]:
    return sorted(_FORMS)


def _grid(*axes: Sequence[float]) -> torch.Tensor:
    return torch.tensor(list(itertools.product(*axes)), dtype=torch.float64)


def _lse(*terms: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(torch.stack(torch.broadcast_tensors(*terms)), dim=0)


@dataclass
class Form:
    """Base class; subclasses set ``param_names``, ``raw_names``, ``n_inputs`` and the methods."""

    name: str = field(init=False, default="")
    param_names: tuple[str, ...] = field(init=False, default=())
    raw_names: tuple[str, ...] = field(init=False, default=())
    n_inputs: int = field(init=False, default=1)
    input_names: tuple[str, ...] = field(init=False, default=("x",))
    formula: str = field(init=False, default="")
    log_raw: tuple[int, ...] = field(init=False, default=())  # raw columns that are logs of positive parameters
    # the loss a fit uses when none is given (``ScalingLaw(form)``, ``scaling fit``): the one of the form's paper
    default_loss: ClassVar[str] = "huber"

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The form's options and their defaults: the arguments of its constructor (every other field is set
        by the form itself), e.g. ``{"n_breaks": 1}`` for BNSL, ``{}`` for a form that has none."""
        return {f.name: f.default for f in fields(cls) if f.init}

    @property
    def n_params(self) -> int:
        return len(self.raw_names)

    @property
    def log_coordinates(self) -> tuple[bool, ...]:
        """For each raw coordinate, whether it is the log of a positive quantity (``a = log A``) rather than a
        parameter on its own scale (an exponent). Default: the columns of ``log_raw``."""
        return tuple(i in self.log_raw for i in range(self.n_params))

    def log_predict(self, raw: torch.Tensor, logx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, raw: torch.Tensor, logx: torch.Tensor, need_grad: bool):
        """Prediction plus whatever :meth:`vjp` needs. The default uses autograd; forms with a cheap
        closed-form Jacobian override both methods."""
        if not need_grad:
            with torch.no_grad():
                return self.log_predict(raw, logx), None
        raw = raw.detach().requires_grad_(True)
        with torch.enable_grad():
            pred = self.log_predict(raw, logx)
        return pred.detach(), (raw, pred)

    def vjp(self, ctx, v: torch.Tensor) -> torch.Tensor:
        """Return ``sum_n v[:, n] * d pred[:, n] / d raw`` of shape (b, P)."""
        raw, pred = ctx
        (g,) = torch.autograd.grad(pred, raw, v)
        return g

    def to_natural(self, raw: np.ndarray) -> np.ndarray:
        """Raw coordinates to the paper's parameters: the columns listed in ``log_raw`` are logs."""
        out = np.array(raw, dtype=float)
        for i in self.log_raw:
            out[..., i] = np.exp(out[..., i])
        return out

    def from_natural(self, params: np.ndarray) -> np.ndarray:
        out = np.array(params, dtype=float)
        for i in self.log_raw:
            out[..., i] = np.log(out[..., i])
        return out

    def start_grid(self, logx: np.ndarray, logy: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def diagnose(self, params: dict[str, float], logx: np.ndarray) -> list[str]:
        """Problems with a fit that the objective cannot show (e.g. a parameter the data cannot identify).
        Returns human-readable messages; empty when the fit is sound."""
        return []

    def predict(self, params: dict[str, float] | Sequence[float], x) -> np.ndarray:
        """Predict in natural units from natural parameters (a dict or a sequence in ``param_names`` order)."""
        if isinstance(params, dict):
            params = [params[k] for k in self.param_names]
        raw = torch.as_tensor(self.from_natural(np.asarray(params, dtype=float)))[None, :]
        logx = torch.as_tensor(np.log(np.asarray(x, dtype=float).reshape(-1, self.n_inputs)))
        with torch.no_grad():
            return np.exp(self.log_predict(raw, logx)[0].numpy())


@register_form("power")
@dataclass
class PowerLaw(Form):
    """Pure power law ``L = A x^-alpha`` (Kaplan et al. write it ``(x_c/x)^alpha``, ``A = x_c^alpha``)."""

    def __post_init__(self):
        self.param_names = ("A", "alpha")
        self.raw_names = ("a", "alpha")
        self.log_raw = (0,)
        self.formula = "L = A * x^-alpha"

    def log_predict(self, raw, logx):
        return raw[:, :1] - raw[:, 1:2] * logx[None, :, 0]

    def start_grid(self, logx, logy):
        slope, icpt = np.polyfit(logx[:, 0], logy, 1)
        return _grid([icpt - 1, icpt, icpt + 1], [-slope * f for f in (0.5, 1.0, 2.0)] + [0.05, 0.5])


@register_form("saturating_power")
@dataclass
class SaturatingPowerLaw(Form):
    """``L = E + A x^-alpha``: a power law approaching an irreducible loss E (M2 of Alabdulmohsin et al.)."""

    def __post_init__(self):
        self.param_names = ("E", "A", "alpha")
        self.raw_names = ("e", "a", "alpha")
        self.log_raw = (0, 1)
        self.formula = "L = E + A * x^-alpha"

    def log_predict(self, raw, logx):
        return _lse(raw[:, 0:1], raw[:, 1:2] - raw[:, 2:3] * logx[None, :, 0])

    def start_grid(self, logx, logy):
        ymin = float(np.min(logy))
        e = [ymin + math.log(f) for f in (0.1, 0.5, 0.9)]
        a = np.linspace(float(np.min(logy)) - 2, float(np.max(logy)) + 10 * float(np.mean(logx)) * 0.5, 6)
        return _grid(e, a, [0.05, 0.2, 0.5, 1.0, 2.0])


@register_form("chinchilla")
@dataclass
class Chinchilla(Form):
    """Hoffmann et al. (2022) eq. 2: ``L(N, D) = E + A / N^alpha + B / D^beta``.

    Raw coordinates are those of Hoffmann et al. Appendix D.2: ``a = log A``, ``b = log B``,
    ``e = log E``, and ``log L = LSE(a - alpha log N, b - beta log D, e)``.
    """

    def __post_init__(self):
        self.param_names = ("E", "A", "B", "alpha", "beta")
        self.raw_names = ("e", "a", "b", "alpha", "beta")
        self.n_inputs = 2
        self.input_names = ("N", "D")
        self.log_raw = (0, 1, 2)
        self.formula = "L = E + A / N^alpha + B / D^beta"

    def _terms(self, raw, logx):
        t1 = raw[:, 1:2] - raw[:, 3:4] * logx[None, :, 0]
        t2 = raw[:, 2:3] - raw[:, 4:5] * logx[None, :, 1]
        t3 = raw[:, 0:1].expand_as(t1)
        return t1, t2, t3

    def log_predict(self, raw, logx):
        return _lse(*self._terms(raw, logx))

    # Closed-form Jacobian: the gradient of LSE is the softmax of its terms. This path is the hot loop of the
    # 4,500-start fit, so it is written for few passes over memory: the terms are taken relative to e,
    # LSE = e + log(1 + exp(t1 - e) + exp(t2 - e)), which needs no running maximum; if that overflows
    # (a term more than ~700 above e, far outside any sensible fit) the max-shifted form is used instead.
    def forward(self, raw, logx, need_grad):
        e = raw[:, 0:1]
        u1 = torch.addcmul(raw[:, 1:2] - e, raw[:, 3:4], logx[None, :, 0], value=-1.0).exp_()
        u2 = torch.addcmul(raw[:, 2:3] - e, raw[:, 4:5], logx[None, :, 1], value=-1.0).exp_()
        tot = (u1 + u2).add_(1.0)
        if not math.isfinite(float(tot.sum())):  # one reduction instead of an elementwise check
            return self._forward_shifted(raw, logx, need_grad)
        pred = tot.log().add_(e)
        if not need_grad:
            return pred, None
        return pred, (u1, u2, tot.reciprocal_(), logx)  # softmax weights are u1 * inv and u2 * inv

    def _forward_shifted(self, raw, logx, need_grad):
        t1, t2, t3 = self._terms(raw, logx)
        m = torch.maximum(torch.maximum(t1, t2), t3)
        e1, e2, e3 = (t1 - m).exp_(), (t2 - m).exp_(), (t3 - m).exp_()
        tot = e1 + e2 + e3
        pred = tot.log().add_(m)
        if not need_grad:
            return pred, None
        return pred, (e1, e2, tot.reciprocal_(), logx)

    def vjp(self, ctx, v):
        u1, u2, inv, logx = ctx
        w = v * inv
        vp1, vp2 = w * u1, w * u2
        s1, s2 = vp1.sum(1), vp2.sum(1)
        gn = torch.mv(vp1, logx[:, 0].contiguous())
        gd = torch.mv(vp2, logx[:, 1].contiguous())
        return torch.stack([v.sum(1) - s1 - s2, s1, s2, -gn, -gd], dim=1)

    def start_grid(self, logx, logy):
        return hoffmann_grid()


def hoffmann_grid() -> torch.Tensor:
    """The 4,500 starting points of Hoffmann et al. (2022), Appendix D.2, in raw ``(e, a, b, alpha, beta)``
    order: alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}."""
    e = [-1.0 + 0.5 * i for i in range(5)]
    alpha = beta = [0.5 * i for i in range(5)]
    ab = [5.0 * i for i in range(6)]
    g = _grid(e, ab, ab, alpha, beta)
    assert g.shape == (4500, 5)
    return g


@register_form("kaplan")
@dataclass
class KaplanND(Form):
    """Kaplan et al. (2020) eq. 1.5: ``L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D``."""

    def __post_init__(self):
        self.param_names = ("N_c", "D_c", "alpha_N", "alpha_D")
        self.raw_names = ("log_N_c", "log_D_c", "alpha_N", "alpha_D")
        self.n_inputs = 2
        self.input_names = ("N", "D")
        self.log_raw = (0, 1)
        self.formula = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"

    def log_predict(self, raw, logx):
        ln_nc, ln_dc, a_n, a_d = (raw[:, i : i + 1] for i in range(4))
        t1 = (a_n / a_d) * (ln_nc - logx[None, :, 0])
        t2 = ln_dc - logx[None, :, 1]
        return a_d * _lse(t1, t2)

    def start_grid(self, logx, logy):
        ln_nc = [math.log(10.0) * k for k in (8, 11, 14, 17)]
        ln_dc = [math.log(10.0) * k for k in (8, 11, 14, 17)]
        return _grid(ln_nc, ln_dc, [0.03, 0.08, 0.2, 0.5], [0.03, 0.1, 0.3, 0.6])


@register_form("kaplan_ns")
@dataclass
class KaplanNS(Form):
    """Kaplan et al. (2020) eq. 1.6 / Table 3: ``L(N, S) = (N_c/N)^alpha_N + (S_c/S)^alpha_S`` (S: optimizer
    steps, S_min in the paper when the batch size is adjusted)."""

    def __post_init__(self):
        self.param_names = ("N_c", "S_c", "alpha_N", "alpha_S")
        self.raw_names = ("log_N_c", "log_S_c", "alpha_N", "alpha_S")
        self.n_inputs = 2
        self.input_names = ("N", "S")
        self.log_raw = (0, 1)
        self.formula = "L = (N_c/N)^alpha_N + (S_c/S)^alpha_S"

    def log_predict(self, raw, logx):
        t1 = raw[:, 2:3] * (raw[:, 0:1] - logx[None, :, 0])
        t2 = raw[:, 3:4] * (raw[:, 1:2] - logx[None, :, 1])
        return _lse(t1, t2)

    def start_grid(self, logx, logy):
        ln10 = math.log(10.0)
        return _grid([ln10 * k for k in (6, 10, 14)], [ln10 * k for k in (1, 3, 5)], [0.05, 0.1, 0.3], [0.3, 0.8, 1.5])


@register_form("isoflop_parabola")
@dataclass
class IsoFlopParabola(Form):
    """Hoffmann et al. Approach 2: at fixed compute, ``L = L_min + k (log10 N - log10 N_opt)^2``.

    Fitted in closed form (weighted linear least squares of L on 1, u, u^2 with ``u = log10 N``)."""

    def __post_init__(self):
        self.param_names = ("L_min", "k", "log10_N_opt")
        self.raw_names = ("log_L_min", "log_k", "log10_N_opt")
        self.log_raw = (0, 1)
        self.formula = "L = L_min + k * (log10 N - log10 N_opt)^2"

    def log_predict(self, raw, logx):
        u = logx[None, :, 0] / math.log(10.0)
        return torch.log(raw[:, 0:1].exp() + raw[:, 1:2].exp() * (u - raw[:, 2:3]) ** 2)

    @staticmethod
    def vertex(u: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float, float] | None:
        """Weighted least squares of y on (1, u, u^2), written as ``y = y_min + k (u - u_0)^2``: returns
        ``(u_0, y_min, k)``, or None if the parabola opens downward (no minimum). ``w`` weighs the squared
        residuals (bootstrap multiplicities), so ``polyfit`` gets its square root.

        The one implementation of the parabola: :func:`harness.fit.isoflop.fit_profile` calls it too."""
        w = np.ones_like(y) if w is None else w
        c2, c1, c0 = np.polyfit(u, y, 2, w=np.sqrt(w))
        if c2 <= 0:
            return None
        return -c1 / (2 * c2), c0 - c1 * c1 / (4 * c2), c2

    def closed_form(self, logx, y, w=None):
        """Least squares of y on (1, u, u^2); returns raw parameters or None if not a valley."""
        v = self.vertex(logx[:, 0] / math.log(10.0), y, w)
        if v is None:
            return None
        u0, lmin, k = v
        if lmin <= 0:
            return None
        return np.array([math.log(lmin), math.log(k), u0])

    def start_grid(self, logx, logy):
        u = logx[:, 0] / math.log(10.0)
        lmin = float(np.min(logy))
        return _grid([lmin - 0.05, lmin], [math.log(k) for k in (0.01, 0.1, 1.0)], np.linspace(u.min(), u.max(), 5))


@register_form("routing")
@dataclass
class RoutedLM(Form):
    """Clark et al. (2022, "Unified Scaling Laws for Routed Language Models") eq. 1, in base-10 logs as printed:

    ``log10 L = a log10 N + b log10 E_hat + c log10 N log10 E_hat + d``, with the saturating expert count
    ``1/E_hat = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max`` (``E_hat = E_start`` for a dense model, E = 1;
    ``E_hat -> E_max`` as E grows). N is the dense parameter count (what one token sees), E the experts per
    routed layer.

    Raw coordinates ``a, b, c, d, log E_start, log(E_max - E_start)`` keep ``E_max > E_start > 0`` (the
    transform needs both). For fixed ``E_start, E_max`` the law is linear in ``a, b, c, d``, so each start of
    the grid is the exact least-squares solution for its pair: the optimiser only has the two saturation
    parameters left to find.
    """

    default_loss: ClassVar[str] = "mse"  # least squares on log L, the usual choice for a law linear in its logs

    def __post_init__(self):
        self.param_names = ("a", "b", "c", "d", "E_start", "E_max")
        self.raw_names = ("a", "b", "c", "d", "log_E_start", "log_E_max_minus_E_start")
        self.n_inputs = 2
        self.input_names = ("N", "E")
        self.formula = "log10 L = a log10 N + b log10 E_hat + c log10 N log10 E_hat + d"

    @property
    def log_coordinates(self) -> tuple[bool, ...]:
        return (False, False, False, False, True, True)

    @staticmethod
    def e_hat(E, e_start, e_max):
        """The saturating transform (numpy or torch, broadcasting)."""
        return 1.0 / (1.0 / (E - 1.0 + e_start * e_max / (e_max - e_start)) + 1.0 / e_max)

    def log_predict(self, raw, logx):
        ln10 = math.log(10.0)
        es = raw[:, 4:5].exp()
        em = es + raw[:, 5:6].exp()
        u = logx[None, :, 0] / ln10
        v = torch.log(self.e_hat(logx[None, :, 1].exp(), es, em)) / ln10
        a, b, c, d = (raw[:, i : i + 1] for i in range(4))
        return ln10 * (a * u + b * v + c * u * v + d)

    def to_natural(self, raw):
        out = np.array(raw, dtype=float)
        out[..., 4] = np.exp(out[..., 4])
        out[..., 5] = out[..., 4] + np.exp(np.asarray(raw, dtype=float)[..., 5])
        return out

    def from_natural(self, params):
        out = np.array(params, dtype=float)
        if np.any(out[..., 5] <= out[..., 4]) or np.any(out[..., 4] <= 0):
            raise ValueError("the routing law needs E_max > E_start > 0")
        out[..., 5] = np.log(out[..., 5] - out[..., 4])
        out[..., 4] = np.log(out[..., 4])
        return out

    def linear_solution(self, logx, logy, e_start, e_max, w=None):
        """Weighted least squares of ``log10 L`` on ``(log10 N, log10 E_hat, their product, 1)``: ``a, b, c, d``."""
        ln10 = math.log(10.0)
        u = logx[:, 0] / ln10
        v = np.log10(self.e_hat(np.exp(logx[:, 1]), e_start, e_max))
        A = np.stack([u, v, u * v, np.ones_like(u)], axis=1)
        sw = np.sqrt(np.ones_like(u) if w is None else np.asarray(w, dtype=float))
        return np.linalg.lstsq(A * sw[:, None], (logy / ln10) * sw, rcond=None)[0]

    def start_grid(self, logx, logy):
        rows = []
        for es in (1.2, 2.0, 4.0, 8.0):
            for gap in (30.0, 100.0, 300.0, 1000.0, 3000.0):
                a, b, c, d = self.linear_solution(logx, logy, es, es + gap)
                rows.append([a, b, c, d, math.log(es), math.log(gap)])
        return torch.tensor(rows, dtype=torch.float64)

    def diagnose(self, params, logx):
        e = np.exp(logx[:, 1])
        msgs = []
        if params["E_max"] > 10 * e.max():
            msgs.append(
                f"E_max = {params['E_max']:.4g} is more than 10x the largest E sampled ({e.max():.4g}): the data show "
                "no saturation, so E_max is a lower bound rather than an estimate"
            )
        return msgs

    def n_cutoff(self, params: dict[str, float]) -> float:
        """The dense size at which routing stops helping: ``d log L / d log E_hat = b + c log10 N = 0``."""
        return 10.0 ** (-params["b"] / params["c"]) if params["c"] > 0 else math.inf


@register_form("bnsl")
@dataclass
class BNSL(Form):
    """Broken neural scaling law (Caballero et al. 2023, eq. 1) with ``n_breaks`` breaks:

    ``y = a + b x^-c0 * prod_i (1 + (x/d_i)^(1/f_i))^(-c_i f_i)``.

    Raw coordinates: ``log a, log b, c0, (c_i, log d_i, log f_i) for each break``; the product is
    evaluated as ``exp(-sum_i c_i f_i softplus((log x - log d_i)/f_i))`` so sharp breaks stay finite.
    """

    n_breaks: int = 1
    default_loss: ClassVar[str] = "mse"  # Caballero et al. fit BNSL by mean squared log error

    def __post_init__(self):
        if self.n_breaks < 0:
            raise ValueError("n_breaks must be >= 0")
        names = ["a", "b", "c0"]
        raw = ["log_a", "log_b", "c0"]
        for i in range(1, self.n_breaks + 1):
            names += [f"c{i}", f"d{i}", f"f{i}"]
            raw += [f"c{i}", f"log_d{i}", f"log_f{i}"]
        self.param_names = tuple(names)
        self.raw_names = tuple(raw)
        self.log_raw = (0, 1, *(k for i in range(self.n_breaks) for k in (4 + 3 * i, 5 + 3 * i)))
        self.formula = "y = a + b x^-c0 prod_i (1 + (x/d_i)^(1/f_i))^(-c_i f_i)"

    def log_predict(self, raw, logx):
        lx = logx[None, :, 0]
        main = raw[:, 1:2] - raw[:, 2:3] * lx
        for i in range(self.n_breaks):
            c, ld, lf = (raw[:, 3 + 3 * i + j : 4 + 3 * i + j] for j in range(3))
            f = lf.exp()
            main = main - c * f * torch.nn.functional.softplus((lx - ld) / f)
        return _lse(raw[:, 0:1], main)

    # A break is "seen" only if the data cover it: the fitted break point lies inside the data and, by the
    # largest x, the break has bent the curve by at least BREAK_MIN_EFFECT in log space. Otherwise the
    # fitted c_i, d_i, f_i are whatever fits noise or curvature best and must not be reported as a break.
    BREAK_MIN_EFFECT = 0.05

    def break_effects(self, params: dict[str, float], x_max: float) -> list[float]:
        """For each break, the change it makes to log(y - a) at ``x_max``: c_i f_i log(1 + (x/d_i)^(1/f_i))."""
        out = []
        for i in range(1, self.n_breaks + 1):
            c, d, f = params[f"c{i}"], params[f"d{i}"], params[f"f{i}"]
            z = (math.log(x_max) - math.log(d)) / f
            softplus = z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))  # log(1 + e^z), stably
            out.append(abs(c * f * softplus))
        return out

    def diagnose(self, params, logx):
        lx = logx[:, 0]
        x_min, x_max = float(np.exp(lx.min())), float(np.exp(lx.max()))
        msgs = []
        for i, eff in enumerate(self.break_effects(params, x_max), start=1):
            d = params[f"d{i}"]
            inside, strong = x_min < d < x_max, eff >= self.BREAK_MIN_EFFECT
            if not (inside and strong):
                why = []
                if not inside:
                    why.append(f"lies outside the data range {x_min:.4g}..{x_max:.4g}")
                if not strong:
                    why.append(f"bends log y by only {eff:.3g} by the largest x (need >= {self.BREAK_MIN_EFFECT})")
                msgs.append(
                    f"break {i} is not identified by the data: fitted d{i} = {d:.4g} {' and '.join(why)}; "
                    f"its c{i}, d{i}, f{i} are not estimates of a break. Add data beyond the break or fit fewer breaks."
                )
        return msgs

    MAX_GRID_STARTS = 100_000  # 12 * 45^n_breaks starts: 540 for one break, 24,300 for two, 1.1 million for three

    def start_grid(self, logx, logy):
        size = 12 * 45**self.n_breaks
        if size > self.MAX_GRID_STARTS:
            raise ValueError(
                f"the default start grid of bnsl with n_breaks={self.n_breaks} has {size:.3g} points (limit "
                f"{self.MAX_GRID_STARTS:,}); fit fewer breaks, or pass starts= to ScalingLaw"
            )
        ymin, ymax = float(np.min(logy)), float(np.max(logy))
        lx = np.sort(logx[:, 0])
        # break locations spread over the interior of the data (the paper's grid search does the same)
        ld = np.quantile(lx, np.linspace(0.1, 0.9, 5))
        axes = [[ymin + math.log(f) for f in (0.3, 0.9)], [ymax, ymax + 1.0], [0.0, 0.1, 0.5]]
        for _ in range(self.n_breaks):
            axes += [[0.3, 1.5, 5.0], list(ld), [math.log(0.05), math.log(0.5), math.log(2.0)]]
        return _grid(*axes)


@register_form("m1")
@dataclass
class M1(Form):
    """Alabdulmohsin et al. (2022) M1: ``e_x = beta x^c`` (c < 0 for a decreasing curve)."""

    def __post_init__(self):
        self.param_names = ("beta", "c")
        self.raw_names = ("log_beta", "c")
        self.log_raw = (0,)
        self.formula = "e = beta * x^c"

    def log_predict(self, raw, logx):
        return raw[:, 0:1] + raw[:, 1:2] * logx[None, :, 0]

    def start_grid(self, logx, logy):
        slope, icpt = np.polyfit(logx[:, 0], logy, 1)
        return _grid([icpt - 1, icpt, icpt + 1], [slope * f for f in (0.5, 1.0, 2.0)] + [-0.05, -0.5])


@register_form("m2")
@dataclass
class M2(Form):
    """Alabdulmohsin et al. (2022) M2: ``e_x = e_inf + beta x^c``."""

    def __post_init__(self):
        self.param_names = ("e_inf", "beta", "c")
        self.raw_names = ("log_e_inf", "log_beta", "c")
        self.log_raw = (0, 1)
        self.formula = "e = e_inf + beta * x^c"

    def log_predict(self, raw, logx):
        return _lse(raw[:, 0:1], raw[:, 1:2] + raw[:, 2:3] * logx[None, :, 0])

    def start_grid(self, logx, logy):
        g = SaturatingPowerLaw().start_grid(logx, logy)
        g[:, 2] = -g[:, 2]
        return g


@register_form("m3")
@dataclass
class M3(Form):
    """Alabdulmohsin et al. (2022) M3, as their Section 2 and released estimator define it:
    ``e_x = beta (1/x + gamma)^c`` with ``c >= 0`` and ``gamma >= 0``. There is no separate e_inf: the error
    falls as ``beta x^-c`` while ``1/x >> gamma`` and levels off at ``beta gamma^c``.

    Raw coordinates ``log beta, log gamma, log c`` keep both constraints. Each start solves ``log beta, c`` by
    least squares for its ``gamma`` (the released estimator's alternating step)."""

    def __post_init__(self):
        self.param_names = ("beta", "gamma", "c")
        self.raw_names = ("log_beta", "log_gamma", "log_c")
        self.log_raw = (0, 1, 2)
        self.formula = "e = beta * (1/x + gamma)^c"

    def log_predict(self, raw, logx):
        return raw[:, 0:1] + raw[:, 2:3].exp() * _lse(-logx[None, :, 0], raw[:, 1:2])

    def start_grid(self, logx, logy):
        lx = logx[:, 0]
        rows = []
        # gamma from far below the smallest 1/x (no levelling off) to about the largest (levels off at once)
        for log_gamma in np.linspace(-float(lx.max()) - 4.0, -float(lx.min()) + 1.0, 8):
            u = np.logaddexp(-lx, log_gamma)
            c, log_beta = np.polyfit(u, logy, 1)
            for f in (0.5, 1.0, 2.0):
                rows.append([log_beta, log_gamma, math.log(max(c * f, 1e-3))])
        return torch.tensor(rows, dtype=torch.float64)


@register_form("m4")
@dataclass
class M4(Form):
    """Alabdulmohsin et al. (2022) M4: ``(e_x - e_inf) / (e_0 - e_x)^alpha = beta x^c``.

    The prediction is the root in ``(e_inf, e_0)`` of that implicit equation, found by bisection; one
    Newton step from the detached root gives exact first derivatives (implicit function theorem).
    """

    def __post_init__(self):
        self.param_names = ("e_inf", "e_0", "beta", "c", "alpha")
        self.raw_names = ("log_e_inf", "log_gap", "log_beta", "c", "log_alpha")
        self.formula = "(e - e_inf) / (e_0 - e)^alpha = beta * x^c"

    def log_predict(self, raw, logx):
        e_inf = raw[:, 0:1].exp()
        e_0 = e_inf + raw[:, 1:2].exp()
        rhs = (raw[:, 2:3] + raw[:, 3:4] * logx[None, :, 0]).exp()
        alpha = raw[:, 4:5].exp()

        def g(e):
            return (e - e_inf) - rhs * (e_0 - e).clamp_min(0) ** alpha

        with torch.no_grad():
            lo = e_inf.expand_as(rhs).clone()
            hi = e_0.expand_as(rhs).clone()
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                pos = g(mid) > 0
                hi = torch.where(pos, mid, hi)
                lo = torch.where(pos, lo, mid)
            root = 0.5 * (lo + hi)
        dg = 1.0 + rhs * alpha * (e_0 - root).clamp_min(1e-300) ** (alpha - 1)
        e = root - g(root) / dg
        return torch.log(e.clamp_min(1e-300))

    @property
    def log_coordinates(self):
        return (True, True, True, False, True)  # log e_inf, log (e_0 - e_inf), log beta, c, log alpha

    def to_natural(self, raw):
        raw = np.asarray(raw, dtype=float)
        e_inf = np.exp(raw[..., 0])
        return np.stack([e_inf, e_inf + np.exp(raw[..., 1]), np.exp(raw[..., 2]), raw[..., 3], np.exp(raw[..., 4])], -1)

    def from_natural(self, p):
        p = np.asarray(p, dtype=float)
        return np.stack(
            [np.log(p[..., 0]), np.log(p[..., 1] - p[..., 0]), np.log(p[..., 2]), p[..., 3], np.log(p[..., 4])], -1
        )

    def start_grid(self, logx, logy):
        ymin, ymax = float(np.min(logy)), float(np.max(logy))
        e_inf = [ymin + math.log(f) for f in (0.3, 0.9)]
        gap = [math.log(math.exp(ymax) - math.exp(ymin) * f) for f in (0.0, 0.5)] + [ymax + 0.5]
        xm = float(np.mean(logx[:, 0]))
        cs = [-0.3, -1.0]
        betas = [-c * xm for c in cs]
        return _grid(e_inf, gap, betas, cs, [math.log(0.5), 0.0])
