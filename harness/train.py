"""One training run = one :class:`~harness.config.TrainConfig`. ``train(cfg, out)`` writes one JSON run record.

The run is deterministic on CPU: the same config, seed, data and thread count give a bit-identical record
(learning curve included) apart from ``record["timing"]``, which holds every wall-clock-dependent field, and
``record["sha256"]``, the content hash that covers it. Batches are a pure function of the step (see
:class:`harness.data.stream.SequenceSampler`), so a run resumed from its last checkpoint produces the same
record as one that was never interrupted. ``record["loss"]["val_by_position"]`` is the final validation loss
at each context position (n_ctx floats).

The trainer knows no model by name: it asks the model for its parameter groups
(:meth:`~harness.models.base.LanguageModel.param_groups`) and its training loss
(:meth:`~harness.models.base.LanguageModel.training_loss`, the cross-entropy plus any auxiliary terms, which
are logged on their own). Record layout and identity are :mod:`harness.records`'.

Layout under ``out``: ``runs/<run_id>.json`` (the record, written by atomic rename) and
``checkpoints/<run_id>.pt`` (written atomically while training, deleted when the record is written).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import records
from .config import SCHEDULES, TrainConfig
from .data.stream import SequenceSampler, TokenData, eval_windows
from .errors import UserError
from .models import ModelCounts, build_model, model_counts, resolve_kernels
from .provenance import device_info, git_commit, package_versions, write_json_atomic
from .recipes import kaplan_lr
from .runlock import RunLock

__all__ = ["SCHEDULES", "TrainConfig", "eval_schedule", "kaplan_lr", "lr_at", "run_key", "train"]

DIVERGENCE_FACTOR = 1.5  # a training loss above 1.5 ln(vocab) (worse than uniform) counts as divergence


# ------------------------------------------------------------------------------------------ the recipe
def lr_at(step: int, steps: int, peak: float, warmup_steps: int, final_ratio: float) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``peak`` to ``final_ratio * peak`` at step ``steps``
    (the schedule's length: the run's, or a longer horizon the run stops before)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    low = final_ratio * peak
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * min(1.0, progress)))


def eval_schedule(steps: int, points: int) -> list[int]:
    """Steps (after that many updates) at which to evaluate: 0, ``points`` log-spaced ones, and ``steps``."""
    logs = np.logspace(0, math.log10(steps), max(1, points)) if steps > 1 else np.array([1.0])
    return sorted({0, steps, *(round(x) for x in logs)})


def resolve_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise UserError("device='cuda' but no CUDA device is available")
    return setting


def check_budget(cfg: TrainConfig, data: TokenData) -> float:
    """Epochs of the training split the budget implies; a UserError if above ``cfg.max_epochs``."""
    m = cfg.model
    sampler = SequenceSampler(data.train, m.n_ctx, cfg.batch_tokens // m.n_ctx, cfg.seed)
    epochs = sampler.epochs_for(cfg.steps)
    if epochs > cfg.max_epochs + 1e-12:
        raise UserError(
            f"token budget {cfg.steps * cfg.batch_tokens:,} is larger than the training split "
            f"({sampler.tokens_per_epoch:,} tokens in {m.n_ctx}-token windows): that is {epochs:.2f} epochs. "
            f"Use a smaller budget or set max_epochs >= {math.ceil(epochs * 100) / 100} to repeat data on purpose"
        )
    return epochs


def run_identity(cfg: TrainConfig, data: TokenData) -> dict:
    """What a run is (its canonical config, device resolved, and its data's fingerprint); see harness.records."""
    return records.identity(replace(cfg, device=resolve_device(cfg.device)).canonical(), data.fingerprint())


def run_key(cfg: TrainConfig, data: TokenData) -> str:
    """Content address of a run: the sha256 of :func:`run_identity`."""
    return records.run_id_of(run_identity(cfg, data))


@dataclass(frozen=True)
class RunPlan:
    """The settings a config resolves to for its data and device (written to the record as ``resolved``)."""

    device: str
    counts: ModelCounts
    peak_lr: float
    batch_size: int
    steps: int
    warmup_steps: int
    final_lr_ratio: float
    epochs: float
    eval_steps: list[int]
    schedule_steps: int  # the cosine's length: ``steps``, or the horizon's when the config sets one

    @classmethod
    def of(cls, cfg: TrainConfig, data: TokenData) -> RunPlan:
        counts = model_counts(cfg.model)
        steps = cfg.steps
        return cls(
            device=cfg.device,
            counts=counts,
            peak_lr=cfg.lr if cfg.lr is not None else kaplan_lr(counts.n_kaplan),
            batch_size=cfg.batch_tokens // cfg.model.n_ctx,
            steps=steps,
            warmup_steps=max(1, round(cfg.warmup * steps)) if cfg.warmup > 0 else 0,
            final_lr_ratio=SCHEDULES[cfg.schedule],
            epochs=check_budget(cfg, data),
            eval_steps=eval_schedule(steps, cfg.eval_points),
            schedule_steps=steps if cfg.horizon_tokens is None else cfg.horizon_tokens // cfg.batch_tokens,
        )

    def lr(self, step: int) -> float:
        return lr_at(step, self.schedule_steps, self.peak_lr, self.warmup_steps, self.final_lr_ratio)


@dataclass
class RunState:
    """Everything a checkpoint holds besides the weights and optimiser state (plain Python types only)."""

    step: int = 0
    curve: dict[str, list] = field(
        default_factory=lambda: {"step": [], "tokens": [], "lr": [], "train_loss": [], "val_loss": []}
    )
    losses: list[float] = field(default_factory=list)  # training cross-entropy of every step
    aux: dict[str, list[float]] = field(default_factory=dict)  # auxiliary loss terms of every step, by name
    resumed_from: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    train_s: float = 0.0


# ------------------------------------------------------------------------------------------ helpers
def open_run_data(cfg: TrainConfig, data: TokenData | None, log: Callable[[str], None]) -> TokenData:
    if data is None:
        from .data.corpus import open_data

        data = open_data(cfg.data, cfg.tokenizer, cfg.model.vocab_size, log=log)
    if data.vocab_size != cfg.model.vocab_size:
        raise UserError(
            f"vocabulary mismatch: the data ({data.where}) has {data.vocab_size} token ids but "
            f"model.vocab_size is {cfg.model.vocab_size}"
        )
    return data


def make_model(cfg: TrainConfig, device: str):
    """The model for ``cfg`` (initialised from ``cfg.seed``) and its AdamW over the model's parameter groups."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    model.kernels_used = resolve_kernels(cfg.model.kernels, device)
    model.to(device)
    opt = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=0.0, betas=cfg.betas, eps=1e-8, foreach=True)
    return model, opt


def autocast_for(device: str, precision: str):
    dtype = torch.bfloat16 if precision == "bf16" else None
    return lambda: torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None)


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int, device: str):
    for i in range(0, len(x), batch_size):
        yield torch.from_numpy(x[i : i + batch_size]).to(device), torch.from_numpy(y[i : i + batch_size]).to(device)


@torch.no_grad()
def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int, device: str, autocast) -> float:
    """Mean validation cross-entropy of ``model`` over the windows ``x``, ``y``."""
    model.eval()
    total, count = 0.0, 0
    for xb, yb in _batches(x, y, batch_size, device):
        with autocast():
            loss = model(xb, yb)
        total += float(loss) * yb.numel()
        count += yb.numel()
    model.train()
    return total / count


@torch.no_grad()
def evaluate_by_position(model, x: np.ndarray, y: np.ndarray, batch_size: int, device: str, autocast) -> list[float]:
    """Mean cross-entropy at each context position 0..n_ctx-1 over the validation windows ``x``, ``y``.

    Position ``t`` is the loss of predicting ``y[:, t]`` from ``x[:, :t+1]``. Uses the model's per-token path
    (:meth:`LanguageModel.token_losses`) in plain PyTorch: the model's ``kernels_used`` is set to ``"torch"``
    for the pass and restored after. Every window is full, so the mean over positions is the mean over all
    validation tokens, i.e. :func:`evaluate`'s loss up to float rounding. Sums are float64, in a fixed order.
    """
    return position_stats(model, x, y, batch_size, device, autocast)[0]


@torch.no_grad()
def position_stats(model, x, y, batch_size: int, device: str, autocast) -> tuple[list[float], list[float]]:
    """Per-position mean loss (as :func:`evaluate_by_position`) and its standard error over the windows
    (sample standard deviation / sqrt(windows)), which says how well the validation set pins each position."""
    model.eval()
    kernels = model.kernels_used
    model.kernels_used = "torch"
    try:
        total = np.zeros(y.shape[1], dtype=np.float64)
        squares = np.zeros(y.shape[1], dtype=np.float64)
        for xb, yb in _batches(x, y, batch_size, device):
            with autocast():
                losses = model.token_losses(xb, yb).double()
            total += losses.sum(dim=0).cpu().numpy()
            squares += (losses * losses).sum(dim=0).cpu().numpy()
    finally:
        model.kernels_used = kernels
        model.train()
    n = len(y)
    mean = total / n
    var = np.maximum(squares / n - mean * mean, 0.0) * n / max(1, n - 1)
    return [float(v) for v in mean], [float(v) for v in np.sqrt(var / n)]


def save_checkpoint(path: Path, run_id: str, model, opt, state: RunState) -> None:
    """Weights, optimiser state and :class:`RunState`, written atomically (tensors and plain types only, so
    :func:`load_checkpoint` can read it with ``weights_only=True``: a checkpoint cannot run code)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"run_id": run_id, "model": model.state_dict(), "opt": opt.state_dict(), "state": vars(state)}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, run_id: str, model, opt, device: str, log) -> RunState | None:
    """Restore ``model`` and ``opt`` from ``path`` and return the run's state; None (after moving the file
    aside) when the checkpoint is unreadable, so the run starts again instead of the sweep aborting."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        if ckpt["run_id"] != run_id:
            raise UserError(f"checkpoint {path} belongs to run {ckpt['run_id'][:16]}, not {run_id[:16]}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        return RunState(**ckpt["state"])
    except UserError:
        raise
    except Exception as exc:  # truncated, garbage or foreign file: keep it for inspection, train afresh
        aside = path.with_name(path.name + ".unreadable")
        os.replace(path, aside)
        log(f"warning: checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); moved to {aside}, restarting")
        return None


def check_step(loss: float, gnorm, step: int, plan: RunPlan, diverge_at: float) -> str | None:
    """Why the run must stop after ``step`` (0-based), or None."""
    if not math.isfinite(loss) or (gnorm is not None and not math.isfinite(float(gnorm))):
        return f"non-finite loss or gradient at step {step + 1}"
    if loss > diverge_at and step >= plan.warmup_steps:
        return f"diverged: training loss {loss:.3g} > 1.5 ln(vocab) = {diverge_at:.3g} at step {step + 1}"
    return None


def _mean_since_last_eval(values: list[float], curve: dict, step: int) -> float | None:
    since = values[curve["step"][-1] if curve["step"] else 0 : step]
    return float(np.mean(since)) if since else None


def record_eval(state: RunState, step: int, val: float, cfg: TrainConfig, plan: RunPlan) -> None:
    """Append one evaluation (after ``step`` updates) to the learning curve."""
    c = state.curve
    c["tokens"].append(step * cfg.batch_tokens)
    c["lr"].append(plan.lr(max(0, step - 1)) if step else 0.0)
    c["train_loss"].append(_mean_since_last_eval(state.losses, c, step))
    for name, vals in state.aux.items():  # aligned with "step": None at evaluations before the term existed
        series = c.setdefault("aux", {}).setdefault(name, [None] * len(c["step"]))
        series.append(_mean_since_last_eval(vals, c, step))
    c["step"].append(step)
    c["val_loss"].append(val)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def make_record(cfg, ident, plan, state, data, model, evals, status, reason, by_position, started) -> dict:
    """The run record (see :func:`harness.records.build_record`) of a run that ended. ``evals``: the validation
    tokens of the curve's evaluations and of the final by-position one (None when it used the curve's)."""
    done = len(state.losses)
    tokens = done * cfg.batch_tokens
    tail = slice(-max(1, done // 10), None)
    finished = status == "finished"
    counts = plan.counts.to_dict()
    loss = {
        "train_final": float(np.mean(state.losses[tail])) if finished else None,
        "val_final": state.curve["val_loss"][-1] if finished else None,
        # mean validation cross-entropy at each context position 0..n_ctx-1 (final model; the curve's windows,
        # or the final_eval_tokens windows when the config asks for more)
        "val_by_position": by_position[0] if by_position else None,
    }
    if by_position:  # its standard error at each position, over the validation windows
        loss["val_by_position_se"] = by_position[1]
        if cfg.final_eval_tokens is not None:  # the final model's mean loss over those larger windows
            loss["val_final_full"] = float(np.mean(by_position[0]))
    if state.aux:
        loss["aux_final"] = {k: float(np.mean(v[tail])) if finished else None for k, v in state.aux.items()}
    per_s = (lambda x: x * tokens / state.train_s) if state.train_s > 0 else (lambda x: None)
    return records.build_record(
        ident=ident,
        status=status,
        reason=reason,
        config=cfg.to_dict(),
        resolved={
            "device": plan.device,
            "kernels": model.kernels_used,
            "peak_lr": plan.peak_lr,
            "batch_size": plan.batch_size,
            "steps": plan.steps,
            "warmup_steps": plan.warmup_steps,
            "final_lr_ratio": plan.final_lr_ratio,
            "epochs": plan.epochs,
            "eval_tokens": evals[0],
            **({"final_eval_tokens": evals[1]} if cfg.final_eval_tokens is not None else {}),
            "eval_steps": plan.eval_steps,
            **({"schedule_steps": plan.schedule_steps} if cfg.horizon_tokens is not None else {}),
        },
        model=cfg.model.to_dict(),
        counts=counts,
        tokens=tokens,
        steps_done=done,
        loss=loss,
        curve=state.curve,
        data=data.describe(),
        provenance={"git_commit": git_commit(), "packages": package_versions(), "device": device_info()},
        timing={
            "started_utc": started,
            "finished_utc": _utc_now(),
            "wall_s": state.wall_s,
            "train_s": state.train_s,
            "tokens_per_s": per_s(1.0),
            "flops_per_s_kaplan": per_s(counts["flops_per_token_kaplan"]),
            "flops_per_s_hoffmann": per_s(counts["flops_per_token_hoffmann"]),
            "threads": torch.get_num_threads(),
            "resumed_from_steps": state.resumed_from,
        },
    )


# ------------------------------------------------------------------------------------------ the loop
def train(
    cfg: TrainConfig,
    out: str | os.PathLike | None = None,
    *,
    data: TokenData | None = None,
    threads: int | None = None,
    checkpoint_every_s: float = 60.0,
    progress: Callable[[dict], None] | None = None,
    stop_after: int | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Run ``cfg`` and return its record (also written to ``out/runs/<id>.json`` when ``out`` is given).

    A finished record already in ``out`` is returned as is; a checkpoint there is resumed. While it trains,
    the run's lock in ``out`` is held: another process asking for the same run gets
    :class:`~harness.runlock.RunBusy` at once instead of training it a second time.
    ``stop_after`` (tests only) interrupts the run after that many steps, leaving its checkpoint.
    """
    return train_once(
        cfg,
        out,
        data=data,
        threads=threads,
        checkpoint_every_s=checkpoint_every_s,
        progress=progress,
        stop_after=stop_after,
        log=log,
    )[0]


def train_once(
    cfg: TrainConfig,
    out: str | os.PathLike | None = None,
    *,
    data: TokenData | None = None,
    log: Callable[[str], None] = lambda s: None,
    **loop,
) -> tuple[dict, bool]:
    """:func:`train`, also saying whether this call trained the run (False: its record was in ``out``, perhaps
    written by another process while this one was getting ready). ``loop``: train's other keywords."""
    if out is not None:
        records.check_writable(Path(out))  # before any work: a record that cannot be written is a run lost
    data = open_run_data(cfg, data, log)
    cfg = replace(cfg, device=resolve_device(cfg.device))
    ident = run_identity(cfg, data)
    run_id = records.run_id_of(ident)
    if out is None:
        return _train(cfg, data, ident, None, None, log=log, **loop), True
    record_path, ckpt_path = records.run_paths(out, run_id)
    if (done := records.cached_or_redo(record_path, log)) is not None:
        return done, False
    cfg.check_memory()  # a config that cannot run is refused before it takes (and leaves) a lock file
    RunPlan.of(cfg, data)
    with RunLock(out, run_id):  # RunBusy if another process trains this run now (two sweeps on one --out)
        if (done := records.cached_or_redo(record_path, log)) is not None:  # it finished in the meantime
            return done, False
        return _train(cfg, data, ident, record_path, ckpt_path, log=log, **loop), True


def _train(
    cfg: TrainConfig,
    data: TokenData,
    ident: dict,
    record_path: Path | None,
    ckpt_path: Path | None,
    *,
    threads: int | None = None,
    checkpoint_every_s: float = 60.0,
    progress: Callable[[dict], None] | None = None,
    stop_after: int | None = None,
    log: Callable[[str], None],
) -> dict:
    """The body of :func:`train` once the run's lock is held (or the run writes nothing)."""
    cfg.check_memory()  # a model or batch that cannot fit is refused with the estimate, before any allocation
    run_id = records.run_id_of(ident)
    plan = RunPlan.of(cfg, data)
    sampler = SequenceSampler(data.train, cfg.model.n_ctx, plan.batch_size, cfg.seed)
    vx, vy = eval_windows(data.val, cfg.model.n_ctx, cfg.eval_tokens, cfg.eval_sample)
    if threads:
        torch.set_num_threads(threads)
    model, opt = make_model(cfg, plan.device)
    step_loss = torch.compile(model.training_loss) if cfg.compile else model.training_loss
    autocast = autocast_for(plan.device, cfg.precision)
    state = None
    if ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, run_id, model, opt, plan.device, log)
        if state is not None:
            state.resumed_from.append(state.step)
            log(f"resuming {run_id[:16]} from step {state.step}/{plan.steps}")
    state = state or RunState()
    diverge_at = DIVERGENCE_FACTOR * math.log(cfg.model.vocab_size)
    started, t0, last_ckpt, wall_before = _utc_now(), time.perf_counter(), time.monotonic(), state.wall_s
    status, reason = "finished", None

    def evaluate_now(step: int) -> float:
        val = evaluate(model, vx, vy, plan.batch_size, plan.device, autocast)
        record_eval(state, step, val, cfg, plan)
        return val

    if state.step == 0 and not state.curve["step"]:
        evaluate_now(0)
    for step in range(state.step, plan.steps):
        for g in opt.param_groups:
            g["lr"] = plan.lr(step)
        xb, yb = sampler.batch(step)
        ts = time.perf_counter()
        xb, yb = torch.from_numpy(xb).to(plan.device), torch.from_numpy(yb).to(plan.device)
        with autocast():
            loss, aux = step_loss(xb, yb)
            total = loss + sum(aux.values()) if aux else loss
        total.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
        opt.step()
        opt.zero_grad(set_to_none=True)
        lv = float(loss.detach())
        state.train_s += time.perf_counter() - ts
        state.losses.append(lv)
        for name, term in aux.items():
            state.aux.setdefault(name, []).append(float(term.detach()))
        state.step = step + 1
        reason = check_step(lv, gnorm, step, plan, diverge_at)
        if reason is None and state.step in plan.eval_steps and not math.isfinite(evaluate_now(state.step)):
            reason = f"non-finite validation loss at step {state.step}"
        if reason is not None:
            status = "failed"
            break
        if progress is not None:
            progress({"run_id": run_id, "step": state.step, "steps": plan.steps, "loss": lv})
        interrupt = stop_after is not None and state.step == stop_after
        if ckpt_path is not None and (time.monotonic() - last_ckpt >= checkpoint_every_s or interrupt):
            state.wall_s = wall_before + time.perf_counter() - t0
            save_checkpoint(ckpt_path, run_id, model, opt, state)
            last_ckpt = time.monotonic()
        if interrupt:
            return {"run_id": run_id, "status": "interrupted", "step": stop_after}

    by_position, final_eval_tokens = None, None
    if status == "finished":  # the model is in its final state, the one the last val_loss was measured on
        try:
            fx, fy = (
                (vx, vy)
                if cfg.final_eval_tokens is None
                else eval_windows(data.val, cfg.model.n_ctx, cfg.final_eval_tokens, cfg.eval_sample)
            )
            by_position = position_stats(model, fx, fy, plan.batch_size, plan.device, autocast)
            final_eval_tokens = int(fy.size)
        except NotImplementedError:
            log(f"{cfg.model.name}: no per-token loss; the record has no val_by_position")
    state.wall_s = wall_before + time.perf_counter() - t0
    evals = (int(vy.size), final_eval_tokens)
    record = make_record(cfg, ident, plan, state, data, model, evals, status, reason, by_position, started)
    if record_path is not None:
        write_json_atomic(record_path, record)
        if ckpt_path.exists():
            ckpt_path.unlink()
    return record
