"""Model registry, the shared model config, and the counts every model reports.

A model is a ``torch.nn.Module`` subclass of :class:`LanguageModel` registered by name::

    @register("gpt")
    class GPT(LanguageModel): ...

``build_model(ModelConfig(name="gpt", ...))`` looks it up, so a replication adds an architecture without
touching the trainer. Every model reports, *analytically from its config* (no need to build it):

* ``n_kaplan``: Kaplan et al. (2020) non-embedding parameters N (weight matrices of the blocks, no biases,
  norms or embeddings; ``12 n_layer d_model^2`` for the GPT);
* ``n_non_embedding``: the exact count of non-embedding parameters (biases and norms included);
* ``n_total``: every parameter counted once (embeddings included; Hoffmann et al. 2022 "Chinchilla" N);
* ``flops_per_token_kaplan``: Kaplan's training FLOPs per token ``6 N + 6 n_layer n_ctx d_model``;
* ``flops_per_token_hoffmann``: Hoffmann et al. Appendix F, full forward count (embeddings, attention
  logits, softmax, output logits; multiply-accumulate = 2 FLOPs) times 3 (backward = 2 x forward).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import UserError

KERNEL_SETTINGS = ("auto", "triton", "torch")
POSITION_SETTINGS = ("learned", "rotary")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and shape. Fields a model does not use (``n_head`` for the LSTM) are ignored by it."""

    name: str = "gpt"
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 2
    n_ctx: int = 128
    vocab_size: int = 4096
    mlp_ratio: int = 4
    tie_weights: bool = False
    pos: str = "learned"  # "learned" | "rotary" (GPT only)
    bias: bool = True
    kernels: str = "auto"  # "auto" | "triton" | "torch": LayerNorm and output+cross-entropy implementation

    def __post_init__(self):
        for f in ("n_layer", "d_model", "n_ctx", "vocab_size", "mlp_ratio", "n_head"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UserError(f"model.{f} must be a positive integer, got {v!r}")
        if self.kernels not in KERNEL_SETTINGS:
            raise UserError(f"model.kernels must be one of {', '.join(KERNEL_SETTINGS)}, got {self.kernels!r}")
        if self.pos not in POSITION_SETTINGS:
            raise UserError(f"model.pos must be one of {', '.join(POSITION_SETTINGS)}, got {self.pos!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown model field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)


@dataclass(frozen=True)
class ModelCounts:
    n_kaplan: int
    n_non_embedding: int
    n_total: int
    flops_per_token_kaplan: float
    flops_per_token_hoffmann: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KernelOp(nn.Module):
    """A submodule routed through the ``kernels`` switch (e.g. the GPT's LayerNorm). Its ``kernels`` is the
    *resolved* implementation, ``"triton"`` or ``"torch"``, and follows :attr:`LanguageModel.kernels_used`."""

    kernels: str = "torch"


class LanguageModel(nn.Module):
    """Base class: ``forward(idx, targets)`` returns the mean next-token cross-entropy (nats).

    ``kernels_used`` is the resolved kernel implementation (``"triton"`` or ``"torch"``) of the whole model:
    a built model runs PyTorch ops until it is set, usually to ``resolve_kernels(config.kernels, device)``
    (the trainer does this), and setting it also switches every :class:`KernelOp` submodule.
    """

    config: ModelConfig
    _kernels_used: str = "torch"

    @property
    def kernels_used(self) -> str:
        return self._kernels_used

    @kernels_used.setter
    def kernels_used(self, value: str) -> None:
        if value not in ("triton", "torch"):
            raise ValueError(f"kernels_used is a resolved setting, 'triton' or 'torch', not {value!r}")
        self._kernels_used = value
        for m in self.modules():
            if isinstance(m, KernelOp):
                m.kernels = value

    @classmethod
    def counts(cls, cfg: ModelConfig) -> ModelCounts:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def shape_for(cls, n: float, **kw) -> dict[str, int]:  # pragma: no cover - abstract
        """Shape fields (n_layer, d_model, n_head) giving about ``n`` Kaplan non-embedding parameters."""
        raise NotImplementedError

    def embedding_parameters(self) -> list[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def token_losses(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (nats) of every target token, shaped like ``targets`` (B, T); its mean is ``forward``.

        For evaluation only (the trainer calls it under ``torch.no_grad()`` in eval mode). The default works
        for a model with ``hidden(idx)`` (final hidden states) and ``head_weight`` (the output projection, as
        the GPT and the LSTM have) and uses plain PyTorch for the projection and loss; other models override
        it, or the trainer records no per-position loss for them.
        """
        hidden, weight = getattr(self, "hidden", None), getattr(self, "head_weight", None)
        if hidden is None or weight is None:
            raise NotImplementedError(f"{type(self).__name__} has no per-token loss")
        from .ops import token_cross_entropy

        return token_cross_entropy(hidden(idx), weight, None, targets)

    # Counts measured on the built module (tests check them against the analytic ``counts``).
    def measured_total_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() yields tied weights once

    def measured_non_embedding_params(self) -> int:
        emb = {id(p) for p in self.embedding_parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in emb)


_REGISTRY: dict[str, type[LanguageModel]] = {}


def register(name: str):
    """Class decorator: make a :class:`LanguageModel` subclass available as ``ModelConfig(name=name)``."""

    def deco(cls: type[LanguageModel]) -> type[LanguageModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = cls
        cls.registry_name: ClassVar[str] = name
        return cls

    return deco


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def model_class(name: str) -> type[LanguageModel]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; available: {', '.join(available_models())}") from None


def build_model(cfg: ModelConfig) -> LanguageModel:
    return model_class(cfg.name)(cfg)


def model_counts(cfg: ModelConfig) -> ModelCounts:
    return model_class(cfg.name).counts(cfg)


def shape_for_n(n: float, name: str = "gpt", **kw) -> dict[str, int]:
    """Shape for a target Kaplan non-embedding N, using the model's fixed, documented aspect ratio."""
    if not n > 0:
        raise UserError(f"target N must be positive, got {n}")
    return model_class(name).shape_for(float(n), **kw)
