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
    [isoflop]                   # for each compute budget C, each N with D = C / (6 N)
    C = [1e12, 1e13]
    N = [1e4, 3e4, 1e5]

Target N goes through the model's shape helper; IsoFLOP budgets use the N the shape actually has, and D is
rounded down to whole batches (points whose D is below one batch are dropped, and said so).

Records live in ``OUT/runs/<run id>.json`` where the run id is the hash of the run's config and data:
finished runs are skipped, interrupted ones resume from their checkpoint, and sweeps sharing ``OUT`` share
records. Executors: in-process, or a pool of worker processes with the cores split between them
(``results/bench/executor.md`` has the measurement behind the default).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import queue as queue_mod
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .models import model_counts, shape_for_n
from .provenance import write_json_atomic
from .train import TrainConfig, check_budget, run_key, run_paths, train

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


def load_spec(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.exists():
        raise UserError(f"sweep spec {p} does not exist")
    try:
        spec = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{p}: invalid TOML ({exc})") from None
    spec.setdefault("name", p.stem)
    return spec


def _floats(v: Any, what: str) -> list[float]:
    vals = v if isinstance(v, list) else [v]
    try:
        out = [float(x) for x in vals]
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number or a list of numbers, got {v!r}") from None
    if not out or any(x <= 0 for x in out):
        raise UserError(f"{what} must be positive numbers, got {v!r}")
    return out


def _config(base: dict, n: float, d: float, seed: int) -> TrainConfig:
    b = json.loads(json.dumps(base))  # deep copy
    model = b.pop("model", {})
    model = {**model, **shape_for_n(n, model.get("name", "gpt"))}
    return TrainConfig.from_dict({**b, "model": model, "tokens": int(d), "seed": seed})


def expand(spec: dict) -> tuple[list[tuple[TrainConfig, str]], list[str]]:
    """Configs (with a note of where each came from) and the points dropped, in spec order."""
    allowed = {"name", "description", "base", "grid", "isoflop"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise UserError(f"unknown sweep section(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    if "grid" not in spec and "isoflop" not in spec:
        raise UserError("a sweep spec needs a [grid] or an [isoflop] section")
    base = spec.get("base", {})
    TrainConfig.from_dict(base)  # validate early (unknown keys etc.)
    out, dropped = [], []
    if "grid" in spec:
        g = spec["grid"]
        seeds = [int(s) for s in g.get("seeds", [0])]
        for n in _floats(g.get("N"), "grid.N"):
            for d in _floats(g.get("D"), "grid.D"):
                for s in seeds:
                    out.append((_config(base, n, d, s), f"grid N={n:.3g} D={d:.3g} seed={s}"))
    if "isoflop" in spec:
        g = spec["isoflop"]
        seeds = [int(s) for s in g.get("seeds", [0])]
        probe = TrainConfig.from_dict(base)
        for c in _floats(g.get("C"), "isoflop.C"):
            for n in _floats(g.get("N"), "isoflop.N"):
                cfg0 = _config(base, n, probe.batch_tokens, 0)
                n_real = model_counts(cfg0.model).n_kaplan
                d = c / (6 * n_real)
                d = int(d // probe.batch_tokens) * probe.batch_tokens
                if d < probe.batch_tokens:
                    dropped.append(f"isoflop C={c:.3g} N={n:.3g}: D = C/6N is below one batch")
                    continue
                for s in seeds:
                    out.append((_config(base, n, d, s), f"isoflop C={c:.3g} N={n:.3g} D={d:.3g} seed={s}"))
    return out, dropped


def plan(spec: dict, data=None, log=print) -> SweepPlan:
    configs, dropped = expand(spec)
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
    return SweepPlan(spec.get("name", "sweep"), runs, dropped)


# ------------------------------------------------------------------------------------------- executors
def _worker_run(cfg_dict: dict, out: str, threads: int, q) -> dict:
    """Entry point in a worker process: one run, progress sent through ``q``."""
    import torch

    torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(cfg_dict)
    last = [0.0]

    def progress(ev):
        now = time.monotonic()
        if now - last[0] > 0.5 or ev["step"] == ev["steps"]:
            last[0] = now
            q.put(ev)

    rec = train(cfg, out, threads=threads, progress=progress)
    return {
        "run_id": rec["run_id"],
        "status": rec["status"],
        "reason": rec.get("reason"),
        "loss": rec["loss"]["val_final"],
    }


def _config_dict(cfg: TrainConfig) -> dict:
    return cfg.to_dict()


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


def run_sweep(
    sweep: SweepPlan,
    out: str | os.PathLike,
    *,
    workers: int = DEFAULT_WORKERS,
    threads: int | None = None,
    stream=sys.stderr,
) -> list[dict]:
    """Run every planned run not already finished in ``out``; return one status dict per planned run."""
    out = Path(out)
    cores = os.cpu_count() or 1
    workers = max(1, min(workers, cores, len(sweep.runs) or 1))
    threads = threads or max(1, cores // workers)
    write_json_atomic(
        out / "sweeps" / f"{sweep.name}.json",
        {
            "name": sweep.name,
            "dropped": sweep.dropped,
            "runs": [{"run_id": r.run_id[:16], "origin": r.origin, "config": r.config.to_dict()} for r in sweep.runs],
        },
    )
    todo, results = [], {}
    for r in sweep.runs:
        rec_path, _ = run_paths(out, r.run_id)
        if rec_path.exists():
            rec = json.loads(rec_path.read_text())
            if rec.get("status") in ("finished", "failed"):
                results[r.run_id] = {
                    "run_id": r.run_id,
                    "status": rec["status"],
                    "reason": rec.get("reason"),
                    "loss": rec["loss"]["val_final"],
                    "cached": True,
                }
                continue
        todo.append(r)
    bar = Progress(len(sweep.runs), len(results), stream)
    stream.write(
        f"sweep {sweep.name}: {len(sweep.runs)} runs, {len(results)} already done, {len(todo)} to run "
        f"({workers} worker(s) x {threads} thread(s)); records in {out / 'runs'}\n"
    )
    for d in sweep.dropped:
        stream.write(f"  dropped: {d}\n")

    def done(r: PlannedRun, res: dict):
        results[r.run_id] = res
        loss = f"val loss {res['loss']:.4f}" if res.get("loss") is not None else f"FAILED: {res.get('reason')}"
        bar.finish_run(r.run_id, f"  {r.run_id[:16]} {r.origin}: {loss}")

    try:
        if workers == 1:
            import torch

            torch.set_num_threads(threads)
            for r in todo:
                rec = train(r.config, out, threads=threads, progress=bar.update)
                done(
                    r,
                    {
                        "run_id": rec["run_id"],
                        "status": rec["status"],
                        "reason": rec.get("reason"),
                        "loss": rec["loss"]["val_final"],
                    },
                )
        elif todo:
            ctx = mp.get_context("spawn")
            with ctx.Manager() as manager, cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                q = manager.Queue()
                futs = {pool.submit(_worker_run, _config_dict(r.config), str(out), threads, q): r for r in todo}
                pending = set(futs)
                while pending:
                    finished, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                    while True:
                        try:
                            bar.update(q.get_nowait())
                        except queue_mod.Empty:
                            break
                    for f in finished:
                        done(futs[f], f.result())
    finally:
        bar.close()
    return [results[r.run_id] for r in sweep.runs if r.run_id in results]
