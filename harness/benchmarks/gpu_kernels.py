"""GPU benchmark of the fused kernels against torch eager, torch.compile and Liger-Kernel.

    python -m harness.benchmarks.gpu_kernels           # all shapes, bf16, writes results/bench/gpu/kernels_*.json
    python -m harness.benchmarks.gpu_kernels --quick   # one shape per op
    pip install liger-kernel                           # optional: adds the Liger-Kernel column where it has the op

For every op and shape, each implementation is timed forward-only and forward+backward (median over
``--reps`` repetitions after ``--warmup`` calls, CUDA events, no L2 flush) and its peak memory is taken
over one forward+backward: ``torch.cuda.max_memory_allocated`` minus what was allocated before (inputs),
so it counts activations, outputs, gradients and workspace. Each implementation's output and gradients are
also compared with an fp32 eager reference on the same inputs (``max_abs_err``), so a fast wrong kernel
shows. A failing implementation (e.g. an incompatible Liger build, out of memory) is recorded with its
error instead of stopping the run.

Ops: ``layer_norm`` and ``rms_norm`` (rows x hidden), ``add_rms_norm`` (residual add fused with RMSNorm,
returning the normed output and the new residual stream), ``linear_cross_entropy`` (tokens x hidden,
vocabulary V; mean loss).

Without a CUDA device it exits with status 2 and measures nothing. ``--cpu-smoke`` runs the same code path
on CPU through the Triton interpreter at tiny shapes, to check the script itself; its timings mean nothing
and it writes only where ``--out`` says.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "results" / "bench" / "gpu"

NORM_SHAPES = [(8192, 768), (8192, 1024), (8192, 2048), (8192, 4096)]
NORM_SHAPES_QUICK = [(8192, 1024)]
CE_SHAPES = [(8192, 768, 32768), (8192, 768, 50257), (8192, 2048, 128256)]  # (tokens, hidden, vocab)
CE_SHAPES_QUICK = [(8192, 768, 50257)]
SMOKE_NORM_SHAPES = [(16, 100)]
SMOKE_CE_SHAPES = [(24, 32, 500)]


# ----------------------------------------------------------------------------------------------- timing
class _Timer:
    def __init__(self, device):
        import torch

        self.torch, self.cuda = torch, device.type == "cuda"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def median_ms(self, fn: Callable[[], object], warmup: int, reps: int) -> float:
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(reps):
            if self.cuda:
                start, end = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def peak_extra_mib(self, fn: Callable[[], object]) -> float | None:
        if not self.cuda:
            return None
        torch = self.torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak / 2**20


# ------------------------------------------------------------------------------------------------- ops
def _implementations(op: str, compile_ok: bool):
    """name -> callable(*inputs) returning a tensor or a tuple of tensors, for the given op."""
    import torch

    from kernels import cross_entropy, norms, reference

    impls: dict[str, Callable] = {}
    if op == "layer_norm":
        impls["eager"] = lambda x, w, b: reference.layer_norm_ref(x, w, b, 1e-5)
        impls["triton"] = lambda x, w, b: norms.layer_norm(x, w, b, 1e-5)
    elif op == "rms_norm":
        impls["eager"] = lambda x, w: reference.rms_norm_ref(x, w, 1e-6)
        impls["triton"] = lambda x, w: norms.rms_norm(x, w, 1e-6)
    elif op == "add_rms_norm":
        impls["eager"] = lambda x, r, w: reference.rms_norm_ref(x, w, 1e-6, residual=r)
        impls["triton"] = lambda x, r, w: norms.rms_norm(x, w, 1e-6, residual=r)
    elif op == "linear_cross_entropy":
        impls["eager"] = lambda h, w, t: reference.linear_cross_entropy_ref(h, w, t)
        impls["triton"] = lambda h, w, t: cross_entropy.linear_cross_entropy(h, w, t)
    else:
        raise ValueError(op)
    if compile_ok:
        impls["compile"] = torch.compile(impls["eager"])
    liger = _liger_impl(op)
    if liger is not None:
        impls["liger"] = liger
    return impls


def _liger_impl(op: str):
    try:
        from liger_kernel.transformers import functional as lf
    except Exception:
        return None
    if op == "layer_norm" and hasattr(lf, "liger_layer_norm"):
        return lambda x, w, b: lf.liger_layer_norm(x, w, b, 1e-5)
    if op == "rms_norm" and hasattr(lf, "liger_rms_norm"):
        return lambda x, w: lf.liger_rms_norm(x, w, 1e-6, in_place=False)
    if op == "add_rms_norm" and hasattr(lf, "liger_fused_add_rms_norm"):
        return lambda x, r, w: lf.liger_fused_add_rms_norm(x, r, w, 1e-6, in_place=False)
    if op == "linear_cross_entropy" and hasattr(lf, "liger_fused_linear_cross_entropy"):
        return lambda h, w, t: lf.liger_fused_linear_cross_entropy(h, w, t)
    return None


def _inputs(op: str, shape, dtype, device, seed=0):
    """Leaf tensors (the differentiable ones require grad) and the indices of those that are differentiable."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)

    def leaf(*s, scale=1.0, shift=0.0):
        return (torch.randn(*s, generator=g) * scale + shift).to(device=device, dtype=dtype).requires_grad_()

    if op == "layer_norm":
        M, N = shape
        return [leaf(M, N), leaf(N, scale=0.1, shift=1.0), leaf(N, scale=0.1)], [0, 1, 2]
    if op == "rms_norm":
        M, N = shape
        return [leaf(M, N), leaf(N, scale=0.1, shift=1.0)], [0, 1]
    if op == "add_rms_norm":
        M, N = shape
        return [leaf(M, N), leaf(M, N), leaf(N, scale=0.1, shift=1.0)], [0, 1, 2]
    T, d, V = shape
    t = torch.randint(0, V, (T,), generator=g).to(device)
    return [leaf(T, d), leaf(V, d, scale=d**-0.5), t], [0, 1]


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _bench_one(op, shape, dtype, device, name, fn, timer, args, ref):
    import torch

    inputs, diff_idx = _inputs(op, shape, dtype, device)
    diff = [inputs[i] for i in diff_idx]
    # upstream gradients: ones for a scalar loss, fixed random tensors for norm outputs
    probe = _as_tuple(fn(*inputs))
    g = torch.Generator(device="cpu").manual_seed(1)
    grads = [
        torch.ones_like(o) if o.ndim == 0 else torch.randn(o.shape, generator=g).to(device=device, dtype=o.dtype)
        for o in probe
    ]
    del probe

    def fwd():
        with torch.no_grad():
            return fn(*inputs)

    def fwd_bwd():
        outs = _as_tuple(fn(*inputs))
        return torch.autograd.grad(outs, diff, grads)

    rec = {"op": op, "shape": list(shape), "dtype": str(dtype).removeprefix("torch."), "impl": name}
    rec["fwd_ms"] = timer.median_ms(fwd, args.warmup, args.reps)
    rec["fwd_bwd_ms"] = timer.median_ms(fwd_bwd, args.warmup, args.reps)
    rec["peak_extra_mib"] = timer.peak_extra_mib(fwd_bwd)
    # accuracy against the fp32 eager reference on the same (rounded) inputs
    outs = _as_tuple(fn(*inputs))
    got = torch.autograd.grad(outs, diff, grads)
    ref_outs, ref_grads = ref(inputs, diff_idx, grads)
    rec["max_abs_err"] = {
        **{f"out{i}": (o.float() - r).abs().max().item() for i, (o, r) in enumerate(zip(outs, ref_outs, strict=True))},
        **{
            f"grad{i}": (a.float() - r).abs().max().item()
            for i, (a, r) in zip(diff_idx, zip(got, ref_grads, strict=True), strict=True)
        },
    }
    return rec


def _fp32_reference(op):
    import torch

    from kernels import reference

    def run(inputs, diff_idx, grads):
        ins = [x.detach().float().requires_grad_() if x.is_floating_point() else x for x in inputs]
        if op == "layer_norm":
            outs = (reference.layer_norm_ref(ins[0], ins[1], ins[2], 1e-5),)
        elif op == "rms_norm":
            outs = (reference.rms_norm_ref(ins[0], ins[1], 1e-6),)
        elif op == "add_rms_norm":
            outs = reference.rms_norm_ref(ins[0], ins[2], 1e-6, residual=ins[1])
        else:
            outs = (reference.linear_cross_entropy_ref(ins[0], ins[1], ins[2]),)
        gr = torch.autograd.grad(outs, [ins[i] for i in diff_idx], [g.float() for g in grads])
        return [o.detach() for o in outs], gr

    return run


# ------------------------------------------------------------------------------------------------ meta
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _meta(device) -> dict:
    import torch
    import triton

    from ._gpu_common import bench_meta

    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
    meta = bench_meta(index, "cpu (Triton interpreter smoke run: timings are meaningless)")
    meta.update(liger_kernel=_version("liger-kernel"), interpreted=bool(triton.knobs.runtime.interpret))
    return meta


# ------------------------------------------------------------------------------------------------ main
def _table(records) -> str:
    eager = {(r["op"], tuple(r["shape"])): r for r in records if r["impl"] == "eager" and "fwd_bwd_ms" in r}
    lines = [
        f"{'op':<22}{'shape':<20}{'impl':<9}{'fwd ms':>9}{'fwd+bwd ms':>12}{'vs eager':>10}{'peak MiB':>10}",
    ]
    for r in records:
        shape = "x".join(map(str, r["shape"]))
        if "error" in r:
            lines.append(f"{r['op']:<22}{shape:<20}{r['impl']:<9}  error: {r['error'][:60]}")
            continue
        base = eager.get((r["op"], tuple(r["shape"])))
        ratio = f"{base['fwd_bwd_ms'] / r['fwd_bwd_ms']:.2f}x" if base else "-"
        peak = "-" if r["peak_extra_mib"] is None else f"{r['peak_extra_mib']:.0f}"
        lines.append(
            f"{r['op']:<22}{shape:<20}{r['impl']:<9}{r['fwd_ms']:>9.3f}{r['fwd_bwd_ms']:>12.3f}{ratio:>10}{peak:>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.benchmarks.gpu_kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one shape per op")
    ap.add_argument("--ops", default="layer_norm,rms_norm,add_rms_norm,linear_cross_entropy")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--cpu-smoke", action="store_true", help="check the script on CPU (interpreter, tiny shapes)")
    args = ap.parse_args(argv)

    if args.cpu_smoke:
        if args.out == DEFAULT_OUT:
            ap.error("--cpu-smoke needs --out (its timings must not land in results/bench/gpu)")
        os.environ["TRITON_INTERPRET"] = "1"  # before kernels.norms / kernels.cross_entropy are imported
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(
            "harness.benchmarks.gpu_kernels: no CUDA device on this machine; this benchmark needs an NVIDIA GPU. "
            "Nothing was measured or written.",
            file=sys.stderr,
        )
        return 2
    try:
        import triton  # noqa: F401
    except ImportError:
        print(
            "harness.benchmarks.gpu_kernels: triton is not installed: pip install 'scaling-harness[kernels]'",
            file=sys.stderr,
        )
        return 2

    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    dtype = getattr(torch, args.dtype)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    timer = _Timer(device)
    records: list[dict] = []
    for op in ops:
        if op == "linear_cross_entropy":
            shapes = SMOKE_CE_SHAPES if args.cpu_smoke else CE_SHAPES_QUICK if args.quick else CE_SHAPES
        else:
            shapes = SMOKE_NORM_SHAPES if args.cpu_smoke else NORM_SHAPES_QUICK if args.quick else NORM_SHAPES
        impls = _implementations(op, compile_ok=not (args.no_compile or args.cpu_smoke))
        ref = _fp32_reference(op)
        for shape in shapes:
            for name, fn in impls.items():
                print(f"  {op} {shape} {name} ...", file=sys.stderr, flush=True)
                try:
                    rec = _bench_one(op, shape, dtype, device, name, fn, timer, args, ref)
                except Exception as e:  # record and go on: one broken column must not lose the others
                    rec = {"op": op, "shape": list(shape), "dtype": args.dtype, "impl": name, "error": repr(e)}
                records.append(rec)
                if device.type == "cuda":
                    torch.cuda.empty_cache()

    meta = _meta(device)
    doc = {
        "benchmark": "harness.benchmarks.gpu_kernels",
        "meta": meta,
        "method": {
            "timing": f"median of {args.reps} CUDA-event timings after {args.warmup} warm-up calls, no L2 flush",
            "peak_extra_mib": "max_memory_allocated during one fwd+bwd minus memory allocated before it",
            "max_abs_err": "vs fp32 eager reference on the same inputs",
        },
        "records": records,
    }
    from ._gpu_common import write_bench_json

    path = write_bench_json(args.out, "kernels", meta["device"], doc)
    print(_table(records))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
