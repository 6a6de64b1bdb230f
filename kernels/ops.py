"""Dispatch between the Triton kernels and plain PyTorch: the one place that decides which runs.

``backend`` is a ``kernels`` setting; :func:`resolve_backend` says what it means for a tensor's device:

* ``"torch"``: always plain PyTorch (``kernels.reference``, and for the CPU training loss the chunked
  ``kernels.chunked``, equal to the reference up to float32 rounding);
* ``"auto"``: Triton for CUDA tensors when Triton imports, else PyTorch. Never the Triton interpreter: on
  CPU, "auto" is PyTorch even under ``TRITON_INTERPRET=1``;
* ``"triton"``: Triton, or :class:`KernelUnavailable` where it cannot run: without an importable Triton, on
  a device other than CUDA or CPU, and on CPU unless ``TRITON_INTERPRET=1`` was set before Triton and the
  kernel modules were first imported (the Triton interpreter: correct but slow, meant for tests).

Every "cannot run here" is a :class:`KernelUnavailable` (a ``RuntimeError``) with the reason in its message;
an unknown setting is a ``ValueError``. ``harness.models.resolve_kernels`` turns both into the harness's
``UserError`` with the same message.

Importing this module is cheap: it does not import Triton; the kernel modules are imported on first use.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys

import torch

from . import chunked
from ._common import interpreter_requested
from .reference import layer_norm_ref, linear_cross_entropy_ref, rms_norm_ref

BACKENDS = ("auto", "triton", "torch")
_KERNEL_MODULES = ("norms", "cross_entropy")
_ALTERNATIVE = "; use 'auto' or 'torch'"

__all__ = [
    "BACKENDS",
    "KernelUnavailable",
    "layer_norm",
    "linear_cross_entropy",
    "resolve_backend",
    "rms_norm",
    "token_cross_entropy",
    "triton_available",
]


class KernelUnavailable(RuntimeError):
    """The Triton kernels were asked for (``"triton"``) where they cannot run; the message says why."""


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
    """What ``backend`` means for a tensor on ``device``: ``"triton"`` or ``"torch"``.

    Raises ``ValueError`` for an unknown setting and :class:`KernelUnavailable` if ``backend="triton"``
    cannot run there (the rules are in the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"kernel backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch"
    dev = torch.device(device)
    if backend == "auto":
        return "triton" if dev.type == "cuda" and triton_available() else "torch"
    # backend == "triton"
    if not triton_available():
        raise KernelUnavailable(_why("Triton is not importable (pip install 'scaling-harness[kernels]')"))
    if dev.type == "cuda":
        return "triton"
    if dev.type != "cpu":
        raise KernelUnavailable(
            _why(f"they run on CUDA tensors (or CPU ones under TRITON_INTERPRET=1), not {dev.type}")
        )
    if not interpreter_requested():
        raise KernelUnavailable(
            _why(
                "on CPU they need the Triton interpreter, TRITON_INTERPRET=1 set before Triton and the kernels are "
                "first imported (without it they run on CUDA tensors only)"
            )
        )
    problem = _interpreter_problem(*(n for n in _KERNEL_MODULES if f"{__package__}.{n}" in sys.modules))
    if problem:
        raise KernelUnavailable(problem)
    return "triton"


def _why(reason: str) -> str:
    return f"the Triton kernels cannot run here: {reason}{_ALTERNATIVE}"


def _interpreter_problem(*loaded: str) -> str | None:
    """Why the interpreter cannot run the kernels of the already imported modules ``kernels.<loaded>`` on CPU
    tensors, or None. Triton reads TRITON_INTERPRET when a function is decorated: its own helpers (``tl.sum``
    ...) when Triton is first imported, our kernels when their module is. Set any later, a kernel is compiled
    for the GPU, or is interpreted but calls compiled helpers and fails inside ("Cannot call @triton.jit'd
    outside of the scope of a kernel")."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    helper = getattr(getattr(tl, "standard", None), "sum", None)  # None: a Triton without it; cannot tell
    if helper is not None and not isinstance(helper, InterpretedFunction):
        return _why(
            "Triton was imported before TRITON_INTERPRET=1 was set, and it must be set before Triton is first "
            "imported to run the kernels on CPU tensors"
        )
    for name in loaded:
        if not sys.modules[f"{__package__}.{name}"].INTERPRETED:
            return _why(
                f"kernels.{name} was imported before TRITON_INTERPRET=1 was set, and TRITON_INTERPRET=1 must be "
                "set before the kernels are first imported to run them on CPU tensors"
            )
    return None


def _kernel_module(name: str, device: torch.device):
    """Import ``kernels.<name>``; on a CPU tensor, check its kernels and Triton's helpers were built for the
    interpreter (a module imported without it cannot run CPU tensors)."""
    mod = importlib.import_module(f".{name}", __package__)
    if device.type == "cpu":
        problem = _interpreter_problem(name)
        if problem:
            raise KernelUnavailable(problem)
    return mod


def layer_norm(x, weight, bias, eps: float = 1e-5, backend: str = "auto"):
    """LayerNorm over the last dimension of ``x`` (``weight``/``bias`` of shape (N,) or None)."""
    if resolve_backend(backend, x.device) == "torch":
        return layer_norm_ref(x, weight, bias, eps)
    return _kernel_module("norms", x.device).layer_norm(x, weight, bias, eps)


def rms_norm(x, weight, eps: float = 1e-6, backend: str = "auto"):
    """RMSNorm over the last dimension of ``x``: ``x / sqrt(mean(x^2) + eps) * weight``, statistics in fp32."""
    if resolve_backend(backend, x.device) == "torch":
        return rms_norm_ref(x, weight, eps)
    return _kernel_module("norms", x.device).rms_norm(x, weight, eps)


def linear_cross_entropy(hidden, weight, targets, bias=None, backend: str = "auto"):
    """Mean cross-entropy (fp32 scalar) of ``hidden @ weight.T + bias`` against ``targets``; ``hidden``
    (..., d), ``weight`` (V, d), ``targets`` (...,) with -100 ignored. The Triton path never holds more
    than one chunk of logits. The torch path is the chunked ``kernels.chunked`` loss for CPU fp32 training
    (where ``chunked.applies``), else the eager reference (full logits)."""
    if resolve_backend(backend, hidden.device) == "torch":
        hidden = hidden.reshape(-1, hidden.shape[-1])
        targets = targets.reshape(-1)
        if chunked.applies(hidden, weight, targets, bias):
            return chunked.linear_cross_entropy(hidden, weight, targets)
        return linear_cross_entropy_ref(hidden, weight, targets, bias)
    return _kernel_module("cross_entropy", hidden.device).linear_cross_entropy(hidden, weight, targets, bias)


def token_cross_entropy(hidden, weight, targets, bias=None, chunk_rows: int = 0):
    """Per-token cross-entropy of ``hidden @ weight.T + bias``, shaped like ``targets``: always plain PyTorch
    (``kernels.chunked.token_cross_entropy``, chunked over rows), since it serves evaluation, not training."""
    return chunked.token_cross_entropy(hidden, weight, targets, bias, chunk_rows)
