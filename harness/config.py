"""A training run's configuration: :class:`TrainConfig` (typed, validated, serialisable).

``to_dict()`` is the full form a run record shows; ``canonical()`` leaves out every field equal to its
default and is what a run's identity hashes (see :mod:`harness.records`), so adding a field with a default
keeps every existing run id. Execution details (threads, where files go) are not part of a config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from . import memory
from .errors import UserError
from .memory import MEMORY_CHECK_ENV, format_gb, memory_check_disabled
from .models.config import ModelConfig, canonical_fields

SCHEDULES = {"hoffmann": 0.1, "kaplan": 0.0}
EVAL_SAMPLES = ("head", "spread")  # cosine decays to this fraction of the peak learning rate
BYTE_VOCAB = 256
MAX_SEED = 2**64 - 1  # torch.manual_seed takes seeds up to this

INT_FIELDS = ("tokens", "batch_tokens", "seed", "eval_points", "eval_tokens", "final_eval_tokens", "horizon_tokens")
FLOAT_FIELDS = ("lr", "weight_decay", "grad_clip", "warmup", "max_epochs")

# Training-memory estimate (see TrainConfig.memory_estimate): a guard against absurd sizes, not a prediction.
BYTES_PER_PARAMETER = 16  # fp32 weights + gradients + AdamW's two moment buffers, 4 bytes each
ACTIVATION_BYTES = 80  # per token, layer and d_model channel: ~20 fp32 values kept for the backward pass (a
# GPT block keeps ~16 d: LayerNorm in/outputs, q, k, v, attention output, the 4 d MLP hidden before and after GELU)
LOGIT_BYTES = 4  # per token and vocabulary entry: one fp32 logit


def is_real(v: Any) -> bool:
    """A finite int or float (bool is not a number here)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def whole_number(name: str, v: Any) -> int:
    """``v`` (an int, or a float with no fractional part such as 1e6) as an int; a UserError naming ``name``."""
    if not is_real(v) or v != int(v):
        raise UserError(f"{name} must be a whole number, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run's result."""

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
    # the schedule's length in tokens when it is not the run's own (None): a cosine over a horizon fixed for
    # every run and longer than it, as Kaplan et al. (2020) used (one 2.5e5-step schedule for all runs)
    horizon_tokens: int | None = None
    seed: int = 0
    eval_points: int = 12  # evaluations at log-spaced steps (plus step 0 and the last step)
    eval_tokens: int = 32768  # size of the fixed validation set (see eval_sample)
    # which validation windows: "head" the first eval_tokens of the split; "spread" windows evenly spaced over
    # the whole split (a small set that samples every source, not just the first documents)
    eval_sample: str = "head"
    # validation tokens for the final model's loss by position (None: the eval_tokens windows); more windows
    # pin each position's loss more tightly, at the cost of one forward pass over them at the end of the run
    final_eval_tokens: int | None = None
    max_epochs: float = 1.0  # refuse budgets that would repeat the training split more than this
    precision: str = "fp32"  # "fp32" | "bf16" (autocast)
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    compile: bool = False  # torch.compile the model's training step
    recipe: str | None = None  # a named recipe (harness.recipes) filled in the fields above that were not given

    def __post_init__(self):
        m = self.model
        if not isinstance(m, ModelConfig):
            raise UserError(f"model must be a ModelConfig, got {type(m).__name__}")
        self._check_types()
        if self.tokenizer not in ("bpe", "byte"):
            raise UserError(f"tokenizer must be 'bpe' or 'byte', got {self.tokenizer!r}")
        if self.tokenizer == "byte" and self.data == "default" and m.vocab_size != BYTE_VOCAB:
            raise UserError(
                f"the byte tokenizer has {BYTE_VOCAB} token ids but model.vocab_size is {m.vocab_size} "
                f"(TrainConfig.from_dict sets {BYTE_VOCAB} when vocab_size is not given)"
            )
        if self.batch_tokens % m.n_ctx:
            raise UserError(f"batch_tokens {self.batch_tokens} is not a multiple of n_ctx {m.n_ctx}")
        if self.tokens < self.batch_tokens:
            raise UserError(f"token budget {self.tokens} is smaller than one batch of {self.batch_tokens}")
        if not isinstance(self.schedule, str) or self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.eval_sample not in EVAL_SAMPLES:
            raise UserError(f"eval_sample must be one of {', '.join(EVAL_SAMPLES)}, got {self.eval_sample!r}")
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.recipe is not None:
            from .recipes import RECIPES

            if self.recipe not in RECIPES:
                raise UserError(f"unknown recipe {self.recipe!r}; recipes: {', '.join(RECIPES)}")
        if self.horizon_tokens is not None and self.horizon_tokens < self.tokens:
            raise UserError(
                f"horizon_tokens ({self.horizon_tokens}) must be at least the run's tokens ({self.tokens}): a schedule "
                "shorter than the run would end before it"
            )
        if self.final_eval_tokens is not None and self.final_eval_tokens < self.eval_tokens:
            raise UserError(
                f"final_eval_tokens ({self.final_eval_tokens}) must be at least eval_tokens ({self.eval_tokens})"
            )

    def _check_types(self) -> None:
        """Each field's type and range on its own (the checks between fields follow in __post_init__)."""

        def whole(name: str, low: int, high: int | None = None, what: str = "") -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low or (high is not None and v > high):
                kind = what or ("a positive whole number" if low == 1 else f"a whole number >= {low}")
                raise UserError(f"{name} must be {kind}, got {v!r}")

        def real(name: str, ok, what: str) -> None:
            v = getattr(self, name)
            if not is_real(v) or not ok(v):
                raise UserError(f"{name} must be {what}, got {v!r}")

        for name in ("tokens", "batch_tokens", "eval_points", "eval_tokens"):
            whole(name, 1)
        whole("seed", 0, MAX_SEED, "a whole number in [0, 2**64 - 1]")
        for name in ("final_eval_tokens", "horizon_tokens"):
            if getattr(self, name) is not None:
                whole(name, 1)
        if self.lr is not None:
            real("lr", lambda v: v > 0, "a positive finite number")
        real("weight_decay", lambda v: v >= 0, "a finite number >= 0")
        real("grad_clip", lambda v: v >= 0, "a finite number >= 0 (0: no clipping)")
        real("warmup", lambda v: 0 <= v < 1, "a fraction of the steps in [0, 1)")
        real("max_epochs", lambda v: v > 0, "a positive finite number (epochs of the training split)")
        b = self.betas
        if not isinstance(b, tuple | list) or len(b) != 2 or not all(is_real(x) and 0 <= x < 1 for x in b):
            raise UserError(f"betas must be two numbers in [0, 1) (AdamW's beta1, beta2), got {b!r}")
        if not isinstance(self.data, str) or not self.data:
            raise UserError(f"data must be 'default' or a path (a non-empty string), got {self.data!r}")
        if not isinstance(self.compile, bool):
            raise UserError(f"compile must be true or false, got {self.compile!r}")
        if self.recipe is not None and not isinstance(self.recipe, str):
            raise UserError(f"recipe must be a recipe name (a string), got {self.recipe!r}")

    def memory_estimate(self) -> dict[str, int]:
        """Bytes a training run of this config needs, roughly: ``parameters`` (weights, gradients and AdamW
        state, BYTES_PER_PARAMETER each), ``activations`` (batch_tokens x d_model x n_layer x ACTIVATION_BYTES,
        for models with those fields), ``logits`` (batch_tokens x vocab_size x LOGIT_BYTES), and ``total``."""
        from .models import model_counts

        a = self.model.args
        width, depth = getattr(a, "d_model", 0), getattr(a, "n_layer", 0)
        width = width if isinstance(width, int) else 0
        depth = depth if isinstance(depth, int) else 0
        est = {
            "parameters": model_counts(self.model).n_total * BYTES_PER_PARAMETER,
            "activations": self.batch_tokens * width * depth * ACTIVATION_BYTES,
            "logits": self.batch_tokens * self.model.vocab_size * LOGIT_BYTES,
        }
        return {**est, "total": sum(est.values())}

    def check_memory(self, available: tuple[int, str] | None = None) -> None:
        """A UserError, before anything is allocated, when :meth:`memory_estimate` exceeds the memory available
        (:func:`available_memory` for ``self.device`` unless given). Skipped when that is unknown or when the
        environment variable SCALING_NO_MEMORY_CHECK is set (to anything but 0)."""
        if memory_check_disabled():
            return
        free = available if available is not None else memory.available_memory(self.device)
        if free is None:
            return
        est = self.memory_estimate()
        if est["total"] <= free[0]:
            return
        from .models import model_counts

        n = model_counts(self.model).n_total
        raise UserError(
            f"model and batch would not fit in memory: training needs about {format_gb(est['total'])} "
            f"({format_gb(est['parameters'])} for {n:,.4g} parameters with gradients and AdamW state, "
            f"{format_gb(est['activations'])} activations, {format_gb(est['logits'])} logits for batch_tokens "
            f"{self.batch_tokens:,}) but {format_gb(free[0])} is {free[1]}; use a smaller model or batch_tokens, "
            f"or set {MEMORY_CHECK_ENV}=1 to try anyway"
        )

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_tokens

    def to_dict(self) -> dict[str, Any]:
        """Every field, the model flat (``{"name": "gpt", "n_layer": ...}``): what records and manifests show."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in (
            "recipe",
            "final_eval_tokens",
            "horizon_tokens",
        ):  # shown only when set (older configs read as before)
            if d[k] is None:
                del d[k]
        if d["eval_sample"] == "head":
            del d["eval_sample"]
        return {**d, "model": self.model.to_dict(), "betas": list(self.betas)}

    def canonical(self) -> dict[str, Any]:
        """The fields that differ from their defaults (the model as name + non-default args)."""
        return canonical_fields(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) nested dict, e.g. parsed TOML. Unknown keys are errors.

        ``model`` may give ``N`` (a target Kaplan non-embedding parameter count) instead of a shape.
        """
        if not isinstance(d, Mapping):
            raise UserError(f"a run config must be a table of TrainConfig fields, got {d!r}")
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown run field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        m = d.pop("model", {})
        if not isinstance(m, Mapping):
            raise UserError(f"model must be a table of model fields ([model] in TOML), got {m!r}")
        m = dict(m)
        for k in INT_FIELDS:  # whole numbers (1e6 in TOML or on the command line is a float)
            if d.get(k) is not None:
                d[k] = whole_number(k, d[k])
                if k in ("tokens", "batch_tokens") and d[k] < 1:  # before a recipe divides by them
                    raise UserError(f"{k} must be a positive whole number, got {d[k]!r}")
        for k in FLOAT_FIELDS:  # checked here, before a recipe computes with them; kept as given
            if d.get(k) is not None and not is_real(d[k]):
                raise UserError(f"{k} must be a finite number, got {d[k]!r}")
        if d.get("recipe") is not None and not isinstance(d["recipe"], str):
            raise UserError(f"recipe must be a recipe name (a string), got {d['recipe']!r}")
        if "N" in m:
            from .models import shape_for_n

            n = m.pop("N")
            if not is_real(n) or not n > 0:
                raise UserError(
                    f"model.N (target non-embedding parameters) must be a positive finite number, got {n!r}"
                )
            m.update(shape_for_n(float(n), m.get("name", "gpt")))
        if "vocab_size" not in m and d.get("tokenizer", "bpe") == "byte":
            m["vocab_size"] = BYTE_VOCAB
        model = ModelConfig.from_dict(m)
        if d.get("recipe") is not None:
            from .models import model_counts
            from .recipes import apply_recipe

            d = apply_recipe(d["recipe"], d, model_counts(model).n_kaplan)
        if "betas" in d:
            b = d["betas"]
            if not isinstance(b, list | tuple) or len(b) != 2 or not all(is_real(x) for x in b):
                raise UserError(f"betas must be two numbers in [0, 1) (AdamW's beta1, beta2), got {b!r}")
            d["betas"] = tuple(float(x) for x in b)
        return cls(model=model, **d)
