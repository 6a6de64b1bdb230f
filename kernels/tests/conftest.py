"""Kernel tests run on CUDA when there is a device, else on CPU under the Triton interpreter.

``TRITON_INTERPRET`` is read by Triton when a function is decorated: Triton's own helpers when Triton is
first imported, our kernels when ``kernels.norms`` / ``kernels.cross_entropy`` are. So it is set here, before
any test module imports either. An explicit ``TRITON_INTERPRET`` in the environment is left alone.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

HAS_TRITON = importlib.util.find_spec("triton") is not None


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None and not HAS_CUDA:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where the Triton kernels run in this session: CUDA if present, else CPU through the interpreter."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed (pip install 'scaling-harness[kernels]')")
    from kernels._common import interpreter_requested

    if HAS_CUDA and not interpreter_requested():
        return torch.device("cuda")
    if not interpreter_requested():
        pytest.skip("no CUDA device and TRITON_INTERPRET is not set")
    return torch.device("cpu")


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "") -> None:
    """Compare a kernel result (any dtype) with an fp32 ground truth: elementwise within ``tol`` relative,
    plus ``tol`` times the largest magnitude of the expected tensor (so tiny gradients are held to their
    own scale, not to an absolute floor)."""
    tol = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}[dtype]
    scale = max(expected.abs().max().item(), 1e-2)  # floor: an all-zero expectation allows roundoff
    torch.testing.assert_close(
        actual.float(), expected.float(), rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}"
    )
