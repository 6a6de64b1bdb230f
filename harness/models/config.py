"""Typed model configuration: the fields every language model has, plus each architecture's own args.

An architecture declares its shape and options as a frozen dataclass that extends :class:`ModelArgs`::

    @dataclass(frozen=True)
    class GPTArgs(ModelArgs):
        n_layer: int = 2
        d_model: int = 64
        ...

A :class:`ModelConfig` is a registered model name plus an instance of that model's args class. It
serialises *flat* (``{"name": "gpt", "n_ctx": 256, "n_layer": 4, ...}``), which is how sweep specs and run
records spell it, and :meth:`ModelConfig.canonical` leaves out every field equal to its default: that is
what a run's identity hashes, so an architecture (or :class:`ModelArgs`) may grow a new field with a
default without changing the id of any run made before it existed. The rule that follows: a new field's
default must reproduce the old behaviour, and an existing default is never changed.

This module imports no torch; looking up an args class imports the model's own module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import UserError

KERNEL_SETTINGS = ("auto", "triton", "torch")
COMMON_FIELDS = ("n_ctx", "vocab_size", "kernels")
MAX_DIMENSION = 2**31 - 1  # the largest size field (n_ctx, vocab_size, n_layer, d_model, ...) a model may have


@dataclass(frozen=True)
class ModelArgs:
    """Fields every language model has. Architectures subclass this with their own fields (all defaulted)."""

    n_ctx: int = 128  # context length (tokens)
    vocab_size: int = 4096
    kernels: str = "auto"  # "auto" | "triton" | "torch": implementation of the ops in harness.models.ops

    def __post_init__(self):
        self.require_positive("n_ctx", "vocab_size")
        if self.kernels not in KERNEL_SETTINGS:
            raise UserError(f"model.kernels must be one of {', '.join(KERNEL_SETTINGS)}, got {self.kernels!r}")

    def require_positive(self, *names: str) -> None:
        """Raise a UserError naming the first of ``names`` that is not a positive integer (below 2**31: no
        tensor dimension, layer count or vocabulary is larger)."""
        for f in names:
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UserError(f"model.{f} must be a positive integer, got {v!r}")
            if v > MAX_DIMENSION:
                raise UserError(f"model.{f} must be at most 2**31 - 1 = {MAX_DIMENSION:,}, got {v:.3g}")

    def require_bool(self, *names: str) -> None:
        """Raise a UserError naming the first of ``names`` that is not true or false."""
        for f in names:
            v = getattr(self, f)
            if not isinstance(v, bool):
                raise UserError(f"model.{f} must be true or false, got {v!r}")

    def require_choice(self, name: str, choices: tuple[str, ...]) -> None:
        v = getattr(self, name)
        if v not in choices:
            raise UserError(f"model.{name} must be one of {', '.join(choices)}, got {v!r}")


def canonical_fields(obj: Any) -> dict[str, Any]:
    """The fields of dataclass ``obj`` that differ from their defaults (JSON types: tuples become lists).

    A field without a default is always kept. Nested dataclasses are canonicalised in turn."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if default is not dataclasses.MISSING and v == default:
            continue
        if hasattr(v, "canonical"):
            v = v.canonical()
        elif dataclasses.is_dataclass(v):
            v = canonical_fields(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


@dataclass(frozen=True)
class ModelConfig:
    """A registered model name and that model's typed args. ``n_ctx``, ``vocab_size`` and ``kernels`` are
    common to all models and readable directly; everything else is ``config.args.<field>``."""

    name: str = "gpt"
    args: ModelArgs | None = None  # None: the model's default args

    def __post_init__(self):
        from .registry import args_class

        cls = args_class(self.name)
        if self.args is None:
            object.__setattr__(self, "args", cls())
        elif type(self.args) is not cls:
            raise UserError(
                f"model {self.name!r} takes {cls.__name__}, got {type(self.args).__name__}; "
                "build it with ModelConfig.make(name, **fields)"
            )

    # the fields every model has
    @property
    def n_ctx(self) -> int:
        return self.args.n_ctx

    @property
    def vocab_size(self) -> int:
        return self.args.vocab_size

    @property
    def kernels(self) -> str:
        return self.args.kernels

    @classmethod
    def make(cls, name: str = "gpt", **values: Any) -> ModelConfig:
        """``ModelConfig.make("gpt", n_layer=2, d_model=64)``: unknown fields are a UserError naming them."""
        return cls.from_dict({"name": name, **values})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """From the flat form (``name`` plus the args' fields), e.g. a TOML ``[model]`` table."""
        from .registry import args_class

        d = dict(d)
        name = d.pop("name", "gpt")
        if not isinstance(name, str):
            raise UserError(f"model.name must be a string, got {name!r}")
        args_cls = args_class(name)
        known = {f.name for f in fields(args_cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(
                f"unknown field(s) {', '.join(unknown)} for model {name!r}; its fields: {', '.join(sorted(known))}"
            )
        return cls(name, args_cls(**d))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self.args)}

    def canonical(self) -> dict[str, Any]:
        """The name plus the args that differ from their defaults (what a run's identity hashes)."""
        return {"name": self.name, **canonical_fields(self.args)}


@dataclass(frozen=True)
class ModelCounts:
    """Parameter and FLOP counts of a model, computed from its config (see :mod:`harness.models`).

    ``n_active`` is the number of parameters one token passes through, embeddings included (a sparse model
    such as a mixture of experts uses only some of ``n_total``); ``None`` means dense (= ``n_total``)."""

    n_kaplan: int
    n_non_embedding: int
    n_total: int
    flops_per_token_kaplan: float
    flops_per_token_hoffmann: float
    n_active: int | None = None

    def __post_init__(self):
        if self.n_active is None:
            object.__setattr__(self, "n_active", self.n_total)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
