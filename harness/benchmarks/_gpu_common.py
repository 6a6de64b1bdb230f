"""Helpers shared by the GPU benchmark scripts (``gpu_kernels``, ``gpu_train_step``): where a record goes and
the provenance it carries. They live in the harness, not in ``kernels/``, because they use the harness's
provenance (git commit), and ``kernels/`` imports nothing from the harness."""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
from pathlib import Path

import torch

from harness.provenance import git_commit


def write_bench_json(out_dir: Path | str, prefix: str, device: str, doc: dict) -> Path:
    """Write a benchmark record as ``<out_dir>/<prefix>_<device-slug>_<UTC stamp>.json``; returns the path."""
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
