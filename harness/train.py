"""One training run = one :class:`TrainConfig`. ``train(cfg, out)`` writes one JSON run record.

The run is deterministic on CPU: the same config, seed, data and thread count give a bit-identical record
(learning curve included) apart from ``record["timing"]``, which holds every wall-clock-dependent field.
``record["loss"]["val_by_position"]`` is the final validation loss at each context position (n_ctx floats).
Batches are a pure function of the step (see :class:`harness.data.stream.SequenceSampler`), so a run
resumed from its last checkpoint produces the same record as one that was never interrupted.

Layout under ``out``: ``runs/<run_id>.json`` (the record, written by atomic rename) and
``checkpoints/<run_id>.pt`` (written atomically while training, deleted when the record is written).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.stream import SequenceSampler, TokenData, eval_windows
from .errors import UserError
from .models import ModelConfig, build_model, model_counts, resolve_kernels
from .provenance import content_hash, device_info, git_commit, package_versions, write_json_atomic

SCHEMA = "scaling-harness run v1"
SCHEDULES = {"hoffmann": 0.1, "kaplan": 0.0}  # cosine decays to this fraction of the peak learning rate
DIVERGENCE_FACTOR = 1.5  # a training loss above 1.5 ln(vocab) (worse than uniform) counts as divergence


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run's result. Execution details (threads, where files go) are not here."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = "default"  # "default", a prepared folder, a .bin / nanoGPT folder, a text folder, a saved dataset
    tokenizer: str = "bpe"  # "bpe" | "byte" (for "default" and text folders)
    tokens: int = 1_000_000  # token budget D (rounded down to whole steps)
    batch_tokens: int = 8192  # tokens per optimiser step (a multiple of model.n_ctx)
    lr: float | None = None  # peak learning rate; None: Kaplan et al. eq. D.1, 0.003239 - 0.0001395 ln N
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    schedule: str = "hoffmann"  # "hoffmann": warmup + cosine to 10 %; "kaplan": warmup + cosine to 0
    warmup: float = 0.05  # fraction of the steps spent in linear warmup
    seed: int = 0
    eval_points: int = 12  # evaluations at log-spaced steps (plus step 0 and the last step)
    eval_tokens: int = 32768  # size of the fixed validation set (first tokens of the validation split)
    max_epochs: float = 1.0  # refuse budgets that would repeat the training split more than this
    precision: str = "fp32"  # "fp32" | "bf16" (autocast)
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    compile: bool = False  # torch.compile the model

    def __post_init__(self):
        m = self.model
        if self.tokenizer not in ("bpe", "byte"):
            raise UserError(f"tokenizer must be 'bpe' or 'byte', got {self.tokenizer!r}")
        if self.batch_tokens % m.n_ctx:
            raise UserError(f"batch_tokens {self.batch_tokens} is not a multiple of n_ctx {m.n_ctx}")
        if self.tokens < self.batch_tokens:
            raise UserError(f"token budget {self.tokens} is smaller than one batch of {self.batch_tokens}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if not 0 <= self.warmup < 1:
            raise UserError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.lr is not None and not self.lr > 0:
            raise UserError(f"lr must be positive, got {self.lr}")

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) nested dict, e.g. parsed TOML. Unknown keys are errors.

        ``model`` may give ``N`` (a target Kaplan non-embedding parameter count) instead of a shape.
        """
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown run field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        m = dict(d.pop("model", {}))
        if "N" in m:
            from .models import shape_for_n

            m.update(shape_for_n(float(m.pop("N")), m.get("name", "gpt")))
        if "vocab_size" not in m:
            tok = d.get("tokenizer", "bpe")
            m["vocab_size"] = 256 if tok == "byte" else ModelConfig.vocab_size
        if "betas" in d:
            d["betas"] = tuple(float(b) for b in d["betas"])
        for k in ("tokens", "batch_tokens", "seed", "eval_points", "eval_tokens"):
            if k in d:
                v = float(d[k])
                if v != int(v):
                    raise UserError(f"{k} must be a whole number, got {d[k]}")
                d[k] = int(v)
        return cls(model=ModelConfig.from_dict(m), **d)


def kaplan_lr(n: float) -> float:
    """Kaplan et al. (2020) eq. D.1: LR(N) ~= 0.003239 - 0.0001395 log N (their Adam runs)."""
    return 0.003239 - 0.0001395 * math.log(n)


def lr_at(step: int, steps: int, peak: float, warmup_steps: int, final_ratio: float) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``peak`` to ``final_ratio * peak``."""
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


def run_key(cfg: TrainConfig, data: TokenData) -> str:
    """Content address of a run: its config (device resolved) and the identity of its token streams."""
    return content_hash(
        {"config": replace(cfg, device=resolve_device(cfg.device)).to_dict(), "data": data.fingerprint()}
    )


def run_paths(out: str | os.PathLike, run_id: str) -> tuple[Path, Path]:
    out = Path(out)
    return out / "runs" / f"{run_id[:16]}.json", out / "checkpoints" / f"{run_id[:16]}.pt"


class _Stop(Exception):
    """Raised by the ``stop_after`` test hook to simulate an interruption."""


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int, device: str, autocast) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i : i + batch_size]).to(device)
        yb = torch.from_numpy(y[i : i + batch_size]).to(device)
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
    model.eval()
    kernels = model.kernels_used
    model.kernels_used = "torch"
    try:
        total = np.zeros(y.shape[1], dtype=np.float64)
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i : i + batch_size]).to(device)
            yb = torch.from_numpy(y[i : i + batch_size]).to(device)
            with autocast():
                losses = model.token_losses(xb, yb)
            total += losses.double().sum(dim=0).cpu().numpy()
    finally:
        model.kernels_used = kernels
        model.train()
    return [float(v) for v in total / len(y)]


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

    A finished record already in ``out`` is returned as is; a checkpoint there is resumed.
    ``stop_after`` (tests only) interrupts the run after that many steps, leaving its checkpoint.
    """
    if data is None:
        from .data.corpus import open_data

        data = open_data(cfg.data, cfg.tokenizer, cfg.model.vocab_size, log=log)
    if data.vocab_size != cfg.model.vocab_size:
        raise UserError(
            f"vocabulary mismatch: the data ({data.where}) has {data.vocab_size} token ids but "
            f"model.vocab_size is {cfg.model.vocab_size}"
        )
    device = resolve_device(cfg.device)
    cfg = replace(cfg, device=device)
    run_id = run_key(cfg, data)
    record_path = ckpt_path = None
    if out is not None:
        record_path, ckpt_path = run_paths(out, run_id)
        if record_path.exists():
            import json

            rec = json.loads(record_path.read_text())
            if rec.get("status") in ("finished", "failed"):
                return rec

    m = cfg.model
    batch_size = cfg.batch_tokens // m.n_ctx
    steps = cfg.steps
    sampler = SequenceSampler(data.train, m.n_ctx, batch_size, cfg.seed)
    epochs = check_budget(cfg, data)
    vx, vy = eval_windows(data.val, m.n_ctx, cfg.eval_tokens)
    counts = model_counts(m)
    peak_lr = cfg.lr if cfg.lr is not None else kaplan_lr(counts.n_kaplan)
    warmup_steps = max(1, round(cfg.warmup * steps)) if cfg.warmup > 0 else 0
    final_ratio = SCHEDULES[cfg.schedule]
    evals = eval_schedule(steps, cfg.eval_points)

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    model = build_model(m)
    model.kernels_used = resolve_kernels(m.kernels, device)
    model.to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=peak_lr,
        betas=cfg.betas,
        eps=1e-8,
        foreach=True,
    )
    fwd = torch.compile(model) if cfg.compile else model
    amp_dtype = torch.bfloat16 if cfg.precision == "bf16" else None

    def autocast():
        return torch.autocast(device_type=device, dtype=amp_dtype, enabled=amp_dtype is not None)

    curve: dict[str, list] = {"step": [], "tokens": [], "lr": [], "train_loss": [], "val_loss": []}
    losses: list[float] = []
    start_step, elapsed_before, train_s_before, resumed_from = 0, 0.0, 0.0, []
    if ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["run_id"] != run_id:
            raise UserError(f"checkpoint {ckpt_path} belongs to another run")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start_step, curve, losses = state["step"], state["curve"], state["losses"]
        elapsed_before, train_s_before = state["wall_s"], state["train_s"]
        resumed_from = [*state["resumed_from"], start_step]
        log(f"resuming {run_id[:16]} from step {start_step}/{steps}")

    t0 = time.perf_counter()
    train_s = train_s_before
    last_ckpt = time.monotonic()
    status, reason = "finished", None
    diverge_at = DIVERGENCE_FACTOR * math.log(m.vocab_size)
    started = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()

    def do_eval(step: int):
        val = evaluate(model, vx, vy, batch_size, device, autocast)
        since = losses[curve["step"][-1] if curve["step"] else 0 : step]
        curve["step"].append(step)
        curve["tokens"].append(step * cfg.batch_tokens)
        curve["lr"].append(lr_at(max(0, step - 1), steps, peak_lr, warmup_steps, final_ratio) if step else 0.0)
        curve["train_loss"].append(float(np.mean(since)) if since else None)
        curve["val_loss"].append(val)
        return val

    try:
        if start_step == 0 and 0 in evals and not curve["step"]:
            do_eval(0)
        for step in range(start_step, steps):
            lr = lr_at(step, steps, peak_lr, warmup_steps, final_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            xb, yb = sampler.batch(step)
            ts = time.perf_counter()
            xb, yb = torch.from_numpy(xb).to(device), torch.from_numpy(yb).to(device)
            with autocast():
                loss = fwd(xb, yb)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
            opt.step()
            opt.zero_grad(set_to_none=True)
            lv = float(loss.detach())
            train_s += time.perf_counter() - ts
            losses.append(lv)
            if not math.isfinite(lv) or (gnorm is not None and not math.isfinite(float(gnorm))):
                status, reason = "failed", f"non-finite loss or gradient at step {step + 1}"
                break
            if lv > diverge_at and step >= warmup_steps:
                status, reason = (
                    "failed",
                    f"diverged: training loss {lv:.3g} > 1.5 ln(vocab) = {diverge_at:.3g} at step {step + 1}",
                )
                break
            if step + 1 in evals:
                val = do_eval(step + 1)
                if not math.isfinite(val):
                    status, reason = "failed", f"non-finite validation loss at step {step + 1}"
                    break
            if progress is not None:
                progress({"run_id": run_id, "step": step + 1, "steps": steps, "loss": lv})
            if ckpt_path is not None and (
                time.monotonic() - last_ckpt >= checkpoint_every_s
                or (stop_after is not None and step + 1 == stop_after)
            ):
                _save_checkpoint(
                    ckpt_path,
                    {
                        "run_id": run_id,
                        "step": step + 1,
                        "model": model.state_dict(),
                        "opt": opt.state_dict(),
                        "curve": curve,
                        "losses": losses,
                        "resumed_from": resumed_from,
                        "wall_s": elapsed_before + time.perf_counter() - t0,
                        "train_s": train_s,
                    },
                )
                last_ckpt = time.monotonic()
            if stop_after is not None and step + 1 == stop_after:
                raise _Stop
    except _Stop:
        return {"run_id": run_id, "status": "interrupted", "step": stop_after}

    by_position = None
    if status == "finished":  # the model is in its final state, the one the last val_loss was measured on
        try:
            by_position = evaluate_by_position(model, vx, vy, batch_size, device, autocast)
        except NotImplementedError:
            log(f"{m.name}: no per-token loss; the record has no val_by_position")

    wall = elapsed_before + time.perf_counter() - t0
    done_steps = len(losses)
    tokens = done_steps * cfg.batch_tokens
    tail = losses[-max(1, done_steps // 10) :]
    record = {
        "schema": SCHEMA,
        "run_id": run_id,
        "status": status,
        "reason": reason,
        "config": cfg.to_dict(),
        "config_hash": content_hash(cfg.to_dict()),
        "seed": cfg.seed,
        "resolved": {
            "device": device,
            "kernels": model.kernels_used,
            "peak_lr": peak_lr,
            "batch_size": batch_size,
            "steps": steps,
            "warmup_steps": warmup_steps,
            "final_lr_ratio": final_ratio,
            "epochs": epochs,
            "eval_tokens": int(vy.size),
            "eval_steps": evals,
        },
        "model": {**m.to_dict(), **counts.to_dict()},
        "scale": {
            "N_kaplan": counts.n_kaplan,
            "N_total": counts.n_total,
            "N_non_embedding": counts.n_non_embedding,
            "D": tokens,
            "steps_done": done_steps,
            "C_kaplan": counts.flops_per_token_kaplan * tokens,
            "C_hoffmann": counts.flops_per_token_hoffmann * tokens,
        },
        "loss": {
            "train_final": float(np.mean(tail)) if status == "finished" else None,
            "val_final": curve["val_loss"][-1] if status == "finished" else None,
            # mean validation cross-entropy at each context position 0..n_ctx-1 (final model, same windows)
            "val_by_position": by_position,
        },
        "curve": curve,
        "data": data.describe(),
        "provenance": {"git_commit": git_commit(), "packages": package_versions(), "device": device_info()},
        "timing": {
            "started_utc": started,
            "finished_utc": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
            "wall_s": wall,
            "train_s": train_s,
            "tokens_per_s": tokens / train_s if train_s > 0 else None,
            "flops_per_s_kaplan": counts.flops_per_token_kaplan * tokens / train_s if train_s > 0 else None,
            "flops_per_s_hoffmann": counts.flops_per_token_hoffmann * tokens / train_s if train_s > 0 else None,
            "threads": torch.get_num_threads(),
            "resumed_from_steps": resumed_from,
        },
    }
    if record_path is not None:
        write_json_atomic(record_path, record)
        if ckpt_path.exists():
            ckpt_path.unlink()
    return record
