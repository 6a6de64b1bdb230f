"""LayerNorm and RMSNorm in Triton, forward and backward, optionally fused with the residual add.

One kernel pair serves both norms (``IS_RMS`` is a compile-time switch):

* forward: one program per row. The row is loaded once (``BLOCK_N`` = next power of two of the
  hidden size, tail masked), statistics are computed in fp32, ``y`` is written in the input dtype and
  the per-row ``mean`` (LayerNorm only) and ``rstd`` are kept for the backward. With a residual, the
  kernel also writes ``s = x + residual`` (the new residual stream) and normalises ``s``, so the
  pre-norm transformer's add + norm is one pass over memory instead of three.
* backward: a fixed number of programs (a few per SM), each looping over a contiguous block of rows:
  it recomputes ``xhat`` from the saved input and statistics, writes ``dx`` (plus the gradient that
  flows into ``s`` directly, when ``s`` was used), and accumulates partial ``dweight``/``dbias`` in fp32
  registers; the partials (``programs x N``) are summed in PyTorch.

Importing this module imports Triton and decorates the kernels; set ``TRITON_INTERPRET=1`` before
importing it to run them on CPU tensors (``INTERPRETED`` records which mode the kernels were built in).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import next_power_of_2, num_programs, num_warps_for

INTERPRETED: bool = bool(triton.knobs.runtime.interpret)
MAX_N = 65536  # one row must fit in one block (registers); larger hidden sizes are not supported


@triton.jit
def _norm_fwd_kernel(
    X, R, S, Y, W, B, MEAN, RSTD,
    stride_x, stride_r, stride_s, stride_y,
    N, eps,
    IS_RMS: tl.constexpr, HAS_RES: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RES:
        r = tl.load(R + row * stride_r + cols, mask=mask, other=0.0)
        # round the sum to the stream dtype first, exactly as the unfused ``x + residual`` would
        s = (x.to(tl.float32) + r.to(tl.float32)).to(S.dtype.element_ty)
        tl.store(S + row * stride_s + cols, s, mask=mask)
        x = s
    x = x.to(tl.float32)
    if IS_RMS:
        var = tl.sum(x * x, axis=0) / N
        rstd = 1.0 / tl.sqrt(var + eps)
        xhat = x * rstd
    else:
        mean = tl.sum(x, axis=0) / N
        xc = tl.where(mask, x - mean, 0.0)
        var = tl.sum(xc * xc, axis=0) / N
        rstd = 1.0 / tl.sqrt(var + eps)
        xhat = xc * rstd
        tl.store(MEAN + row, mean)
    tl.store(RSTD + row, rstd)
    y = xhat
    if HAS_W:
        y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_B:
        y = y + tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _norm_bwd_kernel(
    DY, DS, X, W, MEAN, RSTD, DX, DW_PART, DB_PART,
    stride_dy, stride_ds, stride_x, stride_dx,
    M, N, rows_per_program,
    IS_RMS: tl.constexpr, HAS_DS: tl.constexpr, HAS_W: tl.constexpr, COMPUTE_DW: tl.constexpr,
    COMPUTE_DB: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    row_start = pid.to(tl.int64) * rows_per_program
    if HAS_W:
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    if COMPUTE_DW:
        dw_acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    if COMPUTE_DB:
        db_acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for i in range(0, rows_per_program):
        row = row_start + i
        row_ok = row < M
        m = mask & row_ok
        x = tl.load(X + row * stride_x + cols, mask=m, other=0.0).to(tl.float32)
        dy = tl.load(DY + row * stride_dy + cols, mask=m, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + row, mask=row_ok, other=0.0)
        if IS_RMS:
            xhat = x * rstd
        else:
            mean = tl.load(MEAN + row, mask=row_ok, other=0.0)
            xhat = tl.where(m, (x - mean) * rstd, 0.0)
        if HAS_W:
            wdy = dy * w
        else:
            wdy = dy
        c1 = tl.sum(xhat * wdy, axis=0) / N
        if IS_RMS:
            dx = (wdy - xhat * c1) * rstd
        else:
            c2 = tl.sum(wdy, axis=0) / N
            dx = (wdy - (xhat * c1 + c2)) * rstd
        if HAS_DS:
            dx = dx + tl.load(DS + row * stride_ds + cols, mask=m, other=0.0).to(tl.float32)
        tl.store(DX + row * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=m)
        if COMPUTE_DW:
            dw_acc += dy * xhat
        if COMPUTE_DB:
            db_acc += dy
    if COMPUTE_DW:
        tl.store(DW_PART + pid * N + cols, dw_acc, mask=mask)
    if COMPUTE_DB:
        tl.store(DB_PART + pid * N + cols, db_acc, mask=mask)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """View as (rows, N) with unit stride along N (copies only if the last dim is strided)."""
    t2 = t.reshape(-1, t.shape[-1])
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


class _NormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, weight, bias, eps, is_rms):
        N = x.shape[-1]
        if N > MAX_N:
            raise ValueError(f"hidden size {N} exceeds the fused norm's limit of {MAX_N}")
        if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype):
            raise ValueError("residual must have the same shape and dtype as x")
        for name, p in (("weight", weight), ("bias", bias)):
            if p is not None and p.shape != (N,):
                raise ValueError(f"{name} must have shape ({N},), got {tuple(p.shape)}")
        x2 = _rows(x)
        M = x2.shape[0]
        r2 = _rows(residual) if residual is not None else None
        w = weight.contiguous() if weight is not None else None
        b = bias.contiguous() if bias is not None else None
        y = torch.empty((M, N), dtype=x.dtype, device=x.device)
        s = torch.empty((M, N), dtype=x.dtype, device=x.device) if r2 is not None else None
        rstd = torch.empty(M, dtype=torch.float32, device=x.device)
        mean = rstd if is_rms else torch.empty(M, dtype=torch.float32, device=x.device)
        BLOCK_N = next_power_of_2(N)
        if M > 0:
            _norm_fwd_kernel[(M,)](
                x2, r2 if r2 is not None else x2, s if s is not None else y, y,
                w if w is not None else y, b if b is not None else y, mean, rstd,
                x2.stride(0), r2.stride(0) if r2 is not None else 0, N, N,
                N, eps,
                IS_RMS=is_rms, HAS_RES=r2 is not None, HAS_W=w is not None, HAS_B=b is not None,
                BLOCK_N=BLOCK_N, num_warps=num_warps_for(BLOCK_N),
            )  # fmt: skip
        ctx.save_for_backward(s if s is not None else x2, w, b, mean, rstd)
        ctx.is_rms, ctx.has_res, ctx.shape = is_rms, r2 is not None, x.shape
        ctx.set_materialize_grads(False)
        y = y.view(x.shape)
        return (y, s.view(x.shape)) if s is not None else y

    @staticmethod
    def backward(ctx, dy, ds=None):
        xs, w, b, mean, rstd = ctx.saved_tensors
        M, N = xs.shape
        if dy is None:  # only the residual output was used
            dy = torch.zeros((M, N), dtype=xs.dtype, device=xs.device)
        dy2 = _rows(dy)
        ds2 = _rows(ds) if ds is not None else None
        dx = torch.empty((M, N), dtype=xs.dtype, device=xs.device)
        G = num_programs(xs.device, M, INTERPRETED)
        rows_per_program = -(-M // G) if M else 0
        need_dw = w is not None and ctx.needs_input_grad[2]
        need_db = b is not None and ctx.needs_input_grad[3]
        dw_part = torch.zeros((G, N), dtype=torch.float32, device=xs.device) if need_dw else None
        db_part = torch.zeros((G, N), dtype=torch.float32, device=xs.device) if need_db else None
        BLOCK_N = next_power_of_2(N)
        if M > 0:
            _norm_bwd_kernel[(G,)](
                dy2, ds2 if ds2 is not None else dy2, xs, w if w is not None else dx, mean, rstd, dx,
                dw_part if dw_part is not None else rstd, db_part if db_part is not None else rstd,
                dy2.stride(0), ds2.stride(0) if ds2 is not None else 0, xs.stride(0), dx.stride(0),
                M, N, rows_per_program,
                IS_RMS=ctx.is_rms, HAS_DS=ds2 is not None, HAS_W=w is not None, COMPUTE_DW=need_dw,
                COMPUTE_DB=need_db, BLOCK_N=BLOCK_N, num_warps=num_warps_for(BLOCK_N),
            )  # fmt: skip
        dw = dw_part.sum(0).to(w.dtype) if need_dw else None
        db = db_part.sum(0).to(b.dtype) if need_db else None
        dx = dx.view(ctx.shape)
        dres = None
        if ctx.has_res and ctx.needs_input_grad[1]:
            dres = dx.clone() if ctx.needs_input_grad[0] else dx
        return dx, dres, dw, db, None, None


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5, residual=None):
    """Triton LayerNorm over the last dim; with ``residual`` returns ``(norm(x + residual), x + residual)``."""
    return _NormFunction.apply(x, residual, weight, bias, eps, False)


def rms_norm(x, weight=None, eps: float = 1e-6, residual=None):
    """Triton RMSNorm over the last dim; with ``residual`` returns ``(norm(x + residual), x + residual)``."""
    return _NormFunction.apply(x, residual, weight, None, eps, True)
