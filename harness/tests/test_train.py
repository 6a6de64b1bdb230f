"""The trainer: determinism, resume, failure records, budget and vocabulary errors, schedule, run table."""

import json
import math

import pytest

from harness.data.stream import prepare_documents, read_text_folder
from harness.errors import UserError
from harness.models import register
from harness.runs import load_runs
from harness.tests.train_helpers import bigram_model_class, tiny_config, write_text_folder
from harness.train import TrainConfig, eval_schedule, kaplan_lr, lr_at, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    docs = read_text_folder(write_text_folder(root / "txt", n_docs=24))
    return prepare_documents(docs, root / "byte", tokenizer="byte", val_fraction=0.15)


def _comparable(rec: dict) -> dict:
    """Everything but the wall-clock fields and the content hash that covers them."""
    return {k: v for k, v in rec.items() if k not in ("timing", "sha256")}


def test_same_config_gives_identical_record(data, tmp_path):
    cfg = tiny_config()
    a = train(cfg, tmp_path / "a", data=data, threads=1)
    b = train(cfg, tmp_path / "b", data=data, threads=1)
    assert a["status"] == "finished"
    assert json.dumps(_comparable(a), sort_keys=True) == json.dumps(_comparable(b), sort_keys=True)
    # the per-position validation loss is part of what is compared (not None on both sides)
    assert len(a["loss"]["val_by_position"]) == a["model"]["n_ctx"]
    assert a["loss"]["val_by_position"] == b["loss"]["val_by_position"]
    on_disk = json.loads((tmp_path / "a" / "runs" / f"{a['run_id'][:16]}.json").read_text())
    assert _comparable(on_disk) == json.loads(json.dumps(_comparable(a)))
    # the record carries the learning curve, both N and both FLOP counts
    assert a["curve"]["step"] == eval_schedule(12, 4) and len(a["curve"]["val_loss"]) == len(a["curve"]["step"])
    assert a["curve"]["val_loss"][-1] < a["curve"]["val_loss"][0] < math.log(256) + 0.1
    s = a["scale"]
    assert (
        s["D"] == 64 * 12
        and s["N_kaplan"] == 12 * 16**2
        and s["C_kaplan"] == a["model"]["flops_per_token_kaplan"] * s["D"]
    )
    assert s["C_hoffmann"] > s["C_kaplan"]  # embeddings and logits dominate at this size
    assert a["timing"]["tokens_per_s"] > 0 and set(a["provenance"]) >= {"git_commit", "packages", "device"}
    c = train(tiny_config(seed=1), tmp_path / "a", data=data, threads=1)
    assert c["run_id"] != a["run_id"] and c["curve"]["val_loss"] != a["curve"]["val_loss"]


def test_finished_record_is_reused(data, tmp_path):
    cfg = tiny_config()
    a = train(cfg, tmp_path, data=data, threads=1)
    b = train(cfg, tmp_path, data=data, threads=1)
    assert b["timing"] == a["timing"]  # returned from disk, not retrained


def test_interrupted_run_resumes_to_the_same_record(data, tmp_path):
    cfg = tiny_config()
    ref = train(cfg, tmp_path / "ref", data=data, threads=1)
    part = train(cfg, tmp_path / "r", data=data, threads=1, stop_after=5)
    assert part["status"] == "interrupted"
    ckpts = list((tmp_path / "r" / "checkpoints").glob("*.pt"))
    assert len(ckpts) == 1 and not list((tmp_path / "r").glob("runs/*.json"))
    done = train(cfg, tmp_path / "r", data=data, threads=1)
    assert done["timing"]["resumed_from_steps"] == [5]
    assert _comparable(done) == _comparable(ref) and done["loss"]["val_by_position"] is not None
    assert not list((tmp_path / "r" / "checkpoints").glob("*.pt"))  # removed once the record exists


@register("test_nan_after_3")
class NaNAfter3(bigram_model_class()):
    """Bigram model whose loss turns NaN at its fourth training step."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.calls = 0

    def forward(self, idx, targets):
        loss = super().forward(idx, targets)
        if self.training:
            self.calls += 1
            if self.calls >= 4:
                loss = loss * float("nan")
        return loss


def test_nan_is_recorded_as_failed(data, tmp_path):
    rec = train(tiny_config(model={"name": "test_nan_after_3"}), tmp_path, data=data, threads=1)
    assert rec["status"] == "failed" and "non-finite" in rec["reason"] and "step 4" in rec["reason"]
    assert rec["loss"]["val_final"] is None and rec["loss"]["val_by_position"] is None
    table = load_runs(tmp_path)
    assert len(table) == 0 and table.failed[0][1] == rec["reason"]  # never enters a fit


def test_divergence_is_recorded_as_failed(data, tmp_path):
    rec = train(tiny_config(lr=30.0, warmup=0.0, grad_clip=0.0), tmp_path, data=data, threads=1)
    assert rec["status"] == "failed"
    assert "diverged" in rec["reason"] or "non-finite" in rec["reason"]


def test_budget_larger_than_corpus_says_how_many_epochs(data):
    n = len(data.train)
    cfg = tiny_config(tokens=64 * (3 * n // 64))
    with pytest.raises(UserError, match=r"that is 3\.\d\d epochs"):
        train(cfg, None, data=data)
    rec = train(tiny_config(tokens=64 * (n // 64 + 30), max_epochs=2.0, eval_points=2), None, data=data, threads=1)
    assert rec["status"] == "finished" and 1 < rec["resolved"]["epochs"] <= 2


def test_vocabulary_mismatch_is_an_error(data):
    with pytest.raises(UserError, match="vocabulary mismatch"):
        train(tiny_config(tokenizer="bpe", model={"vocab_size": 4096}), None, data=data)
    # the byte tokenizer fixes the vocabulary: a direct TrainConfig says so instead of failing later
    with pytest.raises(UserError, match="byte tokenizer has 256 token ids"):
        TrainConfig(tokenizer="byte")
    assert TrainConfig.from_dict({"tokenizer": "byte"}).model.vocab_size == 256


def test_config_from_dict_and_validation():
    cfg = TrainConfig.from_dict({"model": {"N": 1e5}, "tokens": 1e6, "tokenizer": "byte"})
    assert cfg.model.vocab_size == 256 and cfg.tokens == 1_000_000 and cfg.model.args.n_layer == 2
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match="unknown run field"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(UserError, match="multiple of n_ctx"):
        TrainConfig.from_dict({"batch_tokens": 100})
    with pytest.raises(UserError, match="schedule"):
        TrainConfig.from_dict({"schedule": "linear"})
    with pytest.raises(UserError, match="smaller than one batch"):
        TrainConfig.from_dict({"tokens": 10})


def test_schedules():
    # Hoffmann: warmup then cosine to 10 %; Kaplan: cosine to zero.
    assert lr_at(0, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(100, 100, 1.0, 10, 0.0) == pytest.approx(0.0)
    assert lr_at(55, 100, 1.0, 10, 0.0) == pytest.approx(0.5)
    assert eval_schedule(1000, 4) == [0, 1, 10, 100, 1000]
    assert kaplan_lr(1e6) == pytest.approx(0.003239 - 0.0001395 * math.log(1e6))


def test_fixed_horizon_schedule(data, tmp_path):
    """horizon_tokens: one cosine over a horizon longer than the run (Kaplan et al.'s schedule); the run stops
    early, its learning rate still high. Absent, the record and run id are what they were before the field."""
    from harness.train import RunPlan

    cfg = tiny_config(tokens=64 * 8, horizon_tokens=64 * 32, warmup=0.25, schedule="kaplan")
    plan = RunPlan.of(cfg, data)
    assert plan.steps == 8 and plan.schedule_steps == 32 and plan.warmup_steps == 2
    assert plan.lr(7) == pytest.approx(lr_at(7, 32, plan.peak_lr, 2, 0.0)) and plan.lr(7) > 0.9 * plan.peak_lr
    rec = train(cfg, tmp_path, data=data, threads=1)
    assert rec["resolved"]["schedule_steps"] == 32 and rec["curve"]["lr"][-1] > 0.9 * plan.peak_lr
    plain = tiny_config(tokens=64 * 8)
    assert "horizon_tokens" not in plain.canonical() and "horizon_tokens" not in plain.to_dict()
    assert RunPlan.of(plain, data).schedule_steps == 8
    with pytest.raises(UserError, match=r"horizon_tokens \(\d+\) must be at least the run.s tokens"):
        tiny_config(tokens=64 * 8, horizon_tokens=64 * 4)


def test_run_table_feeds_the_fit_library(data, tmp_path):
    from harness.fit import ScalingLaw

    recs = [
        train(tiny_config(model={"d_model": d}, tokens=t), tmp_path, data=data, threads=1)
        for d, t in [(8, 64 * 8), (16, 64 * 8), (16, 64 * 16)]
    ]
    table = load_runs(tmp_path)
    assert len(table) == 3
    X, y = table.xy(("N_kaplan", "D"), "loss")
    assert X.shape == (3, 2) and y.shape == (3,)
    by_id = {r["run_id"][:16]: r for r in recs}
    for i, rid in enumerate(table["run_id"]):
        assert y[i] == by_id[rid]["loss"]["val_final"] and X[i, 1] == by_id[rid]["scale"]["D"]
    Xc, yc = table.xy("C_kaplan", "loss")
    law = ScalingLaw("power").fit(Xc, yc)  # loss ~ A C^-alpha through three tiny runs
    assert law.params_["alpha"] > 0 and all(map(math.isfinite, law.params_.values()))
