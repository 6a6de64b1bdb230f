"""Every bad input is one line naming the argument, exit status 2, never a traceback (nor nonsense with exit 0).

The checks live in one layer: the typed configs (:class:`harness.config.TrainConfig`, the models' ``Args``
dataclasses and shape policies) validate their own fields, and the sweep spec reader
(:func:`harness.sweep.check_spec`, ``expand``) checks the keys and types of a spec's sections; the CLI, sweep
specs and the Python API share them. The ``fit`` command's flags have their own tests (test_cli.py).
"""

import argparse
import glob
import json
from pathlib import Path

import pytest

import harness.config
import harness.memory
from harness.cli import build_parser, main
from harness.config import TrainConfig
from harness.data.stream import prepare_documents, read_text_folder
from harness.errors import UserError
from harness.memory import MEMORY_CHECK_ENV
from harness.models import ModelConfig, build_model, shape_for_n
from harness.sweep import expand, load_spec
from harness.tests.train_helpers import write_text_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("validationdata")
    prepare_documents(
        read_text_folder(write_text_folder(root / "txt", 24)), root / "byte", tokenizer="byte", val_fraction=0.15
    )
    return root / "byte"


@pytest.fixture
def small_memory(monkeypatch):
    """8 GB available, whatever the machine has (and the override unset)."""
    monkeypatch.delenv(MEMORY_CHECK_ENV, raising=False)
    monkeypatch.setattr(harness.memory, "available_memory", lambda device="cpu": (8 * 10**9, "available (test)"))


def one_line_error(capsys, argv, *names):
    """Run ``scaling argv``: exit 2, one stderr line naming each of ``names``, no traceback."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"scaling {argv[0]}: error: "), err
    for name in names:
        assert name in err, (name, err)
    return err


def tiny_train(data_dir, tmp_path, *extra, shape=True):
    argv = ["train", "--data", str(data_dir), "--tokenizer", "byte", "--n-ctx", "16"]
    argv += ["--tokens", "320", "--batch-tokens", "64", "--out", str(tmp_path / "out"), "--threads", "1"]
    if shape:
        argv += ["--n-layer", "1", "--d-model", "8", "--n-head", "1"]
    return [*argv, *extra]


# ----------------------------------------------------------------------------------------- scaling train
@pytest.mark.parametrize(
    "extra,names",
    [
        (["--tokens", "nan"], ["tokens"]),
        (["--tokens", "inf"], ["tokens"]),
        (["--tokens", "1000.5"], ["tokens", "whole number"]),
        (["--d-model", "7", "--n-head", "2"], ["d_model", "n_head"]),
        (["--d-model", "6", "--n-head", "2", "--pos", "rotary"], ["rotary", "head dimension"]),
        (["--batch-tokens=-128"], ["batch_tokens"]),
        (["--batch-tokens", "0"], ["batch_tokens"]),
        (["--threads=-1"], ["--threads"]),
        (["--threads", "0"], ["--threads"]),
        (["--max-epochs", "-1"], ["max_epochs", "positive"]),  # used to blame the token budget
        (["--max-epochs", "nan"], ["max_epochs"]),  # used to train (a NaN limit refuses nothing)
        (["--lr", "inf"], ["lr"]),
        (["--lr", "0"], ["lr"]),
        (["--seed", "-1"], ["seed"]),
        (["--seed", str(2**64)], ["seed"]),
        (["--n-layer", str(10**20)], ["n_layer"]),
    ],
)
def test_bad_train_flag_is_one_line_naming_it(data_dir, tmp_path, capsys, extra, names):
    one_line_error(capsys, tiny_train(data_dir, tmp_path, *extra), *names)


@pytest.mark.parametrize("n", ["inf", "nan", "-1", "1e308"])
def test_bad_target_n_is_one_line(data_dir, tmp_path, capsys, n):
    one_line_error(capsys, tiny_train(data_dir, tmp_path, "--N", n, shape=False), "N")


@pytest.mark.parametrize(
    "toml,names",
    [
        ("warmup = 'x'\n", ["warmup"]),
        ("warmup = 1.5\n", ["warmup"]),
        ("weight_decay = -0.1\n", ["weight_decay"]),
        ("grad_clip = nan\n", ["grad_clip"]),
        ("betas = [0.9]\n", ["betas"]),
        ("eval_points = 0\n", ["eval_points"]),
        ("eval_tokens = -1\n", ["eval_tokens"]),
        ("compile = 'yes'\n", ["compile"]),
        ("recipe = 3\n", ["recipe"]),
        ("schedule = ['kaplan']\n", ["schedule"]),
        ("model = 3\n", ["model"]),
        ("[model]\ntie_weights = 'no'\n", ["tie_weights"]),
        ("tokens = 1e6\nwarmup = = 2\n", ["--config", "run.toml", "line 2"]),  # a syntax error: file and line
    ],
)
def test_bad_config_file_field_is_one_line(data_dir, tmp_path, capsys, toml, names):
    cfg = tmp_path / "run.toml"
    cfg.write_text(toml)
    one_line_error(capsys, tiny_train(data_dir, tmp_path, "--config", str(cfg)), *names)


def test_binary_config_file_is_one_line(data_dir, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    one_line_error(capsys, tiny_train(data_dir, tmp_path, "--config", str(cfg)), str(cfg), "invalid TOML")


# ----------------------------------------------------------------------------------------- memory guard
def test_a_model_that_cannot_fit_in_memory_is_refused_with_the_estimate(capsys, small_memory):
    # --N 1e15 used to try to allocate a 230 GB matrix; now it is refused before the data is even opened
    err = one_line_error(capsys, ["train", "--N", "1e15"], "GB", "8 GB", MEMORY_CHECK_ENV)
    assert "would not fit in memory" in err and "parameters" in err


def test_memory_estimate_counts_batch_activations_and_logits(small_memory):
    model = {"n_layer": 2, "d_model": 64, "n_head": 2, "n_ctx": 128}
    cfg = TrainConfig.from_dict({"model": model, "tokens": 2**40, "batch_tokens": 2**30})
    est = cfg.memory_estimate()
    assert est["activations"] == 2**30 * 64 * 2 * harness.config.ACTIVATION_BYTES
    assert est["logits"] == 2**30 * 4096 * harness.config.LOGIT_BYTES
    assert est["total"] == est["parameters"] + est["activations"] + est["logits"]
    with pytest.raises(UserError, match=r"batch_tokens 1,073,741,824.*SCALING_NO_MEMORY_CHECK"):
        cfg.check_memory()
    TrainConfig.from_dict({"model": model}).check_memory()  # the default batch fits


def test_memory_check_can_be_switched_off_and_guards_the_python_api(monkeypatch, small_memory):
    cfg = TrainConfig.from_dict({"model": {"N": 1e15}})
    with pytest.raises(UserError, match="just to hold them"):  # build_model itself refuses, before allocating
        build_model(cfg.model)
    monkeypatch.setenv(MEMORY_CHECK_ENV, "1")
    cfg.check_memory()  # skipped when asked
    monkeypatch.setattr(harness.memory, "available_memory", lambda device="cpu": None)
    monkeypatch.delenv(MEMORY_CHECK_ENV)
    cfg.check_memory()  # skipped when the available memory is unknown


def test_train_itself_refuses_a_batch_that_cannot_fit(data_dir, tmp_path, small_memory):
    # the Python API (and every sweep worker) gets the same guard as `scaling train`; nothing is written
    from harness.train import train

    model = {"name": "gpt", "n_layer": 1, "d_model": 16, "n_head": 2, "n_ctx": 64, "vocab_size": 256}
    cfg = TrainConfig.from_dict(
        {"model": model, "data": str(data_dir), "tokenizer": "byte", "tokens": 2**31, "batch_tokens": 2**30}
    )
    with pytest.raises(UserError, match="would not fit in memory"):
        train(cfg, tmp_path / "out")
    assert not list((tmp_path / "out").glob("**/*.json"))


def test_available_memory_reads_the_host():
    free = harness.memory.available_memory("cpu")
    assert free is None or free[0] > 0


def test_committed_sweeps_pass_the_memory_check():
    specs = sorted(glob.glob(str(REPO / "replications" / "*" / "sweeps" / "**" / "*.toml"), recursive=True))
    assert specs
    for f in specs:
        for cfg, origin in expand(load_spec(f))[0]:
            gb = 80e9 if cfg.device == "cuda" else 8e9  # a GPU of 80 GB; a machine of 8 GB
            cfg.check_memory(available=(int(gb), "available (test)"))
            assert cfg.memory_estimate()["total"] < gb, (f, origin)


# ----------------------------------------------------------------------------------------- sweep specs
def write_spec(tmp_path, data_dir, body: str) -> Path:
    base = {"data": str(data_dir), "tokenizer": "byte", "batch_tokens": 64, "eval_points": 3, "eval_tokens": 256}
    lines = ["[base]", *(f"{k} = {json.dumps(v)}" for k, v in base.items()), "[base.model]", "n_ctx = 16"]
    path = tmp_path / "spec.toml"
    path.write_text(body.replace("BASE", "\n".join(lines)) + "\n")
    return path


@pytest.mark.parametrize(
    "body,names",
    [
        ('BASE\n[grid]\nN = [3e3]\nD = [640]\nseeds = ["a"]', ["grid.seeds"]),
        ("BASE\n[grid]\nN = [3e3]\nD = [640]\nseeds = [1.7]", ["grid.seeds"]),
        ("BASE\n[isoflop]\nC = [1e9]\nN = [3e3]\nseeds = [true]", ["isoflop.seeds"]),
        ("BASE\n[grid]\nN = [3e3]\nD = [640]\naspect = [0.5]", ["aspect"]),  # used to run a 10-layer 8-wide model
        ('BASE\n[grid]\nN = [3e3]\nD = [640]\nmin_layers = "x"', ["min_layers"]),
        ("BASE\n[grid]\nN = [3e3]\nD = [640]\nmin_layers = 1.5", ["min_layers"]),
        ("BASE\n[grid]\nN = [3e3]\nD = [640]\nhead_dim = 2", ["head_dim"]),
        ("BASE\n[grid]\nN = [inf]\nD = [640]", ["grid.N"]),
        ("BASE\n[grid]\nN = [3e3]\nD = [nan]", ["grid.D"]),
        ('BASE\n[grid]\nN = ["1e4"]\nD = [640]', ["grid.N"]),
        ("grid = 5\nBASE", ["grid", "table"]),
        ('isoflop = "x"\nBASE', ["isoflop", "table"]),
        ("base = 3\n[grid]\nN = [3e3]\nD = [640]", ["base", "table"]),
        ("name = 5\nBASE\n[grid]\nN = [3e3]\nD = [640]", ["name"]),
        ('[base]\nbatch_tokens = "x"\n[grid]\nN = [3e3]\nD = [640]', ["batch_tokens"]),
        ("BASE\n[grid]\nN = [3e3]\nD = [640\nseeds = [0]", ["spec.toml", "line 12"]),  # syntax error: file, line
    ],
)
def test_bad_sweep_spec_is_one_line_naming_the_key(data_dir, tmp_path, capsys, body, names):
    spec = write_spec(tmp_path, data_dir, body)
    one_line_error(capsys, ["sweep", str(spec), "--dry-run"], *names)


def test_binary_sweep_spec_is_one_line_naming_the_file(tmp_path, capsys):
    spec = tmp_path / "garbage.toml"
    spec.write_bytes(bytes(range(256)) * 4)
    one_line_error(capsys, ["sweep", str(spec), "--dry-run"], str(spec), "invalid TOML")


@pytest.mark.parametrize(
    "flags,name",
    [
        (["--workers", "0"], "--workers"),
        (["--threads=-1"], "--threads"),
        (["--slurm-time", "0"], "--slurm-time"),
        (["--slurm-mem-gb", "nan"], "--slurm-mem-gb"),
    ],
)
def test_bad_sweep_flag_is_one_line(tmp_path, capsys, flags, name):
    one_line_error(capsys, ["sweep", str(tmp_path / "any.toml"), *flags], name)


def test_audit_negative_seed_is_one_line(capsys):
    one_line_error(capsys, ["audit", "chinchilla", "--seed", "-1"], "--seed")


# ----------------------------------------------------------------------------------------- Python API
def test_the_python_api_shares_the_checks():
    with pytest.raises(UserError, match="tokens must be a positive whole number"):
        TrainConfig(tokens=1.5e6)  # a float where the CLI and TOML give whole numbers
    with pytest.raises(UserError, match="d_model"):
        ModelConfig.make("gpt", d_model=7, n_head=2)
    with pytest.raises(UserError, match="tie_weights"):
        ModelConfig.make("lstm", tie_weights=1)
    with pytest.raises(UserError, match="target N"):
        shape_for_n(float("inf"))
    with pytest.raises(UserError, match="aspect"):
        shape_for_n(1e5, aspect=0.5)
    with pytest.raises(UserError, match="n_layer"):
        shape_for_n(1e5, "lstm", n_layer=0)
    with pytest.raises(UserError, match="a run config must be a table"):
        TrainConfig.from_dict([1, 2])
    with pytest.raises(UserError, match="sweep spec 'grid' must be a table"):
        expand({"grid": [1e4]})


# ----------------------------------------------------------------------------------------- help texts
def _subcommands():
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _undocumented(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


HELP_CHECKED = sorted(_subcommands())


@pytest.mark.parametrize("command", HELP_CHECKED)
def test_every_option_has_help(command):
    assert _undocumented(_subcommands()[command], f"scaling {command}") == []
