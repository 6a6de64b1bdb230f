"""How much memory a run may use: the host's (or CUDA device's) available bytes, and the switch that skips the
check. A leaf module (standard library only, torch imported lazily) so that both the model registry and the
training config can refuse a size that cannot fit without importing each other."""

from __future__ import annotations

import os

MEMORY_CHECK_ENV = "SCALING_NO_MEMORY_CHECK"  # set to 1 to skip the memory check


def format_gb(n_bytes: float) -> str:
    """``n_bytes`` in GB (MB below 0.1 GB), e.g. '230 GB', '1.5 GB', '12.3 MB'."""
    gb = n_bytes / 1e9
    if gb < 0.1:
        return f"{n_bytes / 1e6:.3g} MB"
    if gb >= 1e6:
        return f"{gb:.3g} GB"
    return f"{gb:,.0f} GB" if gb >= 100 else f"{gb:.3g} GB"


def available_memory(device: str = "cpu") -> tuple[int, str] | None:
    """Bytes of memory free for a run on ``device`` and where they are; None when unknown.

    CUDA (``"cuda"``, or ``"auto"`` with a GPU): the device's free memory. Otherwise the host's
    ``MemAvailable`` (Linux ``/proc/meminfo``), else ``os.sysconf``'s available physical pages."""
    if device in ("cuda", "auto"):
        try:
            import torch

            if torch.cuda.is_available():
                return int(torch.cuda.mem_get_info()[0]), "free on the CUDA device"
        except Exception:  # no usable torch / CUDA: fall back to the host
            pass
        if device == "cuda":
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available (MemAvailable)"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available (physical pages)"
    except (ValueError, OSError, AttributeError):
        return None


def memory_check_disabled() -> bool:
    return os.environ.get(MEMORY_CHECK_ENV, "").strip() not in ("", "0")
