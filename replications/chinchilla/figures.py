"""Figures of the Chinchilla refit audit (matplotlib, no display needed).

Each figure takes the audit's results (a :class:`~replications.chinchilla.analysis.ChinchillaAudit`) as its
argument and computes nothing the claims depend on. Only the type is named from :mod:`.analysis`, for the
annotations: the analysis imports this module to draw, and this module imports nothing from it at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from harness.fit import derived as dv

from .constants import ISOFLOP_BUDGETS, ISOFLOP_TOL_DEX, PUBLISHED

if TYPE_CHECKING:
    from .analysis import ChinchillaAudit


def _loss(params, N, D):
    return params["E"] + params["A"] / N ** params["alpha"] + params["B"] / D ** params["beta"]


def isoloss_contours(audit: ChinchillaAudit):
    """The data in the (N, D) plane coloured by loss, with iso-loss contours of our refit (solid) and of the
    published eq. 10 (dashed), and each law's compute-efficient frontier."""
    d = audit.data
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    sc = ax.scatter(d.N, d.D, c=d.loss, cmap="viridis_r", s=14, edgecolors="none", zorder=3)
    fig.colorbar(sc, ax=ax, label="final loss (extracted)")
    n = np.logspace(7.5, 10.7, 200)
    dd = np.logspace(8, 12.3, 200)
    NN, DD = np.meshgrid(n, dd)
    levels = [2.1, 2.3, 2.5, 2.8, 3.2]
    for params, style, label in (
        (audit.sum_fit.params_, "-", "refit (sum of Huber)"),
        (PUBLISHED, "--", "Hoffmann et al. eq. 10"),
    ):
        cs = ax.contour(NN, DD, _loss(params, NN, DD), levels=levels, colors="k", linestyles=style, linewidths=0.8)
        ax.clabel(cs, fmt="%.1f", fontsize=7)
        C = np.logspace(18, 24, 50)
        ax.plot(
            dv.n_opt(C, params["A"], params["B"], params["alpha"], params["beta"]),
            dv.d_opt(C, params["A"], params["B"], params["alpha"], params["beta"]),
            style,
            color="tab:red",
            lw=1.5,
            label=f"compute-optimal frontier: {label}",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="parameters N",
        ylabel="tokens D",
        xlim=(n[0], n[-1]),
        ylim=(dd[0], dd[-1]),
        title="Chinchilla data with iso-loss contours: refit (solid) vs published (dashed)",
    )
    ax.legend(loc="upper left", fontsize=8)
    return fig


def bootstrap_exponent(audit: ChinchillaAudit):
    """Bootstrap distribution of a = beta / (alpha + beta) against the published Approach 3 value."""
    a = audit.sum_boot.column("a")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.hist(a, bins=40, color="tab:blue", alpha=0.75, label=f"bootstrap refits (n={len(a)})")
    lo, hi = audit.sum_boot.interval("a")
    ax.axvspan(lo, hi, color="tab:blue", alpha=0.12, label=f"95% interval [{lo:.3f}, {hi:.3f}]")
    ax.axvline(
        float(dv.exponent_a(audit.sum_fit.params_["alpha"], audit.sum_fit.params_["beta"])), color="k", label="refit"
    )
    ax.axvline(0.46, color="tab:red", ls="--", label="Hoffmann et al. Table 2 (Approach 3): 0.46")
    if np.isfinite(audit.approach2_a):
        ax.axvline(
            audit.approach2_a, color="tab:green", ls=":", label=f"Approach 2 on these points: {audit.approach2_a:.3f}"
        )
    ax.set(xlabel="a  (N_opt ∝ C^a)", ylabel="count", title="Compute-optimal exponent a: bootstrap vs published")
    ax.legend(fontsize=8)
    return fig


def isoflop_profiles(audit: ChinchillaAudit):
    """Approach 2: loss against N for each IsoFLOP budget, with the fitted parabolas and their minima."""
    d = audit.data
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cmap = plt.get_cmap("plasma")
    for i, p in enumerate(audit.profiles):
        color = cmap(i / max(1, len(audit.profiles)))
        sel = np.abs(np.log10(d.C) - np.log10(p.budget)) <= ISOFLOP_TOL_DEX
        ax.scatter(d.N[sel], d.loss[sel], s=10, color=color)
        u = np.linspace(np.log10(d.N[sel].min()), np.log10(d.N[sel].max()), 50)
        ax.plot(10**u, p.loss_min + p.curvature * (u - p.log10_n_opt) ** 2, color=color, lw=1, label=f"{p.budget:.0e}")
        ax.plot(10**p.log10_n_opt, p.loss_min, "x", color=color)
    ax.set(
        xscale="log",
        xlabel="parameters N",
        ylabel="loss",
        title=f"IsoFLOP profiles ({len(audit.profiles)} of {len(ISOFLOP_BUDGETS)} budgets usable)",
    )
    ax.legend(title="FLOPs", fontsize=7, ncol=2)
    return fig
