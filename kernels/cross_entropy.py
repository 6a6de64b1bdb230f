"""Cross-entropy fused with the output projection, chunked over tokens: the ``(T, V)`` logits are never
materialised, only one ``(chunk, V)`` block at a time.

Forward and backward both happen in the forward pass (the approach Liger-Kernel takes for its fused
linear cross-entropy; this is an independent implementation). For each chunk of ``chunk`` tokens:

1. ``logits = hidden[chunk] @ weight.T (+ bias)`` with a PyTorch matmul (cuBLAS on a GPU);
2. one Triton program per token makes two passes over its row of logits: an online softmax (running max
   and rescaled sum, ``BLOCK_V`` columns at a time) gives the log-sum-exp and the token's loss; the
   second pass overwrites the row, in place, with ``d loss / d logits = (softmax - onehot) / n_valid``;
3. the gradient of the logits, still in the chunk buffer, is multiplied back: ``grad_hidden[chunk] =
   dlogits @ weight``, ``grad_weight += dlogits.T @ hidden[chunk]``, ``grad_bias += dlogits.sum(0)``.

The backward then only scales the stored gradients by the incoming gradient of the loss (usually 1).
Memory: one logits chunk (``chunk x V`` in the input dtype) + ``grad_hidden`` (``T x d``) +
``grad_weight`` (``V x d``), instead of several ``T x V`` tensors (logits, their fp32 copy, softmax and
its gradient) for the eager ``F.cross_entropy(F.linear(h, W).float(), y)``.

Numerics: the logits of a chunk are in the input dtype (as in the eager reference, which upcasts them
after the matmul); softmax and loss are computed in fp32; ``grad_weight`` is accumulated across chunks in
the weight's dtype (fp32 accumulation inside each matmul). Targets equal to ``ignore_index`` (-100) add
nothing to loss or gradients and are left out of the mean. Targets outside ``[0, V)`` are not checked
(that would need a device sync) and give undefined results.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import cdiv, next_power_of_2

INTERPRETED: bool = bool(triton.knobs.runtime.interpret)
IGNORE_INDEX = -100
MIN_CHUNK = 1024


@triton.jit
def _ce_rows_kernel(
    LOGITS, stride_row, TARGETS, LOSS, SCALE,
    V, ignore_index,
    COMPUTE_GRAD: tl.constexpr, BLOCK_V: tl.constexpr,
):  # fmt: skip
    """Per row: loss = logsumexp(logits) - logits[target]; optionally overwrite the row with
    (softmax - onehot(target)) * SCALE."""
    row = tl.program_id(0).to(tl.int64)
    ptr = LOGITS + row * stride_row
    cols = tl.arange(0, BLOCK_V)
    target = tl.load(TARGETS + row)
    if target == ignore_index:
        tl.store(LOSS + row, 0.0)
        if COMPUTE_GRAD:
            for start in range(0, V, BLOCK_V):
                idx = start + cols
                tl.store(ptr + idx, tl.zeros((BLOCK_V,), dtype=tl.float32).to(LOGITS.dtype.element_ty), mask=idx < V)
        return
    # pass 1: online softmax statistics
    m = float("-inf")
    d = 0.0
    for start in range(0, V, BLOCK_V):
        idx = start + cols
        x = tl.load(ptr + idx, mask=idx < V, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        d = d * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(d)
    x_target = tl.load(ptr + target).to(tl.float32)
    tl.store(LOSS + row, lse - x_target)
    # pass 2: gradient of the (scaled) loss w.r.t. the logits, written over them
    if COMPUTE_GRAD:
        scale = tl.load(SCALE)
        for start in range(0, V, BLOCK_V):
            idx = start + cols
            mask = idx < V
            x = tl.load(ptr + idx, mask=mask, other=float("-inf")).to(tl.float32)
            p = tl.exp(x - lse)
            p = tl.where(idx == target, p - 1.0, p)
            tl.store(ptr + idx, (p * scale).to(LOGITS.dtype.element_ty), mask=mask)


def _block_v(V: int, device: torch.device) -> int:
    cap = 4096 if device.type == "cuda" and not INTERPRETED else 1024
    return min(cap, next_power_of_2(V))


def cross_entropy_rows_(logits: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor | None,
                        ignore_index: int = IGNORE_INDEX, out: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Per-row loss (fp32, written to ``out`` if given) of ``logits`` (rows, V; unit stride along V)
    against ``targets``. If ``scale`` (a one-element fp32 tensor) is given, ``logits`` is overwritten with
    ``(softmax - onehot) * scale`` (zeros for ignored rows)."""
    n, V = logits.shape
    if logits.stride(-1) != 1:
        raise ValueError("logits must have unit stride along the vocabulary")
    loss = torch.empty(n, dtype=torch.float32, device=logits.device) if out is None else out
    if loss.shape != (n,) or loss.dtype != torch.float32 or not loss.is_contiguous():
        raise ValueError("out must be a contiguous fp32 tensor of one element per row")
    if n == 0:
        return loss
    BLOCK_V = _block_v(V, logits.device)
    _ce_rows_kernel[(n,)](
        logits, logits.stride(0), targets, loss, scale if scale is not None else loss,
        V, ignore_index,
        COMPUTE_GRAD=scale is not None, BLOCK_V=BLOCK_V,
        num_warps=16 if BLOCK_V >= 4096 else 8 if BLOCK_V >= 1024 else 4,
    )  # fmt: skip
    return loss


def default_chunk(T: int, V: int, d: int) -> int:
    """Tokens per chunk: a logits chunk (chunk x V) about the size of the hidden states (T x d), as
    Liger-Kernel sizes it, but at least ``MIN_CHUNK`` tokens (at most T): fewer, larger chunks keep the
    matmuls efficient and mean fewer rounding steps when grad_weight is accumulated in bf16/fp16, while
    ``MIN_CHUNK x V`` stays far below the eager loss's several ``T x V`` tensors."""
    liger_like = next_power_of_2(cdiv(T, cdiv(V, d)))
    return max(1, min(T, max(MIN_CHUNK, liger_like)))


def _forward(hidden, weight, targets, bias, ignore_index, chunk, need_gh, need_gw, need_gb):
    T, _ = hidden.shape
    V = weight.shape[0]
    device = hidden.device
    need_grad = need_gh or need_gw or need_gb
    n_valid = (targets != ignore_index).sum()
    # 1 / n_valid as a device tensor read by the kernel: no host sync
    scale = (1.0 / n_valid.clamp(min=1).to(torch.float32)).reshape(1) if need_grad else None
    loss_rows = torch.empty(T, dtype=torch.float32, device=device)
    grad_h = torch.empty_like(hidden, memory_format=torch.contiguous_format) if need_gh else None
    grad_w = torch.zeros_like(weight, memory_format=torch.contiguous_format) if need_gw else None
    grad_b = torch.zeros(V, dtype=torch.float32, device=device) if need_gb else None
    n_chunks = 0
    for start in range(0, T, chunk):
        end = min(start + chunk, T)
        h_c = hidden[start:end]
        logits = torch.nn.functional.linear(h_c, weight, bias)  # (chunk, V), input dtype
        cross_entropy_rows_(logits, targets[start:end], scale, ignore_index, out=loss_rows[start:end])
        if need_gh:
            torch.mm(logits, weight, out=grad_h[start:end])
        if need_gw:
            grad_w.addmm_(logits.t(), h_c)
        if need_gb:
            grad_b += logits.sum(0, dtype=torch.float32)
        del logits
        n_chunks += 1
    loss = loss_rows.sum() / n_valid.to(torch.float32)
    if grad_b is not None:
        grad_b = grad_b.to(bias.dtype)
    return loss, grad_h, grad_w, grad_b, n_chunks


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, bias, ignore_index, chunk, needs):
        loss, gh, gw, gb, n_chunks = _forward(hidden, weight, targets, bias, ignore_index, chunk, *needs)
        ctx.save_for_backward(gh, gw, gb)
        ctx.n_chunks = n_chunks
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        gh, gw, gb = ctx.saved_tensors
        # in place: the stored gradients are used once (a second backward through the same graph fails
        # the saved-tensor version check instead of silently scaling twice)
        grads = [g.mul_(grad_loss.to(g.dtype)) if g is not None else None for g in (gh, gw, gb)]
        return grads[0], grads[1], None, grads[2], None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk: int | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``targets`` (fp32 scalar), computed
    ``chunk`` tokens at a time without materialising the logits. ``hidden`` is (..., d), ``weight`` (V, d),
    ``targets`` (...,) integer class indices; ``chunk`` defaults to ``default_chunk(T, V, d)``."""
    d = hidden.shape[-1]
    hidden2 = hidden.reshape(-1, d)
    targets2 = targets.reshape(-1).contiguous()
    T, V = hidden2.shape[0], weight.shape[0]
    if weight.ndim != 2 or weight.shape[1] != d:
        raise ValueError(f"weight must be (V, {d}), got {tuple(weight.shape)}")
    if targets2.shape[0] != T:
        raise ValueError(f"{T} hidden rows but {targets2.shape[0]} targets")
    if bias is not None and bias.shape != (V,):
        raise ValueError(f"bias must be ({V},), got {tuple(bias.shape)}")
    if chunk is None:
        chunk = default_chunk(T, V, d)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    device_type = hidden2.device.type
    if torch.is_autocast_enabled(device_type):
        # run the matmuls in the autocast dtype, as F.linear would, then keep autocast out of the Function
        dt = torch.get_autocast_dtype(device_type)
        hidden2, weight = hidden2.to(dt), weight.to(dt)
        bias = bias.to(dt) if bias is not None else None
    grad_on = torch.is_grad_enabled()
    needs = (
        grad_on and hidden2.requires_grad,
        grad_on and weight.requires_grad,
        grad_on and bias is not None and bias.requires_grad,
    )
    with torch.autocast(device_type, enabled=False):
        return _LinearCrossEntropy.apply(hidden2, weight, targets2, bias, ignore_index, chunk, needs)
