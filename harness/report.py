"""Plots and tables shared by replications and the CLI (matplotlib, headless).

Figures are built with :class:`matplotlib.figure.Figure`, not ``pyplot``: no GUI backend is ever loaded
(saving picks Agg, or the vector backend of the file's format) and nothing is kept in a global figure list.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps, ticker
from matplotlib.figure import Figure

MAX_CURVES = 8  # a multi-input plot draws one fitted curve per distinct value of the second input, up to this


def tidy_log_axis(axis) -> None:
    """Tick labels on a log axis that do not overlap: under one decade, a few round numbers in plain notation;
    over it, powers of ten (with 2 and 5, or 3, in between when the axis spans only a few decades), thinned
    to at most 8 labels; minor ticks unlabelled."""
    lo, hi = sorted(axis.get_view_interval())
    if not (lo > 0 and np.isfinite(hi) and hi > lo):
        return
    decades = float(np.log10(hi / lo))
    if decades < 1.0:
        axis.set_major_locator(_round_ticks(lo, hi))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        subs = (1.0, 2.0, 5.0) if decades < 1.6 else (1.0, 3.0) if decades < 3.0 else (1.0,)
        axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=8))
        # label every major tick (the default formatter blanks those between powers of ten)
        axis.set_major_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(np.inf, np.inf)))
    axis.set_minor_formatter(ticker.NullFormatter())


SUB_DECADE_TICKS = (
    (1, 2, 5),
    (1, 2, 3, 5),
    tuple(range(1, 10)),
    tuple(np.arange(1, 10, 0.5)),
    tuple(np.arange(1, 10, 0.2)),
)


def _round_ticks(lo: float, hi: float):
    """Ticks for a log axis spanning under a decade: the coarsest of ``SUB_DECADE_TICKS`` (multiples of powers
    of ten) that puts at least 3 ticks in view, else evenly spaced round numbers."""
    exps = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
    for subs in SUB_DECADE_TICKS:
        ticks = sorted({float(f"{m * 10.0**e:.6g}") for e in exps for m in subs})
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 3:
            return ticker.FixedLocator(ticks)
    return ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10])


def _tidy(ax) -> None:
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling before reading the limits
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            tidy_log_axis(axis)


def bootstrap_band(law, boot, X: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray] | None:
    """Pointwise ``level`` percentile band of the predictions of the bootstrap replicates at ``X``
    (None without replicates)."""
    if boot is None or boot.samples.shape[0] == 0:
        return None
    P = law.form.n_params
    with np.errstate(all="ignore"):
        raw = torch.as_tensor(law.form.from_natural(boot.samples[:, :P]))
        with torch.no_grad():
            pred = np.exp(law.form.log_predict(raw, torch.as_tensor(np.log(X))).numpy())
        lo, hi = np.nanquantile(np.where(np.isfinite(pred), pred, np.nan), [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def _groups(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Groups of the second input's values: each distinct value if there are at most ``MAX_CURVES``, else
    quantile bins of its log. Returns the group of each value, each group's representative value (the value,
    or the bin's geometric mean) and a label suffix per group."""
    distinct = np.unique(v)
    if distinct.size <= MAX_CURVES:
        return np.searchsorted(distinct, v), distinct, [f"{d:.3g}" for d in distinct]
    lv = np.log(v)
    edges = np.quantile(lv, np.linspace(0, 1, 7))
    idx = np.clip(np.searchsorted(edges, lv, side="right") - 1, 0, 5)
    used = np.unique(idx)
    idx = np.searchsorted(used, idx)
    reps = np.array([np.exp(lv[idx == g].mean()) for g in range(used.size)])
    labels = [f"~{reps[g]:.3g} ({v[idx == g].min():.2g} to {v[idx == g].max():.2g})" for g in range(used.size)]
    return idx, reps, labels


def plot_fit(law, x_names=None, y_name="y", *, boot=None, heldout=None, level: float = 0.95):
    """Data, fitted curve(s), the bootstrap band (when ``boot`` is given) and the residuals.

    One input: y against x on log-log axes with the fitted curve, and below it the log residuals in percent.
    Two inputs: y against the first input with one fitted curve per distinct value of the second (or per
    quantile bin of it, when it takes more than ``MAX_CURVES`` values; each curve at the bin's geometric mean
    and over the range of its points), coloured alike, and the residuals against the first input. More inputs:
    observed against fitted, and the residuals. ``heldout = (X, y)``: points not fitted (``--holdout-above``),
    drawn hollow and covered by the curves."""
    X, y = law.X_, law.y_
    k = X.shape[1]
    x_names = list(x_names or law.form.input_names)
    Xh, yh = (np.empty((0, k)), np.empty(0)) if heldout is None else (np.asarray(heldout[0]), np.asarray(heldout[1]))
    X_all = np.concatenate([X, Xh]) if len(Xh) else X
    band_label = f"{level:.0%} bootstrap band"
    resid_label = "residual log(y / fit) (%)"

    def resid(Xs, ys):
        return 100 * (np.log(ys) - np.log(law.predict(Xs)))

    if k == 1:
        fig = Figure(figsize=(6.5, 6.0))
        ax, axr = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.12})
        grid = np.logspace(np.log10(X_all[:, 0].min()), np.log10(X_all[:, 0].max()), 300)[:, None]
        band = bootstrap_band(law, boot, grid, level)
        if band is not None:
            ax.fill_between(grid[:, 0], band[0], band[1], color="tab:red", alpha=0.2, lw=0, label=band_label)
        ax.plot(grid[:, 0], law.predict(grid), color="tab:red", label=law.form.formula)
        ax.scatter(X[:, 0], y, s=14, color="k", label="data", zorder=3)
        axr.scatter(X[:, 0], resid(X, y), s=10, color="k")
        if len(Xh):
            ax.scatter(Xh[:, 0], yh, s=18, facecolors="none", edgecolors="k", label="held out", zorder=3)
            axr.scatter(Xh[:, 0], resid(Xh, yh), s=14, facecolors="none", edgecolors="k")
        ax.set(xscale="log", yscale="log", ylabel=y_name)
        ax.legend(fontsize=8)
        axr.axhline(0, color="tab:red", lw=1)
        axr.set(xlabel=x_names[0], ylabel=resid_label)
        axr.yaxis.label.set_size(8)
        _tidy(ax)
        _tidy(axr)
        return fig

    fig = Figure(figsize=(12, 4.8))
    ax, axr = fig.subplots(1, 2, gridspec_kw={"wspace": 0.25})
    if k == 2:
        group, reps, labels = _groups(X[:, 1])
        colours = [colormaps["viridis"](t) for t in np.linspace(0.0, 0.9, max(len(reps), 1))]
        hgroup = np.abs(np.log(Xh[:, 1])[:, None] - np.log(reps)[None, :]).argmin(axis=1) if len(Xh) else np.empty(0)
        for g, (rep, label) in enumerate(zip(reps, labels, strict=True)):
            c = colours[g]
            pts = X[group == g, 0]
            if len(Xh):
                pts = np.concatenate([pts, Xh[hgroup == g, 0]])
            x0 = np.logspace(np.log10(pts.min()), np.log10(pts.max()), 100) if pts.max() > pts.min() else pts[:1]
            grid = np.stack([x0, np.full_like(x0, rep)], axis=1)
            band = bootstrap_band(law, boot, grid, level)
            if band is not None:
                ax.fill_between(x0, band[0], band[1], color=c, alpha=0.2, lw=0)
            ax.plot(x0, law.predict(grid), color=c, lw=1.2, label=label)
            sel = group == g
            ax.scatter(X[sel, 0], y[sel], s=14, color=c, zorder=3)
            axr.scatter(X[sel, 0], resid(X[sel], y[sel]), s=10, color=c)
            if len(Xh):
                hs = hgroup == g
                ax.scatter(Xh[hs, 0], yh[hs], s=18, facecolors="none", edgecolors=c, zorder=3)
                axr.scatter(Xh[hs, 0], resid(Xh[hs], yh[hs]), s=14, facecolors="none", edgecolors=c)
        title = f"{law.form.formula}: points and fit at each {x_names[1]}"
        if boot is not None:
            title += f" ({band_label}s shaded)"
        if len(Xh):
            title += "; hollow: held out"
        ax.set(xscale="log", yscale="log", xlabel=x_names[0], ylabel=y_name)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, title=f"fit at {x_names[1]} =", title_fontsize=7)
        axr.set(xscale="log", xlabel=x_names[0], ylabel=resid_label)
    else:
        pred = law.predict(X)
        lo, hi = min(pred.min(), y.min()), max(pred.max(), y.max())
        ax.scatter(pred, y, s=10, color="k")
        ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1)
        ax.set(xscale="log", yscale="log", xlabel=f"fitted {y_name}", ylabel=f"observed {y_name}")
        ax.set_title(law.form.formula, fontsize=9)
        axr.scatter(X[:, 0], resid(X, y), s=10, color="k")
        axr.set(xscale="log", xlabel=x_names[0], ylabel=resid_label)
    axr.axhline(0, color="0.3", lw=1)
    axr.set_title("residuals", fontsize=9)
    _tidy(ax)
    _tidy(axr)
    return fig


def plot_allocation(res, N, L, C=None) -> Figure:
    """The figure of a compute-optimal allocation (:mod:`harness.fit.optimal`). Approach 2: the IsoFLOP
    profiles (loss against N per budget, the fitted parabolas, their minima; excluded budgets grey) and the two
    frontiers N_opt(C) and D_opt(C) with their intervals and fitted power laws. Approaches 1 and 3: N_opt(C)
    (the envelope's sizes, or the parametric law's) with the fitted law."""
    N, L = np.asarray(N, dtype=float), np.asarray(L, dtype=float)
    two = res.approach == 2
    fig = Figure(figsize=(11, 4.2) if two else (5.5, 4.2), layout="constrained")
    axes = fig.subplots(1, 2) if two else [fig.subplots()]
    fr = axes[-1]
    if two:
        ax = axes[0]
        cmap = colormaps["viridis"]
        used = [b for b in res.budgets if not b.excluded]
        for j, b in enumerate(res.budgets):
            at = res.group == j
            colour = "0.7" if b.excluded else cmap(used.index(b) / max(1, len(used) - 1))
            label = f"C = {b.budget:.2g}" + (" (excluded)" if b.excluded else "")
            ax.scatter(N[at], L[at], s=14, color=colour, label=label, zorder=3)
            if not b.excluded:
                u0 = np.log10(b.N_opt.value)
                u = np.linspace(np.log10(N[at].min()), np.log10(N[at].max()), 100)
                keep = np.abs(u - u0) <= max(np.abs(np.log10(N[at]) - u0).max(), 0.1)
                ax.plot(10 ** u[keep], b.loss_min + b.curvature * (u[keep] - u0) ** 2, color=colour, lw=1)
                ax.scatter([b.N_opt.value], [b.loss_min], marker="*", s=90, color=colour, edgecolor="k", zorder=4)
        ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title="IsoFLOP profiles (star: N_opt)")
        ax.legend(fontsize=7)
        _tidy(ax)
        c = np.array([b.budget for b in used])
        for key, name, colour in (("N_opt", "N_opt", "C0"), ("D_opt", "D_opt", "C1")):
            v = np.array([getattr(b, key).value for b in used])
            ci = [getattr(b, key).ci for b in used]
            if all(x is not None for x in ci):
                err = np.abs(np.array(ci).T - v)
                fr.errorbar(c, v, yerr=err, fmt="o", color=colour, ms=4, capsize=2, label=f"{name} per budget")
            else:
                fr.scatter(c, v, color=colour, s=16, label=f"{name} per budget")
        grid = np.geomspace(c.min(), c.max(), 50)
        fr.plot(grid, res.n_opt(grid), color="C0", lw=1, label=f"N_opt ~ C^{res.a.value:.3f}")
        fr.plot(grid, grid / (res.flops_per_param_token * res.n_opt(grid)), color="C1", lw=1,
                label=f"D_opt ~ C^{res.b.value:.3f}")  # fmt: skip
        fr.set(ylabel="N_opt (parameters), D_opt (tokens)")
    else:
        if res.frontier is not None:
            fr.scatter(*res.frontier, s=10, color="0.5", label="envelope: size of the best run")
            grid = np.geomspace(res.frontier[0].min(), res.frontier[0].max(), 50)
        else:
            grid = np.geomspace(6 * N.min() * N.min(), 6 * N.max() * N.max() * 100, 50)
        fr.plot(grid, res.n_opt(grid), color="C0", lw=1.5, label=f"N_opt ~ C^{res.a.value:.3f}")
        fr.set(ylabel="N_opt (parameters)")
    fr.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", title=f"Approach {res.approach}: frontier")
    fr.legend(fontsize=7)
    _tidy(fr)
    return fig
