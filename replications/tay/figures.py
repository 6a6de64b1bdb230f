"""Figures of the Tay replication (matplotlib, no display needed); they compute nothing the claims depend on."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def ranking_figure(ranking: dict):
    """Each architecture's rank (1 = lowest loss) at each size: crossing lines are the paper's warning that the
    ranking at one scale does not predict the ranking at another."""
    losses = ranking["losses_by_size"]
    names = list(losses)
    n_sizes = min(len(v) for v in losses.values())
    ranks = {n: [] for n in names}
    for k in range(n_sizes):
        order = sorted(names, key=lambda n: losses[n][k])
        for r, n in enumerate(order, 1):
            ranks[n].append(r)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    cmap = plt.get_cmap("tab20")
    for i, n in enumerate(names):
        ax.plot(range(1, n_sizes + 1), ranks[n], "o-", color=cmap(i % 20), lw=2.4 if i == 0 else 1.3)
        ax.annotate(n, (n_sizes, ranks[n][-1]), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="size (1 = smallest)", ylabel="rank by final validation loss (1 = best)")
    ax.set_xticks(range(1, n_sizes + 1))
    swaps = ranking["swaps"]
    ax.set_title(
        f"ranking by size; {len(swaps)} pair(s) reversed by more than {ranking['margin_nats']} nats each way "
        f"(Kendall tau {ranking['kendall_tau']:.2f})",
        fontsize=9,
    )
    ax.set_xlim(0.8, n_sizes + 1.2)
    fig.tight_layout()
    return fig
