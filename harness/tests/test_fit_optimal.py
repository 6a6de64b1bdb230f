"""Approaches 1-3 (harness.fit.optimal, scaling isoflop) recover the a and b of a known L(N, D).

Synthetic runs from Hoffmann et al.'s eq. 10 constants (a = beta / (alpha + beta) = 0.4516): IsoFLOP profiles
of 9 sizes over 5 budgets with 0.2% noise (Approach 2), the same runs for the parametric fit (Approach 3), and
noise-free learning curves of 31 sizes (Approach 1). Tolerances: Approaches 2 and 3 fit the generating family
or a local quadratic of it, so 0.01; the envelope of 31 discrete sizes steps from size to size (0.1 dex apart),
so Approach 1 gets 0.03.
"""

import json

import numpy as np
import pytest

from harness.cli import main
from harness.fit import FitInputError, derived, optimal

E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
TRUE_A = BETA / (ALPHA + BETA)


def loss(N, D):
    return E + A / N**ALPHA + B / D**BETA


def isoflop_runs(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.geomspace(1e17, 1e20, 5):
        n0 = derived.n_opt(C, A, B, ALPHA, BETA)
        for f in np.geomspace(1 / 8, 8, 9):
            N = n0 * f
            rows.append((N, C / (6 * N), C, loss(N, C / (6 * N)) * np.exp(rng.normal(0, 0.002))))
    return (np.array(c) for c in zip(*rows, strict=True))


def test_approach2_recovers_a_and_b_and_tokens_per_parameter():
    N, _D, C, L = isoflop_runs()
    res = optimal.approach2(N, C, L, n_bootstrap=200, tokens_at=[1e19])
    assert res.a.value == pytest.approx(TRUE_A, abs=0.01)
    assert res.b.value == pytest.approx(1 - TRUE_A, abs=0.01)
    assert res.a.ci[0] <= res.a.value <= res.a.ci[1] and res.n_failed == 0
    true_tpp = derived.tokens_per_parameter(1e19, A, B, ALPHA, BETA)
    assert res.tokens_per_param[1e19].value == pytest.approx(true_tpp, rel=0.05)
    assert all(b.excluded is None for b in res.budgets) and len(res.budgets) == 5


def test_approach2_names_a_budget_without_an_interior_minimum():
    N, _D, C, L = isoflop_runs()
    small = np.geomspace(1e6, 5e6, 6)  # far below the optimum of 1e21: loss falls all the way to the largest
    res = optimal.approach2(np.r_[N, small], np.r_[C, np.full(6, 1e21)], np.r_[L, loss(small, 1e21 / (6 * small))],
                            n_bootstrap=0)  # fmt: skip
    (bad,) = [b for b in res.budgets if b.excluded]
    assert bad.budget == pytest.approx(1e21) and "largest size sampled" in bad.excluded
    assert res.a.value == pytest.approx(TRUE_A, abs=0.01)  # the other five budgets are unaffected
    with pytest.raises(FitInputError, match="3 or more budgets"):
        optimal.approach2(N[:18], C[:18], L[:18], n_bootstrap=0)


def test_approach3_recovers_a_and_b():
    N, D, _C, L = isoflop_runs()
    res = optimal.approach3(N, D, L, n_bootstrap=50)
    assert res.a.value == pytest.approx(TRUE_A, abs=0.01) and res.b.value == pytest.approx(1 - TRUE_A, abs=0.01)


def test_approach1_recovers_a_from_learning_curves():
    run, N, D, L = [], [], [], []
    for i, n in enumerate(np.geomspace(1e7, 1e10, 31)):
        for d in np.geomspace(0.5 * n, 200 * n, 30):
            run.append(f"r{i}"), N.append(n), D.append(d), L.append(loss(n, d))
    res = optimal.approach1(np.array(run), N, D, L, n_bootstrap=50)
    assert res.a.value == pytest.approx(TRUE_A, abs=0.03)


def test_budget_points_read_isoflop_profiles_off_long_runs():
    """One long run per size (a schedule that does not depend on the budget): the loss at each budget is read off
    its curve (Porian et al.'s procedure) and Approach 2 on those points recovers a."""
    budgets = np.geomspace(1e17, 1e20, 5)
    run, N, D, L = [], [], [], []
    for i, n in enumerate(np.geomspace(2e7, 4e9, 15)):
        for d in np.geomspace(1e17 / (6 * n) / 2, 1e20 / (6 * n) * 1.05, 40):  # curves from below to past the budgets
            run.append(f"r{i}"), N.append(n), D.append(d), L.append(loss(n, d))
    pts = optimal.budget_points(np.array(run), N, D, L, budgets, k=6.0)
    assert pts["C"].size == 15 * 5 and set(np.unique(pts["C"])) == set(budgets)
    # interpolation between evaluations 0.09 dex apart: within 0.1% of the law at each budget
    assert pts["loss"] == pytest.approx(loss(pts["N"], pts["D"]), rel=1e-3)
    res = optimal.approach2(pts["N"], pts["C"], pts["loss"], n_bootstrap=0)
    assert res.a.value == pytest.approx(TRUE_A, abs=0.01)
    # a budget past a curve's end by more than tol gives that run no point; within tol, the end's loss
    one = optimal.budget_points(["a", "a"], [1e8, 1e8], [1e9, 2e9], [3.0, 2.9], [6e17 * 2.1, 6e17 * 2.3], tol=0.1)
    assert one["C"].tolist() == [6e17 * 2.1] and one["loss"].tolist() == [2.9]
    with pytest.raises(FitInputError, match="no learning curve reaches"):
        optimal.budget_points(["a"], [1e8], [1e9], [3.0], [1e30])
    # k per row (each run its own FLOPs per parameter per token): a run at k = 12 reaches each budget in half the D
    two = optimal.budget_points(
        ["a", "a", "b", "b"], [1e8] * 4, [1e9, 2e9] * 2, [3.0, 2.9] * 2, [1.2e18], k=[6, 6, 12, 12]
    )
    assert two["D"].tolist() == [2e9, 1e9] and two["loss"] == pytest.approx([2.9, 3.0])
    with pytest.raises(FitInputError, match="more than one k"):
        optimal.budget_points(["a", "a"], [1e8] * 2, [1e9, 2e9], [3.0, 2.9], [1.2e18], k=[6, 7])
    with pytest.raises(FitInputError, match="tol must be"):
        optimal.budget_points(["a"], [1e8], [1e9], [3.0], [1e18], tol=2.0)


def test_cli_isoflop_json_and_plot(tmp_path, capsys):
    N, _D, C, L = isoflop_runs()
    csv = tmp_path / "runs.csv"
    csv.write_text("params,budget,val\n" + "".join(f"{n},{c},{l}\n" for n, c, l in zip(N, C, L, strict=True)))
    png = tmp_path / "iso.png"
    argv = ["isoflop", str(csv), "--n", "params", "--budget", "budget", "--y", "val", "--bootstrap", "100"]
    assert main([*argv, "--format", "json", "--plot", str(png), "--tokens-at", "1e19"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["a"]["value"] == pytest.approx(TRUE_A, abs=0.01) and len(out["a"]["ci95"]) == 2
    assert len(out["budgets"]) == 5 and out["tokens_per_param"][0]["C"] == 1e19
    assert png.stat().st_size > 5000
    assert main(argv) == 0
    assert "a = 0.45" in capsys.readouterr().out
    assert main(["isoflop", str(csv), "--approach", "3"]) == 2  # needs --d
    assert "--d" in capsys.readouterr().err
