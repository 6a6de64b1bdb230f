"""A training run's configuration: :class:`TrainConfig` (typed, validated, serialisable).

``to_dict()`` is the full form a run record shows; ``canonical()`` leaves out every field equal to its
default and is what a run's identity hashes (see :mod:`harness.records`), so adding a field with a default
keeps every existing run id. Execution details (threads, where files go) are not part of a config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import UserError
from .models.config import ModelConfig, canonical_fields

SCHEDULES = {"hoffmann": 0.1, "kaplan": 0.0}  # cosine decays to this fraction of the peak learning rate
BYTE_VOCAB = 256


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
    seed: int = 0
    eval_points: int = 12  # evaluations at log-spaced steps (plus step 0 and the last step)
    eval_tokens: int = 32768  # size of the fixed validation set (first tokens of the validation split)
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
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if not 0 <= self.warmup < 1:
            raise UserError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.recipe is not None:
            from .recipes import RECIPES

            if self.recipe not in RECIPES:
                raise UserError(f"unknown recipe {self.recipe!r}; recipes: {', '.join(RECIPES)}")
        if self.final_eval_tokens is not None and self.final_eval_tokens < self.eval_tokens:
            raise UserError(
                f"final_eval_tokens ({self.final_eval_tokens}) must be at least eval_tokens ({self.eval_tokens})"
            )
        if self.lr is not None and not self.lr > 0:
            raise UserError(f"lr must be positive, got {self.lr}")

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_tokens

    def to_dict(self) -> dict[str, Any]:
        """Every field, the model flat (``{"name": "gpt", "n_layer": ...}``): what records and manifests show."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("recipe", "final_eval_tokens"):  # shown only when set (so older configs read as they did)
            if d[k] is None:
                del d[k]
        return {**d, "model": self.model.to_dict(), "betas": list(self.betas)}

    def canonical(self) -> dict[str, Any]:
        """The fields that differ from their defaults (the model as name + non-default args)."""
        return canonical_fields(self)

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
        if "vocab_size" not in m and d.get("tokenizer", "bpe") == "byte":
            m["vocab_size"] = BYTE_VOCAB
        model = ModelConfig.from_dict(m)
        if d.get("recipe") is not None:
            from .models import model_counts
            from .recipes import apply_recipe

            d = apply_recipe(d["recipe"], d, model_counts(model).n_kaplan)
        if "betas" in d:
            d["betas"] = tuple(float(b) for b in d["betas"])
        for k in ("tokens", "batch_tokens", "seed", "eval_points", "eval_tokens", "final_eval_tokens"):
            if d.get(k) is not None:
                v = float(d[k])
                if v != int(v):
                    raise UserError(f"{k} must be a whole number, got {d[k]}")
                d[k] = int(v)
        return cls(model=model, **d)
