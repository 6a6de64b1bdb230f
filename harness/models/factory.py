"""Any ``nn.Module`` as a registered model: the arena's bring-your-own-architecture protocol.

A user's architecture needs no harness base class. It needs a *factory*, importable by path, that builds the
module for a vocabulary, a context length and a size::

    def my_model(vocab_size: int, n_ctx: int, size: int) -> nn.Module:
        ...  # a module whose forward(idx) maps (B, T) token ids to (B, T, vocab_size) next-token logits

``size`` is a target number of non-embedding weight parameters (Kaplan et al.'s N): the factory picks a shape
of about that many, and the harness measures what it built. The module must be causal (the logits at position
t may depend on tokens 0..t only); the arena's entrants are checked for this on a random batch before any
training (:func:`check_causal`). A class works as a factory when its constructor takes those three arguments.

Optional: a ``counts(vocab_size, n_ctx, size)`` attribute on the factory returning a dict of
:class:`~harness.models.config.ModelCounts` fields (for a model whose cost the FLOP counter cannot see, such
as one built on fused recurrent ops). Without it, parameters and FLOPs are *measured*
(:func:`harness.models.measure.measured_counts`: parameters by module type, forward matmul FLOPs under
``FlopCounterMode`` times 3).

``FactoryModel`` wraps the built module as a :class:`~harness.models.base.LanguageModel`; its args are the
factory's import path and the size, so a run's identity names exactly what was trained, and worker processes
re-import the factory by path. In a sweep or the arena, name it ``{"name": "factory", "factory":
"my_pkg.my_mod:my_model"}``, or pass the import path to ``scaling arena`` directly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import LanguageModel
from .config import ModelArgs, ModelCounts
from .measure import embedding_parameters, measured_counts


@dataclass(frozen=True)
class FactoryArgs(ModelArgs):
    factory: str = ""  # "package.module:callable", called as factory(vocab_size, n_ctx, size)
    size: int = 1  # target Kaplan N handed to the factory

    def __post_init__(self):
        super().__post_init__()
        self.require_positive("size")
        if not isinstance(self.factory, str) or ":" not in self.factory:
            raise UserError(
                f"model.factory must be an import path 'package.module:callable', got {self.factory!r} "
                "(see harness.models.factory for the protocol)"
            )


def resolve_factory(path: str):
    """The callable at ``path`` (a UserError saying what is wrong if it cannot be imported)."""
    from .registry import _import_path

    obj = _import_path(path)
    if not callable(obj):
        raise UserError(f"{path} is {obj!r}, not a callable factory(vocab_size, n_ctx, size)")
    return obj


def _build(args: FactoryArgs) -> nn.Module:
    module = resolve_factory(args.factory)(args.vocab_size, args.n_ctx, args.size)
    if not isinstance(module, nn.Module):
        raise UserError(
            f"{args.factory}({args.vocab_size}, {args.n_ctx}, {args.size}) returned {module!r}, not an nn.Module"
        )
    return module


@functools.lru_cache(maxsize=256)
def _counts(args: FactoryArgs) -> ModelCounts:
    factory = resolve_factory(args.factory)
    given = getattr(factory, "counts", None)
    if callable(given) and not isinstance(factory, type):
        values = given(args.vocab_size, args.n_ctx, args.size)
        try:
            return ModelCounts(**values)
        except TypeError as exc:
            raise UserError(f"{args.factory}.counts returned {values!r}, not ModelCounts fields ({exc})") from None
    torch_state = torch.random.get_rng_state()  # measuring must not move the caller's random stream
    try:
        return measured_counts(_build(args), args.n_ctx, args.vocab_size)
    finally:
        torch.random.set_rng_state(torch_state)


class FactoryModel(LanguageModel):
    """A user's module behind the harness's model contract (loss, counts, shape policy)."""

    Args = FactoryArgs

    def __init__(self, cfg: FactoryArgs):
        super().__init__()
        self.config = cfg
        self.net = _build(cfg)

    @classmethod
    def counts(cls, cfg: FactoryArgs) -> ModelCounts:
        return _counts(cfg)

    @classmethod
    def shape_for(cls, n: float) -> dict[str, int]:
        return {"size": max(1, round(n))}

    def embedding_parameters(self):
        return embedding_parameters(self.net, self.config.vocab_size)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.net(idx)
        V = self.config.vocab_size
        if not isinstance(out, torch.Tensor) or out.shape != (*idx.shape, V):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UserError(
                f"{self.config.factory}: forward(idx) must return logits of shape {(*idx.shape, V)}, got {got}"
            )
        return out

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(idx).flatten(0, 1).float(), targets.flatten())

    def token_losses(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.logits(idx).float()
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)

    def measured_non_embedding_params(self) -> int:
        emb = {id(p) for p in self.embedding_parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in emb)
