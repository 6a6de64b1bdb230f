"""Dispatch between the Triton kernels and their PyTorch references.

``backend`` is the run's ``kernels`` setting:

* ``"torch"``: always the plain PyTorch reference (``kernels.reference``);
* ``"auto"``: the Triton kernel when the tensor is on CUDA and Triton is importable, else the reference;
* ``"triton"``: the Triton kernel, or a clear error where it cannot run. On a CPU tensor that needs the
  Triton interpreter: ``TRITON_INTERPRET=1`` set before the kernel modules are first imported.

Importing this module is cheap: it does not import Triton; the kernel modules are imported on first use.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys

import torch

from ._common import interpreter_requested
from .reference import layer_norm_ref, linear_cross_entropy_ref, rms_norm_ref

BACKENDS = ("auto", "triton", "torch")

__all__ = ["BACKENDS", "layer_norm", "linear_cross_entropy", "resolve_backend", "rms_norm", "triton_available"]


@functools.cache
def triton_available() -> bool:
    """Whether ``import triton`` works here (tried once; a broken install counts as unavailable)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """What ``backend`` means for a tensor on ``device``: ``"triton"`` or ``"torch"`` (errors if
    ``backend="triton"`` cannot run there)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch"
    dev = torch.device(device)
    if backend == "auto":
        return "triton" if dev.type == "cuda" and triton_available() else "torch"
    # backend == "triton"
    if not triton_available():
        raise RuntimeError(
            "backend='triton' needs Triton: pip install 'scaling-harness[kernels]' (or use 'auto'/'torch')"
        )
    if dev.type == "cuda":
        return "triton"
    if dev.type == "cpu":
        if not interpreter_requested():
            raise RuntimeError(
                "backend='triton' on a CPU tensor needs the Triton interpreter: set TRITON_INTERPRET=1 before "
                "the kernels are first used (or use backend='auto'/'torch')"
            )
        return "triton"
    raise RuntimeError(f"backend='triton' supports CUDA tensors (or CPU under TRITON_INTERPRET=1), not {dev.type}")


def _kernel_module(name: str, device: torch.device):
    """Import ``kernels.<name>`` and check its kernels were built for the right mode: a module imported
    without the interpreter cannot run CPU tensors (Triton reads TRITON_INTERPRET at decoration time)."""
    loaded = f"{__package__}.{name}" in sys.modules
    mod = importlib.import_module(f".{name}", __package__)
    if device.type == "cpu" and not mod.INTERPRETED:
        when = "before it was set" if loaded else "without it"
        raise RuntimeError(
            f"kernels.{name} was imported {when}: TRITON_INTERPRET=1 must be set before the kernels are first "
            "imported to run them on CPU tensors"
        )
    return mod


def layer_norm(x, weight, bias, eps: float = 1e-5, backend: str = "auto"):
    """LayerNorm over the last dimension of ``x`` (``weight``/``bias`` of shape (N,) or None)."""
    if resolve_backend(backend, x.device) == "torch":
        return layer_norm_ref(x, weight, bias, eps)
    return _kernel_module("norms", x.device).layer_norm(x, weight, bias, eps)


def rms_norm(x, weight, eps: float = 1e-6, backend: str = "auto"):
    """RMSNorm over the last dimension of ``x``: ``x / sqrt(mean(x^2) + eps) * weight``."""
    if resolve_backend(backend, x.device) == "torch":
        return rms_norm_ref(x, weight, eps)
    return _kernel_module("norms", x.device).rms_norm(x, weight, eps)


def linear_cross_entropy(hidden, weight, targets, bias=None, backend: str = "auto"):
    """Mean cross-entropy (fp32 scalar) of ``hidden @ weight.T + bias`` against ``targets``; ``hidden``
    (..., d), ``weight`` (V, d), ``targets`` (...,) with -100 ignored. The Triton path never holds more
    than one chunk of logits; the torch path is the eager reference (full logits)."""
    if resolve_backend(backend, hidden.device) == "torch":
        return linear_cross_entropy_ref(hidden, weight, targets, bias)
    return _kernel_module("cross_entropy", hidden.device).linear_cross_entropy(hidden, weight, targets, bias)
