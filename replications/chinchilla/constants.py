"""What the Chinchilla analysis and its figures share: the published numbers and the fixed choices of the audit.

Imports nothing from this package, so :mod:`.analysis` and :mod:`.figures` can both import it without a cycle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Hoffmann et al. (2022), eq. 10: the published Approach 3 fit.
PUBLISHED = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
# IsoFLOP budgets of Hoffmann et al. Figure 3 (Approach 2).
ISOFLOP_BUDGETS = np.array([6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21])
ISOFLOP_TOL_DEX = 0.05  # a run belongs to a budget if its C is within 12% of it (extraction scatter is ~5%)
LEVEL = 0.95
CHINCHILLA_BUDGET = 5.76e23  # training compute of Chinchilla (70B parameters, 1.4T tokens), Hoffmann et al. Table 3

# The trained tiers' sweep specs (sweeps/<tier>/*.toml) and the rungs of the discrepancy ladder (ladder.py).
SWEEPS = Path(__file__).with_name("sweeps")
CPU_ISOFLOP_SPEC = SWEEPS / "cpu" / "isoflop.toml"
RUNGS = {
    "a": "Kaplan et al.'s recipe and count",
    "b": "+ every parameter and FLOP counted",
    "c": "+ warmup of ~N tokens",
    "d": "+ cosine matched to each run",
    "e": "+ tuned AdamW (the cpu tier)",
}
