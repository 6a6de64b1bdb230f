"""Named training recipes: how a run's optimiser settings follow from its model size and token budget.

A recipe fills the fields of a :class:`~harness.config.TrainConfig` that the config does not set itself
(``recipe = "tuned"`` in a sweep's ``[base]``; a field given explicitly wins). The values it chose are
written into the config, so a run's identity and record show them and never depend on a recipe's code
changing later. ``N`` below is the Kaplan non-embedding parameter count.

* ``kaplan``: Kaplan et al. (2020): peak learning rate from their eq. D.1, ``0.003239 - 0.0001395 ln N``
  (fitted on their 512 x 1,024-token batches), linear warmup over 5 % of the steps, cosine decay to zero,
  Adam betas (0.9, 0.95).
* ``tuned``: chosen for our small models and batches, each part from a source or a measurement:

  - peak learning rate ``LR(N) = TUNED_LR_A * N ** -TUNED_LR_B``, fitted to our own learning-rate sweep
    (``results/recipe/lr-sweep``; ``scaling recipe fit`` recomputes the constants and a test checks that
    they match the committed records);
  - warmup of about ``N`` tokens, at least one step and at most a quarter of the run (Porian et al. 2024,
    arXiv:2406.19146: a warmup far longer than N tokens is one of the three causes of the Kaplan-Chinchilla
    discrepancy; N tokens was their fix);
  - cosine decay to 10 % of the peak over exactly the run's own length (Hoffmann et al. 2022, Sec. 3 and
    App. B: a cosine cycle longer than the run overestimates its loss);
  - AdamW beta2 = 0.99, beta1 = 0.9, weight decay 0.1 (Porian et al. 2024: tuning beta2 is essential at
    small batch sizes, where the usual 0.95 falls behind a larger value; our 16-sequence batches are small).

The rungs of Porian et al.'s (2024) ladder from Kaplan's recipe to Chinchilla's, each Kaplan's optimiser
settings (eq. D.1 learning rate, Adam betas (0.9, 0.95)) with one more correction:

* ``kaplan-long``: Kaplan et al.'s schedule at our scale: a warmup of ``LONG_WARMUP_TOKENS`` for every size (at
  most a quarter of the run, as for the ~N rule) and
  one cosine to zero over ``LONG_HORIZON_TOKENS``, the same for every run and longer than any, so a run stops
  with its learning rate barely decayed and is read at every budget its curve passes (Kaplan et al. trained
  every model on one 2.5e5-step schedule with a 3,000-step warmup: 1.2 % of it; ours is 1.2 % of our horizon);
* ``kaplan-short``: the same with a warmup of ~N tokens (Porian et al.'s correction);
* ``kaplan-matched``: ~N tokens of warmup and a cosine to 10 % over exactly the run (Hoffmann et al.).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UserError

# LR(N) = A * N^-B, fitted by ``scaling recipe fit results/recipe/lr-sweep`` (harness.recipe_fit) to the 15
# committed runs of results/recipe/lr_sweep.toml (3 M tokens each); a test refits them and checks these values.
# Caveat (results/recipe/README.md): at N = 1e5 the loss-vs-LR curve is not smooth (runs at 5.6e-3 and above
# escaped the early loss plateau late), so that size's optimum is poorly determined; rerun the sweep at the
# tier's own budgets before trusting the rule there.
TUNED_LR_A = 0.03057
TUNED_LR_B = 0.1717
# Kaplan et al.'s schedule scaled to our runs: a horizon 3.7x our longest run (2.7e7 tokens), and a warmup that
# is the same fraction of it as their 3,000 steps of 2.5e5 (see the module docstring)
LONG_HORIZON_TOKENS = 100_000_000
LONG_WARMUP_TOKENS = 1_200_000


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    settings: Callable[[float, int, int], dict[str, Any]]  # (N, tokens, batch_tokens) -> TrainConfig fields


def kaplan_lr(n: float) -> float:
    """Kaplan et al. (2020) eq. D.1: LR(N) ~= 0.003239 - 0.0001395 log N (their Adam runs)."""
    import math

    return 0.003239 - 0.0001395 * math.log(n)


def tuned_lr(n: float) -> float:
    if TUNED_LR_A is None or TUNED_LR_B is None:
        raise UserError(
            "the 'tuned' recipe's learning-rate rule is not fitted yet: run the learning-rate sweep and "
            "'scaling recipe fit' (or give lr explicitly)"
        )
    return TUNED_LR_A * n**-TUNED_LR_B


def _kaplan(n: float, tokens: int, batch_tokens: int) -> dict[str, Any]:
    return {"lr": kaplan_lr(n), "schedule": "kaplan", "warmup": 0.05, "betas": (0.9, 0.95)}


def warmup_fraction(n: float, tokens: int, batch_tokens: int) -> float:
    """About ``n`` tokens of warmup (``n`` the model's N for the ~N rule) as a fraction of the run: at least one
    step, at most a quarter."""
    steps = max(1, tokens // batch_tokens)
    warm_steps = min(max(1, round(n / batch_tokens)), max(1, steps // 4))
    return warm_steps / steps if steps > 1 else 0.0


def _tuned(n: float, tokens: int, batch_tokens: int, lr: float | None = None) -> dict[str, Any]:
    return {
        "lr": tuned_lr(n) if lr is None else lr,
        "schedule": "hoffmann",
        "warmup": warmup_fraction(n, tokens, batch_tokens),
        "betas": (0.9, 0.99),
        "weight_decay": 0.1,
    }


def _kaplan_opt(n: float) -> dict[str, Any]:
    return {"lr": kaplan_lr(n), "betas": (0.9, 0.95)}


def _kaplan_long(n: float, tokens: int, batch_tokens: int, short_warmup: bool = False) -> dict[str, Any]:
    if tokens > LONG_HORIZON_TOKENS:
        raise UserError(f"a run of {tokens:,} tokens is longer than the long schedule ({LONG_HORIZON_TOKENS:,})")
    warm = warmup_fraction(LONG_WARMUP_TOKENS if not short_warmup else n, tokens, batch_tokens)
    return {**_kaplan_opt(n), "schedule": "kaplan", "warmup": warm, "horizon_tokens": LONG_HORIZON_TOKENS}


def _kaplan_matched(n: float, tokens: int, batch_tokens: int) -> dict[str, Any]:
    return {**_kaplan_opt(n), "schedule": "hoffmann", "warmup": warmup_fraction(n, tokens, batch_tokens)}


RECIPES: dict[str, Recipe] = {
    "kaplan": Recipe("kaplan", "Kaplan et al. 2020: eq. D.1 learning rate, 5 % warmup, cosine to zero", _kaplan),
    "tuned": Recipe("tuned", "fitted LR(N), ~N tokens warmup, cosine to 10 % over the run, beta2 0.99", _tuned),
    "kaplan-long": Recipe(
        "kaplan-long", "Kaplan's optimiser, a fixed long warmup and one long cosine for every run", _kaplan_long
    ),
    "kaplan-short": Recipe(
        "kaplan-short",
        "kaplan-long with ~N tokens of warmup",
        lambda n, tokens, batch: _kaplan_long(n, tokens, batch, short_warmup=True),
    ),
    "kaplan-matched": Recipe(
        "kaplan-matched", "Kaplan's optimiser, ~N tokens of warmup, cosine to 10 % over the run", _kaplan_matched
    ),
}


def apply_recipe(name: str, fields: dict[str, Any], n: float) -> dict[str, Any]:
    """``fields`` (a run's config as a dict) completed by the recipe: what it gives explicitly is kept."""
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    given = {k: v for k, v in fields.items() if not (k == "lr" and v is None)}
    tokens, batch = int(given.get("tokens", 1_000_000)), int(given.get("batch_tokens", 8192))
    if name == "tuned" and "lr" in given:  # a learning-rate sweep: the rule is not needed, nor evaluated
        chosen = _tuned(n, tokens, batch, lr=float(given["lr"]))
    else:
        chosen = RECIPES[name].settings(n, tokens, batch)
    return {**chosen, **given}
