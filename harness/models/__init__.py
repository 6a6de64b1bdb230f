"""Language models for scaling experiments, looked up by name (``@register("gpt")``).

``build_model(ModelConfig(...))`` builds one; ``model_counts(cfg)`` gives its parameter and FLOP counts
under both conventions without building it; ``shape_for_n(1e5)`` picks a shape for a target N.
"""

from . import gpt, lstm  # noqa: F401  (register the built-in models)
from .ops import resolve_kernels
from .registry import (
    LanguageModel,
    ModelConfig,
    ModelCounts,
    available_models,
    build_model,
    model_class,
    model_counts,
    register,
    shape_for_n,
)

__all__ = [
    "LanguageModel",
    "ModelConfig",
    "ModelCounts",
    "available_models",
    "build_model",
    "model_class",
    "model_counts",
    "register",
    "resolve_kernels",
    "shape_for_n",
]
