"""What the Kaplan analysis, its figures and the tiers share: the published numbers, the fixed choices of the
replication, and the roles of a tier's sweeps.

Imports nothing from this package, so :mod:`.analysis`, :mod:`.figures` and the package itself can all import
it without a cycle.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError

# Kaplan et al. (2020): eq. 1.1-1.3 and 1.5-1.7, Table 2, Table 3, Fig. 14. Constants in their units
# (non-embedding parameters, tokens, PF-days); ours are in FLOPs, so C_c is not comparable at all.
PUBLISHED = {
    "alpha_N": 0.076,
    "N_c": 8.8e13,
    "alpha_D": 0.095,
    "D_c": 5.4e13,
    "alpha_C": 0.050,
    "table2_alpha_N": 0.076,
    "table2_alpha_D": 0.103,
    "alpha_S": 0.76,
    "N_opt_exponent": 0.73,
}
LEVEL = 0.95
WARMUP_FRACTION = 0.05  # learning-curve points inside the warmup are transients, not part of L(N, S)
# per-token comparison: mean loss over positions [3/8, 1/2) of the context against [7/8, 1): at n_ctx 256 that is
# 96-127 (just past Kaplan et al.'s ~100 tokens) against the last 32 positions
EARLY_BIN, LATE_BIN = (3 / 8, 1 / 2), (7 / 8, 1.0)

# Every tier runs one sweep per role, specified in ``sweeps/<tier>/<role>.toml``: the N x D grid of Transformers,
# the data sweep of the largest one, the aspect-ratio sweep, the LSTMs, and repeated seeds (information only).
SWEEPS = Path(__file__).with_name("sweeps")
ROLES = ("nd", "data", "aspect", "lstm", "seeds")
OPTIONAL_ROLES = ("seeds",)


def tier_specs(tier: str) -> tuple[Path, ...]:
    """The sweep specs of ``tier``, one per role, in the order of ``ROLES``."""
    if not (SWEEPS / tier).is_dir():
        known = ", ".join(sorted(p.name for p in SWEEPS.iterdir() if p.is_dir()))
        raise UserError(f"the Kaplan replication has no sweeps for tier {tier!r}; tiers: {known}")
    return tuple(SWEEPS / tier / f"{role}.toml" for role in ROLES)


def role_of(spec: Path) -> str:
    """The role of a sweep spec: its file's stem (``sweeps/<tier>/<role>.toml``)."""
    role = Path(spec).stem
    if role not in ROLES:
        raise ValueError(f"sweep spec {spec} has no Kaplan role: its name must be one of {', '.join(ROLES)}")
    return role
