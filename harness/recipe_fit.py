"""Fit the ``tuned`` recipe's learning-rate rule to a learning-rate sweep's records.

For each model size, the final validation loss against ``log10(lr)`` is fitted by a parabola through the
best grid point and its two neighbours; its vertex is that size's optimum learning rate. An optimum on
the edge of the grid (the best point is the smallest or largest rate tried) or a parabola that opens
downwards is not an optimum: that size is reported and left out of the rule. Runs that diverged (failed
records) count as worse than every finished one. Then ``log lr* = log A - B log N`` by least squares over
the sizes, ``N`` the Kaplan non-embedding count, which gives ``LR(N) = A N^-B``.

``scaling recipe fit results/recipe/lr-sweep [--plot FILE]`` prints the table and the constants; the
constants in :mod:`harness.recipes` are these, and a test refits the committed records to check them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .records import is_record, read_json, verify
from .runs import record_files


@dataclass
class SizeOptimum:
    n_kaplan: float
    lrs: list[float]
    losses: list[float]  # inf for a run that diverged
    lr_opt: float | None  # None: no interior optimum on this grid
    note: str = ""


@dataclass
class LRRule:
    sizes: list[SizeOptimum]
    a: float | None = None
    b: float | None = None
    used: list[float] = field(default_factory=list)  # the N whose optimum entered the fit

    def lr(self, n: float) -> float:
        if self.a is None:
            raise UserError("no learning-rate rule: fewer than two sizes have an interior optimum")
        return self.a * n**-self.b


def _records(path: str | os.PathLike) -> list[dict]:
    out = []
    for f in record_files(path):
        rec = read_json(f)
        if is_record(rec):
            out.append(verify(rec, f))
    if not out:
        raise UserError(f"{path}: no run records")
    return out


def size_optimum(n: float, lrs: list[float], losses: list[float]) -> SizeOptimum:
    order = np.argsort(lrs)
    x = np.log10(np.asarray(lrs, dtype=float)[order])
    y = np.asarray(losses, dtype=float)[order]
    lrs_sorted, losses_sorted = [float(v) for v in 10**x], [float(v) for v in y]
    if len(x) < 3:
        return SizeOptimum(n, lrs_sorted, losses_sorted, None, "fewer than 3 learning rates")
    k = int(np.argmin(y))
    if not np.isfinite(y[k]):
        return SizeOptimum(n, lrs_sorted, losses_sorted, None, "every run diverged")
    if k == 0 or k == len(x) - 1:
        edge = "smallest" if k == 0 else "largest"
        return SizeOptimum(n, lrs_sorted, losses_sorted, None, f"best at the {edge} rate tried: extend the grid")
    xs, ys = x[k - 1 : k + 2], y[k - 1 : k + 2]
    if not np.all(np.isfinite(ys)):
        return SizeOptimum(n, lrs_sorted, losses_sorted, float(10 ** x[k]), "a neighbour diverged: grid point")
    c2, c1, _ = np.polyfit(xs, ys, 2)
    if c2 <= 0:
        return SizeOptimum(n, lrs_sorted, losses_sorted, float(10 ** x[k]), "flat: best grid point")
    vertex = float(np.clip(-c1 / (2 * c2), xs[0], xs[-1]))
    return SizeOptimum(n, lrs_sorted, losses_sorted, float(10**vertex))


def fit_lr_rule(path: str | os.PathLike) -> LRRule:
    """The LR(N) rule of a learning-rate sweep's records (grouped by model size)."""
    by_size: dict[float, list[tuple[float, float]]] = {}
    for rec in _records(path):
        n = float(rec["scale"]["N_kaplan"])
        lr = float(rec["resolved"]["peak_lr"])
        loss = rec["loss"]["val_final"] if rec["status"] == "finished" else None
        by_size.setdefault(n, []).append((lr, math.inf if loss is None else float(loss)))
    sizes = []
    for n in sorted(by_size):
        lrs, losses = zip(*sorted(by_size[n]), strict=True)
        sizes.append(size_optimum(n, list(lrs), list(losses)))
    rule = LRRule(sizes)
    good = [s for s in sizes if s.lr_opt is not None and not s.note]
    if len(good) >= 2:
        slope, intercept = np.polyfit(np.log([s.n_kaplan for s in good]), np.log([s.lr_opt for s in good]), 1)
        rule.a, rule.b, rule.used = float(math.exp(intercept)), float(-slope), [s.n_kaplan for s in good]
    return rule


def format_rule(rule: LRRule) -> str:
    lines = ["N_kaplan    lr -> final val loss (nats)                                   optimum"]
    for s in rule.sizes:
        cells = "  ".join(
            f"{lr:.3g}:{loss:.3f}" if math.isfinite(loss) else f"{lr:.3g}:diverged"
            for lr, loss in zip(s.lrs, s.losses, strict=True)
        )
        opt = f"{s.lr_opt:.3g}" if s.lr_opt is not None else "none"
        lines.append(f"{s.n_kaplan:9.3g}   {cells}   {opt}{'  (' + s.note + ')' if s.note else ''}")
    if rule.a is not None:
        lines.append(
            f"LR(N) = {rule.a:.4g} * N^({-rule.b:+.4f})   (fitted on N = {', '.join(f'{n:.3g}' for n in rule.used)})"
        )
    else:
        lines.append("no rule: fewer than two sizes have an interior optimum")
    return "\n".join(lines)


def plot_rule(rule: LRRule, path: str | os.PathLike, mark=None) -> None:
    """Loss against learning rate, one curve per size, with the rule's value for each size marked (dotted): this
    fit's rule, or ``mark`` (a function N -> LR, e.g. the rule a recipe uses) when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s in rule.sizes:
        finite = [(lr, loss) for lr, loss in zip(s.lrs, s.losses, strict=True) if math.isfinite(loss)]
        if not finite:
            continue
        (line,) = ax.plot(*zip(*finite, strict=True), "o-", label=f"N = {s.n_kaplan:.2g}")
        for lr, loss in zip(s.lrs, s.losses, strict=True):
            if not math.isfinite(loss):
                ax.plot([lr], [max(v for _, v in finite)], "x", color=line.get_color())
        if mark is not None or rule.a is not None:
            lr_rule = mark(s.n_kaplan) if mark is not None else rule.lr(s.n_kaplan)
            ax.axvline(lr_rule, color=line.get_color(), ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss (nats)")
    if mark is not None:
        title = "learning-rate sweep; dotted: the rule in use"
    else:
        title = "learning-rate sweep" + (f": LR(N) = {rule.a:.3g} N^({-rule.b:+.3f}) (dotted)" if rule.a else "")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
