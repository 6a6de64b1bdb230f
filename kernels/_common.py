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
