"""Figures of the routing refit (matplotlib, no display needed); they compute nothing the claims depend on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from harness.fit import get_form

from .constants import LEVEL, N_CUTOFF, ROUTERS, TABLE3

if TYPE_CHECKING:
    from .analysis import RoutingAudit


def routing_laws(audit: RoutingAudit):
    """Per router, final loss against experts for each dense size (dense runs at E = 1) with our eq. (1) refit
    (solid) and Table 3's (dashed), as the paper's Fig. 1a; last panel, the benefit of routing,
    -d log10 L / d log10 E_hat = -(b + c log10 N), against N with its bootstrap band: it reaches zero at N_cutoff."""
    form = get_form("routing")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    sizes = np.unique(audit.runs.N[audit.runs.E > 1])
    colours = plt.cm.viridis(np.linspace(0.05, 0.9, len(sizes)))
    e = np.logspace(0, np.log10(512), 100)
    for ax, router in zip(axes.flat, ROUTERS, strict=False):
        f = audit.fits[router]
        for n, col in zip(sizes, colours, strict=True):
            sel = np.isclose(f.runs.N, n)
            ax.scatter(f.runs.E[sel], f.runs.loss[sel], color=col, s=14, zorder=3)
            X = np.stack([np.full_like(e, n), e], axis=1)
            ax.plot(e, f.law.predict(X), color=col, lw=1.2, label=f"N = {n:.2g}")
            ax.plot(e, form.predict(TABLE3[router], X), color=col, lw=1, ls="--", alpha=0.7)
        ax.set(xscale="log", yscale="log", xlabel="experts E", ylabel="final validation loss")
        ax.set_title(f"{router}: refit (solid) vs Table 3 (dashed); rms {f.rms_log10():.4f} dex", fontsize=10)
    axes.flat[0].legend(fontsize=7, ncol=2)
    ax = axes.flat[3]
    n = np.logspace(7, 13, 200)
    for router, col in zip(ROUTERS, ("C0", "C1", "C2"), strict=True):
        f = audit.fits[router]
        b, c = f.boot.column("b"), f.boot.column("c")
        band = -(b[:, None] + c[:, None] * np.log10(n)[None, :])
        lo, hi = np.percentile(band, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2], axis=0)
        p = f.law.params_
        ax.plot(n, -(p["b"] + p["c"] * np.log10(n)), color=col, label=f"{router} refit")
        ax.fill_between(n, lo, hi, color=col, alpha=0.15)
        t = TABLE3[router]
        ax.plot(n, -(t["b"] + t["c"] * np.log10(n)), color=col, ls="--", lw=1)
        ax.axvline(N_CUTOFF[router], color=col, ls=":", lw=1)
    ax.axhline(0, color="k", lw=0.8)
    ax.axvspan(sizes.min(), sizes.max(), color="0.9", zorder=0, label="sizes trained")
    ax.set(xscale="log", xlabel="dense parameters N", ylabel="-d log10 L / d log10 E_hat")
    title = f"benefit of routing ({100 * LEVEL:g}% band); dashed: Table 3, dotted: published N_cutoff"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle("Clark et al. (2022) eq. (1) refit on the released runs")
    fig.tight_layout()
    return fig
