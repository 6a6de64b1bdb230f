"""Quantities derived from a fitted ``L(N, D) = E + A/N^alpha + B/D^beta`` (Hoffmann et al. 2022, eq. 4).

Minimising L at fixed compute ``C = 6 N D`` gives

    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b,
    G = (alpha A / (beta B))^(1/(alpha+beta)),   a = beta/(alpha+beta),   b = alpha/(alpha+beta).

All functions accept scalars or arrays (e.g. bootstrap columns) and broadcast.
"""

from __future__ import annotations

import numpy as np


def exponent_a(alpha, beta):
    """Exponent of N_opt proportional to C^a."""
    return np.asarray(beta) / (np.asarray(alpha) + np.asarray(beta))


def exponent_b(alpha, beta):
    """Exponent of D_opt proportional to C^b."""
    return np.asarray(alpha) / (np.asarray(alpha) + np.asarray(beta))


def _G(A, B, alpha, beta):
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    return (alpha * np.asarray(A, dtype=float) / (beta * np.asarray(B, dtype=float))) ** (1.0 / (alpha + beta))


def n_opt(C, A, B, alpha, beta):
    """Compute-optimal parameter count at budget C (FLOPs), with C = 6 N D."""
    return _G(A, B, alpha, beta) * (np.asarray(C, dtype=float) / 6.0) ** exponent_a(alpha, beta)


def d_opt(C, A, B, alpha, beta):
    """Compute-optimal token count at budget C."""
    return (np.asarray(C, dtype=float) / 6.0) / n_opt(C, A, B, alpha, beta)


def tokens_per_parameter(C, A, B, alpha, beta):
    """D_opt / N_opt at budget C."""
    return d_opt(C, A, B, alpha, beta) / n_opt(C, A, B, alpha, beta)
