"""Tay et al. (2022), "Scaling Laws vs Model Architectures": how architectures scale, on the arena.

The paper trained ten architectures from Tiny to XL on C4 and compared their scaling; it released no run data,
so every claim here is *small-scale*: our own decoder-only runs on our corpus, through the architecture arena
(:mod:`harness.arena`: a learning-rate sweep per architecture, a size sweep at a fixed tokens-per-parameter
ratio, L(C) fits and the gap to the baseline's law with bootstrap intervals), judged on the paper's qualitative
and ordinal claims. Two claims from other papers are measured with the same protocol: Kaplan et al.'s LSTM
(worse, and the gap widens) and Gu and Dao's Mamba (matches Transformer++ at equal FLOPs).

Tiers: ``smoke`` (CI pipeline check on one entrant, not judged), ``cpu`` (the claims: every entrant of
:data:`analysis.ENTRANTS` at the arena's cpu tier, run in resumable pieces; records in results/tay/cpu) and
``gpu`` (the arena's gpu tier, planned for a lent GPU). ``scaling replicate tay --tier cpu`` trains what is
missing; ``scaling audit tay`` only reads the committed records.
"""

from pathlib import Path

from harness.replication import Replication, Tier

from .analysis import ENTRANTS, SMOKE_ENTRANTS, measure_tier

REPLICATION = Replication(
    name="tay",
    title="Scaling laws vs model architectures (Tay et al. 2022) at small scale",
    citation="Tay et al. (2022), arXiv:2207.10551 (EMNLP 2023 Findings)",
    claims_path=Path(__file__).with_name("claims.toml"),
    tiers={
        "smoke": Tier(
            name="smoke",
            description=f"pipeline check (not judged): the arena's smoke tier on {', '.join(SMOKE_ENTRANTS)} vs gpt",
            measure=measure_tier("smoke", SMOKE_ENTRANTS),
            default_bootstrap=200,
            judged=False,
        ),
        "cpu": Tier(
            name="cpu",
            description=(
                f"the arena's cpu tier on {len(ENTRANTS)} architectures vs gpt (4 sizes, 1e4-3e5 parameters, 20 "
                "tokens per parameter, a learning-rate sweep per architecture); 20-40 minutes each on 2 cores"
            ),
            measure=measure_tier("cpu", ENTRANTS),
            default_bootstrap=1000,
        ),
        "gpu": Tier(
            name="gpu",
            description="the arena's gpu tier (6 sizes, 1e5-3e7 parameters, 2 seeds) on the same architectures: "
            "planned for a lent GPU",
            measure=measure_tier("gpu", ENTRANTS),
            default_bootstrap=1000,
        ),
    },
    default_tier="cpu",
    smoke_tier="smoke",
)
