"""The model registry: names resolved lazily to model classes, in any process.

An entry maps a name to a class or to an import path ``"package.module:Class"``; the module is imported
the first time the name is used. A model is found by name in three ways, in this order:

1. registered in this process: ``@register("mine")`` on the class, or ``register("mine", "pkg.mod:Mine")``;
2. an import path used as the name itself: ``ModelConfig.make("my_pkg.models:Mine")``;
3. an installed package's entry point in the group ``scaling_harness.models`` (``mine = "pkg.mod:Mine"``).

Worker processes (the sweep's process pool, SLURM jobs) start with only the built-in entries, so the sweep
hands them :func:`snapshot` (every entry as an import path) and they :func:`adopt` it before building a
model. A class defined inside a function cannot be imported by path, so :func:`snapshot` names it in a clear
error rather than letting the worker fail with "unknown model".

This module imports no torch; resolving a name imports the model's module (which does).
"""

from __future__ import annotations

import importlib
import math
import numbers
from importlib import metadata
from typing import Any

from .. import memory
from ..errors import UserError

ENTRY_POINT_GROUP = "scaling_harness.models"
MAX_TARGET_N = 1e24  # far beyond any trainable model; above ~1e28 a shape's d_model passes 2**31

_BUILTIN: dict[str, str] = {
    "gpt": "harness.models.gpt:GPT",
    "lstm": "harness.models.lstm:LSTM",
    # the architecture arena's entrants (harness/arena.py), one file each
    "transformer_pp": "harness.models.transformer_pp:TransformerPP",
    "albert": "harness.models.albert:ALBERT",
    "universal": "harness.models.universal:UniversalTransformer",
    "switch": "harness.models.switch:Switch",
    "mos": "harness.models.mos:MixtureOfSoftmaxes",
    "performer": "harness.models.performer:Performer",
    "rwkv": "harness.models.rwkv:RWKV",
    "mamba": "harness.models.mamba:Mamba",
    "hybrid": "harness.models.hybrid:Hybrid",
    "mixer": "harness.models.mixer:CausalMixer",
    "lightconv": "harness.models.conv:LightConv",
    "dynamicconv": "harness.models.conv:DynamicConv",
    "funnel": "harness.models.funnel:Funnel",
    "factory": "harness.models.factory:FactoryModel",
}
_entries: dict[str, Any] = dict(_BUILTIN)  # name -> class or "module:attr"
_resolved: dict[str, type] = {}


def _import_path(path: str) -> type:
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise UserError(f"model import path {path!r} is not of the form 'package.module:Class'")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"cannot import model module {module!r} ({exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"module {module!r} has no {attr!r} (model import path {path!r})") from None
    return obj


def _check_model_class(name: str, cls: Any) -> type:
    """What the harness needs of a model class (checked by shape, so this module stays free of torch):
    its ``Args`` dataclass and ``counts``; subclassing :class:`harness.models.LanguageModel` gives the rest."""
    ok = (
        isinstance(cls, type)
        and isinstance(getattr(cls, "Args", None), type)
        and callable(getattr(cls, "counts", None))
    )
    if not ok:
        raise UserError(
            f"model {name!r} resolves to {cls!r}, which is not a model class (subclass harness.models.LanguageModel "
            "and give it an Args dataclass and counts(args))"
        )
    return cls


def register(name: str, target: Any = None):
    """Register a model class under ``name``: as a class decorator (``@register("mine")``), or directly with a
    class or an import path (``register("mine", "pkg.mod:Mine")``, imported when first used)."""

    def add(obj: Any):
        current = _entries.get(name)
        if current is not None and current is not obj and _describe(current) != _describe(obj):
            raise ValueError(f"model {name!r} is already registered ({_describe(current)})")
        _entries[name] = obj
        _resolved.pop(name, None)
        if isinstance(obj, type):
            obj.registry_name = name
        return obj

    return add if target is None else add(target)


def _describe(obj: Any) -> str:
    return obj if isinstance(obj, str) else f"{obj.__module__}:{obj.__qualname__}"


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_models() -> list[str]:
    """Registered names (built-ins, this process's registrations and installed entry points)."""
    return sorted({*_entries, *_entry_points()})


def model_class(name: str) -> type:
    """The class registered as ``name`` (or at import path ``name``); a UserError listing the names if unknown."""
    if name in _resolved:
        return _resolved[name]
    entry = _entries.get(name)
    if entry is None and ":" in name:
        entry = name
    if entry is None:
        entry = _entry_points().get(name)
    if entry is None:
        raise UserError(
            f"unknown model {name!r}; available: {', '.join(available_models())} "
            "(or give an import path 'package.module:Class')"
        )
    cls = _check_model_class(name, _import_path(entry) if isinstance(entry, str) else entry)
    _resolved[name] = cls
    return cls


def args_class(name: str) -> type:
    """The typed args dataclass of model ``name`` (its ``Args`` class attribute)."""
    return model_class(name).Args


def snapshot(names: list[str] | None = None) -> dict[str, str]:
    """Import paths of the registered entries (all, or ``names``), for :func:`adopt` in another process.

    Built-ins and entry points are found anyway and left out. A class that cannot be imported by path
    (defined in a function, or in a script run as ``__main__``) is a UserError here, in the parent, with what
    to do about it."""
    out = {}
    for name, entry in _entries.items():
        if names is not None and name not in names:
            continue
        if _BUILTIN.get(name) == entry:
            continue
        path = _describe(entry)
        if not isinstance(entry, str):
            module, qual = entry.__module__, entry.__qualname__
            if "<locals>" in qual or module == "__main__":
                raise UserError(
                    f"model {name!r} ({module}.{qual}) is defined where other processes cannot import it "
                    "(inside a function or in __main__): define it at the top level of an importable module, "
                    "or run with one worker"
                )
        out[name] = path
    return out


def adopt(entries: dict[str, str]) -> None:
    """Add the import-path entries of another process's :func:`snapshot` (existing names are kept)."""
    for name, path in entries.items():
        _entries.setdefault(name, path)


def build_model(cfg):
    """Build the model of a :class:`~harness.models.config.ModelConfig` (parameters on the CPU).

    A model whose fp32 parameters alone would not fit in the host's available memory is a UserError, before
    anything is allocated (set SCALING_NO_MEMORY_CHECK=1 to skip the check)."""
    cls = model_class(cfg.name)
    _check_parameter_memory(cfg, cls)
    return cls(cfg.args)


def _check_parameter_memory(cfg, cls) -> None:
    if memory.memory_check_disabled():
        return
    free = memory.available_memory("cpu")
    if free is None:
        return
    n = cls.counts(cfg.args).n_total
    if 4 * n > free[0]:
        gb = memory.format_gb
        raise UserError(
            f"model {cfg.name!r} has {n:,.4g} parameters: {gb(4 * n)} just to hold them in fp32 (about "
            f"{gb(16 * n)} to train with AdamW) but {gb(free[0])} of memory is {free[1]}; use a "
            f"smaller model, or set {memory.MEMORY_CHECK_ENV}=1 to try anyway"
        )


def model_counts(cfg):
    """Parameter and FLOP counts of a :class:`~harness.models.config.ModelConfig`, without building it."""
    return model_class(cfg.name).counts(cfg.args)


def shape_for_n(n: float, name: str = "gpt", **options) -> dict[str, int]:
    """Shape fields for a target Kaplan non-embedding N, from the model's own documented shape policy.

    ``options`` are the policy's keyword arguments (for the GPT: ``aspect``, ``min_layers``, ``head_dim``);
    one the model's policy does not take is a UserError listing the ones it does."""
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not (math.isfinite(n) and n > 0):
        raise UserError(f"target N must be a positive finite number, got {n!r}")
    if n > MAX_TARGET_N:
        raise UserError(f"target N {n:.3g} is above {MAX_TARGET_N:.0e}, beyond any model this harness can build")
    cls = model_class(name)
    allowed = cls.shape_options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UserError(
            f"model {name!r} has no shape option(s) {', '.join(unknown)}; "
            f"its options: {', '.join(allowed) if allowed else 'none'}"
        )
    return cls.shape_for(float(n), **options)
