"""Functional forms, robust multi-start fitting, bootstrap intervals and extrapolation scoring."""

from .estimator import (
    Bootstrap,
    ConvergenceError,
    FitInputError,
    FitWarning,
    NotFittedError,
    ScalingLaw,
    percentile_interval,
    validate_xy,
)
from .forms import Form, available_forms, form_class, get_form, hoffmann_grid, register_form
from .objectives import Objective
from .optim import BatchResult, batched_lbfgs

__all__ = [
    "BatchResult",
    "Bootstrap",
    "ConvergenceError",
    "FitInputError",
    "FitWarning",
    "Form",
    "NotFittedError",
    "Objective",
    "ScalingLaw",
    "available_forms",
    "batched_lbfgs",
    "form_class",
    "get_form",
    "hoffmann_grid",
    "percentile_interval",
    "register_form",
    "validate_xy",
]
