"""Small helpers shared by the Triton kernel modules. Imports nothing heavier than torch."""

from __future__ import annotations

import functools
import os

import torch

_TRUE = {"1", "true", "on", "yes"}


def interpreter_requested() -> bool:
    """Whether ``TRITON_INTERPRET`` is set in the environment (Triton reads it when a kernel is decorated,
    i.e. when the kernel module is first imported, so it must be set before that)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUE


def next_power_of_2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def num_warps_for(block: int) -> int:
    """Warps for a row-wise kernel over ``block`` elements: enough threads to keep each thread's share of
    the row small, without exceeding what one SM schedules comfortably."""
    if block >= 8192:
        return 16
    if block >= 2048:
        return 8
    return 4


def num_programs(device: torch.device, n_rows: int, interpreted: bool) -> int:
    """Programs for a kernel that loops over rows and reduces partial sums across them (norm backward):
    a few per SM on a GPU; a handful under the interpreter, where each program instance costs Python time."""
    if interpreted or device.type != "cuda":
        return max(1, min(n_rows, 4))
    return max(1, min(n_rows, 4 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())))


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def write_bench_json(out_dir, prefix: str, device: str, doc: dict):
    """Write a benchmark record as ``<out_dir>/<prefix>_<device-slug>_<UTC stamp>.json``; returns the path."""
    import datetime as dt
    import json
    import re
    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device.split(" (")[0]).strip("-").lower()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{prefix}_{slug}_{stamp}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def bench_meta(cuda_index: int | None, cpu_label: str) -> dict:
    """Provenance shared by the GPU benchmarks: time, versions, git commit and the device (``cuda_index`` None:
    a CPU smoke run, labelled ``cpu_label``)."""
    import datetime as dt
    import platform

    from harness.provenance import git_commit

    try:
        import triton

        triton_version = triton.__version__
    except Exception:
        triton_version = None
    meta = {
        "timestamp_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": triton_version,
        "git_commit": git_commit(),  # "-dirty" appended when tracked files differ from the commit
    }
    if cuda_index is None:
        meta["device"] = cpu_label
        return meta
    p = torch.cuda.get_device_properties(cuda_index)
    meta.update(
        device=torch.cuda.get_device_name(cuda_index),
        capability=".".join(map(str, torch.cuda.get_device_capability(cuda_index))),
        sm_count=p.multi_processor_count,
        memory_gib=round(p.total_memory / 2**30, 1),
    )
    return meta
