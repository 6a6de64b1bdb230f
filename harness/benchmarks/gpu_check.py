"""The GPU check in one command: GPU tests, kernel benchmark, training-step benchmark, a small GPU sweep and the
issue's goals, in under 8 minutes on one H100/H200-class GPU, results written as it goes.

    python -m harness.benchmarks.gpu_check                      # on a GPU: results in results/bench/gpu/
    python -m harness.benchmarks.gpu_check --dry-run            # the same steps on CPU, into a temp folder
    python -m harness.benchmarks.gpu_check --dry-run --out DIR  # ... into DIR (never under results/)
    nox -s gpu -- --dry-run                                     # the same through nox

Steps, in order, each in its own process group with a time limit (its slice of ``--deadline-s``, default 450 s,
what an earlier step leaves unused goes to the later ones), so that a hang or a CUDA fault in one step is
recorded and the others still run. Slices at the default deadline, and the expected durations on an H200
(estimates: nothing here has yet run on a GPU):

1. ``tests`` (60 s; ~30-60 s): pytest ``kernels/`` and ``harness/tests/test_train_kernels.py``: the ``gpu``-marked
   tests (bf16 / fp32 at realistic sizes, the fused loss's 4x peak-memory cut) and the ordinary kernel tests
   (fp32 / fp16 forward and backward against the PyTorch references), which on CUDA run compiled, in four
   processes when pytest-xdist is installed (it is on the lent H200). Pass, fail and skip counts and each
   failure come from pytest's JUnit XML (from its log when it was cut off).
2. ``kernels`` (70 s; ~30 s): ``gpu_kernels --quick`` (one bf16 shape per op; ``--no-compile`` unless the
   slice is at least ``KERNEL_COMPILE_MIN_S``): each op's speed-up over the PyTorch reference (eager), and the
   achieved memory bandwidth (norms) or TFLOP/s (linear cross-entropy) against the card's.
3. ``train_step`` (210 s; all of it): ``gpu_train_step --quick --sizes 1e8,1e7 --modes eager,compile`` with
   ``--budget-s`` inside the slice: tokens/s and MFU, kernels on (``triton``) and off (``torch``), eager and
   ``torch.compile``, and its sweep-throughput part (K = 1 and 4 small runs at once, eager and CUDA graphs).
   What the budget leaves out is recorded as skipped (torch.compile at 1e7 is the first to go).
4. ``sweep`` (100 s; ~60 s): ``python -m harness sweep gpu_check_sweep.toml --out OUT``: four sizes of the
   Transformer, bf16, tiny budgets; its run records land in ``OUT/runs`` with their provenance (the sweep
   machinery's own files: ``OUT/runs``, ``OUT/sweeps``).
5. the summary's goals table: kernels >= 1.3x the PyTorch reference on the ops they replace; a training step at
   >= 40 % MFU at 1e8 parameters (bf16); packed small runs >= 3x the runs/hour of one at a time. Each is
   reported (measured value, goal, met / not met / not measured), not asserted.

After every step the summary is rewritten: ``OUT/gpu_check_<device>_<time>.json`` and ``.md``, beside the
benchmarks' own ``kernels_*.json`` / ``train_step_*.json`` and ``logs/gpu_check_<time>/`` (each step's output,
pytest's XML). A run cut off anywhere still leaves what it had. The card's bf16 dense peak and memory bandwidth
come from ``torch.cuda.get_device_name`` (``CARDS``; the H200 has the H100 SXM's bf16 peak); the summary says
which figures were used. Exit status: 0 when every step ran through, 1 when one failed, timed out or was skipped,
2 (one line, nothing written) without CUDA and without ``--dry-run``, or for bad arguments.

``--dry-run``: the same script and steps on CPU: ``CUDA_VISIBLE_DEVICES=""`` and ``TRITON_INTERPRET=1`` for
every step, the ``gpu``-marked tests only (they skip), ``--cpu-smoke`` for both benchmarks, and
``gpu_check_sweep_dry.toml`` (two tiny runs on the default corpus). Timings mean nothing, so every goal is
"not measured"; it writes only under ``--out`` (default: a new temp folder), never under ``results/``.

On a lent GPU through the device tool (``run``; 10 minutes a command, about 15 minutes of device time in all,
a machine's start included): nothing there can be downloaded, and the default corpus is not part of the
package but is built into the cache on first use. So copy its tokenised form (14 MB) into the ignored
``.cache/`` of the repo first, here, once::

    mkdir -p .cache/scaling-harness/corpus/pydocs-v1
    cp -r ~/.cache/scaling-harness/corpus/pydocs-v1/bpe4096 .cache/scaling-harness/corpus/pydocs-v1/

then call ``run`` with ``carry: [".cache/scaling-harness"]``, ``timeout_s: 540`` and the command::

    SCALING_CACHE_DIR=.cache/scaling-harness PYTHONUNBUFFERED=1 python3 -m harness.benchmarks.gpu_check --bundle $OUT

About 7.5 minutes (the deadline) plus the machine's start. The device tool brings back at most 8 files from
``$OUT``, so ``--bundle DIR`` writes, after every step, the summary (``.json``, ``.md``) and one archive,
``gpu_check_<device>_<time>.tar.gz``, of all this check wrote under ``--out`` (paths relative to it) into
``DIR``. Back here: ``tar -xzf <files_at>/gpu_check_*.tar.gz -C results/bench/gpu``. Without the carried
corpus the sweep step is recorded as skipped and says why; the other steps need nothing but the repo. If the
copy sent there has no ``.git``, its records' ``git_commit`` is null: note which commit was sent.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .gpu_train_step import H100_BF16_DENSE_PEAK

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "results" / "bench" / "gpu"
RESULTS = ROOT / "results"
PROG = "harness.benchmarks.gpu_check"

DEFAULT_DEADLINE_S = 450.0
RESERVE_S = 10.0  # kept back from the slices for the last summary and bundle
KERNEL_COMPILE_MIN_S = 150.0  # the torch.compile column of gpu_kernels only with a slice at least this long
TEST_PATHS = ("kernels", "harness/tests/test_train_kernels.py")
SWEEP_SPEC = HERE / "gpu_check_sweep.toml"
SWEEP_SPEC_DRY = HERE / "gpu_check_sweep_dry.toml"

KERNEL_SPEEDUP_GOAL = 1.3  # x the PyTorch reference (eager), forward + backward, every op
MFU_GOAL = 0.40  # at 1e8 parameters, bf16
MFU_SIZE, MFU_SIZE_DRY = "1e8", "tiny"  # gpu_train_step's size labels (the dry run's one size stands in)
PACKING_GOAL = 3.0  # runs/hour of K small runs at once over one at a time

# M x N tensors each norm op reads or writes once at least, forward and forward + backward: x -> y (2); with the
# residual: x, r -> y, h (4). Backward: x (or h), dy (and dh) in, dx out (shared by x and r for add_rms_norm).
NORM_TRAFFIC = {"layer_norm": (2, 5), "rms_norm": (2, 5), "add_rms_norm": (4, 8)}
ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4}


# ------------------------------------------------------------------------------------------------ the card
@dataclass(frozen=True)
class Card:
    name: str
    bf16_peak_flops: float  # dense tensor-core peak, FLOP/s
    mem_bandwidth: float  # bytes/s
    source: str


# substring of torch.cuda.get_device_name -> bf16 dense peak, memory bandwidth, source; the first match wins
CARDS: tuple[tuple[str, float, float, str], ...] = (
    ("H200 NVL", 835e12, 4.8e12, "H200 NVL datasheet: 1671 bf16 TFLOP/s with sparsity / 2; 4.8 TB/s"),
    ("H200", H100_BF16_DENSE_PEAK, 4.8e12, "H200 SXM: bf16 dense peak as the H100 SXM; HBM3e 4.8 TB/s (datasheet)"),
    ("H100 NVL", 835e12, 3.9e12, "H100 NVL datasheet: 1671 bf16 TFLOP/s with sparsity / 2; 3.9 TB/s"),
    ("H100 PCIe", 756e12, 2.0e12, "H100 PCIe datasheet: 1513 bf16 TFLOP/s with sparsity / 2; 2.0 TB/s"),
    ("H100", H100_BF16_DENSE_PEAK, 3.35e12, "H100 SXM datasheet: 1979 bf16 TFLOP/s with sparsity / 2; 3.35 TB/s"),
    ("A100-SXM4-80GB", 312e12, 2.039e12, "A100 SXM 80GB datasheet: 312 bf16 TFLOP/s dense; 2.039 TB/s"),
    ("A100 80GB PCIe", 312e12, 1.935e12, "A100 PCIe 80GB datasheet: 312 bf16 TFLOP/s dense; 1.935 TB/s"),
    ("A100", 312e12, 1.555e12, "A100 40GB datasheet: 312 bf16 TFLOP/s dense; 1.555 TB/s"),
)


def card_for(device_name: str) -> Card:
    """The card's figures by name; an unknown card gets the H100 SXM's, and says so."""
    for key, peak, bandwidth, source in CARDS:
        if key in device_name:
            return Card(device_name, peak, bandwidth, source)
    _, peak, bandwidth, source = next(c for c in CARDS if c[0] == "H100")
    return Card(
        device_name, peak, bandwidth, f"unknown card {device_name!r}: the H100 SXM's figures assumed ({source})"
    )


def dry_run_card() -> Card:
    card = card_for("H100")
    return dataclasses.replace(card, name="cpu (dry run)", source=f"dry run: placeholders, {card.source}")


# ------------------------------------------------------------------------------------------------ the steps
@dataclass
class Step:
    name: str
    title: str
    share_s: float  # its slice at the default deadline; unused time of earlier steps is shared out again
    min_s: float  # below this slice the step is skipped
    status: str = "pending"  # pending | ok | failed | timeout | skipped
    slice_s: float | None = None
    elapsed_s: float | None = None
    command: str | None = None
    log: str | None = None
    files: list[str] = field(default_factory=list)
    result: dict = field(default_factory=dict)
    error: str | None = None


def plan_steps() -> list[Step]:
    return [
        Step("tests", "GPU tests: kernel forward/backward vs the PyTorch references (pytest)", 60, 20),
        Step("kernels", "kernel benchmark vs the PyTorch references (gpu_kernels)", 70, 20),
        Step("train_step", "training-step benchmark: tokens/s, MFU, small runs at once (gpu_train_step)", 210, 45),
        Step("sweep", "small sweep through the harness's sweep machinery (scaling sweep)", 100, 20),
    ]


def slice_for(steps: list[Step], i: int, time_left: float) -> float:
    """Step ``i``'s share of what is left, in proportion to the shares of the steps still to run."""
    shares = sum(s.share_s for s in steps[i:])
    return max(0.0, time_left - RESERVE_S) * steps[i].share_s / shares


@dataclass
class Context:
    out: Path
    logs: Path
    dry_run: bool
    card: Card
    env: dict[str, str]


def run_logged(cmd: list[str], env: dict[str, str], log: Path, timeout_s: float) -> int | None:
    """Run ``cmd`` in the repo root in a new process group, output to ``log``; its exit status, or None when it
    ran past ``timeout_s`` (then the whole group is killed: benchmark workers and sweep workers too)."""
    with open(log, "w") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:  # timed out, interrupted, or done: what is left of its group goes, not just its leader
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def new_files(out: Path, pattern: str, before: set[Path]) -> list[Path]:
    return sorted(set(out.glob(pattern)) - before)


# ----------------------------------------------------------------------------------------------------- tests
OUTCOMES = "PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"
_VERBOSE_LINE = re.compile(rf"(?:(?P<id1>\S+::\S+)\s+(?P<o1>{OUTCOMES})\b|\b(?P<o2>{OUTCOMES})\s+(?P<id2>\S+::\S+))")


def parse_junit(path: Path) -> dict:
    """Counts and failures from pytest's JUnit XML."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            kind = "failed" if bad.tag == "failure" else "errors"
            counts[kind] += 1
            failures.append({"test": test, "kind": bad.tag, "message": (bad.get("message") or "")[:500]})
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failures}


def parse_pytest_log(text: str) -> dict:
    """Counts from pytest's verbose lines (``path::test PASSED``, or xdist's ``PASSED path::test``), for a run
    cut off before it wrote its XML; each test counted once."""
    seen: dict[str, str] = {}
    for m in _VERBOSE_LINE.finditer(text):
        seen[m["id1"] or m["id2"]] = m["o1"] or m["o2"]
    outcome = list(seen.values())
    counts = {
        "passed": outcome.count("PASSED") + outcome.count("XPASS"),
        "failed": outcome.count("FAILED"),
        "errors": outcome.count("ERROR"),
        "skipped": outcome.count("SKIPPED") + outcome.count("XFAIL"),
    }
    failures = [{"test": t, "kind": o.lower(), "message": ""} for t, o in seen.items() if o in ("FAILED", "ERROR")]
    return {**counts, "failures": failures}


def tests_command(ctx: Context, slice_s: float) -> list[str]:
    xml = ctx.logs / "tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rfE", f"--junitxml={xml}", *TEST_PATHS]
    if ctx.dry_run:
        return [*cmd, "-m", "gpu"]  # they skip on CPU; the interpreted kernel tests belong to `nox -s tests`
    if importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", "4"]  # Triton compiles in four processes at once
    return cmd


def tests_result(ctx: Context, step: Step, rc: int | None, new: list[Path]) -> None:
    xml = ctx.logs / "tests.xml"
    if rc is not None and xml.exists():
        step.result = {**parse_junit(xml), "source": "junit xml"}
        step.files.append(str(xml.relative_to(ctx.out)))
    else:
        output = (ctx.logs / "tests.log").read_text(errors="replace").partition("\n")[2]  # after the "$ cmd" line
        step.result = {**parse_pytest_log(output), "source": "pytest log (no XML: cut off)"}
    r = step.result
    if rc is not None:
        step.status = "ok" if rc == 0 else "failed"
        if rc not in (0, 1):
            step.error = f"pytest exited with status {rc}"
    ran = r["passed"] + r["failed"] + r["errors"]
    if step.status == "ok" and ran == 0 and not ctx.dry_run:
        step.status, step.error = "failed", "no test ran on the GPU (all skipped)"


# --------------------------------------------------------------------------------------------------- kernels
def kernels_command(ctx: Context, slice_s: float) -> list[str]:
    cmd = [sys.executable, "-m", "harness.benchmarks.gpu_kernels", "--out", str(ctx.out)]
    if ctx.dry_run:
        return [*cmd, "--cpu-smoke", "--warmup", "0", "--reps", "1", "--dtype", "float32"]
    cmd.append("--quick")
    if slice_s < KERNEL_COMPILE_MIN_S:
        cmd.append("--no-compile")
    return cmd


def _benchmark_status(step: Step, rc: int | None, new: list[Path]) -> bool:
    """A benchmark step's status from its exit and the record it wrote; whether there is a record to read."""
    if rc == 0 and not new:
        step.status, step.error = "failed", "exited 0 without writing its record"
    elif rc is not None:
        step.status = "ok" if rc == 0 else "failed"
    return bool(new)


def kernel_rows(doc: dict, card: Card) -> list[dict]:
    """Per op and shape: ours (``triton``) against the PyTorch reference (``eager``) and ``compile``, forward +
    backward, with the bandwidth (norms) or TFLOP/s (linear cross-entropy) ours achieves."""
    by_key: dict[tuple, dict[str, dict]] = {}
    for r in doc["records"]:
        by_key.setdefault((r["op"], tuple(r["shape"]), r["dtype"]), {})[r["impl"]] = r
    rows = []
    for (op, shape, dtype), impls in by_key.items():
        row: dict = {"op": op, "shape": list(shape), "dtype": dtype}
        ours, ref, comp = impls.get("triton", {}), impls.get("eager", {}), impls.get("compile", {})
        errors = {name: r["error"] for name, r in impls.items() if "error" in r}
        if errors:
            row["errors"] = errors
        if "fwd_bwd_ms" in ours and "fwd_bwd_ms" in ref:
            row.update(eager_ms=ref["fwd_bwd_ms"], triton_ms=ours["fwd_bwd_ms"])
            row["speedup"] = ref["fwd_bwd_ms"] / ours["fwd_bwd_ms"]
            row["speedup_fwd"] = ref["fwd_ms"] / ours["fwd_ms"]
            if "fwd_bwd_ms" in comp:
                row["speedup_vs_compile"] = comp["fwd_bwd_ms"] / ours["fwd_bwd_ms"]
            row["max_abs_err"] = max(ours["max_abs_err"].values())
        if "fwd_ms" in ours:
            if op in NORM_TRAFFIC:
                (m, n), size = shape, ITEMSIZE[dtype]
                fwd, fwd_bwd = (k * m * n * size for k in NORM_TRAFFIC[op])
                row["fwd_bandwidth"] = fwd / (ours["fwd_ms"] / 1e3)
                row["fwd_bwd_bandwidth"] = fwd_bwd / (ours["fwd_bwd_ms"] / 1e3)
                row["bandwidth_fraction"] = row["fwd_bwd_bandwidth"] / card.mem_bandwidth
            else:
                t, d, v = shape
                row["fwd_bwd_flops"] = 6 * t * d * v / (ours["fwd_bwd_ms"] / 1e3)  # logits, grad hidden, grad W
                row["peak_fraction"] = row["fwd_bwd_flops"] / card.bf16_peak_flops
        rows.append(row)
    return rows


def kernels_result(ctx: Context, step: Step, rc: int | None, new: list[Path]) -> None:
    if not _benchmark_status(step, rc, new):
        return
    doc = json.loads(new[-1].read_text())
    step.files.append(new[-1].name)
    rows = kernel_rows(doc, ctx.card)
    step.result = {"rows": rows, "errors": sum(len(r.get("errors", {})) for r in rows)}


# ------------------------------------------------------------------------------------------------ train step
def train_step_command(ctx: Context, slice_s: float) -> list[str]:
    cmd = [sys.executable, "-m", "harness.benchmarks.gpu_train_step", "--out", str(ctx.out)]
    if ctx.dry_run:
        return [*cmd, "--cpu-smoke"]
    budget = max(30.0, slice_s - 15)  # leaves it time to write its record before the slice ends
    return [
        *cmd,
        *("--quick", "--sizes", "1e8,1e7", "--modes", "eager,compile"),  # 1e8 first: the MFU goal's size
        *("--budget-s", f"{budget:.0f}", "--config-timeout-s", f"{min(120.0, budget):.0f}"),
    ]


def train_step_result(ctx: Context, step: Step, rc: int | None, new: list[Path]) -> None:
    if not _benchmark_status(step, rc, new):
        return
    doc = json.loads(new[-1].read_text())
    step.files.append(new[-1].name)
    configs = []
    for r in doc["records"]:
        row = {k: r[k] for k in ("size", "mode", "kernels") if k in r}
        for k in ("error", "skipped", "tokens_per_s", "step_ms", "n_kaplan", "warmup_s"):
            if k in r:
                row[k] = r[k]
        if "tokens_per_s" in r:  # MFU against this card's peak (gpu_train_step's own uses the H100 SXM's)
            row["mfu"] = r["tokens_per_s"] * r["flops_per_token_hoffmann"] / ctx.card.bf16_peak_flops
        configs.append(row)
    keys = ("mode", "concurrency", "runs_per_hour", "runs_per_hour_with_startup", "error", "skipped")
    packing = [{k: s[k] for k in keys if k in s} for s in doc["sweep"]]
    step.result = {"configs": configs, "packing": packing}


# ----------------------------------------------------------------------------------------------------- sweep
def sweep_spec(ctx: Context) -> Path:
    return SWEEP_SPEC_DRY if ctx.dry_run else SWEEP_SPEC


def sweep_data_missing(spec_path: Path) -> str | None:
    """Why the sweep cannot get its data here without a download, or None. The check never downloads: the
    default corpus must already be prepared in the cache (on a lent GPU: carried, see the module docstring)."""
    from harness.data.corpus import default_tokens_dir
    from harness.sweep import expand, load_spec

    cfg = expand(load_spec(spec_path))[0][0][0]
    if cfg.data in ("default", "pydocs-v1"):
        where = default_tokens_dir(cfg.tokenizer, cfg.model.vocab_size)
        if not (where / "meta.json").exists():
            return f"the default corpus is not prepared in {where} (this check downloads nothing; see its docstring)"
    elif not Path(cfg.data).expanduser().exists():
        return f"data {cfg.data!r} does not exist here"
    return None


def sweep_command(ctx: Context, slice_s: float) -> list[str]:
    cmd = [sys.executable, "-m", "harness", "sweep", str(sweep_spec(ctx)), "--out", str(ctx.out)]
    return [*cmd, "--workers", "1", "--threads", "1"] if ctx.dry_run else [*cmd, "--workers", "2"]


def sweep_result(ctx: Context, step: Step, rc: int | None, new: list[Path]) -> None:
    from harness.records import load_spec, manifest_path, run_paths
    from harness.sweep import sweep_name

    if rc is not None:
        step.status = "ok" if rc == 0 else "failed"
    manifest = manifest_path(ctx.out, sweep_name(load_spec(sweep_spec(ctx))))
    if not manifest.exists():
        return
    step.files.append(str(manifest.relative_to(ctx.out)))
    runs = []
    for entry in json.loads(manifest.read_text())["runs"]:
        path = run_paths(ctx.out, entry["run_id"])[0]
        row = {"run_id": entry["run_id"], "origin": entry["origin"]}
        if path.exists():
            rec = json.loads(path.read_text())
            step.files.append(str(path.relative_to(ctx.out)))
            row.update(
                status=rec["status"],
                n_kaplan=rec["scale"]["N_kaplan"],
                tokens=rec["scale"]["D"],
                val_loss=rec["loss"]["val_final"],
                tokens_per_s=rec["timing"]["tokens_per_s"],
                device=rec["resolved"]["device"],
                kernels=rec["resolved"]["kernels"],
                precision=rec["config"]["precision"],
            )
        else:
            row["status"] = "no record"
        runs.append(row)
    step.result = {"spec": str(sweep_spec(ctx).relative_to(ROOT)), "runs": runs}


# ----------------------------------------------------------------------------------------------------- goals
@dataclass
class Goal:
    name: str
    goal: str
    value: float | None = None
    measured: str = "-"
    status: str = "not measured"
    detail: str = ""


def _judge(g: Goal, target: float, dry_run: bool) -> Goal:
    if g.value is None:
        return g
    if dry_run:
        g.status, g.detail = "not measured", (g.detail + "; " if g.detail else "") + "dry run: CPU timings"
    else:
        g.status = "met" if g.value >= target else "not met"
    return g


def kernel_goal(rows: list[dict], dry_run: bool) -> Goal:
    g = Goal("kernels vs PyTorch reference", f">= {KERNEL_SPEEDUP_GOAL}x on every op (fwd+bwd, vs eager)")
    timed = [r for r in rows if "speedup" in r]
    if timed:
        worst = min(timed, key=lambda r: r["speedup"])
        g.value = worst["speedup"]
        g.measured = f"{g.value:.2f}x (worst: {worst['op']} {'x'.join(map(str, worst['shape']))})"
        g.detail = ", ".join(f"{r['op']} {r['speedup']:.2f}x" for r in timed)
    return _judge(g, KERNEL_SPEEDUP_GOAL, dry_run)


def mfu_goal(configs: list[dict], size: str, dry_run: bool) -> Goal:
    g = Goal(f"training-step MFU at {MFU_SIZE} parameters", f">= {100 * MFU_GOAL:.0f} % of the bf16 peak")
    timed = [c for c in configs if c.get("size") == size and "mfu" in c]
    if timed:
        best = max(timed, key=lambda c: c["mfu"])
        g.value = best["mfu"]
        g.measured = f"{100 * g.value:.1f} % ({best['mode']}, kernels {best['kernels']})"
        g.detail = f"size {size}" if size != MFU_SIZE else ""
    return _judge(g, MFU_GOAL, dry_run)


def packing_goal(packing: list[dict], dry_run: bool) -> Goal:
    g = Goal("packed small runs", f">= {PACKING_GOAL:.0f}x the runs/hour of one at a time")
    best = None
    for mode in dict.fromkeys(p["mode"] for p in packing):
        ran = {p["concurrency"]: p["runs_per_hour"] for p in packing if p["mode"] == mode and "runs_per_hour" in p}
        if 1 not in ran:
            continue
        for k, rph in ran.items():
            if k > 1 and (best is None or rph / ran[1] > best[0]):
                best = (rph / ran[1], mode, k)
    if best is not None:
        g.value = best[0]
        g.measured = f"{g.value:.2f}x ({best[1]}, {best[2]} runs at once vs 1)"
    return _judge(g, PACKING_GOAL, dry_run)


def goals(steps: dict[str, Step], dry_run: bool) -> list[Goal]:
    train = steps["train_step"].result
    return [
        kernel_goal(steps["kernels"].result.get("rows", []), dry_run),
        mfu_goal(train.get("configs", []), MFU_SIZE_DRY if dry_run else MFU_SIZE, dry_run),
        packing_goal(train.get("packing", []), dry_run),
    ]


# --------------------------------------------------------------------------------------------------- summary
def _num(x: float | None, fmt: str = "{:.3g}") -> str:
    return "-" if x is None else fmt.format(x)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def _shape(r: dict) -> str:
    return "x".join(map(str, r["shape"]))


def _note(r: dict) -> str:
    return (r.get("error") or r.get("skipped") or "")[:100]


def _step_row(s: dict) -> list[str]:
    status = s["status"] + (f": {s['error']}" if s["error"] else "")
    return [s["name"], status, _num(s["elapsed_s"], "{:.0f}"), _num(s["slice_s"], "{:.0f}"), s["title"]]


def _kernel_row(r: dict) -> list[str]:
    return [
        r["op"],
        _shape(r),
        r["dtype"],
        _num(r.get("eager_ms"), "{:.3f}"),
        _num(r.get("triton_ms"), "{:.3f}"),
        _num(r.get("speedup"), "{:.2f}x"),
        _num(r.get("speedup_vs_compile"), "{:.2f}x"),
        _achieved(r),
        _num(r.get("max_abs_err"), "{:.1e}"),
    ]


def _achieved(r: dict) -> str:
    if "fwd_bwd_bandwidth" in r:
        return f"{r['fwd_bwd_bandwidth'] / 1e9:.0f} GB/s ({100 * r['bandwidth_fraction']:.0f} % of the card)"
    if "fwd_bwd_flops" in r:
        return f"{r['fwd_bwd_flops'] / 1e12:.1f} TFLOP/s ({100 * r['peak_fraction']:.0f} % of bf16 peak)"
    return "-"


def _config_row(c: dict) -> list[str]:
    mfu = _num(100 * c["mfu"] if "mfu" in c else None, "{:.1f} %")
    return [
        c["size"],
        c["mode"],
        c["kernels"],
        _num(c.get("tokens_per_s")),
        mfu,
        _num(c.get("step_ms"), "{:.1f}"),
        _note(c),
    ]


def _packing_row(p: dict) -> list[str]:
    rph, with_startup = _num(p.get("runs_per_hour"), "{:.0f}"), _num(p.get("runs_per_hour_with_startup"), "{:.0f}")
    return [p["mode"], str(p["concurrency"]), rph, with_startup, _note(p)]


def _run_row(r: dict) -> list[str]:
    return [
        r["run_id"],
        r["origin"],
        r["status"],
        _num(r.get("n_kaplan")),
        _num(r.get("tokens")),
        _num(r.get("val_loss"), "{:.4f}"),
        _num(r.get("tokens_per_s")),
        f"{r.get('device', '-')} / {r.get('kernels', '-')} / {r.get('precision', '-')}",
    ]


def render_markdown(doc: dict) -> str:
    meta, card, steps = doc["meta"], doc["card"], {s["name"]: s for s in doc["steps"]}
    title = "GPU check (dry run on CPU: no number here is a measurement)" if doc["dry_run"] else "GPU check"
    lines = [
        f"# {title}",
        "",
        f"{meta['timestamp_utc']}, {meta['device']}, torch {meta['torch']}, triton {meta['triton']}, "
        f"commit {meta['git_commit']}; {doc['elapsed_s']:.0f} s of a {doc['deadline_s']:.0f} s deadline.",
        f"Card figures: bf16 dense peak {card['bf16_peak_flops'] / 1e12:.1f} TFLOP/s, memory "
        f"{card['mem_bandwidth'] / 1e12:.2f} TB/s ({card['source']}).",
    ]
    if not doc["finished"]:
        lines += ["", "**Incomplete: the check was still running, or it was cut off.**"]
    goal_rows = [[g["name"], g["measured"], g["goal"], g["status"], g["detail"]] for g in doc["goals"]]
    lines += ["", "## Goals (reported, not asserted)", ""]
    lines += _table(["goal", "measured", "target", "status", "detail"], goal_rows)
    lines += ["", "## Steps", ""]
    lines += _table(["step", "status", "time s", "slice s", "what"], [_step_row(s) for s in doc["steps"]])

    if t := steps["tests"]["result"]:
        lines += ["", "## Tests", ""]
        lines.append(
            f"{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, {t['skipped']} skipped ({t['source']})."
        )
        lines += [f"- {f['kind']}: `{f['test']}` {f['message'][:200]}" for f in t["failures"]]
    if rows := steps["kernels"]["result"].get("rows"):
        head = ["op", "shape", "dtype", "eager ms", "ours ms", "speed-up", "vs compile", "ours achieved", "max err"]
        lines += ["", "## Kernels (forward + backward; ours: triton, reference: PyTorch eager)", ""]
        lines += _table(head, [_kernel_row(r) for r in rows])
        lines += [f"- {r['op']} {_shape(r)} {impl}: {e[:200]}" for r in rows for impl, e in r.get("errors", {}).items()]
    if train := steps["train_step"]["result"]:
        lines += ["", f"## Training step (MFU against {card['bf16_peak_flops'] / 1e12:.1f} TFLOP/s)", ""]
        head = ["size", "mode", "kernels", "tokens/s", "MFU", "ms/step", "note"]
        lines += _table(head, [_config_row(c) for c in train["configs"]])
        lines += ["", "Small runs at once (gpu_train_step's sweep throughput):", ""]
        head = ["mode", "runs at once", "runs/hour", "with start-up", "note"]
        lines += _table(head, [_packing_row(p) for p in train["packing"]])
    if sweep := steps["sweep"]["result"]:
        lines += ["", f"## Sweep ({sweep['spec']}; records in runs/)", ""]
        head = ["run", "origin", "status", "N (Kaplan)", "D", "val loss", "tokens/s", "device / kernels / precision"]
        lines += _table(head, [_run_row(r) for r in sweep["runs"]])
    return "\n".join(lines) + "\n"


@dataclass
class Summary:
    """The check's record, rewritten (JSON and markdown, and the bundle if asked for) after every step."""

    ctx: Context
    steps: list[Step]
    meta: dict
    deadline_s: float
    bundle: Path | None
    stem: str
    started: float = field(default_factory=time.monotonic)

    def doc(self, finished: bool) -> dict:
        by_name = {s.name: s for s in self.steps}
        return {
            "check": PROG,
            "dry_run": self.ctx.dry_run,
            "meta": self.meta,
            "card": dataclasses.asdict(self.ctx.card),
            "deadline_s": self.deadline_s,
            "elapsed_s": time.monotonic() - self.started,
            "finished": finished,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "goals": [dataclasses.asdict(g) for g in goals(by_name, self.ctx.dry_run)],
        }

    def write(self, finished: bool = False) -> Path:
        from harness.provenance import write_json_atomic

        doc = self.doc(finished)
        path = self.ctx.out / f"{self.stem}.json"
        write_json_atomic(path, doc)
        md = self.ctx.out / f"{self.stem}.md"
        md.write_text(render_markdown(doc))
        if self.bundle is not None:
            self.write_bundle(path, md)
        return path

    def write_bundle(self, *summary: Path) -> None:
        """Copy the summary into --bundle, with one archive of what this check wrote under --out (the summary,
        its logs, the benchmarks' records, the sweep's manifest and run records; paths relative to --out)."""
        self.bundle.mkdir(parents=True, exist_ok=True)
        for p in summary:
            if p.parent.resolve() != self.bundle.resolve():
                (self.bundle / p.name).write_bytes(p.read_bytes())
        written = [*summary, *self.ctx.logs.rglob("*"), *(self.ctx.out / f for s in self.steps for f in s.files)]
        archive = self.bundle / f"{self.stem}.tar.gz"
        tmp = archive.with_name(f".{archive.name}.tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for p in sorted(set(written)):
                if p.is_file():
                    tar.add(p, arcname=str(p.relative_to(self.ctx.out)))
        os.replace(tmp, archive)


# ------------------------------------------------------------------------------------------------------ main
Command = Callable[[Context, float], list[str]]
Collect = Callable[[Context, Step, "int | None", list[Path]], None]
# step -> its command line, the files it writes under --out (glob), and what reads them into step.result
STEP_FNS: dict[str, tuple[Command, str, Collect]] = {
    "tests": (tests_command, "logs/*/tests.xml", tests_result),
    "kernels": (kernels_command, "kernels_*.json", kernels_result),
    "train_step": (train_step_command, "train_step_*.json", train_step_result),
    "sweep": (sweep_command, "runs/*.json", sweep_result),
}


def run_step(ctx: Context, step: Step, slice_s: float) -> None:
    command, pattern, collect = STEP_FNS[step.name]
    step.slice_s = slice_s
    if slice_s < step.min_s:
        step.status, step.error = "skipped", f"only {slice_s:.0f} s of the deadline left (needs {step.min_s:.0f})"
        return
    if step.name == "sweep" and (missing := sweep_data_missing(sweep_spec(ctx))):
        step.status, step.error = "skipped", missing
        return
    cmd = command(ctx, slice_s)
    log = ctx.logs / f"{step.name}.log"
    step.command, step.log = shlex.join(cmd), str(log.relative_to(ctx.out))
    before = set(ctx.out.glob(pattern))
    t0 = time.monotonic()
    rc = run_logged(cmd, ctx.env, log, slice_s)
    step.elapsed_s = time.monotonic() - t0
    if rc is None:
        step.status, step.error = "timeout", f"killed after its {slice_s:.0f} s slice"
    elif rc != 0:
        step.error = f"exit status {rc}; see {step.log}"
    collect(ctx, step, rc, new_files(ctx.out, pattern, before))


def step_env(dry_run: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if dry_run:  # CPU only, even on a machine with a GPU; the kernels through the Triton interpreter
        env.update(CUDA_VISIBLE_DEVICES="", TRITON_INTERPRET="1")
    else:
        env.pop("TRITON_INTERPRET", None)  # interpreted kernels would make every GPU number meaningless
    return env


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=None, help=f"results folder (default {DEFAULT_OUT}; dry run: a temp folder)"
    )
    ap.add_argument("--deadline-s", type=float, default=DEFAULT_DEADLINE_S, help="bound on the whole check (450)")
    ap.add_argument("--dry-run", action="store_true", help="the same steps on CPU at tiny sizes (timings meaningless)")
    ap.add_argument("--bundle", type=Path, default=None, help="also write the summary and a .tar.gz of --out here")
    args = ap.parse_args(argv)
    if not (math.isfinite(args.deadline_s) and args.deadline_s > 0):
        ap.error(f"--deadline-s must be a positive number of seconds, got {args.deadline_s}")
    for flag, path in (("--out", args.out), ("--bundle", args.bundle)):
        if args.dry_run and path is not None and _inside(path, RESULTS):
            ap.error(f"a dry run writes nothing under results/; {flag} {path} is inside it")

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print(
            f"{PROG}: no CUDA device on this machine; this check needs an NVIDIA GPU (--dry-run checks it on CPU). "
            "Nothing was run or written.",
            file=sys.stderr,
        )
        return 2
    if args.dry_run:
        out = args.out or Path(tempfile.mkdtemp(prefix="gpu_check_dry_"))
        card = dry_run_card()
    else:
        out = args.out or DEFAULT_OUT
        card = card_for(torch.cuda.get_device_name(0))
    from ._gpu_common import bench_meta

    meta = bench_meta(None if args.dry_run else 0, "cpu (dry run: no timing is a result)")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", meta["device"].split(" (")[0]).strip("-").lower()
    logs = out / "logs" / f"gpu_check_{stamp}"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        if args.bundle is not None:
            args.bundle.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{PROG}: cannot write the results (--out / --bundle): {exc}", file=sys.stderr)
        return 2
    ctx = Context(out.resolve(), logs.resolve(), args.dry_run, card, step_env(args.dry_run))
    steps = plan_steps()
    summary = Summary(ctx, steps, meta, args.deadline_s, args.bundle, f"gpu_check_{slug}_{stamp}")
    deadline = summary.started + args.deadline_s
    path = summary.write()
    print(f"{PROG}: {'dry run, ' if args.dry_run else ''}{card.name}; summary {path}", file=sys.stderr, flush=True)
    for i, step in enumerate(steps):
        slice_s = slice_for(steps, i, deadline - time.monotonic())
        print(f"  [{i + 1}/{len(steps)}] {step.name} (up to {slice_s:.0f} s) ...", file=sys.stderr, flush=True)
        run_step(ctx, step, slice_s)
        took = "" if step.elapsed_s is None else f" in {step.elapsed_s:.0f} s"
        why = f": {step.error}" if step.error else ""
        print(f"      {step.status}{took}{why}", file=sys.stderr, flush=True)
        summary.write()
    summary.write(finished=True)
    print(path.with_suffix(".md").read_text())
    print(f"wrote {path} (and .md){f'; bundle in {args.bundle}' if args.bundle else ''}", file=sys.stderr)
    return 0 if all(s.status == "ok" for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
