"""Training-step benchmark of the harness's GPT on one GPU: tokens/s and MFU, kernels on/off, torch.compile,
CUDA graphs; and sweep throughput (runs per hour) with one run at a time vs several processes at once.

    python -m harness.benchmarks.gpu_train_step          # ~1e6, 1e7, 1e8 params; results/bench/gpu/train_step_*.json
    python -m harness.benchmarks.gpu_train_step --quick  # ~1e6 and 1e7 only, fewer steps, tighter time budget
    python -m harness.benchmarks.gpu_train_step --cpu-smoke --out DIR   # every code path on CPU, tiny (tests)

Models: ``harness.models`` GPT with the shape ``shape_for_n(N)`` for N = 1e6, 1e7, 1e8 (Kaplan non-embedding
parameters), vocabulary ``VOCAB_SIZE`` (4096, as in the CPU throughput benchmark), learned positions. One training step
is the trainer's (``harness.train``): forward under bf16 autocast, backward, ``clip_grad_norm_(1.0)``, AdamW
(foreach) step, ``zero_grad``, and reading the loss on the host (the trainer does that every step). Batches are
random token ids already on the GPU (data loading is not measured); the learning rate is constant.

Configurations (each ``kernels`` in ``triton`` (ours: LayerNorm + chunked linear cross-entropy) and ``torch``):

* ``eager``: the model as is;
* ``cudagraph``: the whole step (forward, backward, clipping, AdamW with ``capturable=True``) captured once
  with ``torch.cuda.graph`` after warm-up on a side stream, then replayed with the batch copied into static
  inputs (PyTorch's "whole network capture");
* ``compile``: ``torch.compile(model)`` (default mode; optimizer eager), as ``TrainConfig(compile=True)``;
* ``compile_reduce_overhead``: ``torch.compile(model, mode="reduce-overhead")`` (Inductor + CUDA graph
  trees for forward and backward; optimizer eager).

Tokens/s = timed steps x tokens per step / wall time of the timed steps (after warm-up steps, which include
compilation or capture; their time is recorded as ``warmup_s``). MFU = tokens/s x model FLOPs per token /
989.4e12 (H100 SXM bf16 dense peak). The FLOPs per token are ``model_counts(cfg).flops_per_token_hoffmann``
(Hoffmann et al. 2022 App. F: embeddings, attention, output logits; x3 for forward+backward); the Kaplan count
(6N + 6 n_layer n_ctx d_model, no output layer) is recorded as ``mfu_kaplan`` too.

Sweep throughput: K identical small runs (N ~ 1e6, a fixed number of steps each) in K separate processes on
the one GPU, for K = 1, 2, 4, 8, in eager and CUDA-graph mode. Workers build and warm up, wait at a barrier,
then train; runs/hour = K x 3600 / (last end - first start). The same with process start-up included is
``runs_per_hour_with_startup``. This is the data for choosing the GPU sweep executor's default.

Isolation: every configuration (and every sweep group) runs in its own subprocess with a time limit, so a
compile error, OOM or CUDA fault is recorded with its error and the run goes on. A global budget
(``--budget-s``, default 450 s) bounds the whole run; configurations that no longer fit are recorded as skipped.
Without a CUDA device it exits with status 2 and writes nothing, unless ``--cpu-smoke``: tiny sizes on CPU,
configurations in-process (the sweep still uses subprocesses), ``kernels="triton"`` through the Triton
interpreter (``TRITON_INTERPRET=1``, as ``kernels.ops`` allows on CPU), compile and CUDA graphs recorded as
skipped, timings meaningless.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "results" / "bench" / "gpu"
H100_BF16_DENSE_PEAK = 989.4e12  # FLOP/s, H100 SXM5 bf16 dense (NVIDIA H100 datasheet, 1979 TFLOPS with sparsity)
FLOPS_COUNT = "flops_per_token_hoffmann"
RESULT_MARK = "@@RESULT "
VOCAB_SIZE = 4096

# label -> target Kaplan N, context, tokens per step
SIZES = {
    "1e6": {"n": 1e6, "n_ctx": 256, "batch_tokens": 16384},
    "1e7": {"n": 1e7, "n_ctx": 256, "batch_tokens": 32768},
    "1e8": {"n": 1e8, "n_ctx": 1024, "batch_tokens": 32768},
}
# tiny: the "triton" configuration runs through the Triton interpreter, ~2 s a step even at 32 tokens
SMOKE_SIZES = {"tiny": {"n": 2e4, "n_ctx": 16, "batch_tokens": 32, "vocab_size": 256}}
MODES = ("eager", "cudagraph", "compile", "compile_reduce_overhead")
KERNELS = ("triton", "torch")
SWEEP_CONCURRENCY = (1, 2, 4, 8)
SWEEP_MODES = ("eager", "cudagraph")


# ------------------------------------------------------------------------------------------- one config
def model_dict(size: dict) -> dict:
    """The flat model config (``ModelConfig.from_dict`` form) of one size; every field the benchmark reads is
    spelled out, so it does not depend on the harness's defaults."""
    from harness.models import shape_for_n

    return {
        "name": "gpt",
        **shape_for_n(size["n"], "gpt"),
        "n_ctx": size["n_ctx"],
        "vocab_size": size.get("vocab_size", VOCAB_SIZE),
    }


def _setup(spec: dict):
    """Model, optimizer, batches and a ``step(i) -> loss`` for one configuration."""
    import torch

    from harness.models import ModelConfig, build_model, model_counts, resolve_kernels

    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ModelConfig.from_dict({**spec["model"], "kernels": spec["kernels"]})
    model = build_model(cfg)
    # the trainer's rule; on CPU (smoke) "triton" runs the kernels through the Triton interpreter
    model.kernels_used = resolve_kernels(spec["kernels"], device)
    model.to(device)
    mode = spec["mode"]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3,
        betas=(0.9, 0.95),
        eps=1e-8,
        foreach=True,
        capturable=mode == "cudagraph",
    )
    params = list(model.parameters())
    n_ctx, vocab_size = spec["model"]["n_ctx"], spec["model"]["vocab_size"]
    B = spec["batch_tokens"] // n_ctx
    g = torch.Generator(device="cpu").manual_seed(1)
    batches = [
        tuple(torch.randint(0, vocab_size, (B, n_ctx), generator=g).to(device) for _ in range(2)) for _ in range(4)
    ]
    amp = torch.bfloat16 if spec["precision"] == "bf16" else None

    def autocast(cache=True):
        return torch.autocast(device.type, dtype=amp, enabled=amp is not None, cache_enabled=cache)

    def train_step(x, y, fwd, cache=True):
        with autocast(cache):
            loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    if mode in ("eager", "compile", "compile_reduce_overhead"):
        if mode == "eager":
            fwd = model
        elif mode == "compile":
            fwd = torch.compile(model)
        else:
            fwd = torch.compile(model, mode="reduce-overhead")

        def step(i):
            if mode == "compile_reduce_overhead":
                torch.compiler.cudagraph_mark_step_begin()
            x, y = batches[i % len(batches)]
            return float(train_step(x, y, fwd).detach())

    elif mode == "cudagraph":
        if not cuda:
            raise RuntimeError("cudagraph mode needs CUDA")
        static_x, static_y = (t.clone() for t in batches[0])
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside capture (Triton compiles, cuBLAS workspaces, optimizer state)
                train_step(static_x, static_y, model, cache=False)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = train_step(static_x, static_y, model, cache=False)

        def step(i):
            x, y = batches[i % len(batches)]
            static_x.copy_(x)
            static_y.copy_(y)
            graph.replay()
            return float(static_loss)

    else:
        raise ValueError(f"unknown mode {mode!r}")
    return model, cfg, model_counts(cfg), step


def run_config(spec: dict) -> dict:
    """Measure one configuration; raises on failure (the caller records it)."""
    import torch

    cuda = spec["device"] == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model, _cfg, counts, step = _setup(spec)
    sync()
    t1 = time.perf_counter()
    losses = [step(i) for i in range(spec["warmup"])]
    sync()
    t2 = time.perf_counter()
    for i in range(spec["steps"]):
        losses.append(step(spec["warmup"] + i))
    sync()
    timed = time.perf_counter() - t2
    if not all(math.isfinite(v) for v in losses):
        raise FloatingPointError(f"non-finite loss: {losses}")
    tokens_per_s = spec["steps"] * spec["batch_tokens"] / timed
    return {
        "kernels_resolved": model.kernels_used,
        "kernels_effective": "triton (Triton interpreter on CPU)"
        if model.kernels_used == "triton" and not cuda
        else model.kernels_used,
        "n_params_total": counts.n_total,
        "n_kaplan": counts.n_kaplan,
        "flops_per_token_hoffmann": counts.flops_per_token_hoffmann,
        "flops_per_token_kaplan": counts.flops_per_token_kaplan,
        "setup_s": t1 - t0,
        "warmup_s": t2 - t1,
        "timed_s": timed,
        "step_ms": 1e3 * timed / spec["steps"],
        "tokens_per_s": tokens_per_s,
        "mfu": tokens_per_s * counts.flops_per_token_hoffmann / H100_BF16_DENSE_PEAK,
        "mfu_kaplan": tokens_per_s * counts.flops_per_token_kaplan / H100_BF16_DENSE_PEAK,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }


def sweep_worker(spec: dict) -> dict:
    """One run of a sweep group: set up and warm up, wait for the group, train ``steps`` steps."""
    t_launch = spec["launched_at"]
    _, _, _, step = _setup(spec)
    for i in range(spec["warmup"]):
        step(i)
    ready = Path(spec["barrier"])
    (ready / f"{os.getpid()}.ready").touch()
    give_up = time.time() + spec["barrier_timeout_s"]
    while len(list(ready.glob("*.ready"))) < spec["group"]:
        if time.time() > give_up:
            raise TimeoutError("the other workers of the group never became ready")
        time.sleep(0.005)
    t_start = time.time()
    for i in range(spec["steps"]):
        loss = step(spec["warmup"] + i)
    t_end = time.time()
    if not math.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss}")
    return {"startup_s": t_start - t_launch, "start": t_start, "end": t_end}


def _worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        out = sweep_worker(spec) if spec.get("kind") == "sweep" else run_config(spec)
    except BaseException as e:  # reported to the parent, which records it
        out = {"error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-4000:]}
    print(RESULT_MARK + json.dumps(out), flush=True)
    return 0


# -------------------------------------------------------------------------------------------- isolation
def _parse(stdout: str, stderr: str, rc: int) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    return {"error": f"worker exited with status {rc} without a result", "stderr_tail": stderr[-4000:]}


def _worker_cmd(spec: dict) -> list[str]:
    return [sys.executable, "-m", "harness.benchmarks.gpu_train_step", "--worker", json.dumps(spec)]


def run_isolated(spec: dict, timeout_s: float) -> dict:
    """``run_config(spec)`` in a fresh subprocess, killed after ``timeout_s``; failures become records."""
    try:
        p = subprocess.run(_worker_cmd(spec), cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        return {"error": f"timeout after {timeout_s:.0f} s", "stderr_tail": err[-2000:]}
    return _parse(p.stdout, p.stderr, p.returncode)


def run_in_process(spec: dict) -> dict:
    try:
        return run_config(spec)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-4000:]}


def run_sweep_group(spec: dict, k: int, timeout_s: float) -> dict:
    """K copies of one small run in K processes at once; runs per hour from their common training window."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as barrier:
        launched = time.time()
        wspec = {
            **spec,
            "kind": "sweep",
            "group": k,
            "barrier": barrier,
            "launched_at": launched,
            "barrier_timeout_s": timeout_s,
        }
        procs = [
            subprocess.Popen(_worker_cmd(wspec), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(k)
        ]
        workers, deadline = [], time.monotonic() + timeout_s
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
                workers.append(_parse(out, err, p.returncode))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                workers.append({"error": f"timeout after {timeout_s:.0f} s"})
    errors = [w for w in workers if "error" in w]
    if errors:
        return {"error": errors[0]["error"], "workers": workers}
    window = max(w["end"] for w in workers) - min(w["start"] for w in workers)
    total = max(w["end"] for w in workers) - launched
    tokens = k * spec["steps"] * spec["batch_tokens"]
    return {
        "window_s": window,
        "with_startup_s": total,
        "runs_per_hour": k * 3600 / window,
        "runs_per_hour_with_startup": k * 3600 / total,
        "tokens_per_s": tokens / window,
        "startup_s_mean": sum(w["startup_s"] for w in workers) / k,
    }


# ------------------------------------------------------------------------------------------------- meta


def _meta(cuda: bool) -> dict:
    import torch

    from ._gpu_common import bench_meta

    meta = bench_meta(0 if cuda else None, "cpu (smoke run: timings and MFU are meaningless)")
    meta["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    if cuda:
        meta["cudnn"] = torch.backends.cudnn.version()
    return meta


# ------------------------------------------------------------------------------------------------- main
def _fmt(r: dict) -> str:
    head = f"{r.get('size', 'sweep'):<6}{r.get('mode', ''):<25}{r.get('kernels', ''):<8}"
    if "error" in r:
        return head + f"error: {r['error'][:70]}"
    if "skipped" in r:
        return head + f"skipped: {r['skipped'][:70]}"
    if "runs_per_hour" in r:
        return head + f"K={r['concurrency']}: {r['runs_per_hour']:.0f} runs/h ({r['tokens_per_s']:.3g} tok/s)"
    return head + f"{r['tokens_per_s']:>12.4g} tok/s  MFU {100 * r['mfu']:6.2f}%  {r['step_ms']:.2f} ms/step"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m harness.benchmarks.gpu_train_step", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="sizes 1e6 and 1e7, fewer steps, K in 1 and 4")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--cpu-smoke", action="store_true", help="every code path on CPU at tiny sizes (needs --out)")
    ap.add_argument("--budget-s", type=float, default=None, help="bound on the whole run (default 450, quick 240)")
    ap.add_argument("--config-timeout-s", type=float, default=150.0, help="limit for one configuration")
    ap.add_argument("--sizes", default=None, help="comma-separated subset of " + ",".join(SIZES))
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        return _worker_main(args.worker)
    if args.cpu_smoke and args.out == DEFAULT_OUT:
        ap.error("--cpu-smoke needs --out (its timings must not land in results/bench/gpu)")
    if args.cpu_smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before kernels.norms / kernels.cross_entropy are imported

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_smoke:
        print(
            "harness.benchmarks.gpu_train_step: no CUDA device on this machine; this benchmark needs an NVIDIA GPU. "
            "Nothing was measured or written. (--cpu-smoke --out DIR checks the script on CPU.)",
            file=sys.stderr,
        )
        return 2
    smoke = args.cpu_smoke
    device = "cpu" if smoke else "cuda"
    if smoke:
        sizes = SMOKE_SIZES
    else:
        names = args.sizes.split(",") if args.sizes else (["1e6", "1e7"] if args.quick else list(SIZES))
        unknown = [n for n in names if n not in SIZES]
        if unknown:
            ap.error(f"unknown size(s) {unknown}; known: {', '.join(SIZES)}")
        sizes = {n: SIZES[n] for n in names}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        ap.error(f"--modes must be a subset of {', '.join(MODES)}")
    warmup, steps = (1, 2) if smoke else (3, 10) if args.quick else (5, 20)
    budget = args.budget_s if args.budget_s is not None else 240.0 if args.quick else 450.0
    deadline = time.monotonic() + budget
    precision = "fp32" if smoke else "bf16"

    def base(label: str, size: dict) -> dict:
        return {
            "size": label,
            "model": model_dict(size),
            "batch_tokens": size["batch_tokens"],
            "device": device,
            "precision": precision,
            "warmup": warmup,
            "steps": steps,
        }

    # order: cheapest and most decisive first, so a tight budget loses the least
    plan = [(mode, label, k) for mode in ("eager", "cudagraph") for label in sizes for k in KERNELS if mode in modes]
    plan_late = [
        (mode, label, k) for mode in ("compile", "compile_reduce_overhead") for label in sizes for k in KERNELS
    ]
    plan_late = [p for p in plan_late if p[0] in modes]

    records: list[dict] = []

    def measure(mode: str, label: str, kernels: str):
        spec = {**base(label, sizes[label]), "kernels": kernels, "mode": mode}
        rec = {"size": label, "mode": mode, "kernels": kernels, "model": spec["model"]}
        rec.update(batch_tokens=spec["batch_tokens"], precision=precision, warmup_steps=warmup, timed_steps=steps)
        remaining = deadline - time.monotonic()
        print(f"  {label} {mode} kernels={kernels} ...", file=sys.stderr, flush=True)
        if smoke and mode != "eager":
            rec["skipped"] = "cpu-smoke: torch.compile and CUDA graphs are not run on CPU"
        elif remaining < 15:
            rec["skipped"] = f"time budget of {budget:.0f} s used up"
        elif smoke:
            rec.update(run_in_process(spec), isolation="in-process (cpu-smoke)")
        else:
            rec.update(run_isolated(spec, min(args.config_timeout_s, remaining)), isolation="subprocess")
        records.append(rec)
        print("  " + _fmt(rec), file=sys.stderr, flush=True)

    for p in plan:
        measure(*p)

    # sweep throughput: K small runs at once, one process each
    sweep: list[dict] = []
    sweep_label, sweep_size = ("tiny", SMOKE_SIZES["tiny"]) if smoke else ("1e6", SIZES["1e6"])
    conc = (1, 2) if smoke else (1, 4) if args.quick else SWEEP_CONCURRENCY
    run_steps = 3 if smoke else 100 if args.quick else 200
    for mode in SWEEP_MODES:
        for k in conc:
            spec = {**base(sweep_label, sweep_size), "kernels": "auto", "mode": mode, "steps": run_steps}
            rec = {"size": sweep_label, "mode": mode, "kernels": "auto", "concurrency": k, "steps_per_run": run_steps}
            rec["tokens_per_run"] = run_steps * spec["batch_tokens"]
            remaining = deadline - time.monotonic()
            if smoke and mode != "eager":
                rec["skipped"] = "cpu-smoke: CUDA graphs are not run on CPU"
            elif remaining < 20:
                rec["skipped"] = f"time budget of {budget:.0f} s used up"
            else:
                print(f"  sweep {mode} K={k} ...", file=sys.stderr, flush=True)
                rec.update(run_sweep_group(spec, k, min(args.config_timeout_s, remaining)))
            sweep.append(rec)
            print("  " + _fmt(rec), file=sys.stderr, flush=True)

    for p in plan_late:
        measure(*p)

    meta = _meta(cuda and not smoke)
    doc = {
        "benchmark": "harness.benchmarks.gpu_train_step",
        "meta": meta,
        "method": {
            "step": "harness.train step: bf16 autocast fwd, bwd, clip_grad_norm_(1.0), AdamW(foreach) step, "
            "zero_grad, loss read on the host every step; random token batches already on the device",
            "tokens_per_s": f"{steps} timed steps x batch_tokens / wall time, after {warmup} warm-up steps",
            "mfu": f"tokens_per_s x model_counts(cfg).{FLOPS_COUNT} / peak_flops",
            "mfu_kaplan": "the same with flops_per_token_kaplan (6N + 6 n_layer n_ctx d_model)",
            "flops_count": FLOPS_COUNT,
            "peak_flops": H100_BF16_DENSE_PEAK,
            "peak_flops_source": "H100 SXM bf16 dense tensor-core peak (datasheet 1979 TFLOPS with sparsity / 2)",
            "modes": {
                "eager": "model as is",
                "cudagraph": "whole step captured with torch.cuda.graph (AdamW capturable=True), replayed",
                "compile": "torch.compile(model), default mode; optimizer eager",
                "compile_reduce_overhead": "torch.compile(model, mode='reduce-overhead') (CUDA graph trees)",
            },
            "kernels": "triton: harness kernels (Triton LayerNorm + chunked linear cross-entropy); torch: PyTorch",
            "sweep": "K processes each training steps_per_run steps of the same model (kernels='auto') at once "
            "on one GPU after a barrier; runs_per_hour = K x 3600 / (last end - first start)",
            "budget_s": budget,
            "isolation": "one subprocess per configuration / sweep worker, with a time limit",
        },
        "records": records,
        "sweep": sweep,
    }
    from ._gpu_common import write_bench_json

    path = write_bench_json(args.out, "train_step", meta["device"], doc)
    print("\n".join(_fmt(r) for r in records + sweep))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
