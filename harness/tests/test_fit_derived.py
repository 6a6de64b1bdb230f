"""Compute-optimal allocation, IsoFLOP analysis and extrapolation scoring against hand-computed values."""

import numpy as np
import pytest

from harness.fit import FitInputError, ScalingLaw, get_form
from harness.fit import derived as dv
from harness.fit.extrapolate import extrapolation_score
from harness.fit.isoflop import group_by_budget, isoflop_profiles, optimal_size_exponent

P = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def test_allocation_minimises_loss_at_fixed_compute():
    C = 5.76e23
    n_star = dv.n_opt(C, P["A"], P["B"], P["alpha"], P["beta"])
    n = np.logspace(9, 12, 20001)
    loss = P["E"] + P["A"] / n ** P["alpha"] + P["B"] / (C / (6 * n)) ** P["beta"]
    assert n_star == pytest.approx(n[np.argmin(loss)], rel=1e-3)
    assert dv.d_opt(C, P["A"], P["B"], P["alpha"], P["beta"]) * n_star * 6 == pytest.approx(C)
    assert dv.exponent_a(0.34, 0.28) + dv.exponent_b(0.34, 0.28) == pytest.approx(1.0)
    # vectorised over bootstrap columns
    out = dv.tokens_per_parameter(C, np.array([P["A"]] * 3), P["B"], np.array([0.3, 0.34, 0.4]), P["beta"])
    assert out.shape == (3,)


def test_isoflop_recovers_exponent_of_a_known_law():
    rng = np.random.default_rng(0)
    budgets = np.array([1e18, 1e19, 1e20, 1e21])
    N, C, L = [], [], []
    for c in budgets:
        n = np.logspace(-1, 1, 9) * dv.n_opt(c, P["A"], P["B"], P["alpha"], P["beta"])
        N.append(n)
        C.append(np.full(n.size, c) * np.exp(rng.normal(0, 0.02, n.size)))
        L.append(get_form("chinchilla").predict(P, np.stack([n, c / (6 * n)], 1)))
    N, C, L = map(np.concatenate, (N, C, L))
    profiles = isoflop_profiles(N, C, L, budgets, tol_dex=0.05)
    assert len(profiles) == 4 and all(p.vertex_inside for p in profiles)
    a, _ = optimal_size_exponent(profiles)
    # parabolas in log N approximate the exact profile; the exponent comes out within 0.02 of beta/(alpha+beta)
    assert a == pytest.approx(dv.exponent_a(P["alpha"], P["beta"]), abs=0.02)


def test_isoflop_grouping_and_errors():
    idx = group_by_budget(np.array([1e19, 1.05e19, 3e19, 5e19]), np.array([1e19, 3e19]), tol_dex=0.05)
    assert idx.tolist() == [0, 0, 1, -1]
    with pytest.raises(FitInputError, match="3 or more budgets"):
        optimal_size_exponent([])


def test_extrapolation_score():
    x = np.logspace(2, 6, 30)
    y = 1.5 + 20 * x**-0.3
    good = extrapolation_score(ScalingLaw("saturating_power", loss="mse"), x, y, cut=1e4)
    bad = extrapolation_score(ScalingLaw("power", loss="mse"), x, y, cut=1e4)
    assert good.n_fit + good.n_test == 30 and good.n_test > 5
    assert good.rmsle < 1e-3 < bad.rmsle  # a pure power law cannot extrapolate a saturating curve
    with pytest.raises(FitInputError, match="leaves no points"):
        extrapolation_score(ScalingLaw("power"), x, y, cut=1e9)


def test_frontier_of_learning_curves():
    from harness.fit.frontier import learning_curve_frontier

    # three model sizes, L(N, D) of a known Chinchilla law: the envelope must be the lower of the curves and
    # switch to larger models as compute grows
    sizes = [1e6, 1e7, 1e8]
    curves = []
    for n in sizes:
        tok = np.logspace(6, 10, 40)
        curves.append((n, tok, get_form("chinchilla").predict(P, np.stack([np.full_like(tok, n), tok], 1))))
    fr = learning_curve_frontier(curves, n_grid=60)
    for n, tok, loss in curves:
        c = 6 * n * tok
        inside = (fr.compute >= c[0]) & (fr.compute <= c[-1])
        assert np.all(fr.loss[inside] <= np.exp(np.interp(np.log(fr.compute[inside]), np.log(c), np.log(loss))) + 1e-12)
    assert fr.n_params[0] == 1e6 and fr.n_params[-1] == 1e8
    assert np.all(np.diff(fr.n_params) >= 0)  # optimal size grows with compute
    with pytest.raises(FitInputError, match="at least 2 runs"):
        learning_curve_frontier(curves[:1])
