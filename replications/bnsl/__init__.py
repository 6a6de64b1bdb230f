"""Caballero et al. (2023), "Broken Neural Scaling Laws": refit audits of the extrapolation claims.

Tier ``benchmark`` (refit): M1-M4 (Alabdulmohsin et al. 2022) and a 1-break BNSL fitted to each of the 92
curves of Alabdulmohsin et al.'s extrapolation benchmark on its fit split and scored by RMSLE on the rest;
which form wins most often. Tier ``example`` (refit): the paper's worked example, 4-digit addition, with the
authors' own procedure (grid search, then Levenberg-Marquardt on log(y + 1)) against their published fit, and
the harness's fitter on the same points. Tier ``ours`` (small-scale): curves we train here on CPU, model-wise
double descent and grokking, 8 seeds each, whose last quarter BNSL, a power law and M4 extrapolate
(:mod:`.ours`). ``smoke`` runs the example and one benchmark curve per domain (CI, not judged).
"""

from pathlib import Path

from harness.replication import Replication, Tier

from .analysis import measure_tier
from .data import LANG, VISION
from .ours import measure_ours

REPLICATION = Replication(
    name="bnsl",
    title="Broken neural scaling laws (Caballero et al. 2023): extrapolation",
    citation="Caballero, Gupta, Rish, Krueger (2023), ICLR, arXiv:2210.14891",
    claims_path=Path(__file__).with_name("claims.toml"),
    tiers={
        "benchmark": Tier(
            name="benchmark",
            description="5 forms x 92 benchmark curves, fitted on each curve's fit split, RMSLE on the rest; "
            "about 15 minutes on 2 cores",
            measure=measure_tier("benchmark"),
            kind="refit",
        ),
        "example": Tier(
            name="example",
            description="4-digit addition: the authors' procedure and ours on the 14 fitted points; seconds",
            measure=measure_tier("example"),
            kind="refit",
        ),
        "ours": Tier(
            name="ours",
            description="our own curves (double descent, grokking; 8 seeds each) trained on CPU, BNSL against a "
            "power law and M4 on each curve's held-back tail; about 9 minutes on 2 cores (--workers 2), 2 to refit",
            measure=measure_ours,
            kind="small-scale",
        ),
        "smoke": Tier(
            name="smoke",
            description="pipeline check (not judged): the example and one benchmark curve per domain",
            measure=measure_tier("smoke"),
            default_bootstrap=100,
            judged=False,
            kind="refit",
        ),
    },
    default_tier="benchmark",
    smoke_tier="smoke",
    datasets=(VISION, LANG),
)
