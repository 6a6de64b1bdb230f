"""Figures of the Kaplan et al. (2020) replication (matplotlib, no display needed).

Each figure takes the analysis's results (a :class:`~replications.kaplan.analysis.KaplanAnalysis`) as its
argument and draws what it computed, learning curves included. Only the type is named from :mod:`.analysis`,
for the annotations: the analysis imports this module to draw, and this module imports nothing from it at run
time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from .constants import EARLY_BIN, LATE_BIN, PUBLISHED

if TYPE_CHECKING:
    from .analysis import KaplanAnalysis


def _published_slope(ax, x, y_at, slope, label):
    """A line of the published slope through our fit's value at the geometric middle of ``x``."""
    xm = np.sqrt(x.min() * x.max())
    ax.plot(x, y_at(xm) * (x / xm) ** slope, "k--", lw=1, label=label)


def figure1(an: KaplanAnalysis):
    """Kaplan et al. Figure 1 from our runs: L against compute (learning curves and their envelope), against
    tokens (largest model) and against parameters (largest budget), each with our fit (solid) and the published
    slope drawn through our fit's midpoint (dashed)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    cmap = plt.get_cmap("viridis")
    n_all = an.n_sweep["N_kaplan"].astype(float)
    span = np.log(n_all.max() / n_all.min()) or 1.0
    e = an.envelope
    for n, tok, loss in e.curves:
        ax.plot(6 * n * tok, loss, color=cmap(np.log(n / n_all.min()) / span), lw=1, alpha=0.8)
    c = e.frontier.compute[e.keep]
    ax.plot(c, e.frontier.loss[e.keep], "o", ms=3, color="C3", label="envelope L(C_min)")
    C_c, a_c = e.C_c, e.alpha_C
    ax.plot(c, (C_c / c) ** a_c, "C3-", lw=2, label=f"fit alpha_C = {a_c:.3f}")
    _published_slope(ax, c, lambda x: (C_c / x) ** a_c, -PUBLISHED["alpha_C"], f"published {PUBLISHED['alpha_C']}")
    ax.set(xscale="log", yscale="log", xlabel="compute C = 6 N S B (FLOPs, non-embedding)", ylabel="val loss (nats)")
    ax.legend(fontsize=8)
    for ax, f, label, key in (
        (axes[1], an.L_D, "tokens D", "alpha_D"),
        (axes[2], an.L_N, "non-embedding parameters N", "alpha_N"),
    ):
        ax.plot(f.x, f.y, "o", color="C0")
        xs = np.geomspace(f.x.min(), f.x.max(), 100)
        ax.plot(xs, f.law.predict(xs), "C0-", lw=2, label=f"fit {key} = {f.alpha:.3f}")
        _published_slope(
            ax,
            xs,
            lambda x, f=f: float(f.law.predict(np.array([x]))[0]),
            -PUBLISHED[key],
            f"published {PUBLISHED[key]}",
        )
        ax.set(xscale="log", yscale="log", xlabel=label)
        ax.legend(fontsize=8)
    axes[1].set_title(f"L(D): N = {an.d_sweep['N_kaplan'][0]:.3g}")
    axes[2].set_title(f"L(N): D = {an.n_sweep['D'][0]:.3g} tokens")
    axes[0].set_title("L(C): learning curves (colour: N)")
    fig.tight_layout()
    return fig


def loss_nd(an: KaplanAnalysis):
    """The L(N, D) grid: loss against tokens for each size, with the joint eq. 1.5 fit."""
    fig, ax = plt.subplots(figsize=(7, 5))
    t = an.transformers
    sizes = sorted(set(t["N_kaplan"].astype(float)))
    cmap = plt.get_cmap("viridis")
    for i, n in enumerate(sizes):
        sel = t["N_kaplan"].astype(float) == n
        d = t["D"].astype(float)[sel]
        order = np.argsort(d)
        col = cmap(i / max(1, len(sizes) - 1))
        ax.plot(d[order], t["loss"].astype(float)[sel][order], "o", color=col, label=f"N = {n:.2g}")
        ds = np.geomspace(d.min(), d.max(), 50)
        ax.plot(ds, an.L_ND.predict(np.stack([np.full_like(ds, n), ds], axis=1)), "-", color=col, lw=1)
    p = an.L_ND.params_
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="tokens D",
        ylabel="val loss (nats)",
        title=f"L(N, D), eq. 1.5: alpha_N = {p['alpha_N']:.3f}, alpha_D = {p['alpha_D']:.3f}",
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def lstm_vs_transformer(an: KaplanAnalysis):
    """Kaplan et al. Figure 7: loss against N for both architectures, and per-token loss by context position."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6))
    ax.plot(an.n_sweep["N_kaplan"], an.n_sweep["loss"], "o-", label="Transformer")
    ax.plot(an.lstm["N_kaplan"], an.lstm["loss"], "s-", label="LSTM")
    xs = np.geomspace(min(an.lstm["N_kaplan"].min(), an.n_sweep["N_kaplan"].min()), an.n_sweep["N_kaplan"].max())
    ax.plot(xs, an.L_N.law.predict(xs), "C0:", lw=1, label="Transformer L(N) fit")
    ax.set(xscale="log", yscale="log", xlabel="non-embedding parameters N", ylabel="val loss (nats)")
    ax.set_title(f"same budget, D = {an.n_sweep['D'][0]:.3g} tokens")
    ax.legend(fontsize=8)
    lstm_rec, tf_rec = an.context_pair()
    for rec, label, col in ((tf_rec, "Transformer", "C0"), (lstm_rec, "LSTM", "C1")):
        v = np.asarray(rec["loss"]["val_by_position"], dtype=float)
        pos = np.arange(1, v.size + 1)
        k = 8  # light smoothing: each position is a mean over only eval_tokens / n_ctx sequences
        smooth = np.convolve(v, np.ones(k) / k, mode="valid")
        bx.plot(pos[k - 1 :], smooth, color=col, label=f"{label} N = {rec['scale']['N_kaplan']:.3g}")
    n_ctx = len(lstm_rec["loss"]["val_by_position"])
    for lo, hi in (EARLY_BIN, LATE_BIN):
        bx.axvspan(lo * n_ctx, hi * n_ctx, color="0.9")
    bx.set(xscale="log", xlabel="token position in context", ylabel="per-token val loss (8-position mean)")
    bx.set_title("per-token loss; shaded: the two bins compared")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def aspect(an: KaplanAnalysis):
    """Kaplan et al. Figure 5: loss at one size across shapes."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    a = an.aspect
    ratio = a["d_model"].astype(float) / a["n_layer"].astype(float)
    order = np.argsort(ratio)
    loss = a["loss"].astype(float)
    ax.plot(ratio[order], loss[order] / loss.min(), "o-")
    for r, nl, d, y in zip(ratio, a["n_layer"], a["d_model"], loss / loss.min(), strict=True):
        ax.annotate(f"{int(nl)} x {int(d)}", (r, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xscale="log", xlabel="aspect ratio d_model / n_layer", ylabel="loss / best loss")
    ax.set_title(f"shapes at N ~ {np.median(a['N_kaplan']):.2g}")
    fig.tight_layout()
    return fig


def n_opt(an: KaplanAnalysis):
    """Kaplan et al. Figure 14: the size of the model on the envelope against compute."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    e = an.envelope
    c, n = e.frontier.compute[e.keep], e.frontier.n_params[e.keep]
    ax.plot(c, n, "o", ms=3, label="model on the envelope")
    coef = np.polyfit(np.log(c), np.log(n), 1)
    ax.plot(c, np.exp(np.polyval(coef, np.log(c))), "C0-", label=f"fit exponent {coef[0]:.2f}")
    _published_slope(
        ax, c, lambda x: float(np.exp(np.polyval(coef, np.log(x)))), PUBLISHED["N_opt_exponent"], "published 0.73"
    )
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="N_opt (non-embedding)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def convergence(an: KaplanAnalysis):
    """Are the L(N) runs in the scaling regime? Left: the largest model's final loss at every budget, with the
    joint fit. Right: per size, what doubling the L(N) budget would gain by the joint fit, against the seed noise
    measured on the tier (the runs are budget-limited where the bars rise above it)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.4))
    pts = np.array(an.budget_curve())
    n_max = float(an.d_sweep["N_kaplan"].max())
    ax.plot(pts[:, 0], pts[:, 1], "o", color="C0", label="measured")
    ds = np.geomspace(pts[:, 0].min(), 4 * pts[:, 0].max(), 60)
    ax.plot(ds, an.L_ND.predict(np.stack([np.full_like(ds, n_max), ds], axis=1)), "C0-", lw=1, label="L(N, D) fit")
    limit = float((an.L_ND.params_["N_c"] / n_max) ** an.L_ND.params_["alpha_N"])
    ax.axhline(limit, color="k", ls=":", lw=1, label=f"fit's D -> inf limit {limit:.3f}")
    g = an.measured_doubling_gain()
    title = f"largest model, N = {n_max:.3g}" + (f": {g:.3f} nats per doubling at the end" if g is not None else "")
    ax.set(xscale="log", xlabel="tokens D", ylabel="final val loss (nats)", title=title)
    ax.legend(fontsize=8)
    rows = an.convergence()
    n = np.array([r["N"] for r in rows])
    gain = np.array([r["doubling_gain"] for r in rows])
    bx.bar(np.arange(n.size), gain, color="C0", label="L(N, D) - L(N, 2D), joint fit")
    noise = [v["std"] for v in an.seed_noise().values()]
    if noise:
        bx.axhline(max(noise), color="C3", ls="--", lw=1, label=f"seed noise (largest std, {max(noise):.3f} nats)")
    bx.set_xticks(np.arange(n.size), [f"{r['N']:.2g}\n{r['tokens_per_param']:,.0f}" for r in rows], fontsize=8)
    bx.set(
        xlabel="N (non-embedding), then tokens per parameter",
        ylabel="nats",
        title=f"L(N) sweep at D = {rows[0]['D']:.3g}: gain from doubling D",
    )
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def all_figures(an: KaplanAnalysis) -> dict:
    figs = {"figure1_trio": figure1(an), "loss_nd": loss_nd(an), "n_opt": n_opt(an), "convergence": convergence(an)}
    if len(an.lstm) >= 2:
        figs["lstm_vs_transformer"] = lstm_vs_transformer(an)
    if len(an.aspect) >= 2:
        figs["aspect"] = aspect(an)
    return figs
