"""Clark et al. (2022), "Unified Scaling Laws for Routed Language Models": refit audit of the MoE law.

Tier ``refit``: eq. (1), ``log10 L = a log10 N + b log10 E_hat + c log10 N log10 E_hat + d`` with the
saturating expert count E_hat, refitted per router (S-Base, RL-R, Hash) on every released run's final
validation loss (the authors' ``curves.csv.gz``), with bootstrap intervals, against the paper's Table 3; the
dense law, the size at which routing stops helping, and the paper's qualitative claims (routing helps at every
size, the benefit shrinks with size, S-Base is the best router). Judges "refit" claims only: there is no
trained tier, because routed models at the paper's scale (15M - 1.3B parameters, 130B tokens) are far beyond
a CPU; the arena's ``switch`` entrant is where our own MoE runs are compared with dense ones.
"""

from pathlib import Path

from harness.replication import Replication, Tier

from .analysis import measure
from .data import ROUTING

REPLICATION = Replication(
    name="routing",
    title="Routed language models (Clark et al. 2022): refit of the MoE scaling law",
    citation="Clark et al. (2022), ICML, arXiv:2202.01169",
    claims_path=Path(__file__).with_name("claims.toml"),
    tiers={
        "refit": Tier(
            name="refit",
            description="eq. (1) per router on the released runs, with bootstrap intervals; no training.",
            measure=measure,
            default_bootstrap=1000,
            kind="refit",
        ),
    },
    default_tier="refit",
    datasets=(ROUTING,),
)
