"""Every form recovers known parameters from synthetic data, noiseless and noisy."""

import math
import warnings

import numpy as np
import pytest

from harness.fit import FitWarning, ScalingLaw, available_forms, form_class, get_form, percentile_interval
from harness.fit.estimator import FitInputError
from harness.fit.forms import IsoFlopParabola
from harness.fit.isoflop import fit_profile


def _synthetic(form, params, X, noise=0.0, seed=1234):
    """The form's predictions, times log-normal noise of this scale drawn from its own seeded generator (the
    same noise whatever tests ran before or run in parallel)."""
    y = form.predict(params, X)
    if noise:
        y = y * np.exp(np.random.default_rng(seed).normal(0, noise, size=y.shape))
    return y


def _noisy_power(x, seed=1234):
    return 12.0 * x**-0.076 * np.exp(np.random.default_rng(seed).normal(0, 0.01, x.size))


def _assert_close(fitted, true, rtol):
    for k, v in true.items():
        assert fitted[k] == pytest.approx(v, rel=rtol), f"{k}: fitted {fitted[k]:.6g}, true {v:.6g}"


ONE_D = np.logspace(3, 8, 40)
N_GRID, D_GRID = np.meshgrid(np.logspace(7, 10, 8), np.logspace(9, 12, 8))
TWO_D = np.stack([N_GRID.ravel(), D_GRID.ravel()], axis=1)
N_S, S_S = np.meshgrid(np.logspace(4, 7, 8), np.logspace(2, 5, 8))
TWO_D_NS = np.stack([N_S.ravel(), S_S.ravel()], axis=1)
N_R, E_R = np.meshgrid(np.logspace(7, 9.2, 6), [1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
TWO_D_NE = np.stack([N_R.ravel(), E_R.ravel()], axis=1)

CASES = {
    "power": ({"A": 12.0, "alpha": 0.076}, ONE_D),
    "saturating_power": ({"E": 1.5, "A": 30.0, "alpha": 0.3}, ONE_D),
    "chinchilla": ({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, TWO_D),
    "kaplan": ({"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}, TWO_D),
    "kaplan_ns": ({"N_c": 8.8e13, "S_c": 2.1e3, "alpha_N": 0.076, "alpha_S": 0.76}, TWO_D_NS),
    # Clark et al. (2022) Table 3's S-Base row: saturation at E_max = 174 is inside the sampled E (up to 512)
    "routing": ({"a": -0.082, "b": -0.108, "c": 0.009, "d": 1.104, "E_start": 1.847, "E_max": 174.0}, TWO_D_NE),
    "m1": ({"beta": 5.0, "c": -0.2}, ONE_D),
    "m2": ({"e_inf": 0.2, "beta": 3.0, "c": -0.35}, ONE_D),
    "m3": ({"beta": 3.0, "gamma": 1e-5, "c": 0.4}, ONE_D),  # levels off at beta gamma^c = 0.03 near x = 1e5
    "m4": ({"e_inf": 0.1, "e_0": 0.9, "beta": 20.0, "c": -0.5, "alpha": 1.0}, ONE_D),
}


def test_every_registered_form_is_covered():
    assert set(available_forms()) == set(CASES) | {"bnsl", "isoflop_parabola"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_noiseless_recovery(name):
    params, X = CASES[name]
    form = get_form(name)
    y = _synthetic(form, params, X)
    # tight tolerances: SciPy's defaults stop on an absolute decrease of 2e-9, too early for a noiseless curve
    law = ScalingLaw(name, loss="mse", gtol=1e-10, ftol=1e-16, max_iter=3000).fit(X, y)
    assert law.objective_ < 1e-9
    # near-degenerate directions (Kaplan's N_c, D_c) are only pinned to a few digits in log space
    _assert_close(law.params_, params, rtol=2e-2 if name in ("kaplan", "kaplan_ns", "m3", "m4") else 1e-3)


@pytest.mark.parametrize("name", ["power", "saturating_power", "chinchilla", "m2"])
def test_noisy_recovery_within_bootstrap_interval(name):
    params, X = CASES[name]
    y = _synthetic(get_form(name), params, X, noise=0.01)
    law = ScalingLaw(name, loss="huber", delta=1e-2).fit(X, y)
    boot = law.bootstrap(200, seed=0)
    assert boot.n_failed == 0
    exps = [k for k in params if k in ("alpha", "beta", "c")]
    for k in exps:  # exponents are what is well determined; they must sit in (or very near) the 95% interval
        lo, hi = boot.interval(k, 0.99)
        assert lo - 0.02 <= params[k] <= hi + 0.02, f"{k}={params[k]} outside [{lo}, {hi}]"


def test_isoflop_parabola_closed_form():
    n = np.logspace(8, 10, 9)
    u = np.log10(n)
    y = 2.5 + 0.08 * (u - 9.3) ** 2
    law = ScalingLaw("isoflop_parabola", loss="mse").fit(n, y)
    _assert_close(law.params_, {"L_min": 2.5, "k": 0.08, "log10_N_opt": 9.3}, 1e-6)


# Caballero et al. (2023), Figure 1 / Section 3: 4-digit addition, one break.
BNSL_TRUE = {"a": 0.4139, "b": 2.277, "c0": 0.05508, "c1": 5.663, "d1": 612.6, "f1": 0.05919}


def test_bnsl_recovers_four_digit_addition_break():
    form = get_form("bnsl", n_breaks=1)
    x = np.logspace(1, np.log10(1500), 40)  # up to the end of the break region
    law = ScalingLaw(form, loss="mse").fit(x, form.predict(BNSL_TRUE, x))
    assert law.warnings_ == []
    _assert_close(law.params_, BNSL_TRUE, rtol=5e-3)


def test_bnsl_too_little_of_the_curve_is_reported_not_silently_wrong():
    form = get_form("bnsl", n_breaks=1)
    x = np.logspace(1, np.log10(200), 40)  # stops well before the break at d1 = 612.6
    with pytest.warns(FitWarning, match="break 1 is not identified"):
        law = ScalingLaw(form, loss="mse").fit(x, form.predict(BNSL_TRUE, x))
    assert law.warnings_ and "not identified" in law.warnings_[0]


def test_bnsl_break_diagnosis_names_the_actual_reason():
    form = get_form("bnsl", n_breaks=1)
    # the effect of a break is c f log(1 + (x/d)^(1/f)), also before the break point (z < 0)
    p = {"a": 0.0, "b": 1.0, "c0": 0.1, "c1": 2.0, "d1": 100.0, "f1": 0.5}
    for x_max in (10.0, 100.0, 1e4):
        want = 2.0 * 0.5 * math.log1p((x_max / 100.0) ** 2)
        assert form.break_effects(p, x_max)[0] == pytest.approx(want, rel=1e-12)
    logx = np.log(np.logspace(0, 1.5, 10))[:, None]  # data end at x = 31.6, before the break at 100
    (msg,) = form.diagnose({**p, "c1": 40.0}, logx)  # a strong bend, but outside the data: only that is said
    assert "outside the data range" in msg and "only" not in msg
    (msg,) = form.diagnose({**p, "d1": 10.0, "c1": 1e-3}, logx)  # inside, but it hardly bends the curve
    assert "bends log y by only" in msg and "outside" not in msg


def test_bnsl_zero_breaks_is_a_saturating_power_law():
    f0 = get_form("bnsl", n_breaks=0)
    x = np.logspace(1, 5, 30)
    y = 0.5 + 3.0 * x**-0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        law = ScalingLaw(f0, loss="mse").fit(x, y)
    _assert_close(law.params_, {"a": 0.5, "b": 3.0, "c0": 0.3}, 1e-3)


def test_predict_matches_formula():
    p = CASES["chinchilla"][0]
    N, D = 1e9, 2e10
    expected = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    assert get_form("chinchilla").predict(p, [[N, D]])[0] == pytest.approx(expected, rel=1e-12)
    k = CASES["kaplan"][0]
    expected = ((k["N_c"] / N) ** (k["alpha_N"] / k["alpha_D"]) + k["D_c"] / D) ** k["alpha_D"]
    assert get_form("kaplan").predict(k, [[N, D]])[0] == pytest.approx(expected, rel=1e-12)
    m = CASES["m4"][0]
    e = get_form("m4").predict(m, [1e4])[0]
    lhs = (e - m["e_inf"]) / (m["e_0"] - e) ** m["alpha"]
    assert lhs == pytest.approx(m["beta"] * 1e4 ** m["c"], rel=1e-9)
    assert math.isfinite(e)


def test_cluster_bootstrap_resamples_whole_groups():
    # 8 "learning curves" of 12 points each over their own stretch of x; each curve has its own offset, so the
    # points of one curve are correlated and resampling them one by one understates the uncertainty.
    rng = np.random.default_rng(1)
    x = np.concatenate([np.logspace(3 + 0.4 * g, 3.5 + 0.4 * g, 12) for g in range(8)])
    groups = np.repeat(np.arange(8), 12)
    offset = rng.normal(0, 0.05, 8)[groups]
    y = 5.0 * x**-0.1 * np.exp(offset + rng.normal(0, 0.002, x.size))
    law = ScalingLaw("power", loss="mse").fit(x, y)
    points = law.bootstrap(300, seed=0)
    clusters = law.bootstrap(300, seed=0, groups=groups)
    w_points = np.diff(points.interval("alpha"))[0]
    w_clusters = np.diff(clusters.interval("alpha"))[0]
    assert w_clusters > 3 * w_points  # the curve-level offsets show up only when whole curves are resampled
    with pytest.raises(FitInputError, match="one label per fitted point"):
        law.bootstrap(10, groups=groups[:-1])


def test_forms_declare_their_default_loss_and_options():
    assert form_class("bnsl").default_loss == "mse" and form_class("bnsl").options() == {"n_breaks": 1}
    assert form_class("routing").default_loss == "mse" and form_class("routing").options() == {}
    for name in set(available_forms()) - {"bnsl", "routing"}:
        assert form_class(name).default_loss == "huber" and form_class(name).options() == {}, name
    assert ScalingLaw("bnsl").objective.loss == "mse"  # the form's default ...
    assert ScalingLaw("power").objective.loss == "huber"
    assert ScalingLaw("bnsl", loss="huber").objective.loss == "huber"  # ... unless a loss is given
    assert ScalingLaw("bnsl", form_kwargs={"n_breaks": 2}).form.n_breaks == 2
    with pytest.raises(ValueError, match=r"form 'power' has no option 'n_breaks' \(its options: none\)"):
        get_form("power", n_breaks=2)


def test_isoflop_profile_and_the_parabola_form_share_one_parabola():
    rng = np.random.default_rng(3)
    n = np.logspace(8, 10, 9)
    u = np.log10(n)
    y = (2.5 + 0.08 * (u - 9.3) ** 2) * np.exp(rng.normal(0, 0.002, n.size))
    w = rng.multinomial(n.size, np.full(n.size, 1 / n.size)).astype(float)
    prof = fit_profile(n, y, 1e20, w)
    u0, y_min, k = IsoFlopParabola.vertex(u, y, w)
    assert (prof.log10_n_opt, prof.loss_min, prof.curvature) == (u0, y_min, k)  # the same numbers, bit for bit
    raw = get_form("isoflop_parabola").closed_form(np.log(n)[:, None], y, w)
    assert raw[2] == pytest.approx(u0, rel=1e-12) and np.exp(raw[0]) == pytest.approx(y_min, rel=1e-12)
    assert IsoFlopParabola.vertex(u, -y) is None  # opens downward: no minimum
    assert fit_profile(n, -y, 1e20) is None


def test_percentile_interval_is_the_central_quantiles():
    v = np.random.default_rng(0).normal(size=1001)
    assert percentile_interval(v) == pytest.approx(tuple(np.quantile(v, [0.025, 0.975])), rel=1e-12)
    assert percentile_interval(v, 0.5) == tuple(np.quantile(v, [0.25, 0.75]))
    assert percentile_interval(np.arange(11.0), 0.8) == pytest.approx((1.0, 9.0))
    law = ScalingLaw("power", loss="mse").fit(ONE_D, _noisy_power(ONE_D))
    boot = law.bootstrap(50, seed=0)
    assert boot.interval("alpha", 0.9) == percentile_interval(boot.column("alpha"), 0.9)
    with pytest.raises(ValueError, match="level must be strictly between 0 and 1"):
        percentile_interval(v, 95)
    with pytest.raises(ValueError, match="needs at least one value"):
        percentile_interval([])


def test_bootstrap_derive_adds_a_column_with_its_interval():
    x = ONE_D
    law = ScalingLaw("power", loss="mse").fit(x, _noisy_power(x))
    boot = law.bootstrap(50, seed=0)
    x_c = boot.derive("x_c", lambda c: c["A"] ** (1 / c["alpha"]))
    assert np.array_equal(x_c, boot.column("A") ** (1 / boot.column("alpha")))
    assert boot.column("x_c") is x_c and boot.interval("x_c") == percentile_interval(x_c)
