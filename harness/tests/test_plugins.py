"""The architecture seam: a model defined outside harness/ trains in-process, in a worker pool and through
submitit; its hooks reach the trainer; adding a defaulted field to any config keeps every run id."""

import dataclasses
import io
import json

import pytest

from harness import records
from harness.config import TrainConfig
from harness.errors import UserError
from harness.models import ModelConfig, model_class, register, shape_for_n
from harness.models import registry as reg
from harness.sweep import SlurmExecutor, plan, run_sweep
from harness.tests.plugin_model import TinyArgs, TinyLM
from harness.tests.train_helpers import sweep_spec, tiny_config, write_text_folder
from harness.train import run_key, train

PLUGIN = "harness.tests.plugin_model:TinyLM"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from harness.data.stream import prepare_documents, read_text_folder

    root = tmp_path_factory.mktemp("plugindata")
    prepare_documents(read_text_folder(write_text_folder(root / "txt", 24)), root / "byte", tokenizer="byte")
    return root / "byte"


@pytest.fixture
def registered():
    """The plug-in registered under a short name in this (the parent) process only, as a user would."""
    register("test_tiny_plugin", TinyLM)
    yield "test_tiny_plugin"
    reg._entries.pop("test_tiny_plugin", None)
    reg._resolved.pop("test_tiny_plugin", None)


def _spec(data_dir, model_name: str, **model):
    return sweep_spec(
        data_dir, {"name": model_name, **model}, lr=1e-2, name="plugin", grid={"N": [64, 256], "D": [640]}
    )


def _without_clock(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("timing", "sha256")}


def _records(out, sweep) -> list[dict]:
    return [records.read_record(records.run_paths(out, r.run_id)[0]) for r in sweep.runs]


def test_plugin_trains_in_a_two_worker_pool(data_dir, tmp_path, registered):
    sp = plan(_spec(data_dir, registered), log=lambda s: None)
    assert [r.config.model.args.d_model for r in sp.runs] == [8, 16]  # the plug-in's own shape policy
    res = run_sweep(sp, tmp_path / "pool", workers=2, threads=1, stream=io.StringIO())
    assert [r["status"] for r in res] == ["finished"] * 2
    run_sweep(sp, tmp_path / "inproc", workers=1, threads=1, stream=io.StringIO())
    pool, inproc = _records(tmp_path / "pool", sp), _records(tmp_path / "inproc", sp)
    assert [_without_clock(a) for a in pool] == [_without_clock(b) for b in inproc]
    assert pool[0]["model"]["name"] == registered and pool[0]["model"]["d_model"] == 8
    assert pool[0]["loss"]["val_final"] < pool[0]["curve"]["val_loss"][0]  # it learned something


def test_plugin_through_the_submitit_local_executor(data_dir, tmp_path, registered):
    pytest.importorskip("submitit")
    sp = plan(_spec(data_dir, registered), log=lambda s: None)
    ex = SlurmExecutor(time_min=5, cpus_per_task=1, cluster="local", poll_s=0.2)
    res = run_sweep(sp, tmp_path, executor=ex, stream=io.StringIO())
    assert [r["status"] for r in res] == ["finished"] * 2, res


def test_plugin_by_import_path_needs_no_registration(data_dir, tmp_path):
    cfg = TrainConfig.from_dict(
        {**_spec(data_dir, PLUGIN)["base"], "tokens": 640, "model": {"name": PLUGIN, "n_ctx": 16}}
    )
    rec = train(cfg, tmp_path, threads=1)
    assert rec["status"] == "finished" and rec["config"]["model"]["name"] == PLUGIN
    assert rec["loss"]["val_by_position"] is None  # no per-token path: recorded as absent, not guessed


def test_a_class_other_processes_cannot_import_is_refused_before_training(data_dir, tmp_path):
    @register("test_local_plugin")
    class Local(TinyLM):
        pass

    try:
        sp = plan(_spec(data_dir, "test_local_plugin"), log=lambda s: None)
        with pytest.raises(UserError, match="cannot import it"):
            run_sweep(sp, tmp_path, workers=2, threads=1, stream=io.StringIO())
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
        # one worker (this process) is fine
        res = run_sweep(sp, tmp_path, workers=1, threads=1, stream=io.StringIO())
        assert [r["status"] for r in res] == ["finished"] * 2
    finally:
        reg._entries.pop("test_local_plugin", None)
        reg._resolved.pop("test_local_plugin", None)


def test_entry_points_and_unknown_names(monkeypatch):
    monkeypatch.setattr(reg, "_entry_points", lambda: {"ep_tiny": PLUGIN})
    assert model_class("ep_tiny") is TinyLM and "ep_tiny" in reg.available_models()
    with pytest.raises(UserError, match=r"unknown model 'nope'.*import path"):
        model_class("nope")
    with pytest.raises(UserError, match="cannot import model module"):
        model_class("no_such_pkg.mod:Model")
    with pytest.raises(UserError, match="not a model class"):
        model_class("harness.tests.plugin_model:TinyArgs")


def test_auxiliary_loss_is_added_and_logged_on_its_own(data_dir, tmp_path):
    base = _spec(data_dir, PLUGIN, aux_weight=0.5)["base"]
    rec = train(TrainConfig.from_dict({**base, "tokens": 640}), tmp_path / "a", threads=1)
    plain = train(
        TrainConfig.from_dict({**base, "tokens": 640, "model": {"name": PLUGIN, "n_ctx": 16}}),
        tmp_path / "b",
        threads=1,
    )
    aux = rec["curve"]["aux"]["l2"]
    assert len(aux) == len(rec["curve"]["step"]) and aux[0] is None and all(v > 0 for v in aux[1:])
    assert rec["loss"]["aux_final"]["l2"] > 0 and "aux_final" not in plain["loss"] and "aux" not in plain["curve"]
    assert rec["curve"]["train_loss"] != plain["curve"]["train_loss"]  # the term reached the gradient


def test_grid_keys_are_the_architectures_own_shape_options(data_dir):
    with pytest.raises(UserError, match=r"unknown \[grid\] key.*'aspect'.*model 'lstm'"):
        plan({**_spec(data_dir, "lstm"), "grid": {"N": [1e4], "D": [640], "aspect": [8]}}, log=lambda s: None)
    with pytest.raises(UserError, match=r"'seed' \(did you mean 'seeds'\?\)"):
        plan({**_spec(data_dir, "gpt"), "grid": {"N": [1e4], "D": [640], "seed": [1]}}, log=lambda s: None)
    with pytest.raises(UserError, match="no shape option"):
        shape_for_n(1e4, "lstm", aspect=8)
    sp = plan({**_spec(data_dir, PLUGIN), "grid": {"N": [64], "D": [640], "multiple": [8, 16]}}, log=lambda s: None)
    assert [r.config.model.args.d_model for r in sp.runs] == [8, 16] and "multiple=8" in sp.runs[0].origin


def test_model_fields_belong_to_their_architecture():
    with pytest.raises(UserError, match=r"unknown field.*n_head.*model 'lstm'"):
        ModelConfig.make("lstm", n_head=2)
    cfg = ModelConfig.make("lstm", d_model=32)
    assert cfg.to_dict() == {"name": "lstm", "n_ctx": 128, "vocab_size": 4096, "kernels": "auto", "n_layer": 2,
                             "d_model": 32, "tie_weights": False, "bias": True}  # fmt: skip
    assert cfg.canonical() == {"name": "lstm", "d_model": 32} and ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_adding_a_defaulted_field_keeps_run_ids(data_dir, monkeypatch):
    from harness.data.corpus import open_data

    data = open_data(str(data_dir), "byte", 256)
    cfg = tiny_config()
    before = run_key(cfg, data)
    # a new model field with a default (as a mixture of experts would add)
    gpt = model_class("gpt")
    grown = dataclasses.make_dataclass(
        "GPTArgs", [("n_experts", int, dataclasses.field(default=1))], bases=(gpt.Args,), frozen=True
    )
    monkeypatch.setattr(gpt, "Args", grown)
    regrown = tiny_config()
    assert type(regrown.model.args) is grown and regrown.model.args.n_experts == 1
    assert run_key(regrown, data) == before
    assert run_key(tiny_config(model={"n_experts": 4}), data) != before
    # a new run field with a default
    grown_run = dataclasses.make_dataclass(
        "TrainConfig", [("z_loss", float, dataclasses.field(default=0.0))], bases=(TrainConfig,), frozen=True
    )
    as_grown = grown_run(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainConfig)})
    assert as_grown.canonical() == cfg.canonical()
    assert dataclasses.replace(as_grown, z_loss=1e-4).canonical() != cfg.canonical()


def test_tiny_args_validate():
    with pytest.raises(UserError, match="d_model"):
        TinyArgs(d_model=0)
    assert json.loads(json.dumps(ModelConfig.make(PLUGIN).canonical())) == {"name": PLUGIN}
