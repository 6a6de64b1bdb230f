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

from .constants import ISOFLOP_BUDGETS, ISOFLOP_TOL_DEX, PUBLISHED, RUNGS

if TYPE_CHECKING:
    from .analysis import ChinchillaAudit
    from .ladder import Ladder
    from .trained import TrainedAnalysis

TABLE2_A = {1: 0.50, 2: 0.49, 3: 0.46}  # Hoffmann et al. 2022, Table 2 (also in claims.toml, section 5)


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


# ---------------------------------------------------------------------------------------- trained tiers
def trained_figures(an: TrainedAnalysis) -> dict:
    """The figures of a trained tier: each approach's own figure (:func:`harness.report.plot_allocation`),
    the learning curves with Approach 1's envelope, and the three N_opt(C) frontiers side by side."""
    from harness.report import plot_allocation

    figs = {}
    r = an.runs
    for k, res in an.allocations.items():
        figs[f"approach{k}"] = plot_allocation(res, r["N_total"], r["loss"], r["C_hoffmann"] if k == 2 else None)
    figs["learning_curves"] = learning_curves(an)
    if an.allocations:
        figs["frontiers"] = frontiers(an)
    return figs


def learning_curves(an: TrainedAnalysis):
    """Every run's validation loss against its compute (k N D), coloured by size, with the envelope (the lowest
    loss any run reached by each compute) that Approach 1 reads its sizes from."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = sorted({rec["scale"]["N_total"] for rec in an.runs.records})
    cmap = plt.get_cmap("viridis")
    seen = set()
    for rec in an.runs.records:
        n = rec["scale"]["N_total"]
        t = np.asarray(rec["curve"]["tokens"], float)
        v = np.array([np.nan if x is None else x for x in rec["curve"]["val_loss"]], float)
        keep = t > 0
        colour = cmap(sizes.index(n) / max(1, len(sizes) - 1))
        ax.plot(an.k * n * t[keep], v[keep], color=colour, lw=0.8, alpha=0.8, label=None if n in seen else f"{n:.2g}")
        seen.add(n)
    res = an.allocations.get(1)
    if res is not None and res.frontier is not None:
        for b in an.budgets:
            ax.axvline(b, color="0.85", lw=0.6, zorder=0)
    ax.set(xscale="log", xlabel="compute k N D (FLOPs)", ylabel="validation loss",
           title="Learning curves (grey: the IsoFLOP budgets)")  # fmt: skip
    ax.legend(title="N (total)", fontsize=7, ncol=2)
    return fig


def frontiers(an: TrainedAnalysis):
    """N_opt(C) from each approach with its exponent and interval, against the slope Table 2 reports (dashed,
    drawn through our Approach 2 line at the middle budget)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    grid = np.geomspace(an.budgets.min(), an.budgets.max(), 50)
    for k, res in sorted(an.allocations.items()):
        ci = "" if res.a.ci is None else f" [{res.a.ci[0]:.2f}, {res.a.ci[1]:.2f}]"
        ax.plot(grid, res.n_opt(grid), color=f"C{k}", lw=1.6, label=f"Approach {k}: a = {res.a.value:.2f}{ci}")
        if k == 2:
            used = [b for b in res.budgets if not b.excluded]
            ax.errorbar(
                [b.budget for b in used],
                [b.N_opt.value for b in used],
                yerr=np.abs(np.array([b.N_opt.ci for b in used]).T - [b.N_opt.value for b in used])
                if used and all(b.N_opt.ci is not None for b in used)
                else None,
                fmt="o",
                color="C2",
                ms=4,
                capsize=2,
            )
    ref = an.allocations.get(2) or next(iter(an.allocations.values()))
    n_mid = float(ref.n_opt(an.middle))
    for k, a in TABLE2_A.items():
        if k == 2:
            ax.plot(grid, n_mid * (grid / an.middle) ** a, color="0.4", ls="--", lw=1, label=f"Table 2 slope {a}")
    ax.plot(grid, n_mid * (grid / an.middle) ** 0.73, color="tab:red", ls=":", lw=1, label="Kaplan et al. slope 0.73")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs, Hoffmann et al.'s count)",
           ylabel="compute-optimal N (total parameters)", title="Compute-optimal size: three approaches")  # fmt: skip
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # less than a decade: minor labels would overlap
    ax.legend(fontsize=7)
    return fig


def ladder(lad: Ladder):
    """The ladder in one figure: each rung's compute-optimal exponent a with its 95% interval, from Kaplan et
    al.'s recipe and count (a) to Chinchilla's (e), against the two papers' values."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    names = list(RUNGS)
    for i, rung in enumerate(names):
        res = lad.rungs.get(rung)
        if res is None:
            ax.annotate("not fitted", (i, 0.5), ha="center", fontsize=8, color="0.4")
            continue
        err = None if res.a.ci is None else [[res.a.value - res.a.ci[0]], [res.a.ci[1] - res.a.value]]
        ax.errorbar([i], [res.a.value], yerr=err, fmt="o", color="C0", capsize=3)
        ax.annotate(f"{res.a.value:.2f}", (i, res.a.value), textcoords="offset points", xytext=(8, 4), fontsize=8)
    ax.axhline(0.73, color="tab:red", ls=":", lw=1, label="Kaplan et al. 2020: 0.73")
    ax.axhline(0.50, color="0.3", ls="--", lw=1, label="Hoffmann et al. 2022: 0.50")
    ax.set_xticks(range(len(names)), [f"({r}) {RUNGS[r]}" for r in names], rotation=20, ha="right", fontsize=8)
    ax.set(
        ylabel="a  (N_opt ~ C^a, Approach 2)", title="From Kaplan's recipe to Chinchilla's, one correction at a time"
    )
    ax.legend(fontsize=8)
    return fig
