"""BNSL replication: the worked example reproduces the authors' published fit, the win rule, and one curve."""

import numpy as np
import pytest

from harness.fit import FitInputError
from harness.fit.authors import NAMES, CaballeroBNSL, bnsl1, grid_search
from replications.bnsl import analysis, example
from replications.bnsl.data import Curve


def test_the_authors_procedure_reproduces_their_published_fit():
    theirs = example.authors_fit()
    for k, v in example.PUBLISHED.items():
        assert theirs[k] == pytest.approx(v, rel=1e-4), k
    assert example.extrapolation_rmsle(theirs) == pytest.approx(0.010915719, rel=1e-4)
    _best, f = grid_search(example.X[: example.SPLIT], example.Y[: example.SPLIT])
    assert np.isfinite(f)  # the grid's f1 = 0 points (division by zero) never win
    law = CaballeroBNSL().fit(example.X[: example.SPLIT], example.Y[: example.SPLIT])
    assert law.predict(example.X[example.SPLIT :]) == pytest.approx(
        bnsl1(example.X[example.SPLIT :], *(law.params_[k] for k in NAMES)), rel=1e-9
    )  # the harness form evaluates the same law
    with pytest.raises(FitInputError, match="no bootstrap"):
        law.bootstrap(10)


def _fit(rmsles: dict) -> analysis.CurveFit:
    c = Curve("IC", "t", "m", np.array([1.0, 2.0]), np.array([1.0, 0.5]), np.array([True, False]))
    return analysis.CurveFit(c, rmsle=rmsles)


def test_wins_are_counted_as_the_released_notebook_counts_them():
    methods = ("M1", "M4", "BNSL")
    fits = [
        _fit({"M1": 0.05, "M4": 0.0101, "BNSL": 0.0109}),  # truncated to 3 decimals: M4 and BNSL tie at 0.010
        _fit({"M1": 0.02, "M4": None, "BNSL": 0.03}),  # M4 failed: scored 1; M1 wins
        _fit({"M1": 0.05, "M4": 0.04, "BNSL": 0.002}),
    ]
    shares = analysis.win_shares(fits, methods)
    assert shares.tolist() == [[0, 0.5, 0.5], [1, 0, 0], [0, 0, 1]]
    assert analysis.win_margin(shares, 2) == pytest.approx(1.5 / 3 - 1 / 3)
    bf = analysis.BenchmarkFits(fits, methods, {})
    point, reps = bf.margin("BNSL", methods, n_boot=200, seed=0)
    assert point == pytest.approx(1 / 6) and len(reps) == 200 and reps.min() < point < reps.max()


def test_one_curve_through_every_form(bnsl_benchmark):
    c = bnsl_benchmark.by_domain("NMT")[0]
    f = analysis.fit_curve(c, ("M1", "M2", "BNSL"))
    assert set(f.rmsle) == {"M1", "M2", "BNSL"} and all(v is None or v >= 0 for v in f.rmsle.values())
    assert f.rmsle["M2"] < f.rmsle["M1"]  # a saturating law extrapolates a levelling-off curve better
