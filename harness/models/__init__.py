"""Language models for scaling experiments, looked up by name in a lazy registry.

``build_model(ModelConfig.make("gpt", n_layer=2, d_model=64))`` builds one; ``model_counts(cfg)`` gives its
parameter and FLOP counts under both conventions without building it; ``shape_for_n(1e5)`` picks a shape
for a target N. An architecture is one module (``Args`` dataclass, ``counts``, ``forward``; see
:mod:`harness.models.base`) plus one registry entry (see :mod:`harness.models.registry`).
"""

from .base import KernelOp, LanguageModel
from .config import ModelArgs, ModelConfig, ModelCounts
from .ops import resolve_kernels
from .registry import (
    adopt,
    args_class,
    available_models,
    build_model,
    model_class,
    model_counts,
    register,
    shape_for_n,
    snapshot,
)

__all__ = [
    "KernelOp",
    "LanguageModel",
    "ModelArgs",
    "ModelConfig",
    "ModelCounts",
    "adopt",
    "args_class",
    "available_models",
    "build_model",
    "model_class",
    "model_counts",
    "register",
    "resolve_kernels",
    "shape_for_n",
    "snapshot",
]
