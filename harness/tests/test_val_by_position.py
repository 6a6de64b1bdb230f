"""Final validation loss by context position (record["loss"]["val_by_position"]) and its RunTable access."""

import json
import math

import numpy as np
import pytest
import torch

from harness import records
from harness.data.stream import prepare_documents, read_text_folder
from harness.errors import UserError
from harness.models import ModelConfig, build_model, register
from harness.models.ops import token_cross_entropy
from harness.runs import load_runs
from harness.tests.train_helpers import bigram_model_class, tiny_config, write_text_folder
from harness.train import evaluate, evaluate_by_position, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    docs = read_text_folder(write_text_folder(root / "txt", n_docs=24))
    return prepare_documents(docs, root / "byte", tokenizer="byte", val_fraction=0.15)


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_by_position_has_n_ctx_entries_whose_mean_is_the_final_val_loss(data, tmp_path, name):
    rec = train(tiny_config(model={"name": name}), tmp_path, data=data, threads=1)
    assert rec["status"] == "finished"
    bp = rec["loss"]["val_by_position"]
    assert isinstance(bp, list) and len(bp) == rec["model"]["n_ctx"] == 16
    assert all(isinstance(v, float) and math.isfinite(v) for v in bp)
    assert np.mean(bp) == pytest.approx(rec["loss"]["val_final"], rel=1e-6)
    on_disk = json.loads((tmp_path / "runs" / f"{rec['run_id'][:16]}.json").read_text())
    assert on_disk["loss"]["val_by_position"] == bp  # survives the JSON round trip exactly


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_per_token_path_matches_the_fused_loss(name):
    torch.manual_seed(0)
    cfg = ModelConfig.make(
        name, n_layer=1, d_model=16, n_ctx=8, vocab_size=64, **({"n_head": 2} if name == "gpt" else {})
    )
    model = build_model(cfg).eval()
    x, y = torch.randint(0, 64, (3, 8)), torch.randint(0, 64, (3, 8))
    with torch.no_grad():
        per_token = model.token_losses(x, y)
        assert per_token.shape == (3, 8) and per_token.dtype == torch.float32
        assert float(per_token.mean()) == pytest.approx(float(model(x, y)), rel=1e-6)
        chunked = token_cross_entropy(model.hidden(x), model.head_weight, None, y, chunk_rows=5)
    torch.testing.assert_close(chunked, per_token, rtol=0, atol=0)


def test_evaluation_uses_plain_torch_and_restores_the_model(data):
    cfg = tiny_config().model
    torch.manual_seed(0)
    model = build_model(cfg)
    model.kernels_used = "torch"
    seen = []
    original = model.token_losses

    def spy(x, y):
        seen.append((model.kernels_used, model.training, torch.is_grad_enabled()))
        return original(x, y)

    model.token_losses = spy
    model.train()
    x = np.stack([data.val[i * 16 : i * 16 + 17] for i in range(5)]).astype(np.int64)
    no_autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    bp = evaluate_by_position(model, x[:, :-1], x[:, 1:], 2, "cpu", no_autocast)
    assert seen == [("torch", False, False)] * 3  # batches of 2, 2, 1; eval mode, no autograd
    assert model.training and model.kernels_used == "torch"
    assert np.mean(bp) == pytest.approx(evaluate(model, x[:, :-1], x[:, 1:], 2, "cpu", no_autocast), rel=1e-6)


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_a_little_training_makes_later_positions_better_than_position_0(data, name):
    # Words drawn at random from a 40-word list, byte tokens: at position 0 the model sees one character and
    # cannot tell which word it is in; later positions see the word so far. Measured on seeds 0-11 (threads=1)
    # at these settings the GPT's gap loss[0] - mean(loss[1:]) was 0.15-0.35 nats (LSTM > 1); at eval_tokens
    # 256 or fewer than ~200 steps the per-position curve is flat within noise, so the run is this long.
    cfg = tiny_config(model={"name": name}, tokens=64 * 300, lr=1e-2, eval_points=2, eval_tokens=2048)
    rec = train(cfg, None, data=data, threads=1)
    bp = np.asarray(rec["loss"]["val_by_position"])
    assert bp[0] > bp[1:].mean() + 0.05
    assert bp[0] > bp[-4:].mean()


@register("test_forward_only")
class ForwardOnly(bigram_model_class()):
    """A bigram model with only ``forward``: the record is finished but has no per-position loss."""


def test_model_without_per_token_path_records_none(data):
    rec = train(tiny_config(model={"name": "test_forward_only"}, tokens=64 * 2), None, data=data, threads=1)
    assert rec["status"] == "finished" and rec["loss"]["val_by_position"] is None


def test_run_table_exposes_by_position_aligned_with_rows(data, tmp_path):
    recs = [
        train(tiny_config(model={"name": n, "n_ctx": c}, batch_tokens=64), tmp_path, data=data, threads=1)
        for n, c in [("gpt", 16), ("lstm", 32)]
    ]
    legacy = json.loads(json.dumps(recs[0]))  # a record written before the field existed (another run's)
    del legacy["loss"]["val_by_position"]
    legacy["identity"]["config"]["seed"] = 99
    legacy["run_id"] = records.run_id_of(legacy["identity"])
    legacy = records.seal(legacy)
    (tmp_path / "runs" / f"{legacy['run_id'][:16]}.json").write_text(json.dumps(legacy))
    table = load_runs(tmp_path)
    assert len(table.by_position) == len(table) == 3 and "by_position" not in table.columns
    by_id = {r["run_id"][:16]: r for r in recs}
    for rid, bp, n_ctx in zip(table["run_id"], table.by_position, table["n_ctx"], strict=True):
        if rid == legacy["run_id"][:16]:
            assert bp is None
        else:
            assert bp.shape == (n_ctx,) and bp.tolist() == by_id[rid]["loss"]["val_by_position"]


def test_run_interrupted_after_its_last_step_resumes_to_the_same_by_position(data, tmp_path):
    cfg = tiny_config()
    ref = train(cfg, tmp_path / "ref", data=data, threads=1)
    assert train(cfg, tmp_path / "r", data=data, threads=1, stop_after=cfg.steps)["status"] == "interrupted"
    done = train(cfg, tmp_path / "r", data=data, threads=1)  # nothing left to train: only the record
    assert done["timing"]["resumed_from_steps"] == [cfg.steps]
    assert done["loss"]["val_by_position"] == ref["loss"]["val_by_position"] is not None


def test_position_standard_errors_are_those_of_the_per_window_losses():
    from contextlib import nullcontext

    from harness.train import position_stats

    torch.manual_seed(0)
    model = build_model(ModelConfig.make("gpt", n_layer=1, d_model=16, n_head=2, n_ctx=8, vocab_size=64))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 64, (10, 8)), rng.integers(0, 64, (10, 8))
    mean, se = position_stats(model, x, y, 3, "cpu", nullcontext)
    with torch.no_grad():
        per = model.eval().token_losses(torch.from_numpy(x), torch.from_numpy(y)).double().numpy()
    np.testing.assert_allclose(mean, per.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(se, per.std(axis=0, ddof=1) / np.sqrt(10), rtol=1e-6)


def test_final_eval_tokens_measures_by_position_on_more_windows_and_keeps_old_identities(data, tmp_path):
    base = train(tiny_config(), tmp_path / "a", data=data, threads=1)
    more = train(tiny_config(final_eval_tokens=4096), tmp_path / "b", data=data, threads=1)
    n_val = (len(data.val) - 1) // 16 * 16  # every whole window of the validation split (fewer than 4096 tokens)
    assert base["resolved"]["eval_tokens"] == more["resolved"]["eval_tokens"] == 256
    assert more["resolved"]["final_eval_tokens"] == min(4096, n_val) > 256
    assert "final_eval_tokens" not in base["resolved"] and "val_final_full" not in base["loss"]
    # same training (the final curve point is on the same 256 tokens), by position over many more windows
    assert more["loss"]["val_final"] == base["loss"]["val_final"]
    assert more["loss"]["val_final_full"] == pytest.approx(np.mean(more["loss"]["val_by_position"]))
    assert np.mean(more["loss"]["val_by_position_se"]) < np.mean(base["loss"]["val_by_position_se"])
    # the field is part of the identity only when set: configs without it keep the run ids they had
    assert "final_eval_tokens" not in base["config"] and "final_eval_tokens" not in tiny_config().canonical()
    assert more["run_id"] != base["run_id"]


def test_final_eval_tokens_below_eval_tokens_is_refused():
    with pytest.raises(UserError, match=r"final_eval_tokens \(128\) must be at least eval_tokens"):
        tiny_config(final_eval_tokens=128)
