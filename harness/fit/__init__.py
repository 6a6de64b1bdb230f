"""Functional forms, robust multi-start fitting, bootstrap intervals and extrapolation scoring."""

from .estimator import Bootstrap, ConvergenceError, FitInputError, FitWarning, ScalingLaw, validate_xy
from .forms import Form, available_forms, get_form, hoffmann_grid, register_form
from .objectives import Objective
from .optim import BatchResult, batched_lbfgs

__all__ = [
    "BatchResult",
    "Bootstrap",
    "ConvergenceError",
    "FitInputError",
    "FitWarning",
    "Form",
    "Objective",
    "ScalingLaw",
    "available_forms",
    "batched_lbfgs",
    "get_form",
    "hoffmann_grid",
    "register_form",
    "validate_xy",
]
