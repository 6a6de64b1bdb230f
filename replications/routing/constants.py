"""What the routing analysis and its figures share: the published numbers and the fixed choices of the refit.

Imports nothing from this package, so :mod:`.analysis` and :mod:`.figures` can both import it without a cycle.
The published values are also in ``claims.toml`` (each claim's ``published``); these copies draw the published
laws in the figures.
"""

from __future__ import annotations

ROUTERS = ("S-Base", "RL-R", "Hash")
KEY = {"S-Base": "s_base", "RL-R": "rl_r", "Hash": "hash"}  # measurement prefixes

# Clark et al. (2022), Table 3: the solutions of eq. (1) per router (base-10 logs, N in parameters).
TABLE3 = {
    "S-Base": {"a": -0.082, "b": -0.108, "c": 0.009, "d": 1.104, "E_start": 1.847, "E_max": 314.478},
    "RL-R": {"a": -0.083, "b": -0.126, "c": 0.012, "d": 1.111, "E_start": 1.880, "E_max": 469.982},
    "Hash": {"a": -0.087, "b": -0.136, "c": 0.012, "d": 1.157, "E_start": 4.175, "E_max": 477.741},
}
# The dense law L(N) = (N_c / N)^alpha_N fitted to the dense runs, and the size at which routing stops helping.
DENSE = {"alpha_N": 0.078, "N_c": 3.568e13}
N_CUTOFF = {"S-Base": 937e9, "RL-R": 85e9, "Hash": 83e9}

LEVEL = 0.95
# Tight stopping rules: with SciPy's defaults the starts stop at objectives 0.1 % apart and E_start moves by 0.1;
# with these every start of the grid reaches the same optimum (to 1e-9 in the objective).
FIT_TOL = {"gtol": 1e-12, "ftol": 1e-15}
