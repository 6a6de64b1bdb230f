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


def ours_figure(fits, specs, forms):
    """Per kind of curve: left, every seed's curve (dark: fitted, green: held back); right, seed 0's curve with
    every form's fit carried across the held-back tail. ``forms`` is the tier's ``{name: (form, options, _)}``."""

    fig, axes = plt.subplots(len(specs), 2, figsize=(12, 4.2 * len(specs)), squeeze=False)
    for row, spec in zip(axes, specs, strict=True):
        fk = [f for f in fits if f.kind == spec.kind]
        for f in fk:
            row[0].plot(f.x[f.train], f.y[f.train], "-", color="0.3", lw=0.8, alpha=0.7)
            row[0].plot(f.x[~f.train], f.y[~f.train], "-", color="tab:green", lw=0.8, alpha=0.9)
        row[0].set_title(f"{spec.kind}: {len(fk)} seeds (green: held back)", fontsize=10)
        f = fk[0]
        row[1].plot(f.x[f.train], f.y[f.train], "k.", ms=5, label="fitted")
        row[1].plot(f.x[~f.train], f.y[~f.train], "o", color="tab:green", ms=5, label="held back")
        grid = np.geomspace(f.x.min(), f.x.max(), 400)
        for j, (name, (form, options, _)) in enumerate(forms.items()):
            ff = f.fits[name]
            if ff.params is None:
                continue
            pred = get_form(form, **options).predict(ff.params, grid)
            row[1].plot(grid, pred, color=f"C{j}", lw=1.2, label=f"{name} (RMSLE {ff.rmsle:.3f})")
        row[1].set_title(f"{spec.kind}, seed {f.seed}: each form fitted left of the dotted line", fontsize=10)
        row[1].legend(fontsize=8)
        lo, hi = f.y.min(), f.y.max()
        for ax in row:
            ax.axvline(f.x[f.train].max(), color="0.6", lw=0.8, ls=":")
            ax.set(xscale="log", yscale="log", xlabel=spec.x_label, ylabel=spec.y_label)
        row[1].set_ylim(lo / 3, hi * 3)
    fig.suptitle("BNSL on our own curves: extrapolating the last quarter of each curve's log-x range")
    fig.tight_layout()
    return fig
