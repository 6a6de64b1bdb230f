"""Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models": refit audit.

Tier ``refit``: the paper's parametric fit (Approach 3) and IsoFLOP analysis (Approach 2) redone on the
paper's own points (Epoch AI's extraction of Figure 4), compared with the published numbers and with
Besiroglu et al.'s (2024) refit. Judges the "refit" claims.

Trained tiers (``trained.py``, sweeps in ``sweeps/<tier>/``) run Approaches 1-3 on our own IsoFLOP runs and
judge the "small-scale" claims:

* ``smoke``: 12 tiny runs on the default corpus, a pipeline check (CI); not judged.
* ``cpu``: 35 runs, 5 budgets over 1.5 decades (1.2e12 - 3.8e13 FLOPs), 7 sizes each (6.9e4 - 1.4e6
  parameters) on pystack-v1 with the tuned recipe (Chinchilla's schedule); about 1.5 hours on 2 CPU cores.
* ``gpu``: the plan at 1e14 - 3.2e15 FLOPs for one H100-class GPU; not yet run.
* ``cpu-ladder``: the Kaplan-Chinchilla discrepancy, one correction at a time (Porian et al. 2024; ``ladder.py``):
  53 more runs on 2 CPU cores (about 8 process-hours), the cpu tier's runs as its last rung.

Run records of the trained tiers are committed in ``results/chinchilla/<tier>/``, so ``scaling audit
chinchilla --tier cpu`` re-derives every verdict without training.
"""

from pathlib import Path

from harness.replication import Replication, Tier

from .analysis import measure
from .constants import SWEEPS
from .data import CHINCHILLA
from .ladder import measure_ladder
from .trained import measure_trained


def _trained(name: str, description: str, judged: bool = True, bootstrap: int = 1000) -> Tier:
    return Tier(
        name=name,
        description=description,
        measure=measure_trained,
        default_bootstrap=bootstrap,
        sweeps=(SWEEPS / name / "isoflop.toml",),
        judged=judged,
    )


REPLICATION = Replication(
    name="chinchilla",
    title="Chinchilla (Hoffmann et al. 2022): refit audit and IsoFLOPs on our own runs",
    citation="Hoffmann et al. (2022), arXiv:2203.15556; Besiroglu et al. (2024), arXiv:2404.10102",
    claims_path=Path(__file__).with_name("claims.toml"),
    tiers={
        "refit": Tier(
            name="refit",
            description="Approach 3 and Approach 2 refit on the published points; no training.",
            measure=measure,
            default_bootstrap=1000,
            kind="refit",
        ),
        "smoke": _trained(
            "smoke",
            "12 tiny IsoFLOP runs (3 budgets, 4 sizes) on the default corpus, under a minute",
            judged=False,
            bootstrap=100,
        ),
        "cpu": _trained(
            "cpu",
            "35 IsoFLOP runs: 5 budgets 1.2e12 - 3.8e13 FLOPs, 7 sizes each (6.9e4 - 1.4e6 parameters), pystack-v1, "
            "the tuned recipe",
        ),
        "gpu": _trained("gpu", "the IsoFLOP plan at 1e14 - 3.2e15 FLOPs for one H100-class GPU (bf16)"),
        "cpu-ladder": Tier(
            name="cpu-ladder",
            description=(
                "Porian et al.'s ladder from Kaplan's recipe to Chinchilla's: 2 x 9 long runs and the cpu plan under "
                "Kaplan's optimiser (53 runs), with the cpu tier's runs as the last rung"
            ),
            measure=measure_ladder,
            default_bootstrap=1000,
            sweeps=tuple(SWEEPS / "cpu-ladder" / f"{role}.toml" for role in ("long", "short", "matched")),
        ),
    },
    default_tier="refit",
    smoke_tier=("refit", "smoke"),
    datasets=(CHINCHILLA,),
)
