"""Sweeps: a spec (TOML file or dict) expands to run configs; runs go through a content-addressed cache.

Spec (every section optional except one of ``grid`` / ``isoflop``)::

    name = "smoke"
    [base]                      # TrainConfig fields shared by all runs (see harness.train.TrainConfig)
    batch_tokens = 4096
    [base.model]
    name = "gpt"
    n_ctx = 128
    [grid]                      # every combination of target N (Kaplan non-embedding) and tokens D
    N = [1e4, 3e4, 1e5, 3e5]
    D = [2.5e5, 1e6]
    seeds = [0]
    lr = [1e-3, 3e-3]           # optional: peak learning rates, one run per value (a learning-rate sweep)
    aspect = [8, 32, 128]       # any other key is an option of the model's shape policy (its shape_for):
    min_layers = 2              # for the GPT aspect (d_model / n_layer), min_layers, head_dim; a list
                                # gives one run per value, a single value applies to every run
    [isoflop]                   # for each compute budget C, each N with D = C / (FLOPs per token)
    C = [1e12, 1e13]
    N = [1e4, 3e4, 1e5]
    count = "kaplan"            # "kaplan": 6 x non-embedding N per token; "hoffmann": the whole model's
                                # FLOPs (Hoffmann et al. App. F); shape options as in [grid] also apply

``[[isoflop]]`` (an array of such tables) gives each budget its own sizes, as Hoffmann et al.'s IsoFLOP
profiles do. Target N goes through the model's shape helper; IsoFLOP budgets use the counts the shape actually
has, and D is rounded down to whole batches (points whose D is below one batch are dropped, and said so).

Records live in ``OUT/runs/<run id>.json`` where the run id is the hash of the run's identity (canonical
config and data, see :mod:`harness.records`):
finished runs are skipped, interrupted ones resume from their checkpoint, and sweeps sharing ``OUT`` share
records. Executors (one small interface, :class:`Executor`): :class:`LocalExecutor`, in-process or a pool of
worker processes with the cores split between them (``results/bench/executor.md`` has the measurement behind
the default), and :class:`SlurmExecutor`, one SLURM job per run through ``submitit`` (optional extra).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import queue as queue_mod
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.managers import SyncManager
from pathlib import Path
from typing import Any, Protocol

from . import records, runlock
from .config import TrainConfig
from .errors import UserError
from .models import adopt, model_class, model_counts, shape_for_n, snapshot
from .provenance import write_json_atomic
from .records import load_spec  # noqa: F401  (re-exported: sweep specs are read here)
from .runlock import RunBusy
from .train import check_budget, run_key, train_once

DEFAULT_WORKERS = 2  # see results/bench/executor.md: on 2 cores, 2 single-threaded runs beat 1 two-threaded


@dataclass
class PlannedRun:
    config: TrainConfig
    run_id: str
    origin: str  # which spec section produced it, e.g. "grid N=1e4 D=1e6 seed=0"


@dataclass
class SweepPlan:
    name: str
    runs: list[PlannedRun]
    dropped: list[str]
    spec_sha256: str | None = None  # of the spec it was planned from (None for a union of sweeps)


def _floats(v: Any, what: str) -> list[float]:
    vals = v if isinstance(v, list) else [v]
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vals):
        raise UserError(f"{what} must be a number or a list of numbers, got {v!r}")
    out = [float(x) for x in vals]
    if not out or not all(math.isfinite(x) and x > 0 for x in out):
        raise UserError(f"{what} must be positive finite numbers, got {v!r}")
    return out


def _config(
    base: dict, n: float, d: float, seed: int, shape_kw: dict | None = None, lr: float | None = None
) -> TrainConfig:
    b = json.loads(json.dumps(base))  # deep copy
    model = b.pop("model", {})
    model = {**model, **shape_for_n(n, model.get("name", "gpt"), **(shape_kw or {}))}
    if lr is not None:
        b["lr"] = lr
    return TrainConfig.from_dict({**b, "model": model, "tokens": int(d), "seed": seed})


def _seeds(section: dict, what: str) -> list[int]:
    vals = section.get("seeds", [0])
    vals = vals if isinstance(vals, list) else [vals]
    if not vals or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in vals):
        raise UserError(f"{what}.seeds must be non-negative whole numbers, got {section.get('seeds')!r}")
    return vals


def _check_keys(section: dict, what: str, allowed: set[str], extra: str = "") -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        import difflib

        hints = [
            f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, allowed, 1)) else "" for k in unknown
        ]
        listed = ", ".join(f"{k!r}{h}" for k, h in zip(unknown, hints, strict=True))
        raise UserError(f"unknown [{what}] key(s) {listed}; [{what}] takes {', '.join(sorted(allowed))}{extra}")


GRID_KEYS = ("N", "D", "seeds", "lr")
ISOFLOP_KEYS = ("C", "N", "seeds", "count")
# how an IsoFLOP budget C becomes tokens: C = (FLOPs per token) x D under each paper's convention
FLOP_COUNTS = {
    "kaplan": "6 x non-embedding N per token (Kaplan et al. 2020, eq. 2.1 without the context term)",
    "hoffmann": "every matmul of the whole model, embeddings, attention and output layer included, forward and "
    "backward (Hoffmann et al. 2022, Appendix F)",
}


def _shape_options(grid: dict, model_name: str, what: str = "grid", keys: tuple[str, ...] = GRID_KEYS) -> list[dict]:
    """The section's shape-policy options as a list of keyword sets (the product of list-valued options),
    each key checked against the model's own ``shape_for``."""
    options = {k: v for k, v in grid.items() if k not in keys}
    allowed = model_class(model_name).shape_options()
    _check_keys(grid, what, {*keys, *allowed}, f" ({', '.join(keys)} and model {model_name!r}'s shape options)")
    combos: list[dict] = [{}]
    for key, value in options.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, int | float) or isinstance(v, bool) or not (math.isfinite(v) and v > 0):
                raise UserError(f"{what}.{key} must be a positive number or a list of them, got {value!r}")
        values = [int(v) if float(v).is_integer() else v for v in values]
        combos = [{**c, key: v} for c in combos for v in values]
    for kw in combos:  # each value against the model's own shape policy (its shape_for checks its options)
        try:
            shape_for_n(1e6, model_name, **kw)
        except UserError as exc:
            raise UserError(f"[{what}] {exc}") from None
    return combos


def _expand_isoflop(
    g: dict, what: str, base: dict, model_name: str, batch_tokens: int
) -> tuple[list[tuple[TrainConfig, str]], list[str]]:
    """One IsoFLOP table: for each budget C and target N, the run whose tokens D spend C under ``count``
    (``FLOP_COUNTS``), rounded down to whole batches, with the N the model's shape policy actually gives."""
    if not isinstance(g, dict):
        raise UserError(f"{what} must be a table of C, N and options, got {g!r}")
    count = g.get("count", "kaplan")
    if count not in FLOP_COUNTS:
        raise UserError(f"{what}.count must be one of {', '.join(FLOP_COUNTS)}, got {count!r}")
    seeds = _seeds(g, what)
    out, dropped = [], []
    for kw in _shape_options(g, model_name, what, ISOFLOP_KEYS):
        for c in _floats(g.get("C"), f"{what}.C"):
            for n in _floats(g.get("N"), f"{what}.N"):
                counts = model_counts(_config(base, n, batch_tokens, 0, kw).model)
                per_token = 6 * counts.n_kaplan if count == "kaplan" else counts.flops_per_token_hoffmann
                d = int(c / per_token // batch_tokens) * batch_tokens
                if d < batch_tokens:
                    dropped.append(f"{what} C={c:.3g} N={n:.3g}: D = C / FLOPs per token is below one batch")
                    continue
                for s in seeds:
                    origin = f"{what} C={c:.3g} N={n:.3g}{_tag(kw, g)} D={d:.3g} seed={s}"
                    out.append((_config(base, n, d, s, kw), origin))
    return out, dropped


def _tag(kw: dict, grid: dict) -> str:
    """The list-valued options of a grid point, for its origin line (e.g. " aspect=32")."""
    return "".join(f" {k}={v}" for k, v in kw.items() if isinstance(grid.get(k), list))


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def sweep_name(spec: dict) -> str:
    """The spec's ``name``, which names its manifest file (``OUT/sweeps/<name>.json``): letters, digits,
    '.', '_' and '-' only, so that no name can point outside ``OUT/sweeps``."""
    name = spec.get("name", "sweep")
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise UserError(
            f"sweep name {name!r} must be 1-100 letters, digits, '.', '_' or '-' (it names the file "
            "OUT/sweeps/<name>.json), starting with a letter or digit"
        )
    return name


def check_spec(spec: dict) -> None:
    """The spec's top-level keys and the type of each (the sections' contents are checked as they expand)."""
    if not isinstance(spec, dict):
        raise UserError(f"a sweep spec must be a table, got {spec!r}")
    _check_keys(spec, "sweep spec", {"name", "description", "base", "grid", "isoflop"})
    sweep_name(spec)
    if not isinstance(spec.get("description", ""), str):
        raise UserError(f"sweep spec description must be a string, got {spec['description']!r}")
    if isinstance(spec.get("isoflop"), list):  # [[isoflop]]: several tables (e.g. sizes chosen per budget)
        if not spec["isoflop"] or not all(isinstance(t, dict) for t in spec["isoflop"]):
            raise UserError(f"sweep spec isoflop must be a table or a list of tables, got {spec['isoflop']!r}")
    for section in ("base", "grid", "isoflop"):
        if section in spec and not isinstance(spec[section], (dict | list) if section == "isoflop" else dict):
            raise UserError(
                f"sweep spec {section!r} must be a table ([{section}] with keys), got {section} = {spec[section]!r}"
            )
    if "grid" not in spec and "isoflop" not in spec:
        raise UserError("a sweep spec needs a [grid] or an [isoflop] section")


def expand(spec: dict) -> tuple[list[tuple[TrainConfig, str]], list[str]]:
    """Configs (with a note of where each came from) and the points dropped, in spec order."""
    check_spec(spec)
    base = spec.get("base", {})
    lrs = _floats(spec["grid"]["lr"], "grid.lr") if "lr" in spec.get("grid", {}) else [None]
    probe = TrainConfig.from_dict(base if lrs[0] is None else {**base, "lr": lrs[0]})  # unknown keys etc.
    model_name = probe.model.name
    out, dropped = [], []
    if "grid" in spec:
        g = spec["grid"]
        seeds = _seeds(g, "grid")
        for n in _floats(g.get("N"), "grid.N"):
            for kw in _shape_options(g, model_name):
                for d in _floats(g.get("D"), "grid.D"):
                    for lr in lrs:
                        for s in seeds:
                            at = "" if lr is None else f" lr={lr:.3g}"
                            origin = f"grid N={n:.3g}{_tag(kw, g)} D={d:.3g}{at} seed={s}"
                            out.append((_config(base, n, d, s, kw, lr), origin))
    if "isoflop" in spec:
        sections = spec["isoflop"] if isinstance(spec["isoflop"], list) else [spec["isoflop"]]
        for i, g in enumerate(sections):
            where = "isoflop" if len(sections) == 1 else f"isoflop[{i}]"
            out_i, dropped_i = _expand_isoflop(g, where, base, model_name, probe.batch_tokens)
            out += out_i
            dropped += dropped_i
    return out, dropped


def plan(spec: dict, data=None, log=print) -> SweepPlan:
    configs, dropped = expand(spec)
    return plan_configs(sweep_name(spec), configs, dropped, records.spec_digest(spec), data, log)


def plan_configs(
    name: str, configs: list[tuple[TrainConfig, str]], dropped: list[str], spec_sha256: str, data=None, log=print
) -> SweepPlan:
    """A plan of explicit (config, origin) pairs: each checked against the data, duplicates run once. What
    :func:`plan` does after expanding a spec; callers that choose their configs in code (the arena) use it."""
    if data is None:
        from .data.corpus import open_data

        first = configs[0][0]
        data = open_data(first.data, first.tokenizer, first.model.vocab_size, log=log)
    runs, seen = [], set()
    for cfg, origin in configs:
        if cfg.model.vocab_size != data.vocab_size:
            raise UserError(f"{origin}: model.vocab_size {cfg.model.vocab_size} but the data has {data.vocab_size} ids")
        check_budget(cfg, data)
        rid = run_key(cfg, data)
        if rid in seen:
            continue
        seen.add(rid)
        runs.append(PlannedRun(cfg, rid, origin))
    return SweepPlan(sweep_name({"name": name}), runs, dropped, spec_sha256)


# ------------------------------------------------------------------------------------------- executors
def _summary(rec: dict) -> dict:
    return {
        "run_id": rec["run_id"],
        "status": rec["status"],
        "reason": rec.get("reason"),
        "loss": rec["loss"]["val_final"],
    }


def _run_one(
    cfg_dict: dict, out: str, threads: int, emit: Callable[[dict], None], every_s: float, models: dict[str, str]
) -> dict:
    """One run outside the sweep's process, progress events passed to ``emit`` at most every ``every_s``.
    ``models`` is the parent's registry :func:`~harness.models.snapshot`, so plug-ins resolve here too."""
    import torch

    adopt(models)
    torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(cfg_dict)
    last = [0.0]

    def progress(ev):
        now = time.monotonic()
        if now - last[0] > every_s or ev["step"] == ev["steps"]:
            last[0] = now
            emit(ev)

    return _train_summary(cfg, out, threads, progress)


def _train_summary(cfg: TrainConfig, out, threads: int, progress) -> dict:
    """Train one run; its status dict, ``"busy"`` if another process is training it right now."""
    try:
        rec, trained = train_once(cfg, out, threads=threads, progress=progress)
        return _summary(rec) if trained else {**_summary(rec), "cached": True}
    except RunBusy as exc:
        return {"run_id": exc.run_id, "status": "busy", "reason": str(exc), "loss": None}


def _worker_run(cfg_dict: dict, out: str, threads: int, q, models: dict[str, str]) -> dict:
    """Entry point in a worker process: one run, progress sent through ``q``."""
    return _run_one(cfg_dict, out, threads, q.put, 0.5, models)


def _exit_with_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """Worker initializer: a daemon thread ends this process as soon as the sweep that started it is gone
    (``kill -9`` included), so no orphaned worker goes on training and writing into the run cache. The run's
    last checkpoint stays, and the next sweep resumes from it."""
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _registry_for(todo: list[PlannedRun]) -> dict[str, str]:
    """What other processes need to resolve the models of ``todo`` (checked here, in the parent)."""
    return snapshot(sorted({r.config.model.name for r in todo}))


OnProgress = Callable[[dict], None]
OnDone = Callable[[PlannedRun, dict], None]


class Executor(Protocol):
    """What :func:`run_sweep` needs from an executor.

    ``setup`` is told how many runs are pending and where the run cache is; it returns a one-line description
    for the sweep header, or raises :class:`UserError` if the executor cannot work here (before anything
    runs). ``run`` executes the pending runs, each through :func:`harness.train.train` writing its record
    into ``out`` (the run cache), calling ``on_progress`` with train's progress events and ``on_done`` once
    per run with a status dict (``run_id``, ``status``, ``reason``, ``loss``), in completion order.
    """

    def setup(self, n_pending: int, out: Path) -> str: ...

    def run(self, todo: list[PlannedRun], out: Path, on_progress: OnProgress, on_done: OnDone) -> None: ...


class LocalExecutor:
    """In-process (``workers == 1``) or a pool of spawned worker processes with the cores split between them."""

    def __init__(self, workers: int = DEFAULT_WORKERS, threads: int | None = None):
        self.workers, self.threads = workers, threads

    def setup(self, n_pending: int, out: Path) -> str:
        cores = os.cpu_count() or 1
        self.workers = max(1, min(self.workers, cores, n_pending or 1))
        self.threads = self.threads or max(1, cores // self.workers)
        return f"{self.workers} worker(s) x {self.threads} thread(s)"

    def run(self, todo: list[PlannedRun], out: Path, on_progress: OnProgress, on_done: OnDone) -> None:
        if self.workers == 1:
            import torch

            torch.set_num_threads(self.threads)
            for r in todo:
                on_done(r, _train_summary(r.config, out, self.threads, on_progress))
        elif todo:
            models = _registry_for(todo)
            ctx = mp.get_context("spawn")
            pool_args = {"mp_context": ctx, "initializer": _exit_with_parent, "initargs": (os.getpid(),)}
            manager = SyncManager(ctx=ctx)  # its server process, too, ends with this one
            manager.start(_exit_with_parent, (os.getpid(),))
            with manager, cf.ProcessPoolExecutor(self.workers, **pool_args) as pool:
                q = manager.Queue()
                futs = {
                    pool.submit(_worker_run, r.config.to_dict(), str(out), self.threads, q, models): r for r in todo
                }
                pending = set(futs)
                try:
                    while pending:
                        finished, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                        while True:
                            try:
                                on_progress(q.get_nowait())
                            except queue_mod.Empty:
                                break
                        for f in finished:
                            on_done(futs[f], f.result())
                except BaseException:  # Ctrl-C or an error: stop the workers now, not after their runs end
                    _stop_workers(pool)
                    raise


def _await_others(busy: list[PlannedRun], out: Path, stream, poll_s: float = 2.0) -> list[PlannedRun]:
    """Wait until no other process holds the lock of a run in ``busy``; return those that still have no
    record (their trainer ended without finishing: this sweep trains them)."""
    stream.write(f"waiting for {len(busy)} run(s) that another process is training in {out} ...\n")
    stream.flush()
    while any(runlock.is_locked(out, r.run_id) for r in busy):
        time.sleep(poll_s)
    return [
        r
        for r in busy
        if records.cached_or_redo(records.run_paths(out, r.run_id)[0], lambda m: stream.write(m + "\n")) is None
    ]


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the running workers (their checkpoints stay for a resume)."""
    procs = list(getattr(pool, "_processes", {}).values())  # no public handle on a pool's processes
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=10)


class SlurmRunJob:
    """The callable each SLURM job runs: one training run, its record written into the shared run cache.

    Progress goes to ``<out>/slurm/progress/<run id>.json`` (the sweep process polls it; SLURM users have a
    shared filesystem). It is checkpointable in submitit's sense: on timeout or preemption submitit calls
    :meth:`checkpoint` and requeues the same call, and :func:`harness.train.train` resumes from the run's
    own checkpoint (written every 60 s).
    """

    def __call__(self, cfg_dict: dict, out: str, threads: int, progress_file: str, models: dict[str, str]) -> dict:
        return _run_one(cfg_dict, out, threads, lambda ev: write_json_atomic(Path(progress_file), ev), 2.0, models)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _job_error(exc: Exception) -> str:
    """The last line of the job's traceback in a submitit error (the message itself when there is none)."""
    parts = str(exc).split("-" * 22)
    lines = [x for x in (parts[1] if len(parts) >= 3 else str(exc)).splitlines() if x.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


class SlurmExecutor:
    """One SLURM job per pending run, submitted as a job array through ``submitit`` (optional extra ``slurm``).

    ``time_min`` is each job's time limit, ``cpus_per_task`` also sets the torch threads of the run.
    ``params`` are passed to submitit's SLURM executor as ``slurm_<key>`` (e.g. ``account``, ``qos``,
    ``constraint``). ``cluster`` is submitit's backend: ``"slurm"`` (needs ``sbatch`` and ``srun``), or
    ``"local"`` to try the same submission as local processes. Job logs go to ``<out>/slurm/logs/``.
    Interrupting the sweep cancels its jobs that have not finished; their checkpoints stay, so the next
    invocation resumes them.
    """

    def __init__(
        self,
        partition: str | None = None,
        time_min: int = 60,
        cpus_per_task: int = 1,
        mem_gb: float | None = None,
        array_parallelism: int | None = None,
        params: dict | None = None,
        cluster: str = "slurm",
        poll_s: float = 5.0,
    ):
        self.partition, self.time_min, self.cpus, self.mem_gb = partition, time_min, cpus_per_task, mem_gb
        self.array_parallelism, self.params = array_parallelism, params or {}
        self.cluster, self.poll_s = cluster, poll_s

    def setup(self, n_pending: int, out: Path) -> str:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UserError(
                "the SLURM executor needs the optional 'submitit' package (pip install 'scaling-harness[slurm]')"
            ) from None
        if self.cluster == "slurm" and (shutil.which("sbatch") is None or shutil.which("srun") is None):
            raise UserError("the SLURM executor needs SLURM's sbatch and srun on PATH; this machine has none")
        if self.time_min < 1 or self.cpus < 1:
            raise UserError("SLURM time limit and cpus per task must be at least 1")
        self._ex = self._executor(out)
        where = f"partition {self.partition}" if self.partition else "default partition"
        return (
            f"{self.cluster} via submitit: job array of {n_pending}, {where}, {self.time_min} min, "
            f"{self.cpus} cpu(s) per job"
        )

    def _executor(self, out: Path):
        import submitit

        ex = submitit.AutoExecutor(folder=out / "slurm" / "logs" / "%j", cluster=self.cluster)
        params: dict[str, Any] = {"name": "scaling-sweep", "timeout_min": self.time_min, "cpus_per_task": self.cpus}
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        if self.partition is not None:
            params["slurm_partition"] = self.partition
        if self.array_parallelism is not None:
            params["slurm_array_parallelism"] = self.array_parallelism
        params.update({f"slurm_{k}": v for k, v in self.params.items()})
        try:
            ex.update_parameters(**params)
        except (ValueError, TypeError, NameError) as exc:
            raise UserError(f"invalid SLURM parameter: {str(exc).splitlines()[0]}") from None
        return ex

    def run(self, todo: list[PlannedRun], out: Path, on_progress: OnProgress, on_done: OnDone) -> None:
        if not todo:
            return
        ex = self._ex
        ppaths = [out / "slurm" / "progress" / f"{r.run_id[:16]}.json" for r in todo]
        for p in ppaths:
            p.unlink(missing_ok=True)  # left by an earlier, interrupted invocation
        n = len(todo)
        cfgs = [r.config.to_dict() for r in todo]
        models = [_registry_for(todo)] * n
        jobs = ex.map_array(SlurmRunJob(), cfgs, [str(out)] * n, [self.cpus] * n, [str(p) for p in ppaths], models)
        pending = {j.job_id: (j, r, p) for j, r, p in zip(jobs, todo, ppaths, strict=True)}
        try:
            while pending:
                for jid, (job, r, ppath) in list(pending.items()):
                    if not job.done():
                        if ppath.exists():
                            try:
                                on_progress(json.loads(ppath.read_text()))
                            except (OSError, ValueError):
                                pass  # being replaced right now; read it next time
                        continue
                    del pending[jid]
                    try:
                        res = job.result()
                    except Exception as exc:  # the job itself failed (crash, time limit, node failure)
                        reason = f"SLURM job {jid} failed: {_job_error(exc)} (log: {job.paths.stderr})"
                        res = {"run_id": r.run_id, "status": "error", "reason": reason, "loss": None}
                    ppath.unlink(missing_ok=True)
                    on_done(r, res)
                if pending:
                    time.sleep(self.poll_s)
        except BaseException:
            for job, _, _ in pending.values():
                job.cancel(check=False)
            raise


class Progress:
    """A one-line progress display: runs done/total, ETA, and the latest loss of a running run."""

    def __init__(self, total: int, done: int = 0, stream=sys.stderr):
        self.total, self.done, self.stream = total, done, stream
        self.start, self.done_at_start = time.monotonic(), done
        self.current: dict[str, dict] = {}
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last_draw = 0.0

    def update(self, ev: dict) -> None:
        self.current[ev["run_id"]] = ev
        if time.monotonic() - self._last_draw > 0.5:
            self.draw()

    def finish_run(self, run_id: str, msg: str) -> None:
        self.done += 1
        self.current.pop(run_id, None)
        self.draw(force_line=msg)

    def eta(self) -> str:
        n = self.done - self.done_at_start
        partial = sum(e["step"] / e["steps"] for e in self.current.values())
        if n + partial <= 0:
            return "?"
        rate = (time.monotonic() - self.start) / (n + partial)
        left = rate * (self.total - self.done - partial)
        return time.strftime("%H:%M:%S", time.gmtime(max(0.0, left)))

    def draw(self, force_line: str | None = None) -> None:
        self._last_draw = time.monotonic()
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        cur = "  ".join(
            f"{e['run_id'][:8]} {e['step']}/{e['steps']} loss {e['loss']:.3f}" for e in self.current.values()
        )
        line = f"[{bar}] {self.done}/{self.total} runs  ETA {self.eta()}  {cur}"
        if self.tty:
            self.stream.write("\r\033[K" + (f"{force_line}\n" if force_line else "") + line)
        elif force_line:
            self.stream.write(f"{force_line}  [{self.done}/{self.total}, ETA {self.eta()}]\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def manifest_path(out: str | os.PathLike, name: str) -> Path:
    return records.manifest_path(out, name)


def write_manifest(sweep: SweepPlan, out: str | os.PathLike) -> Path:
    """Record which runs (ids, origins, configs, record hashes) a sweep consists of, beside the run records.
    The manifest lets a sweep's records be found and checked again without re-planning it (which needs the
    data), see :mod:`harness.records`."""
    runs = [(r.run_id, r.origin, r.config.to_dict()) for r in sweep.runs]
    return records.write_manifest(out, sweep.name, runs, dropped=sweep.dropped, spec_sha256=sweep.spec_sha256)


def remove_stale_partial_checkpoints(out: Path, log: Callable[[str], None]) -> None:
    """Delete half-written checkpoints (``checkpoints/.<run>.pt.<pid>.tmp``) whose writer is no longer running."""
    for tmp in sorted((out / "checkpoints").glob(".*.tmp")):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
            os.kill(pid, 0)  # raises if no such process
            continue  # its writer is alive (another sweep on this folder): leave it
        except (ValueError, IndexError, ProcessLookupError):
            pass
        except PermissionError:
            continue  # a live process of another user
        tmp.unlink(missing_ok=True)
        log(f"removed a partial checkpoint left by a process that ended: {tmp.name}")


def run_sweep(
    sweep: SweepPlan,
    out: str | os.PathLike,
    *,
    workers: int = DEFAULT_WORKERS,
    threads: int | None = None,
    executor: Executor | None = None,
    stream=None,
) -> list[dict]:
    """Run every planned run not already finished in ``out``; return one status dict per planned run.

    ``executor`` defaults to a :class:`LocalExecutor` of ``workers`` x ``threads``. A run whose job failed
    outside the trainer (status ``"error"``) writes no record, so the next invocation runs it again.
    """
    out = Path(out)
    stream = stream or sys.stderr
    executor = executor or LocalExecutor(workers, threads)
    records.check_writable(out)
    remove_stale_partial_checkpoints(out, lambda s: stream.write(s + "\n"))
    todo, results = [], {}
    for r in sweep.runs:  # a cached file that is not the run's intact record is moved aside and the run redone
        rec = records.cached_or_redo(records.run_paths(out, r.run_id)[0], lambda s: stream.write(s + "\n"))
        if rec is None:
            todo.append(r)
        else:
            results[r.run_id] = {**_summary(rec), "cached": True}
    write_manifest(sweep, out)
    # longest first: with a pool of workers this keeps the slowest run from starting last (shorter makespan)
    todo.sort(key=lambda r: -model_counts(r.config.model).flops_per_token_hoffmann * r.config.tokens)
    how = executor.setup(len(todo), out)
    bar = Progress(len(sweep.runs), len(results), stream)
    stream.write(
        f"sweep {sweep.name}: {len(sweep.runs)} runs, {len(results)} already done, {len(todo)} to run "
        f"({how}); records in {out / 'runs'}\n"
    )
    for d in sweep.dropped:
        stream.write(f"  dropped: {d}\n")

    busy: list[PlannedRun] = []

    def done(r: PlannedRun, res: dict):
        if res["status"] == "busy":  # another sweep trains it: wait for its record at the end
            busy.append(r)
            bar.current.pop(r.run_id, None)
            return
        results[r.run_id] = res
        loss = f"val loss {res['loss']:.4f}" if res.get("loss") is not None else f"FAILED: {res.get('reason')}"
        by_other = " (trained by another process)" if res.get("cached") else ""
        bar.finish_run(r.run_id, f"  {r.run_id[:16]} {r.origin}: {loss}{by_other}")

    try:
        executor.run(todo, out, bar.update, done)
        while busy:  # runs another process was training: take their records, or train those it left
            todo = _await_others(busy, out, stream)
            for r in busy:
                if r not in todo:
                    rec = records.finished_or_failed(records.run_paths(out, r.run_id)[0])
                    done(r, {**_summary(rec), "cached": True})
            busy.clear()
            executor.run(todo, out, bar.update, done)
    finally:
        bar.close()
        write_manifest(sweep, out)  # now with the hashes of the records that were written
    return [results[r.run_id] for r in sweep.runs if r.run_id in results]
