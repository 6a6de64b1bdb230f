"""The architecture arena: entrants by name, class path or factory; the learning-rate choice; the verdicts on
synthetic runs whose answer is known; and one end-to-end run with a user's module in a pool of workers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from harness import arena
from harness.errors import UserError
from harness.models import ModelConfig, build_model, model_counts
from harness.models.measure import measured_counts

FACTORY = "harness.tests.plugin_factory:factory"


def _rec(i: int, C: float, loss: float, lr: float = 1e-3, status: str = "finished") -> dict:
    return {
        "run_id": f"{i:016x}",
        "status": status,
        "loss": {"val_final": loss if status == "finished" else None},
        "scale": {"C_hoffmann": C, "N_active": C / 1e6},
        "resolved": {"peak_lr": lr},
    }


def _law(C, a=8.0, alpha=0.1):
    return a * np.asarray(C) ** -alpha


# ------------------------------------------------------------------------------------- entrants and factories
def test_entrants_by_name_class_path_and_factory():
    assert arena.entrant("transformer_pp").model == {"name": "transformer_pp"}
    path = "harness.tests.plugin_model:TinyLM"
    assert arena.entrant(path).model == {"name": path}  # a LanguageModel subclass is used as it is
    ent = arena.entrant(FACTORY)
    assert ent.model == {"name": "factory", "factory": FACTORY} and ent.slug == "harness.tests.plugin_factory.factory"
    with pytest.raises(UserError, match="unknown model"):
        arena.entrant("no_such_arch")
    with pytest.raises(UserError, match="cannot import"):
        arena.entrant("no_such_pkg.mod:f")


def test_factory_model_counts_are_measured_and_loss_is_cross_entropy():
    cfg = ModelConfig.make("factory", factory=FACTORY, size=2048, vocab_size=64, n_ctx=16)
    model, counts = build_model(cfg), model_counts(cfg)
    d = model.net.emb.embedding_dim
    assert d == 32
    assert counts.n_total == model.measured_total_params() == sum(p.numel() for p in model.net.parameters())
    # embedding table and output projection are the embedding parameters; conv + gate are the rest
    assert counts.n_non_embedding == d * 4 + d + 2 * d * d + 2 * d
    assert counts.n_kaplan == d * 4 + 2 * d * d  # conv kernel (d, 1, 4) and the gate matrix: no biases
    # forward FLOPs per token: gate 2*2d^2 + output 2dV + conv 2*4d, plus the embedding lookup 2Vd; x3
    assert counts.flops_per_token_hoffmann == 3 * (4 * d * d + 2 * d * 64 + 8 * d + 2 * 64 * d)
    x = torch.randint(0, 64, (2, 16))
    y = torch.randint(0, 64, (2, 16))
    want = torch.nn.functional.cross_entropy(model.net(x).flatten(0, 1), y.flatten())
    assert torch.allclose(model(x, y), want)
    assert torch.allclose(model.token_losses(x, y).mean(), want)
    assert arena.entrant(FACTORY) and model.shape_for(3e3) == {"size": 3000}


def test_measured_counts_agree_with_the_gpts_analytic_ones():
    cfg = ModelConfig.make(n_layer=2, d_model=32, n_head=2, n_ctx=16, vocab_size=97)
    got, want = measured_counts(build_model(cfg), 16, 97), model_counts(cfg)
    assert (got.n_kaplan, got.n_non_embedding, got.n_total) == (want.n_kaplan, want.n_non_embedding, want.n_total)
    # the counter sees every matmul; App. F's softmax (3 H T per layer) is element-wise and not counted
    assert got.flops_per_token_hoffmann == want.flops_per_token_hoffmann - 3 * 2 * 3 * 2 * 16


def test_bad_factories_are_refused_with_what_is_wrong():
    with pytest.raises(UserError, match="import path"):
        ModelConfig.make("factory", factory="not-a-path")
    tier = arena.TIERS["smoke"]
    with pytest.raises(UserError, match="not causal"):
        arena.check_causal(arena.entrant("harness.tests.plugin_factory:leaky_factory"), tier, 1e3)
    arena.check_causal(arena.entrant(FACTORY), tier, 1e3)  # the causal one passes
    arena.check_causal(arena.entrant("gpt"), tier, 4e3)


# ------------------------------------------------------------------------------------- learning rate
def test_learning_rate_rule_through_each_sizes_optimum():
    tier = arena.TIERS["smoke"]
    by_size = {}
    for k, (n, best) in enumerate([(1e3, 4e-3), (1e5, 1e-3)]):  # parabolas in log lr, vertex at `best`
        lrs = [best / 4, best / 2, best, best * 2, best * 4]
        by_size[n] = [_rec(10 * k + i, 1.0, 3 + (math.log10(lr / best)) ** 2, lr) for i, lr in enumerate(lrs)]
    rule = arena.choose_lr(tier, by_size)
    assert rule.lr(1e3) == pytest.approx(4e-3, rel=1e-6) and rule.lr(1e5) == pytest.approx(1e-3, rel=1e-6)
    assert rule.lr(1e4) == pytest.approx(2e-3, rel=1e-6) and not rule.notes  # geometric in between
    # an optimum at the grid's edge is used as is, and flagged
    edge = {1e3: [_rec(i, 1.0, 3 - i * 0.1, lr) for i, lr in enumerate([1e-3, 2e-3, 4e-3])]}
    rule = arena.choose_lr(tier, edge)
    assert rule.lr(1e3) == pytest.approx(4e-3) and "largest" in rule.notes[0]
    with pytest.raises(UserError, match="diverged"):
        arena.choose_lr(tier, {1e3: [_rec(i, 1.0, 0, 1e-3, status="failed") for i in range(3)]})


def test_an_edge_optimum_extends_the_grid_until_it_is_interior(monkeypatch):
    # a fake trainer: loss is a parabola in log10 lr with its vertex at 2.5x the grid's largest rate: the sweep
    # steps beyond the edge to 2x (still the best, so still the edge), then to 4x, and the optimum is interior
    tier = arena.TIERS["smoke"]
    top = arena.lr_grid(tier, 2e3)[-1]
    trained = []

    def fake_run(plan, out, workers, stream):
        trained.extend(r.config.lr for r in plan.runs)
        return [
            {
                "run_id": r.run_id,
                "status": "finished",
                "loss": {"val_final": 3 + math.log10(r.config.lr / (2.5 * top)) ** 2},
                "scale": {"C_hoffmann": 1e9, "N_active": 2e3},
                "resolved": {"peak_lr": r.config.lr},
            }
            for r in plan.runs
        ]

    monkeypatch.setattr(arena, "_run", fake_run)
    from harness.data.corpus import open_data

    data = open_data("default", "byte", 256, log=lambda s: None)
    tier = arena.ArenaTier(**{**tier.__dict__, "lr_sizes": (2e3,)})
    res = arena.run_entrant(arena.entrant("gpt"), tier, None, 1, data, lambda s: None, None)
    row = res["lr"].table[0]
    assert row["lrs"][-2:] == pytest.approx([2 * top, 4 * top], rel=1e-3) and not row["note"]
    assert row["lr_opt"] == pytest.approx(2.5 * top, rel=1e-3)  # the parabola's vertex, now inside the grid
    assert sum("extended" in n for n in res["lr"].notes) == 2
    # with no extension allowed the edge optimum is used as is, and flagged
    res0 = arena.run_entrant(arena.entrant("gpt"), tier, None, 1, data, lambda s: None, None, lr_extend=0)
    assert res0["lr"].table[0]["lr_opt"] == pytest.approx(top) and "largest" in res0["lr"].notes[0]
    # the step below the smallest rate is the grid's own ratio too
    choice = arena.LRChoice([{"N_target": 1e3, "lrs": [1e-3, 2e-3, 4e-3], "losses": [1.0, 2.0, 3.0]}], 0, 0)
    assert arena.edge_extensions(choice) == [(1e3, 5e-4)]


# ------------------------------------------------------------------------------------- verdicts
C = np.geomspace(1e10, 1e13, 6)


def _runs(losses, start=0):
    return [_rec(start + i, c, float(v)) for i, (c, v) in enumerate(zip(C, losses, strict=True))]


@pytest.mark.parametrize(
    "entrant_losses,verdict",
    [
        (_law(C) + 0.15, "same"),  # parallel: the same slope, a constant offset
        (_law(C) + 0.05 * np.log10(C / C[0]), "worse"),  # the gap grows 0.05 nats per decade
        (_law(C) - 0.05 * np.log10(C / C[0]), "better"),
        (np.full(C.shape, float(_law(C[0]))) - 0.01 * np.log10(C / C[0]), "plateaus"),  # barely improves
    ],
)
def test_verdict_follows_the_gap_trend(entrant_losses, verdict):
    base = _runs(_law(C), 100)
    res = arena.compare(_runs(entrant_losses), base, n_boot=200)
    assert res["verdict"] == verdict, res
    if verdict == "same":
        assert res["gap_at_median_C"]["gap"] == pytest.approx(0.15, abs=1e-6)
        assert res["trend_per_decade"] == pytest.approx(0.0, abs=1e-9)


def test_noisy_runs_are_inconclusive_not_same():
    rng = np.random.default_rng(0)
    base = _runs(_law(C) + rng.normal(0, 0.05, C.shape), 100)
    res = arena.compare(_runs(_law(C) + rng.normal(0, 0.05, C.shape)), base, n_boot=300)
    lo, hi = res["trend_interval"]
    assert lo < 0 < hi and hi - lo > 2 * arena.SAME_BAND and res["verdict"] == "inconclusive"


def test_frontier_takes_the_parabola_vertex_inside_the_sizes_else_the_grid_minimum():
    N = np.geomspace(1e4, 1e6, 5)
    u = np.log10(N)
    recs = [_rec(i, 1e12 * (1 + 0.01 * i), 3 + 0.5 * (x - 5.1) ** 2) for i, x in enumerate(u)]
    for r, n in zip(recs, N, strict=True):
        r["scale"]["N_active"] = n
    f = arena.frontier(recs, (1e12,))
    assert f["how"] == ["parabola vertex"] and f["L"][0] == pytest.approx(3.0) and f["N"][0] == pytest.approx(10**5.1)
    few = [r for r, x in zip(recs, u, strict=True) if x < 5]  # 2 sizes: too few for a parabola
    f = arena.frontier(few, (1e12,))
    assert f["how"] == ["grid minimum"] and f["L"][0] == min(r["loss"]["val_final"] for r in few)
    with pytest.raises(UserError, match="no IsoFLOP plan"):
        arena.run_arena([], tier="smoke", isoflop=True)


def test_too_few_sizes_is_inconclusive():
    res = arena.compare(_runs(_law(C))[:1], _runs(_law(C), 100), n_boot=10)
    assert res["verdict"] == "inconclusive" and "two" in res["why"]


# ------------------------------------------------------------------------------------- end to end
MICRO = arena.ArenaTier(
    "micro",
    "test tier: three tiny sizes, a 3-point learning-rate sweep at one",
    sizes=(2e3, 4e3, 8e3),
    lr_sizes=(2e3,),
    lr_factors=(0.5, 1.0, 2.0),
    tokens_per_param=2,
    n_ctx=32,
    batch_tokens=256,
    eval_points=2,
    eval_tokens=2048,
    judged=False,
    isoflop_budgets=(1.5e9,),
    isoflop_sizes=(2e3, 4e3, 8e3),
)


def test_arena_end_to_end_with_a_user_module_in_a_worker_pool(tmp_path, capsys):
    out = tmp_path / "arena"
    summary = arena.run_arena([FACTORY], baseline="gpt", tier=MICRO, out=out, workers=2, n_boot=50, isoflop=True)
    saved = json.loads((out / "arena.json").read_text())
    assert set(saved["entrants"]) == {"gpt", FACTORY}
    for e in saved["entrants"].values():
        assert len(e["runs"]) == 3 and 3 <= len(e["lr_sweep"][0]["lrs"]) <= 3 + arena.LR_EXTEND
        assert "alpha" in e["fits"]["power"]["params"]
    comp = saved["entrants"][FACTORY]["comparison"]
    assert comp["verdict"] in ("better", "worse", "same", "plateaus", "inconclusive")
    assert len(comp["gaps"]) == 3 and all(math.isfinite(g["gap"]) for g in comp["gaps"])
    iso = saved["entrants"][FACTORY]["isoflop"]  # one budget, three sizes: its grid minimum is the frontier point
    assert len(iso["runs"]) == 3 and len(iso["frontier"]) == 1 and iso["frontier"][0]["how"] == "grid minimum"
    assert iso["frontier"][0]["loss"] == min(r["loss"] for r in iso["runs"])
    assert all(abs(math.log10(r["C"] / 1.5e9)) < 0.3 for r in iso["runs"])
    assert (out / "arena.png").stat().st_size > 10_000 and FACTORY in (out / "verdicts.md").read_text()
    assert FACTORY in summary["table"] and "baseline" in summary["table"]
    names = {json.loads(f.read_text())["model"]["name"] for f in (out / "runs").glob("*.json")}
    assert names == {"gpt", "factory"}
    n_records = len(list((out / "runs").glob("*.json")))
    # per entrant: 3 learning rates at one size (+ up to LR_EXTEND beyond an edge optimum), 3 sizes (the smallest
    # shares its run with the sweep when the rule's rate there is a swept one, as it is for an optimum on the
    # grid's edge), 3 IsoFLOP runs
    assert 2 * (3 + 2 + 3) <= n_records <= 2 * (3 + arena.LR_EXTEND + 3 + 3)
    # resumable: a second call trains nothing and reaches the same numbers
    again = arena.run_arena([FACTORY], baseline="gpt", tier=MICRO, out=out, workers=2, n_boot=50, isoflop=True)
    assert len(list((out / "runs").glob("*.json"))) == n_records
    assert again["entrants"][FACTORY]["comparison"]["gaps"] == comp["gaps"]
    # an audit reads the same records without training or writing, and refuses a folder missing any of them
    before = (out / "arena.json").stat().st_mtime_ns
    kw = dict(baseline="gpt", tier=MICRO, workers=1, n_boot=50, isoflop=True, train=False, write=False)
    read = arena.run_arena([FACTORY], out=out, **kw)
    assert read["entrants"][FACTORY]["comparison"] == comp and (out / "arena.json").stat().st_mtime_ns == before
    lo, hi = comp["gap_at_median_C"]["interval"]
    assert lo <= comp["gap_at_median_C"]["gap"] <= hi
    next((out / "runs").glob("*.json")).unlink()
    with pytest.raises(UserError, match="no record"):
        arena.run_arena([FACTORY], out=out, **kw)
    assert "0 to run" in capsys.readouterr().err
