"""Plots and tables shared by replications and the CLI (matplotlib, headless)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_fit(law, x_names=None, y_name="y"):
    """Data and fitted curve(s). One input: y against x on log-log axes. Two inputs: y against the first,
    one fitted curve per distinct value group of the second (coloured), plus a parity panel."""
    X, y = law.X_, law.y_
    x_names = list(x_names or law.form.input_names)
    if X.shape[1] == 1:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        ax.scatter(X[:, 0], y, s=14, color="k", label="data", zorder=3)
        grid = np.logspace(np.log10(X[:, 0].min()), np.log10(X[:, 0].max()), 300)
        ax.plot(grid, law.predict(grid[:, None]), color="tab:red", label=law.form.formula)
        ax.set(xscale="log", yscale="log", xlabel=x_names[0], ylabel=y_name)
        ax.legend(fontsize=8)
        return fig
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    sc = ax.scatter(X[:, 0], y, c=np.log10(X[:, 1]), s=14, cmap="viridis")
    fig.colorbar(sc, ax=ax, label=f"log10 {x_names[1]}")
    ax.set(xscale="log", yscale="log", xlabel=x_names[0], ylabel=y_name, title=law.form.formula)
    pred = law.predict(X)
    lo, hi = min(pred.min(), y.min()), max(pred.max(), y.max())
    ax2.scatter(pred, y, s=10, color="k")
    ax2.plot([lo, hi], [lo, hi], color="tab:red", lw=1)
    ax2.set(xscale="log", yscale="log", xlabel=f"fitted {y_name}", ylabel=f"observed {y_name}", title="parity")
    return fig
