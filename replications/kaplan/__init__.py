"""Kaplan et al. (2020), "Scaling Laws for Neural Language Models", replicated at small scale.

Our own Transformers and LSTMs trained on the default corpus, fitted with the paper's functional forms, and
judged against its exponents and qualitative claims (``claims.toml``). The tiers share one analysis
(``analysis.py``) and differ only in their sweep specs (``sweeps/<tier>/``):

* ``smoke``: a pipeline check of tiny models (about a minute on 2 CPU cores; CI runs it). Not judged.
* ``cpu-kaplan-recipe``: the first replication, 1.5e3 - 1e6 non-embedding parameters on the 6.7 M-token default
  corpus with Kaplan et al.'s own learning rate (eq. D.1) and schedule, 48 minutes on 2 CPU cores. It was the
  ``cpu`` tier until its analysis showed the runs optimisation-limited; kept so the recipe's effect is a finding.
* ``cpu``: the same plan in the scaling regime: 1.5e3 - 1e6 parameters on the large corpus (``pystack-v1``,
  30 M tokens per L(N) run) with the tuned recipe (``harness/recipes.py``), about 5 hours on 2 CPU cores in
  resumable pieces.
* ``gpu``: the plan up to 1e8 parameters for one H100-class GPU, resumable in steps under 10 minutes.

Run records of the trained tiers are committed in ``results/kaplan/<tier>/``, so ``scaling audit kaplan --tier
<tier>`` re-derives every verdict without training.
"""

from pathlib import Path

from harness.replication import Replication, Tier

from .analysis import measure
from .constants import tier_specs

REPLICATION = Replication(
    name="kaplan",
    title="Kaplan et al. (2020) scaling laws at small scale",
    citation="Kaplan et al. (2020), arXiv:2001.08361",
    claims_path=Path(__file__).with_name("claims.toml"),
    tiers={
        "smoke": Tier(
            name="smoke",
            description="12 tiny runs (1.5e3 - 5e4 parameters, 1e5 - 3e5 tokens), about a minute on 2 CPU cores",
            measure=measure,
            default_bootstrap=200,
            sweeps=tier_specs("smoke"),
            judged=False,
        ),
        "cpu-kaplan-recipe": Tier(
            name="cpu-kaplan-recipe",
            description=(
                "41 runs, Transformers 1.5e3 - 1e6 and LSTMs 1.6e4 - 3e5 parameters, up to 6.5e6 tokens of the "
                "default corpus, Kaplan et al.'s learning rate and schedule"
            ),
            measure=measure,
            default_bootstrap=1000,
            sweeps=tier_specs("cpu-kaplan-recipe"),
        ),
        "cpu": Tier(
            name="cpu",
            description=(
                "26 runs, Transformers 1.5e3 - 1e6 and LSTMs 1.5e4 - 3e5 parameters, up to 3e7 tokens of pystack-v1, "
                "the tuned recipe"
            ),
            measure=measure,
            default_bootstrap=1000,
            sweeps=tier_specs("cpu"),
        ),
        "gpu": Tier(
            name="gpu",
            description="the same plan at 1e5 - 1e8 parameters for one H100-class GPU (bf16)",
            measure=measure,
            default_bootstrap=1000,
            sweeps=tier_specs("gpu"),
        ),
    },
    default_tier="cpu",
    smoke_tier="smoke",
)
