"""The operations a model routes through its ``kernels`` setting: LayerNorm, RMSNorm, output projection + loss.

A thin layer over :mod:`kernels.ops`, which holds the one rule for what a setting means (see its docstring):
``"torch"`` is plain PyTorch; ``"auto"`` is the Triton kernels for CUDA tensors when Triton imports, else
PyTorch; ``"triton"`` demands the kernels and is an error where they cannot run (on CPU it needs the Triton
interpreter, ``TRITON_INTERPRET=1``). :func:`resolve_kernels` applies the rule once per run and turns "cannot
run here" into a :class:`~harness.errors.UserError`. The model holds the result (``"triton"`` or ``"torch"``,
``LanguageModel.kernels_used``), and the functions below receive it.
"""

from __future__ import annotations

import torch

from kernels import ops as kernel_ops

from ..errors import UserError


def resolve_kernels(setting: str, device: torch.device | str) -> str:
    """What a ``kernels`` setting means on ``device``: ``"triton"`` or ``"torch"`` (``kernels.ops.resolve_backend``;
    a setting that cannot run there is a UserError with its message)."""
    try:
        return kernel_ops.resolve_backend(setting, device)
    except (kernel_ops.KernelUnavailable, ValueError) as exc:
        raise UserError(str(exc)) from None


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float, kernels: str):
    """LayerNorm over the last dimension (``F.layer_norm`` with ``"torch"``)."""
    return kernel_ops.layer_norm(x, weight, bias, eps, backend=kernels)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, kernels: str):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension (statistics in fp32, output in x's dtype)."""
    return kernel_ops.rms_norm(x, weight, eps, backend=kernels)


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, kernels: str
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``targets`` (logits never returned). With
    ``"torch"``, CPU fp32 training takes the chunked plain-PyTorch path of ``kernels.chunked``."""
    return kernel_ops.linear_cross_entropy(hidden, weight, targets, bias, backend=kernels)


def token_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, chunk_rows: int = 0
) -> torch.Tensor:
    """Per-token cross-entropy (``reduction="none"``) of ``hidden @ weight.T + bias``, shaped like ``targets``.

    Plain PyTorch whatever the ``kernels`` setting (evaluation only, never on the training path). Rows go
    through in chunks of ``chunk_rows`` (default: about 2^24 logits at a time), so the (tokens x vocab)
    logits never exist at once; the cross-entropy is taken in float32 as in :func:`linear_cross_entropy`.
    """
    return kernel_ops.token_cross_entropy(hidden, weight, targets, bias, chunk_rows)
