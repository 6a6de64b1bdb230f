"""Named recipes (kaplan, tuned), the sweep's learning-rate grid, and fitting LR(N) to a learning-rate sweep."""

import io
import math
from pathlib import Path

import numpy as np
import pytest

from harness import recipes
from harness.config import TrainConfig
from harness.errors import UserError
from harness.models import model_counts
from harness.recipe_fit import fit_lr_rule, plot_rule, size_optimum
from harness.sweep import expand, plan, run_sweep
from harness.tests.train_helpers import sweep_spec, write_text_folder

REPO = Path(__file__).resolve().parents[2]
LR_SWEEP = REPO / "results" / "recipe" / "lr-sweep"


def _cfg(**d):
    base = {"tokens": 4_096_000, "batch_tokens": 4096, "model": {"N": 1e5, "n_ctx": 256}}
    return TrainConfig.from_dict({**base, **d})


def test_kaplan_recipe_is_eq_d1_with_warmup_and_cosine_to_zero():
    cfg = _cfg(recipe="kaplan")
    n = model_counts(cfg.model).n_kaplan
    assert cfg.lr == pytest.approx(0.003239 - 0.0001395 * math.log(n))
    assert (cfg.schedule, cfg.warmup, cfg.betas, cfg.recipe) == ("kaplan", 0.05, (0.9, 0.95), "kaplan")


def test_explicit_fields_win_over_the_recipe_and_the_choice_is_in_the_config():
    cfg = _cfg(recipe="kaplan", lr=1e-2, betas=[0.8, 0.9])
    assert cfg.lr == 1e-2 and cfg.betas == (0.8, 0.9) and cfg.schedule == "kaplan"
    assert cfg.canonical()["recipe"] == "kaplan"  # what the recipe chose is part of the run's identity


def test_tuned_recipe_warms_up_for_about_n_tokens_and_decays_over_the_run():
    cfg = _cfg(recipe="tuned", lr=3e-3)
    n = model_counts(cfg.model).n_kaplan
    assert cfg.schedule == "hoffmann" and cfg.betas == (0.9, 0.99)
    assert abs(cfg.warmup * cfg.tokens - n) <= cfg.batch_tokens  # ~N tokens, whole steps
    long = _cfg(recipe="tuned", lr=3e-3, model={"N": 1e6, "n_ctx": 256}, tokens=8192 * 4)
    assert long.warmup == pytest.approx(0.25)  # never more than a quarter of a short run
    assert recipes.warmup_fraction(100, 4096, 4096) == 0.0  # a one-step run has no warmup


def test_the_ladder_recipes_change_one_thing_each():
    """Porian et al.'s rungs: Kaplan's optimiser throughout; long warmup + long fixed cosine, then ~N warmup,
    then a cosine matched to the run."""
    long, short, matched = (
        _cfg(recipe=r, tokens=16_384_000) for r in ("kaplan-long", "kaplan-short", "kaplan-matched")
    )
    n = model_counts(long.model).n_kaplan
    for c in (long, short, matched):
        assert c.lr == pytest.approx(recipes.kaplan_lr(n)) and c.betas == (0.9, 0.95)
    assert abs(long.warmup * long.tokens - recipes.LONG_WARMUP_TOKENS) <= long.batch_tokens  # whole steps
    assert long.horizon_tokens == short.horizon_tokens == recipes.LONG_HORIZON_TOKENS and long.schedule == "kaplan"
    assert short.warmup == matched.warmup == recipes.warmup_fraction(n, short.tokens, short.batch_tokens)
    assert matched.horizon_tokens is None and matched.schedule == "hoffmann"
    assert _cfg(recipe="kaplan-long", tokens=4096 * 100).warmup == 0.25  # never more than a quarter of the run
    with pytest.raises(UserError, match="longer than the long schedule"):
        _cfg(recipe="kaplan-short", tokens=recipes.LONG_HORIZON_TOKENS + 4096)


def test_unknown_recipe_and_an_unfitted_rule_are_clear_errors(monkeypatch):
    with pytest.raises(UserError, match="unknown recipe 'fast'; recipes: kaplan, tuned, kaplan-long"):
        _cfg(recipe="fast")
    monkeypatch.setattr(recipes, "TUNED_LR_A", None)  # as before the sweep was fitted
    with pytest.raises(UserError, match="not fitted yet"):
        _cfg(recipe="tuned")
    assert _cfg(recipe="tuned", lr=2e-3).lr == 2e-3  # a learning-rate sweep needs no rule


def test_size_optimum_finds_the_vertex_and_refuses_edges_and_divergence():
    lrs = [1e-3, 2.37e-3, 5.62e-3, 1.33e-2, 3.16e-2]
    x = np.log10(lrs)
    opt = size_optimum(1e5, lrs, list(4.0 + 0.3 * (x - np.log10(6e-3)) ** 2))
    assert opt.lr_opt == pytest.approx(6e-3, rel=1e-6) and not opt.note
    edge = size_optimum(1e5, lrs, list(4.0 - 0.1 * x))
    assert edge.lr_opt is None and "largest rate" in edge.note
    diverged = size_optimum(1e5, lrs, [4.3, 4.1, 4.0, math.inf, math.inf])
    assert diverged.lr_opt == pytest.approx(5.62e-3) and "diverged" in diverged.note


def test_a_learning_rate_grid_gives_one_run_per_rate(tmp_path):
    data = write_text_folder(tmp_path / "txt", 24)
    spec = sweep_spec(data, grid={"N": [3e3, 1.2e4], "D": [640], "lr": [1e-3, 3e-3, 1e-2]})
    spec["base"].pop("lr")
    spec["base"]["recipe"] = "tuned"
    configs, _ = expand(spec)
    assert [c.lr for c, _ in configs] == [1e-3, 3e-3, 1e-2] * 2
    assert all(c.recipe == "tuned" and c.betas == (0.9, 0.99) for c, _ in configs)
    assert "lr=0.003" in configs[1][1]
    with pytest.raises(UserError, match=r"grid\.lr"):
        expand({**spec, "grid": {**spec["grid"], "lr": [0]}})


def test_fit_lr_rule_end_to_end_on_tiny_runs(tmp_path):
    data = write_text_folder(tmp_path / "txt", 24)
    spec = sweep_spec(data, grid={"N": [3e3, 1.2e4], "D": [1280], "lr": [3e-4, 3e-3, 3e-2, 3e-1]})
    run_sweep(plan(spec, log=lambda s: None), tmp_path / "out", workers=1, stream=io.StringIO())
    rule = fit_lr_rule(tmp_path / "out")
    assert [len(s.lrs) for s in rule.sizes] == [4, 4]
    plot_rule(rule, tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0


def test_the_tuned_rule_is_the_fit_of_the_committed_learning_rate_sweep():
    rule = fit_lr_rule(LR_SWEEP)
    assert [len(s.lrs) for s in rule.sizes] == [5, 5, 5] and len(rule.used) == 3
    assert rule.a == pytest.approx(recipes.TUNED_LR_A, rel=1e-3)
    assert rule.b == pytest.approx(recipes.TUNED_LR_B, rel=1e-3)
    assert recipes.tuned_lr(1e6) == pytest.approx(rule.lr(1e6), rel=1e-3)


def test_check_reports_the_rule_in_use_against_the_10m_token_sweep(tmp_path, capsys):
    # the committed 10 M-token check: the tuned rule is the best swept value at 1e6 and 0.044 nats off it at 1e5
    from harness.cli import main

    png = tmp_path / "check.png"
    assert main(["recipe", "fit", str(LR_SWEEP.parent / "lr-sweep-10m"), "--check", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "tuned rule at N = 9.83e+04: LR 0.00425; loss 4.4600 at it (0.0042), +0.0441 nats" in out
    assert "tuned rule at N = 9.95e+05: LR 0.00285; loss 4.0234 at it (0.0029), +0.0000 nats" in out
    assert png.stat().st_size > 10_000
