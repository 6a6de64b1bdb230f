"""Figures of the BNSL replication (matplotlib, no display needed); they compute nothing the claims depend on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from harness.fit import get_form

from .constants import METHODS
from .data import DOMAINS

if TYPE_CHECKING:
    from .analysis import BenchmarkFits


def example_figure(art: dict):
    """4-digit addition: the 14 fitted and 3 held-out points, the authors' fit and ours."""
    from . import example as ex

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(ex.X[: ex.SPLIT], ex.Y[: ex.SPLIT], "ko", label="fitted points")
    ax.plot(ex.X[ex.SPLIT :], ex.Y[ex.SPLIT :], "o", color="tab:green", label="held-out points")
    grid = np.geomspace(ex.X.min(), ex.X.max() * 1.2, 300)
    for key, style, label in (("authors", "-", "authors' procedure"), ("ours", "--", "harness fitter")):
        p = art[key]
        r = ex.extrapolation_rmsle(p)
        ax.plot(grid, ex.bnsl1(grid, *(p[k] for k in ex.NAMES)), style, label=f"{label} (held-out RMSLE {r:.4f})")
    ax.axvline(art["authors"]["d1"], color="0.6", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="training set size", ylabel="test cross-entropy")
    ax.set_title("BNSL, 4-digit addition (Caballero et al. 2023, Fig. 4 left)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def benchmark_figure(fits: BenchmarkFits):
    """Left: median extrapolation RMSLE per domain and form. Right: one curve per domain, every form's fit."""
    methods = fits.methods
    fig = plt.figure(figsize=(14, 5.2))
    ax = fig.add_subplot(1, 3, 1)
    width = 0.8 / len(methods)
    doms = [d for d in DOMAINS if fits.domain(d)]
    for j, m in enumerate(methods):
        med = [np.median([f.rmsle[m] for f in fits.domain(d) if f.rmsle.get(m) is not None] or [np.nan]) for d in doms]
        ax.bar(np.arange(len(doms)) + j * width, med, width, label=m)
    ax.set_xticks(np.arange(len(doms)) + 0.4 - width / 2, [f"{d}\n({len(fits.domain(d))})" for d in doms])
    ax.set(yscale="log", ylabel="median extrapolation RMSLE")
    ax.set_title("median RMSLE by domain (curves)", fontsize=10)
    ax.legend(fontsize=8)
    for k, d in enumerate(doms[:4]):
        f = fits.domain(d)[0]
        c = f.curve
        ax = fig.add_subplot(2, 3, 2 + k + (k >= 2))
        ax.plot(c.x[c.train], c.y[c.train], "k.", ms=4)
        ax.plot(c.x[~c.train], c.y[~c.train], ".", color="tab:green", ms=6)
        grid = np.geomspace(c.x.min(), c.x.max(), 200)
        for j, m in enumerate(methods):
            if m not in f.params:
                continue
            form, options, _ = METHODS[m]
            ax.plot(grid, get_form(form, **options).predict(f.params[m], grid), color=f"C{j}", lw=1, label=m)
        ax.axvline(c.x[c.train].max(), color="0.6", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log")
        ax.set_title(c.key[:60], fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("extrapolation benchmark: fit on the dark points, score on the green ones (dotted: the split)")
    fig.tight_layout()
    return fig
