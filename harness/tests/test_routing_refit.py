"""Clark et al. (2022) eq. (1): the "routing" form on synthetic data, and the refit audit end to end."""

import numpy as np
import pytest

from harness import replication
from harness.claims import regressions
from harness.fit import FitInputError, FitWarning, ScalingLaw, get_form

TRUE = {"a": -0.08, "b": -0.12, "c": 0.01, "d": 1.12, "E_start": 2.2, "E_max": 250.0}


def synthetic(noise=0.0, seed=0):
    """The paper's grid: six dense sizes x (dense + 2..512 experts), losses drawn from eq. (1)."""
    N = np.repeat([1.6e7, 2.7e7, 5.7e7, 1.3e8, 3.7e8, 1.3e9], 10)
    E = np.tile([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], 6).astype(float)
    X = np.stack([N, E], axis=1)
    y = get_form("routing").predict(TRUE, X)
    if noise:
        y = y * 10 ** (np.random.default_rng(seed).normal(0, noise, len(y)))
    return X, y


def test_e_hat_is_e_start_for_a_dense_model_and_saturates_at_e_max():
    f = get_form("routing")
    assert f.e_hat(1.0, 2.2, 250.0) == pytest.approx(2.2)
    assert f.e_hat(1e9, 2.2, 250.0) == pytest.approx(250.0, rel=1e-5)
    # between the two it grows like E (the transform is linear in E before the saturation)
    assert f.e_hat(33.0, 2.2, 1e12) == pytest.approx(2.2 + 32.0, rel=1e-6)


def test_predict_matches_the_printed_formula():
    X, y = synthetic()
    u = np.log10(X[:, 0])
    v = np.log10(get_form("routing").e_hat(X[:, 1], TRUE["E_start"], TRUE["E_max"]))
    expect = 10 ** (TRUE["a"] * u + TRUE["b"] * v + TRUE["c"] * u * v + TRUE["d"])
    np.testing.assert_allclose(y, expect, rtol=1e-12)


def test_fit_recovers_the_generating_law_exactly_without_noise():
    X, y = synthetic()
    law = ScalingLaw("routing", loss="mse", gtol=1e-12, ftol=1e-15).fit(X, y)
    for k, v in TRUE.items():
        assert law.params_[k] == pytest.approx(v, rel=1e-3), k
    assert law.n_converged_ == law.n_starts_


def test_fit_recovers_the_law_within_its_bootstrap_interval_with_noise():
    X, y = synthetic(noise=0.003, seed=1)  # the released runs' residual is 0.003 dex
    law = ScalingLaw("routing", loss="mse", gtol=1e-12, ftol=1e-15).fit(X, y)
    boot = law.bootstrap(200, seed=0)
    for k in ("a", "b", "c", "d"):
        lo, hi = boot.interval(k)
        assert lo < TRUE[k] < hi, (k, lo, hi)
        assert hi - lo < 0.5 * abs(TRUE[k]) + 0.02  # an interval, not the whole real line


def test_impossible_saturation_parameters_are_refused():
    with pytest.raises(ValueError, match="E_max > E_start"):
        get_form("routing").from_natural([-0.08, -0.1, 0.01, 1.1, 5.0, 3.0])


def test_dense_only_data_are_refused_with_the_reason():
    X, y = synthetic()
    dense = X[:, 1] == 1
    with pytest.raises(FitInputError, match=r"column 1 \(E\) takes the single value 1"):
        ScalingLaw("routing", loss="mse").fit(np.concatenate([X[dense]] * 2), np.concatenate([y[dense]] * 2))


def test_a_saturation_beyond_the_data_is_flagged():
    X, _ = synthetic()
    X = X[X[:, 1] <= 8]
    y = get_form("routing").predict({**TRUE, "E_max": 1e5}, X)
    with pytest.warns(FitWarning, match="no saturation"):
        ScalingLaw("routing", loss="mse", gtol=1e-12, ftol=1e-15).fit(X, y)


def test_loader_keeps_one_final_row_per_run(routing_runs):
    r = routing_runs
    assert len(r) == 223 and r.n_rows == 5799
    assert len(set(r.hyper_id)) == len(r)
    assert set(r.router) == {"Dense", "Hash", "S-Base", "RL-R"}
    grid = r.main_grid("S-Base")
    assert set(grid.router) == {"Dense", "S-Base"}
    assert (grid.k == 1).all() and (grid.E[grid.router == "Dense"] == 1).all()
    assert int(np.sum(grid.E == 1)) == 8  # six sizes, three seeds at 130M


@pytest.fixture(scope="module")
def audit(routing_runs):
    # 200 resamples keep the test quick; the committed results use 1000
    return replication.audit("routing", n_bootstrap=200, seed=0, log=lambda s: None)


def test_every_claim_has_a_verdict_matching_the_recorded_one(audit):
    assert len(audit.verdicts) == 33
    assert regressions(audit.verdicts) == []


def test_refit_reproduces_the_committed_numbers(audit):
    m = audit.result.measurements
    assert m["s_base.a"].value == pytest.approx(-0.08378, abs=2e-5)
    assert m["rl_r.c"].value == pytest.approx(0.011688, abs=2e-5)
    assert m["dense.alpha_N"].value == pytest.approx(0.078758, abs=1e-5)
    assert m["s_base.routing_helps_every_size"].value is True
    _, hi = m["s_base_vs_hash.mean_log10_gap"].ci
    assert hi < 0


def test_the_form_is_usable_from_the_cli(tmp_path, capsys):
    from harness.cli import main

    X, y = synthetic(noise=0.002, seed=2)
    path = tmp_path / "runs.csv"
    path.write_text("N,E,loss\n" + "".join(f"{n},{e},{v}\n" for (n, e), v in zip(X, y, strict=True)))
    assert main(["fit", str(path), "--form", "routing", "--x", "N,E", "--y", "loss", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"c"' in out and '"E_max"' in out
