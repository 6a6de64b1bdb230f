"""Every bad input at once (issue 11, "done when"): the CLI and the Python API are handed a catalogue of bad inputs
(the classes the issue lists and their neighbours), and each must be refused cleanly:

* CLI: exit status 2, exactly one line on stderr (``scaling CMD: error: ...``), no traceback, nothing on stdout
  that looks like a result, within a time limit (a hang is a failure), no file created, changed or removed outside
  the command's ``--out`` folder, and the finished run already in that folder neither lost nor redone;
* API: a :class:`ValueError` / :class:`TypeError` (``UserError`` and ``FitInputError`` are ValueErrors or
  subclasses of ``UserError``) whose message is one line, never a hang, a raw ``IndexError`` / ``KeyError`` /
  ``LinAlgError``, or a return value.

The per-class tests (test_input_validation.py, test_fit_hardening.py, test_cli.py, test_sweep.py) say *what* each
message must name; this file says that *nothing* slips through, and counts. ``nox -s fuzz`` runs it and prints
the tally (inputs tried / handled cleanly).
"""

from __future__ import annotations

import gzip
import hashlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.data.stream import prepare_documents, read_text_folder
from harness.errors import UserError
from harness.tests.train_helpers import write_text_folder

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 60  # per input; a refusal takes well under a second, so anything near this is a hang


@dataclass
class Outcome:
    name: str
    ok: bool
    why: str = ""


# --------------------------------------------------------------------------------------------- the sandbox
def _tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under ``root`` (except under ``skip``) with the sha256 of its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not (skip is not None and (p == skip or skip in p.parents)):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder with a tiny byte-level corpus, a finished run in ``out/``, CSVs good and bad, and spec files."""
    root = tmp_path_factory.mktemp("fuzz")
    prepare_documents(
        read_text_folder(write_text_folder(root / "txt", 24)), root / "data", tokenizer="byte", val_fraction=0.15
    )
    argv = [*_train_argv(root), "--n-layer", "1", "--d-model", "8", "--n-head", "1"]
    assert main(argv) == 0, "the sandbox's reference run did not train"
    rng = np.random.default_rng(0)
    N = np.repeat(np.logspace(7, 9, 5), 4)
    D = np.tile(np.logspace(9, 11, 4), 5)
    L = (1.7 + 400 / N**0.34 + 400 / D**0.28) * np.exp(rng.normal(0, 0.003, N.size))
    good = "N,D,loss\n" + "".join(f"{n},{d},{l}\n" for n, d, l in zip(N, D, L, strict=True))
    files = {
        "good.csv": good,
        "empty.csv": "",
        "header_only.csv": "N,D,loss\n",
        "text_values.csv": "N,loss\n1e6,3.1\nbig,2.9\n1e8,2.7\n",
        "negative_y.csv": "N,loss\n1e6,3.1\n1e7,-2.9\n1e8,2.7\n1e9,2.5\n",
        "zero_x.csv": "N,loss\n0,3.1\n1e7,2.9\n1e8,2.7\n1e9,2.5\n",
        "nan_y.csv": "N,loss\n1e6,3.1\n1e7,nan\n1e8,2.7\n1e9,2.5\n",
        "inf_x.csv": "N,loss\ninf,3.1\n1e7,2.9\n1e8,2.7\n1e9,2.5\n",
        "identical_rows.csv": "N,loss\n" + "1e7,2.9\n" * 12,
        "constant_x.csv": "N,loss\n" + "".join(f"1e7,{2.5 + 0.1 * i}\n" for i in range(12)),
        "overflow_y.csv": "N,loss\n" + "".join(f"1e{6 + i},1e{300 + 10 * i}\n" for i in range(8)),
        "few_rows.csv": "N,loss\n1e6,3.1\n1e7,2.9\n",
        "ragged.csv": "N,D,loss\n1e6,1e9,3.1\n1e7,2.9\n1e8,1e10,2.7,5\n",
        "duplicate_header.csv": "N,N,loss\n1e6,1e6,3.1\n1e7,1e7,2.9\n1e8,1e8,2.7\n",
        "no_header_numbers.csv": "1e6,3.1\n1e7,2.9\n1e8,2.7\n",
        "spaces_only.csv": "   \n  \n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "latin1.csv").write_bytes("N,perte é\n1e6,3.1\n".encode("latin-1"))
    (root / "binary.csv").write_bytes(bytes(range(256)) * 8)
    (root / "truncated.csv.gz").write_bytes(gzip.compress(good.encode())[:40])
    (root / "adir.csv").mkdir()
    (root / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (root / "bad_config.toml").write_text('[model]\nname = "gpt"\nd_model = "wide"\n')
    (root / "unknown_key_config.toml").write_text("tokenz = 1000\n")
    (root / "runs_garbage").mkdir()
    (root / "runs_garbage" / "x.json").write_text("{ not json")
    return root


def _train_argv(root: Path, out: str | None = None) -> list[str]:
    return [
        "train",
        "--data",
        str(root / "data"),
        "--tokenizer",
        "byte",
        "--n-ctx",
        "16",
        "--tokens",
        "320",
        "--batch-tokens",
        "64",
        "--out",
        str(root / "out") if out is None else out,
        "--threads",
        "1",
    ]


SPEC_BASE = """[base]
data = "{data}"
tokenizer = "byte"
batch_tokens = 64
eval_points = 3
eval_tokens = 256
[base.model]
n_ctx = 16
"""
GRID = "[grid]\nN = [3e3]\nD = [640]\n"

# A sweep spec's body (after its [base]), each one wrong in one way.
BAD_SPECS = {
    "name_traversal": 'name = "../../x"\n' + SPEC_BASE + GRID,
    "name_absolute": 'name = "/tmp/fuzz-escape"\n' + SPEC_BASE + GRID,
    "name_empty": 'name = ""\n' + SPEC_BASE + GRID,
    "name_dot": 'name = "."\n' + SPEC_BASE + GRID,
    "name_number": "name = 5\n" + SPEC_BASE + GRID,
    "grid_unknown_seed": SPEC_BASE + GRID + "seed = [0]\n",
    "grid_unknown_aspects": SPEC_BASE + GRID + "aspects = [8]\n",
    "grid_unknown_minlayers": SPEC_BASE + GRID + "minlayers = 2\n",
    "grid_seeds_float": SPEC_BASE + GRID + "seeds = [1.7]\n",
    "grid_seeds_text": SPEC_BASE + GRID + 'seeds = ["a"]\n',
    "grid_seeds_negative": SPEC_BASE + GRID + "seeds = [-1]\n",
    "grid_aspect_below_one": SPEC_BASE + GRID + "aspect = [0.5]\n",
    "grid_min_layers_text": SPEC_BASE + GRID + 'min_layers = "x"\n',
    "grid_N_inf": SPEC_BASE + "[grid]\nN = [inf]\nD = [640]\n",
    "grid_N_negative": SPEC_BASE + "[grid]\nN = [-3e3]\nD = [640]\n",
    "grid_D_nan": SPEC_BASE + "[grid]\nN = [3e3]\nD = [nan]\n",
    "grid_N_text": SPEC_BASE + '[grid]\nN = ["1e4"]\nD = [640]\n',
    "grid_N_empty": SPEC_BASE + "[grid]\nN = []\nD = [640]\n",
    "grid_missing_D": SPEC_BASE + "[grid]\nN = [3e3]\n",
    "grid_is_number": "grid = 5\n" + SPEC_BASE,
    "isoflop_is_text": 'isoflop = "x"\n' + SPEC_BASE,
    "isoflop_unknown_key": SPEC_BASE + "[isoflop]\nC = [1e9]\nN = [3e3]\nbudget = 3\n",
    "isoflop_seeds_bool": SPEC_BASE + "[isoflop]\nC = [1e9]\nN = [3e3]\nseeds = [true]\n",
    "isoflop_C_negative": SPEC_BASE + "[isoflop]\nC = [-1e9]\nN = [3e3]\n",
    "grid_and_isoflop_missing": SPEC_BASE,
    "base_is_number": "base = 3\n" + GRID,
    "base_unknown_key": SPEC_BASE.replace("eval_points = 3", "eval_pointz = 3") + GRID,
    "base_batch_tokens_text": SPEC_BASE.replace("batch_tokens = 64", 'batch_tokens = "x"') + GRID,
    "base_lr_negative": SPEC_BASE.replace("eval_points = 3", "eval_points = 3\nlr = -1.0") + GRID,
    "base_model_unknown": SPEC_BASE.replace("n_ctx = 16", 'n_ctx = 16\nname = "nope"') + GRID,
    "base_data_missing_folder": SPEC_BASE.replace("{data}", "{root}/no-such-data") + GRID,
    "toml_syntax": SPEC_BASE + "[grid]\nN = [3e3]\nD = [640\n",
    "unknown_section": SPEC_BASE + GRID + "[gird]\nN = [1]\n",
}


def _cli_cases(root: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of every bad command line. ``out2`` is a fresh --out folder for commands that have one."""
    data, out = str(root / "data"), str(root / "out")
    csv = str(root / "good.csv")
    tr = _train_argv(root)
    shape = ["--n-layer", "1", "--d-model", "8", "--n-head", "1"]
    cases: list[tuple[str, list[str]]] = []

    # scaling train: flags (the flag itself, or what it implies, is wrong)
    for name, extra in {
        "N_inf": ["--N", "inf"],
        "N_nan": ["--N", "nan"],
        "N_negative": ["--N", "-1"],
        "N_zero": ["--N", "0"],
        "N_huge": ["--N", "1e308"],
        "N_text": ["--N", "big"],
        "N_out_of_memory": ["--N", "1e15"],
        "N_and_shape": ["--N", "1e4", "--n-layer", "2"],
        "tokens_nan": [*shape, "--tokens", "nan"],
        "tokens_inf": [*shape, "--tokens", "inf"],
        "tokens_fraction": [*shape, "--tokens", "1000.5"],
        "tokens_negative": [*shape, "--tokens", "-320"],
        "tokens_zero": [*shape, "--tokens", "0"],
        "tokens_past_max_epochs": [*shape, "--tokens", "1e9"],
        "d_model_not_multiple_of_heads": ["--n-layer", "1", "--d-model", "7", "--n-head", "2"],
        "rotary_odd_head_dim": ["--n-layer", "1", "--d-model", "6", "--n-head", "2", "--pos", "rotary"],
        "d_model_zero": ["--n-layer", "1", "--d-model", "0", "--n-head", "1"],
        "n_layer_zero": ["--n-layer", "0", "--d-model", "8", "--n-head", "1"],
        "n_layer_huge": ["--n-layer", str(10**20), "--d-model", "8", "--n-head", "1"],
        "n_head_zero": ["--n-layer", "1", "--d-model", "8", "--n-head", "0"],
        "n_ctx_zero": [*shape, "--n-ctx", "0"],
        "n_ctx_longer_than_data": [*shape, "--n-ctx", "100000000"],
        "batch_tokens_negative": [*shape, "--batch-tokens=-128"],
        "batch_tokens_zero": [*shape, "--batch-tokens", "0"],
        "batch_tokens_not_multiple_of_ctx": [*shape, "--batch-tokens", "70"],
        "threads_negative": [*shape, "--threads=-1"],
        "threads_zero": [*shape, "--threads", "0"],
        "max_epochs_negative": [*shape, "--max-epochs", "-1"],
        "max_epochs_nan": [*shape, "--max-epochs", "nan"],
        "lr_inf": [*shape, "--lr", "inf"],
        "lr_zero": [*shape, "--lr", "0"],
        "lr_negative": [*shape, "--lr", "-0.001"],
        "seed_negative": [*shape, "--seed", "-1"],
        "seed_too_big": [*shape, "--seed", str(2**64)],
        "model_unknown": ["--model", "nope"],
        "pos_unknown": [*shape, "--pos", "sinusoid-ish"],
        "kernels_unknown": [*shape, "--kernels", "cuda-only"],
        "schedule_unknown": [*shape, "--schedule", "linear-ish"],
        "tokenizer_unknown": [*shape, "--tokenizer", "sentencepiece"],
        "precision_unknown": [*shape, "--precision", "fp8"],
        "device_unknown": [*shape, "--device", "tpu"],
        "data_missing": [*shape, "--data", str(root / "no-such-data")],
        "data_is_a_file": [*shape, "--data", csv],
        "config_missing": ["--config", str(root / "no-such.toml")],
        "config_binary": ["--config", str(root / "binary.toml")],
        "config_bad_field": ["--config", str(root / "bad_config.toml")],
        "config_unknown_key": ["--config", str(root / "unknown_key_config.toml")],
        "out_unwritable": [*shape, "--out", "/proc/fuzz-out"],
        "out_is_a_file": [*shape, "--out", csv],
    }.items():
        argv = list(tr)
        if "--tokenizer" in extra:  # the later flag would win anyway; drop the default to keep the case clear
            i = argv.index("--tokenizer")
            del argv[i : i + 2]
        cases.append((f"train {name}", [*argv, *extra]))

    # scaling sweep: spec files and flags
    specs = root / "specs"
    specs.mkdir(exist_ok=True)
    for name, body in BAD_SPECS.items():
        path = specs / f"{name}.toml"
        path.write_text(body.replace("{data}", data).replace("{root}", str(root)))
        cases.append((f"sweep spec {name}", ["sweep", str(path), "--out", out, "--workers", "1", "--threads", "1"]))
    good_spec = specs / "good.toml"
    good_spec.write_text('name = "fuzz-good"\n' + SPEC_BASE.replace("{data}", data) + GRID)
    for name, flags in {
        "missing_spec": [str(specs / "none.toml")],
        "spec_is_a_folder": [str(specs)],
        "binary_spec": [str(root / "binary.toml")],
        "workers_zero": [str(good_spec), "--workers", "0"],
        "workers_negative": [str(good_spec), "--workers=-2"],
        "threads_negative": [str(good_spec), "--threads=-1"],
        "executor_unknown": [str(good_spec), "--executor", "kubernetes"],
        "slurm_time_zero": [str(good_spec), "--slurm-time", "0"],
        "slurm_mem_nan": [str(good_spec), "--slurm-mem-gb", "nan"],
        "out_unwritable": [str(good_spec), "--out", "/proc/fuzz-out"],
        "out_is_a_file": [str(good_spec), "--out", csv],
    }.items():
        argv = ["sweep", *flags]
        if "--out" not in flags:
            argv += ["--out", out]
        cases.append((f"sweep {name}", argv))

    # scaling fit: files and flags
    def fit(name, f, *flags):
        cases.append((f"fit {name}", ["fit", str(root / f) if not f.startswith("/") else f, *flags]))

    fit("missing_file", "no-such.csv", "--form", "power", "--x", "N", "--y", "loss")
    fit("directory", "adir.csv", "--form", "power", "--x", "N", "--y", "loss")
    fit("binary", "binary.csv", "--form", "power", "--x", "N", "--y", "loss")
    fit("latin1", "latin1.csv", "--form", "power", "--x", "N", "--y", "loss")
    fit("truncated_gzip", "truncated.csv.gz", "--form", "power", "--x", "N", "--y", "loss")
    for f in ("empty", "header_only", "spaces_only", "no_header_numbers", "ragged", "duplicate_header"):
        fit(f, f"{f}.csv", "--form", "power", "--x", "N", "--y", "loss")
    for f in ("text_values", "negative_y", "zero_x", "nan_y", "inf_x", "identical_rows", "constant_x", "few_rows"):
        fit(f, f"{f}.csv", "--form", "saturating_power", "--x", "N", "--y", "loss")
    fit("overflow_y", "overflow_y.csv", "--form", "power", "--x", "N", "--y", "loss")
    fit("missing_x_column", "good.csv", "--form", "power", "--x", "params", "--y", "loss")
    fit("missing_y_column", "good.csv", "--form", "power", "--x", "N", "--y", "val")
    fit("x_equals_y", "good.csv", "--form", "power", "--x", "N", "--y", "N")
    fit("x_empty_name", "good.csv", "--form", "power", "--x", ",", "--y", "loss")
    fit("x_too_many_columns", "good.csv", "--form", "power", "--x", "N,D", "--y", "loss")
    fit("x_too_few_columns", "good.csv", "--form", "chinchilla", "--x", "N", "--y", "loss")
    fit("form_unknown", "good.csv", "--form", "nope", "--x", "N", "--y", "loss")
    fit("isoflop_two_columns", "good.csv", "--form", "isoflop_parabola", "--x", "N,D", "--y", "loss")
    fit("loss_unknown", "good.csv", "--form", "chinchilla", "--x", "N,D", "--y", "loss", "--loss", "l3")
    fit("reduction_unknown", "good.csv", "--form", "chinchilla", "--x", "N,D", "--y", "loss", "--reduction", "max")
    fit("delta_negative", "good.csv", "--form", "chinchilla", "--x", "N,D", "--y", "loss", "--delta", "-1")
    fit("delta_nan", "good.csv", "--form", "chinchilla", "--x", "N,D", "--y", "loss", "--delta", "nan")
    fit("n_breaks_negative", "good.csv", "--form", "bnsl", "--x", "N", "--y", "loss", "--n-breaks", "-1")
    fit("n_breaks_other_form", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--n-breaks", "2")
    fit("bootstrap_negative", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--bootstrap", "-5")
    fit("seed_negative", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--seed", "-1")
    fit("holdout_nothing_above", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--holdout-above", "1e12")
    fit("holdout_everything_above", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--holdout-above", "1")
    fit("holdout_nan", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--holdout-above", "nan")
    fit("format_unknown", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--format", "xml")
    fit("plot_unwritable", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--plot", "/proc/fuzz.png")
    fit("plot_unknown_type", "good.csv", "--form", "power", "--x", "N", "--y", "loss", "--plot", str(root / "p.xyz"))

    # audit, replicate, data, runs, migrate, corpus, recipe
    prepare = ["corpus", "prepare", str(root / "txt"), "--out", str(root / "c")]
    cases += [
        ("audit unknown_replication", ["audit", "nope"]),
        ("audit unknown_tier", ["audit", "kaplan", "--tier", "nope"]),
        ("audit bootstrap_negative", ["audit", "chinchilla", "--bootstrap", "-1"]),
        ("audit seed_negative", ["audit", "chinchilla", "--seed", "-1"]),
        ("audit format_unknown", ["audit", "chinchilla", "--format", "xml"]),
        ("replicate unknown_replication", ["replicate", "nope", "--out", str(root / "rep")]),
        ("replicate unknown_tier", ["replicate", "kaplan", "--tier", "nope", "--out", str(root / "rep")]),
        ("replicate workers_zero", ["replicate", "kaplan", "--tier", "smoke", "--workers", "0"]),
        ("replicate bootstrap_negative", ["replicate", "chinchilla", "--bootstrap", "-3"]),
        ("replicate nothing_named", ["replicate"]),
        ("data fetch_unknown", ["data", "fetch", "nope"]),
        ("data info_unknown", ["data", "info", "nope"]),
        ("data build_unknown", ["data", "build", "nope"]),
        ("data build_bad_tokenizer", ["data", "build", "default", "--tokenizer", "sentencepiece"]),
        ("runs missing_path", ["runs", str(root / "no-such-runs")]),
        ("runs garbage_record", ["runs", str(root / "runs_garbage")]),
        ("runs format_unknown", ["runs", out, "--format", "xml"]),
        ("migrate missing_folder", ["migrate", str(root / "no-such-runs")]),
        ("migrate missing_spec", ["migrate", out, "--spec", str(root / "no-such.toml")]),
        ("corpus prepare_missing_folder", ["corpus", "prepare", str(root / "no-such-txt"), "--out", str(root / "c")]),
        (
            "corpus prepare_vocab_tiny",
            [*prepare, "--vocab-size", "3"],
        ),
        (
            "corpus prepare_val_fraction_one",
            [*prepare, "--val-fraction", "1"],
        ),
        ("recipe fit_missing_path", ["recipe", "fit", str(root / "no-such-runs")]),
        ("recipe fit_empty_folder", ["recipe", "fit", str(root / "adir.csv")]),
        ("unknown_command", ["trian"]),
        ("unknown_flag", ["train", "--learning-rate", "1"]),
    ]
    return cases


def _api_cases() -> list[tuple[str, Callable[[], object]]]:
    from harness.config import TrainConfig
    from harness.fit import ScalingLaw
    from harness.models import ModelConfig, shape_for_n
    from harness.runs import load_runs
    from harness.sweep import expand

    N = np.geomspace(1e4, 1e7, 9)
    y = 1.7 + 400.0 * N**-0.35
    sat = "saturating_power"

    def fitted():
        return ScalingLaw(sat).fit(N[:, None], y)

    return [
        ("ScalingLaw unknown form", lambda: ScalingLaw("nope")),
        ("ScalingLaw empty starts", lambda: ScalingLaw(sat, starts=np.empty((0, 3))).fit(N[:, None], y)),
        (
            "ScalingLaw starts wrong width",
            lambda: ScalingLaw(sat, starts=np.ones((4, 7))).fit(N[:, None], y),
        ),
        ("ScalingLaw max_iter zero", lambda: ScalingLaw(sat, max_iter=0).fit(N[:, None], y)),
        ("ScalingLaw max_iter negative", lambda: ScalingLaw(sat, max_iter=-3)),
        ("ScalingLaw delta negative", lambda: ScalingLaw("chinchilla", delta=-1.0)),
        ("ScalingLaw reduction unknown", lambda: ScalingLaw("chinchilla", reduction="max")),
        ("ScalingLaw loss unknown", lambda: ScalingLaw("chinchilla", loss="l3")),
        ("fit constant X", lambda: ScalingLaw(sat).fit(np.full((9, 1), 1e6), y)),
        ("fit identical rows", lambda: ScalingLaw(sat).fit(np.full((9, 1), 1e6), np.full(9, 2.0))),
        ("fit NaN y", lambda: ScalingLaw(sat).fit(N[:, None], np.where(N > 1e6, np.nan, y))),
        ("fit negative y", lambda: ScalingLaw(sat).fit(N[:, None], -y)),
        ("fit zero X", lambda: ScalingLaw(sat).fit(np.zeros((9, 1)), y)),
        ("fit lengths differ", lambda: ScalingLaw(sat).fit(N[:, None], y[:5])),
        ("fit too few points", lambda: ScalingLaw(sat).fit(N[:2, None], y[:2])),
        ("fit wrong input count", lambda: ScalingLaw("chinchilla").fit(N[:, None], y)),
        ("fit negative weights", lambda: ScalingLaw(sat).fit(N[:, None], y, sample_weight=-np.ones(9))),
        ("fit text X", lambda: ScalingLaw(sat).fit(np.array([["a"]] * 9), y)),
        ("predict before fit", lambda: ScalingLaw(sat).predict(N[:, None])),
        ("predict wrong shape", lambda: fitted().predict(np.ones((20, 2)))),
        ("interval unknown parameter", lambda: fitted().bootstrap(20).interval("gamma")),
        ("bootstrap negative", lambda: fitted().bootstrap(-5)),
        ("bootstrap before fit", lambda: ScalingLaw(sat).bootstrap(10)),
        ("bootstrap groups wrong length", lambda: fitted().bootstrap(10, groups=np.arange(3))),
        ("TrainConfig fractional tokens", lambda: TrainConfig(tokens=1.5e6)),
        ("TrainConfig negative lr", lambda: TrainConfig(lr=-1.0)),
        ("TrainConfig nan max_epochs", lambda: TrainConfig(max_epochs=float("nan"))),
        ("TrainConfig batch_tokens negative", lambda: TrainConfig(batch_tokens=-128)),
        ("TrainConfig not a table", lambda: TrainConfig.from_dict([1, 2])),
        ("TrainConfig unknown field", lambda: TrainConfig.from_dict({"tokenz": 5})),
        ("ModelConfig heads", lambda: ModelConfig.make("gpt", d_model=7, n_head=2)),
        ("ModelConfig unknown model", lambda: ModelConfig.make("nope")),
        ("ModelConfig unknown field", lambda: ModelConfig.make("gpt", widht=8)),
        ("ModelConfig lstm tie_weights int", lambda: ModelConfig.make("lstm", tie_weights=1)),
        ("shape_for_n inf", lambda: shape_for_n(float("inf"))),
        ("shape_for_n aspect", lambda: shape_for_n(1e5, aspect=0.5)),
        ("shape_for_n n_layer zero", lambda: shape_for_n(1e5, "lstm", n_layer=0)),
        ("expand grid not a table", lambda: expand({"grid": [1e4]})),
        ("expand no grid", lambda: expand({"base": {}})),
        ("load_runs missing", lambda: load_runs("/nonexistent/fuzz-runs")),
    ]


# --------------------------------------------------------------------------------------------- the runner
class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def _with_time_limit(fn):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _out_of(argv: list[str]) -> Path | None:
    return Path(argv[argv.index("--out") + 1]) if "--out" in argv else None


def _run_cli(name, argv, root, capsys) -> Outcome:
    out = _out_of(argv)
    skip = out if out is not None and root in out.parents and out != root / "out" else None
    before = _tree(root, skip)
    try:
        rc = _with_time_limit(lambda: main(argv))
    except _Hang:
        return Outcome(name, False, f"no answer within {TIME_LIMIT_S} s")
    except SystemExit as e:  # argparse's own errors exit 2 with usage + one error line
        rc = e.code
    except BaseException as e:
        capsys.readouterr()
        return Outcome(name, False, f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    printed = capsys.readouterr()
    err_lines = [ln for ln in printed.err.splitlines() if ln.strip()]
    errors = [ln for ln in err_lines if ": error: " in ln]
    if rc != 2:
        return Outcome(name, False, f"exit {rc}: {printed.err.strip()[:200]!r}")
    if "Traceback" in printed.err:
        return Outcome(name, False, "traceback on stderr")
    if len(errors) != 1 or not errors[0].startswith("scaling"):
        return Outcome(name, False, f"stderr has {len(errors)} error lines: {printed.err.strip()[:200]!r}")
    if len([ln for ln in err_lines if not ln.startswith("usage:") and not ln.startswith("  ")]) != 1:
        return Outcome(name, False, f"more than the error on stderr: {printed.err.strip()[:300]!r}")
    after = _tree(root, skip)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        return Outcome(name, False, f"changed files: {changed[:5]}")
    return Outcome(name, True)


def _run_api(name, fn) -> Outcome:
    try:
        result = _with_time_limit(fn)
    except _Hang:
        return Outcome(name, False, f"no answer within {TIME_LIMIT_S} s")
    except (UserError, ValueError, TypeError) as e:
        text = str(e)
        if not text.strip() or "\n" in text.strip():
            return Outcome(name, False, f"{type(e).__name__} message is not one line: {text[:200]!r}")
        if type(e) in (ValueError, TypeError) and "tuple.index" in text:
            return Outcome(name, False, f"internal error leaks: {text}")
        return Outcome(name, True)
    except BaseException as e:
        return Outcome(name, False, f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return Outcome(name, False, f"returned {type(result).__name__} instead of refusing")


def test_every_bad_input_is_refused_cleanly(sandbox, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative paths a command might write land here, where nothing may appear
    monkeypatch.setenv("SCALING_CACHE_DIR", str(sandbox / "cache"))  # nothing downloads into the user's cache
    results_before = _tree(REPO / "results")
    reference = sorted((sandbox / "out" / "runs").glob("*.json"))
    assert len(reference) == 1
    ref_bytes, ref_mtime = reference[0].read_bytes(), reference[0].stat().st_mtime_ns

    outcomes = [_run_cli(n, a, sandbox, capsys) for n, a in _cli_cases(sandbox)]
    outcomes += [_run_api(n, f) for n, f in _api_cases()]

    bad = [o for o in outcomes if not o.ok]
    with capsys.disabled():
        print(f"\nfuzz: {len(outcomes)} bad inputs tried, {len(outcomes) - len(bad)} refused cleanly")
    assert not bad, "\n".join(f"{o.name}: {o.why}" for o in bad)
    assert not any(tmp_path.iterdir()), f"files appeared in the working directory: {list(tmp_path.iterdir())}"
    assert _tree(REPO / "results") == results_before, "committed results changed"
    assert sorted((sandbox / "out" / "runs").glob("*.json")) == reference, "a run record appeared or was lost"
    assert reference[0].read_bytes() == ref_bytes and reference[0].stat().st_mtime_ns == ref_mtime, "run redone"
