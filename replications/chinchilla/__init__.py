"""Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models": refit audit.

Tier ``refit``: the paper's parametric fit (Approach 3) and IsoFLOP analysis (Approach 2) redone on the
paper's own points (Epoch AI's extraction of Figure 4), compared with the published numbers and with
Besiroglu et al.'s (2024) refit. IsoFLOP training on our own runs (Approaches 1-3 at small scale) is a
planned tier.
"""

from pathlib import Path

from harness.replication import Replication, Tier

from .analysis import measure
from .data import CHINCHILLA

REPLICATION = Replication(
    name="chinchilla",
    title="Chinchilla (Hoffmann et al. 2022) refit audit",
    citation="Hoffmann et al. (2022), arXiv:2203.15556; Besiroglu et al. (2024), arXiv:2404.10102",
    claims_path=Path(__file__).with_name("claims.toml"),
    tiers={
        "refit": Tier(
            name="refit",
            description="Approach 3 and Approach 2 refit on the published points; no training.",
            measure=measure,
            default_bootstrap=1000,
            kind="refit",
        )
    },
    default_tier="refit",
    datasets=(CHINCHILLA,),
)
