"""Batched L-BFGS: many independent small minimisations advanced together.

Scaling-law fits are small (5-20 parameters, a few hundred points) but are run from thousands of
starting points (Hoffmann et al. use a 4,500-point grid) and then again for every bootstrap replicate.
A Python loop of ``scipy.optimize.minimize`` spends nearly all of its time in interpreter overhead.
Here every start is one row of a ``(B, P)`` tensor and each iteration is a handful of vectorised
operations over all rows that are still running, so the cost per start is tiny.

The stopping rules are those of SciPy's L-BFGS-B with its default options, so that results are
comparable with the many published fits that used it (and so that its known sensitivity to the scale of
the objective, see ``reduction="mean"`` in :mod:`harness.fit.objectives`, can be reproduced):

* ``gtol``: stop when ``max_i |g_i| <= gtol`` (SciPy's ``pgtol``, default 1e-5);
* ``ftol``: stop when ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``
  (SciPy's ``factr * eps``, default 2.22e-9).

The line search brackets a step satisfying the weak Wolfe conditions (it can lengthen the step as well as
shorten it, as SciPy's does), so stored curvature pairs have ``s.y > 0`` and the inverse-Hessian
approximation stays positive definite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

# f_and_g(x) -> (f, g) for a (b, P) batch of rows; rows are independent problems.
ObjectiveFn = Callable[[torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]
"""Signature: ``f_and_g(x, rows, need_grad) -> (f, g)``, ``x`` of shape (b, P), ``rows`` the indices
(into the full batch) of those b problems, ``f`` of shape (b,), ``g`` of shape (b, P) or None when
``need_grad`` is false (line-search trials need only the objective)."""

SCIPY_FTOL = 2.220446049250313e-09  # factr=1e7 times machine epsilon, SciPy's L-BFGS-B default
SCIPY_GTOL = 1e-5


@dataclass
class BatchResult:
    """Outcome of :func:`batched_lbfgs`, one entry per row of the batch."""

    x: torch.Tensor  # (B, P) final points
    fun: torch.Tensor  # (B,) objective at x
    grad_max: torch.Tensor  # (B,) max |g| at x
    n_iter: torch.Tensor  # (B,) iterations taken
    status: torch.Tensor  # (B,) 0 = gtol, 1 = ftol, 2 = max_iter, 3 = line search failed, 4 = non-finite

    STATUS_TEXT: ClassVar[dict[int, str]] = {
        0: "converged (projected gradient below gtol)",
        1: "converged (relative reduction of the objective below ftol)",
        2: "iteration limit reached",
        3: "line search could not decrease the objective",
        4: "objective or gradient not finite",
    }

    @property
    def converged(self) -> torch.Tensor:
        return self.status <= 1


def batched_lbfgs(
    f_and_g: ObjectiveFn,
    x0: torch.Tensor,
    *,
    max_iter: int = 15000,
    history: int = 10,
    gtol: float = SCIPY_GTOL,
    ftol: float = SCIPY_FTOL,
    max_line_search: int = 20,
    c1: float = 1e-4,
    c2: float = 0.9,
    on_iteration: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Minimise B independent problems at once with L-BFGS.

    ``f_and_g(x, rows, need_grad)`` must evaluate the objective (and its gradient when asked) for the
    problems listed in ``rows`` (an index tensor into the full batch; objectives with per-row data such
    as bootstrap weights use it to pick their rows). Rows stop independently: finished rows are written
    out and dropped from the working set, so the work per iteration shrinks as rows converge.
    """
    if x0.ndim != 2 or x0.shape[0] == 0:
        raise ValueError(f"x0 must have shape (batch >= 1, n_params), got {tuple(x0.shape)}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    B, P = x0.shape
    dtype, device = x0.dtype, x0.device
    out_x, out_f = x0.clone(), torch.empty(B, dtype=dtype, device=device)
    out_gmax = torch.empty(B, dtype=dtype, device=device)
    out_iter = torch.zeros(B, dtype=torch.long, device=device)
    out_status = torch.full((B,), 2, dtype=torch.long, device=device)

    # working set (compacted): global row ids, state, and the curvature memory, newest pair last
    rows = torch.arange(B, device=device)
    x = x0.clone()
    f, g = f_and_g(x, rows, True)
    S = torch.zeros(B, history, P, dtype=dtype, device=device)
    Y = torch.zeros_like(S)
    rho = torch.zeros(B, history, dtype=dtype, device=device)
    gamma = torch.ones(B, dtype=dtype, device=device)
    it = 0
    status = torch.full((B,), -1, dtype=torch.long, device=device)
    status[~(torch.isfinite(f) & torch.isfinite(g).all(dim=1))] = 4
    status[(status < 0) & (g.abs().amax(dim=1) <= gtol)] = 0

    while True:
        done = status >= 0
        if it >= max_iter:
            done = torch.ones_like(done)
            status = torch.where(status >= 0, status, torch.full_like(status, 2))
        if done.any():
            r = rows[done]
            out_x[r], out_f[r], out_gmax[r] = x[done], f[done], g[done].abs().amax(dim=1)
            out_status[r], out_iter[r] = status[done], it
            keep = ~done
            if not keep.any():
                if on_iteration is not None:
                    on_iteration(B, B)
                break
            rows, x, f, g, S, Y, rho, gamma, status = (t[keep] for t in (rows, x, f, g, S, Y, rho, gamma, status))
        if on_iteration is not None:
            on_iteration(B - rows.shape[0], B)
        # small batches are launch-bound (the compact form has fewer operations); large ones are
        # throughput-bound (the two-loop recursion's elementwise work beats 4,500 tiny triangular solves)
        d = -(_direction(g, S, Y, rho, gamma) if g.shape[0] <= 256 else _two_loop(g, S, Y, rho, gamma))
        slope = (g * d).sum(dim=1)
        bad_dir = ~(slope < 0)
        if bad_dir.any():  # fall back to steepest descent where the quasi-Newton direction fails
            d[bad_dir] = -g[bad_dir]
            slope[bad_dir] = -(g[bad_dir] ** 2).sum(dim=1)
        if it == 0:  # first step of unit length, as SciPy takes
            t = torch.clamp(1.0 / d.norm(dim=1), max=1.0)
        else:
            t = torch.ones_like(f)
        t, f_new, g_new, ok = _wolfe(f_and_g, rows, x, f, g, d, slope, t, c1, c2, max_line_search)
        x_new = torch.where(ok[:, None], x + t[:, None] * d, x)
        f_new = torch.where(ok, f_new, f)

        s_vec, y_vec = x_new - x, g_new - g
        sy = (s_vec * y_vec).sum(dim=1)
        yy = (y_vec * y_vec).sum(dim=1)
        store = ok & (sy > 1e-10 * yy.clamp_min(1e-300))
        S = torch.roll(S, -1, dims=1)
        Y = torch.roll(Y, -1, dims=1)
        rho = torch.roll(rho, -1, dims=1)
        zero = torch.zeros_like(s_vec)
        S[:, -1] = torch.where(store[:, None], s_vec, zero)
        Y[:, -1] = torch.where(store[:, None], y_vec, zero)
        rho[:, -1] = torch.where(store, 1.0 / torch.where(store, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        gamma = torch.where(store, sy / yy.clamp_min(1e-300), gamma)

        rel = (f - f_new) / torch.maximum(torch.maximum(f.abs(), f_new.abs()), torch.ones_like(f))
        finite = torch.isfinite(f_new) & torch.isfinite(g_new).all(dim=1)
        status = torch.full_like(status, -1)
        status[~ok] = 3
        status[ok & (rel <= ftol)] = 1
        status[ok & (g_new.abs().amax(dim=1) <= gtol)] = 0
        status[~finite] = 4
        x, f, g = x_new, f_new, g_new
        it += 1
        out_iter[rows] = it
    return BatchResult(x=out_x, fun=out_f, grad_max=out_gmax, n_iter=out_iter, status=out_status)


def _direction(g, S, Y, rho, gamma):
    """``H g`` for the L-BFGS inverse-Hessian approximation, in the compact form of Byrd, Nocedal and
    Schnabel (1994) so that a whole batch costs a dozen batched small-matrix operations (the textbook
    two-loop recursion costs ~4 operations per stored pair).

    ``S, Y`` are (b, m, P), oldest pair first; empty slots (``rho = 0``) hold zeros. With ``a = S g``,
    ``c = Y g``, ``R = triu(S Y^T)``, ``D = diag(S Y^T)`` and ``q = R^-1 a``:
    ``H g = gamma g + S^T R^-T ((D + gamma Y Y^T) q - gamma c) - gamma Y^T q``.
    An empty slot gets ``R_ii = 1``; its rows and columns are otherwise zero, so it contributes nothing.
    """
    empty = (rho == 0).to(g.dtype)  # (b, m)
    gam = gamma[:, None]
    a = torch.bmm(S, g[:, :, None])  # (b, m, 1)
    c = torch.bmm(Y, g[:, :, None])
    SY = torch.bmm(S, Y.transpose(1, 2))  # (b, m, m)
    YY = torch.bmm(Y, Y.transpose(1, 2))
    R = torch.triu(SY) + torch.diag_embed(empty)
    diag = torch.diagonal(SY, dim1=1, dim2=2)[:, :, None]
    q = torch.linalg.solve_triangular(R, a, upper=True)
    t = diag * q + gam[:, :, None] * torch.bmm(YY, q) - gam[:, :, None] * c
    top = torch.linalg.solve_triangular(R.transpose(1, 2), t, upper=False)
    hg = gam * g + torch.bmm(S.transpose(1, 2), top)[:, :, 0] - gam * torch.bmm(Y.transpose(1, 2), q)[:, :, 0]
    return hg


def _two_loop(g, S, Y, rho, gamma):
    """The textbook two-loop recursion for ``H g`` (same memory layout and result as :func:`_direction`)."""
    q = g.clone()
    m = S.shape[1]
    alphas = []
    for k in range(m - 1, -1, -1):
        a = rho[:, k] * (S[:, k] * q).sum(dim=1)
        q -= a[:, None] * Y[:, k]
        alphas.append(a)
    r = gamma[:, None] * q
    for k in range(m):
        beta = rho[:, k] * (Y[:, k] * r).sum(dim=1)
        r += (alphas[m - 1 - k] - beta)[:, None] * S[:, k]
    return r


def _next_trial(t, lo, hi, armijo):
    """Next step for rows whose trial ``t`` failed: double it while it is too short and nothing longer has
    failed, halve it while it is too long and nothing shorter has succeeded, else bisect the bracket.
    (Quadratic and secant interpolation were tried here and made no measurable difference on the
    Chinchilla grid, so the simplest rule stays.)"""
    unbounded_grow = armijo & torch.isinf(hi)
    first_shrink = ~armijo & (lo == 0)
    return torch.where(unbounded_grow, 2.0 * t, torch.where(first_shrink, 0.5 * t, 0.5 * (lo + hi)))


def _wolfe(f_and_g, act, x, f, g, d, slope, t, c1, c2, max_steps):
    """Weak-Wolfe line search, all rows at once.

    Accepts ``t`` with ``f(x + t d) <= f + c1 t g.d`` (sufficient decrease) and ``g(x + t d).d >= c2 g.d``
    (curvature), which keeps every stored pair's ``s.y`` positive. Rejected trials are followed by a step
    from :func:`_next_trial`; lengthening the step as well as shortening it is what lets ill-conditioned rows
    move as fast as SciPy's More-Thuente search does. If the budget of trials runs out, the largest step
    that gave sufficient decrease is taken. Returns step, objective and gradient at the new point (the old
    ones where nothing was accepted) and success.

    The first trial covers every row and is handled with full-width masks (most rows accept it); later
    trials gather only the rows still searching.
    """
    lo = torch.zeros_like(t)
    hi = torch.full_like(t, math.inf)
    f_lo, g_lo = f, g  # best step with sufficient decrease so far (fallback when the bracket does not close)

    def judge(f_try, g_try, tr, f0, d0, s0):
        finite = torch.isfinite(f_try) & torch.isfinite(g_try).all(dim=1)
        armijo = finite & (f_try <= f0 + c1 * tr * s0)
        return armijo, armijo & ((g_try * d0).sum(dim=1) >= c2 * s0)

    # trial 1: all rows, no gathers
    f_try, g_try = f_and_g(x + t[:, None] * d, act, True)
    armijo, ok = judge(f_try, g_try, t, f, d, slope)
    f_at = torch.where(ok, f_try, f)
    g_at = torch.where(ok[:, None], g_try, g)
    grow = armijo & ~ok
    f_lo = torch.where(grow, f_try, f_lo)
    g_lo = torch.where(grow[:, None], g_try, g_lo)
    t_next = _next_trial(t, lo, hi, armijo)
    hi = torch.where(armijo, hi, t)
    lo = torch.where(grow, t, lo)
    t = torch.where(ok, t, t_next)
    pending = ~ok
    # later trials: only the rows still searching
    for _ in range(max_steps - 1):
        rows = pending.nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        tr, f0, d0, s0 = t[rows], f[rows], d[rows], slope[rows]
        f_try, g_try = f_and_g(x[rows] + tr[:, None] * d0, act[rows], True)
        armijo, accept = judge(f_try, g_try, tr, f0, d0, s0)
        acc = rows[accept]
        ok[acc] = True
        f_at[acc], g_at[acc] = f_try[accept], g_try[accept]
        pending[acc] = False
        grow_m = armijo & ~accept
        grow = rows[grow_m]
        f_lo[grow], g_lo[grow] = f_try[grow_m], g_try[grow_m]
        t_next = _next_trial(tr, lo[rows], hi[rows], armijo)
        hi[rows] = torch.where(armijo, hi[rows], tr)
        lo[rows] = torch.where(grow_m, tr, lo[rows])
        t[rows] = torch.where(accept, tr, t_next)
    # rows that ran out of trials: fall back to the best sufficient-decrease step, if any
    fallback = pending & (lo > 0)
    t = torch.where(fallback, lo, t)
    f_at = torch.where(fallback, f_lo, f_at)
    g_at = torch.where(fallback[:, None], g_lo, g_at)
    return t, f_at, g_at, ok | fallback
