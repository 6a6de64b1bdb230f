"""Chinchilla's trained tiers: the wiring from run records to Approaches 1-3 and to the small-scale claims.

The approaches themselves are tested on synthetic tables in test_fit_optimal.py; here synthetic *records* from a
known L(N, D) go through the tier's own analysis, and the tier definitions are checked against the issue's plan.
"""

import numpy as np
import pytest

from harness import replication
from harness.fit import derived
from harness.runs import RunTable
from replications.chinchilla import REPLICATION
from replications.chinchilla import trained as tr

E, A, B, ALPHA, BETA = 1.8, 400.0, 400.0, 0.35, 0.35  # alpha = beta: a = b = 0.5 exactly
K = 6.5  # FLOPs per parameter per token, as our GPTs have
BUDGETS = np.geomspace(1.2e12, 3.8e13, 5)


def _law(n, d):
    return E + A / n**ALPHA + B / d**BETA


def synthetic_runs(noise: float = 0.0, seed: int = 0) -> RunTable:
    """7 sizes per budget around the law's optimum, each a record with a learning curve (12 evaluations)."""
    rng = np.random.default_rng(seed)
    records = []
    for c in BUDGETS:
        n_opt = float(derived.n_opt(c * 6 / K, A, B, ALPHA, BETA))
        for n in np.geomspace(n_opt / 4, n_opt * 4, 7):
            d = c / (K * n)
            t = np.geomspace(d / 300, d, 12)
            curve = _law(n, t) * (1 + noise * rng.standard_normal(t.size))
            records.append(
                {
                    "run_id": f"{len(records):016x}" + "0" * 48,
                    "scale": {"N_total": float(n), "D": float(d), "C_hoffmann": float(c)},
                    "curve": {"tokens": [0.0, *t.tolist()], "val_loss": [9.0, *curve.tolist()]},
                }
            )
    cols = {
        "N_total": np.array([r["scale"]["N_total"] for r in records]),
        "D": np.array([r["scale"]["D"] for r in records]),
        "C_hoffmann": np.array([r["scale"]["C_hoffmann"] for r in records]),
        "loss": np.array([r["curve"]["val_loss"][-1] for r in records]),
    }
    return RunTable(cols, records)


@pytest.fixture(scope="module")
def analysis():
    return tr.analyse(synthetic_runs(noise=0.002), BUDGETS, n_bootstrap=40, seed=0, log=lambda s: None)


def test_recovers_the_generating_allocation(analysis):
    res = analysis.allocations
    assert set(res) == {1, 2, 3}, analysis.failures
    assert analysis.k == pytest.approx(K)
    assert res[2].a.value == pytest.approx(0.5, abs=0.03)
    assert res[3].a.value == pytest.approx(0.5, abs=0.02)
    assert res[1].a.value == pytest.approx(0.5, abs=0.08)  # the envelope is read off a grid of curve points
    for r in res.values():
        assert r.b.value == pytest.approx(1 - r.a.value)
    # tokens per parameter at the middle budget, against the law's own optimum there
    n_mid = float(derived.n_opt(analysis.middle * 6 / K, A, B, ALPHA, BETA))
    truth = analysis.middle / (K * n_mid) / n_mid
    assert res[2].tokens_per_param[analysis.middle].value == pytest.approx(truth, rel=0.15)


def test_measurements_cover_every_small_scale_claim(analysis):
    m = analysis.measurements()
    claims = REPLICATION.claims().of_kind("small-scale", "cpu").claims
    assert len(claims) >= 4 and not any(c.id.startswith("ladder.") for c in claims)
    for c in claims:
        assert c.measured in m, c.id
        assert m[c.measured].value is not None, c.id
    lo, hi = m["own.approach2.log10_tokens_per_param"].ci
    assert lo <= m["own.approach2.log10_tokens_per_param"].value <= hi


def test_an_approach_that_cannot_be_fitted_is_inconclusive_with_its_reason():
    runs = synthetic_runs()
    few = RunTable({k: v[:7] for k, v in runs.columns.items()}, runs.records[:7])  # one budget only
    an = tr.analyse(few, BUDGETS[:1], n_bootstrap=5, log=lambda s: None)
    assert 2 in an.failures and "3 or more budgets" in an.failures[2]
    m = an.measurements()
    assert m["own.approach2.a"].value is None and "budgets" in m["own.approach2.a"].note


def test_figures_render(analysis):
    from replications.chinchilla import figures

    figs = figures.trained_figures(analysis)
    assert {"approach1", "approach2", "approach3", "learning_curves", "frontiers"} <= set(figs)
    import matplotlib.pyplot as plt

    for f in figs.values():
        plt.close(f)


def test_cpu_plan_is_the_issue_plan():
    """5+ budgets over at least 1.5 decades, 7+ sizes per budget, planned in Hoffmann et al.'s FLOP count."""
    from harness.records import load_spec
    from harness.sweep import expand

    tier = REPLICATION.tier("cpu")
    budgets = tr.planned_budgets(tier.sweeps[0])
    assert len(budgets) >= 5 and np.log10(budgets.max() / budgets.min()) >= 1.5 - 1e-9
    configs, dropped = expand(load_spec(tier.sweeps[0]))
    assert not dropped
    per_budget = {}
    for _cfg, origin in configs:
        c = float(origin.split("C=")[1].split()[0])
        per_budget[c] = per_budget.get(c, 0) + 1
    assert sorted(per_budget) == pytest.approx(budgets.tolist(), rel=1e-3)
    assert min(per_budget.values()) >= 7
    assert all(c.recipe == "tuned" and c.schedule == "hoffmann" for c, _ in configs)  # cosine to 10 % over the run


def test_budget_tolerance_separates_budgets():
    assert tr.budget_tolerance(BUDGETS) == pytest.approx(np.log10(BUDGETS[1] / BUDGETS[0]) / 2)
    assert tr.budget_tolerance(np.array([1e12])) > 0


def test_tiers_judge_only_their_own_kind_of_claim():
    kinds = {name: t.kind for name, t in REPLICATION.tiers.items()}
    assert kinds == {"refit": "refit", **{t: "small-scale" for t in ("smoke", "cpu", "gpu", "cpu-ladder")}}
    claims = REPLICATION.claims()
    assert claims.of_kind("refit").claims and claims.of_kind("small-scale").claims
    assert len(claims.of_kind("refit").claims) + len(claims.of_kind("small-scale").claims) == len(claims.claims)
    with pytest.raises(ValueError):
        replication.Tier("x", "y", measure=lambda ctx: None, kind="other")


def long_runs(scale_kaplan: float = 3.0) -> RunTable:
    """One long run per size whose curve follows the law (a schedule that does not depend on the budget), with
    N_kaplan = N_total / scale_kaplan and a warmup of 5 evaluations that must not be read."""
    records = []
    for i, n in enumerate(np.geomspace(3e4, 3e6, 9)):
        d_end = BUDGETS[-1] / (K * n) * 1.05
        t = np.geomspace(d_end / 3e4, d_end, 60)
        curve = _law(n, t)
        curve[:5] += 3.0  # the warmup's transients: far above the law, and never read
        records.append(
            {
                "run_id": f"{i:016x}" + "1" * 48,
                "config": {"batch_tokens": 1},
                "resolved": {"warmup_steps": int(t[4])},
                "scale": {"N_total": n, "N_kaplan": n / scale_kaplan, "D": d_end, "C_hoffmann": K * n * d_end},
                "curve": {"tokens": [0.0, *t.tolist()], "val_loss": [9.0, *curve.tolist()]},
            }
        )
    cols = {k: np.array([r["scale"][k] for r in records]) for k in ("N_total", "N_kaplan", "D", "C_hoffmann")}
    return RunTable(cols, records)


def test_ladder_reads_long_runs_at_each_budget_and_measures_every_ladder_claim(monkeypatch):
    from replications.chinchilla import ladder

    # Kaplan-count budgets where these synthetic curves have 6 N_kaplan D: a factor K/6 * 3 below the full count
    monkeypatch.setattr(ladder, "KAPLAN_COUNT_BUDGETS", BUDGETS * 6 / (K * 3.0))
    finals = synthetic_runs(noise=0.002)
    tables = {"long": long_runs(), "short": long_runs(), "matched": finals, "tuned": finals}
    lad = ladder.analyse_ladder(tables, BUDGETS, n_bootstrap=30, log=lambda s: None)
    assert set(lad.rungs) == set(ladder.RUNGS), lad.failures
    for rung in "bcde":  # the same law read off curves or from final losses: a = 0.5 either way
        assert lad.rungs[rung].a.value == pytest.approx(0.5, abs=0.04), rung
    # in Kaplan's count N is a third of the total at every size: the same exponent, the curves read at other C
    assert lad.rungs["a"].a.value == pytest.approx(lad.rungs["b"].a.value, abs=0.02)
    m = lad.measurements()
    claims = REPLICATION.claims().of_kind("small-scale", "cpu-ladder").claims
    assert {c.id for c in claims} == {
        "ladder.kaplan_exceeds_chinchilla", "ladder.count_lowers_a", "ladder.warmup_lowers_a",
        "ladder.decay_not_essential", "ladder.tuning_lowers_a",
    }  # fmt: skip
    for c in claims:
        assert m[c.measured].value is not None and m[c.measured].ci is not None, c.id
    assert m["ladder.delta_decay"].value == pytest.approx(lad.rungs["d"].a.value - lad.rungs["c"].a.value)
    assert m["ladder.abs_delta_decay"].value == pytest.approx(abs(m["ladder.delta_decay"].value))
    import matplotlib.pyplot as plt

    from replications.chinchilla import figures

    plt.close(figures.ladder(lad))


def test_a_claim_with_tiers_is_judged_only_by_those_tiers():
    claims = REPLICATION.claims()
    cpu = {c.id for c in claims.of_kind("small-scale", "cpu").claims}
    ladder_ids = {c.id for c in claims.of_kind("small-scale", "cpu-ladder").claims}
    assert cpu and ladder_ids and not cpu & ladder_ids
    assert cpu | ladder_ids == {c.id for c in claims.of_kind("small-scale").claims}
