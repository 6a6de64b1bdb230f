"""``scaling arena ARCH [ARCH ...] --baseline gpt --tier T``: an architecture's scaling law against a baseline's."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "arena",
        help="train architectures next to a Transformer baseline and say whether each scales better, the same or worse",
        description=(
            "Per architecture: a learning-rate sweep at two sizes, a size sweep at a fixed tokens-per-parameter ratio "
            "at the architecture's own learning rate, L(C) fits with bootstrap intervals, the gap to the baseline's "
            "law and its trend per decade of compute, and a verdict (see harness/arena.py for the protocol). An "
            "architecture is a registered model name, 'pkg.mod:Class' (a harness LanguageModel) or 'pkg.mod:factory' "
            "(any factory(vocab_size, n_ctx, size) -> nn.Module returning logits; see harness/models/factory.py). "
            "Resumable: finished runs in the output folder are reused."
        ),
    )
    p.add_argument("archs", nargs="*", metavar="ARCH", help="architectures (default: the tier's own list)")
    p.add_argument("--baseline", default="gpt", help="the architecture every other is compared with (default gpt)")
    p.add_argument("--tier", default="smoke", help="smoke (CI pipeline check), cpu or gpu (default smoke)")
    p.add_argument("--workers", type=int, default=2, help="training processes (default 2)")
    p.add_argument("--bootstrap", type=int, default=None, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--out", type=Path, default=None, help="output folder, run cache included (default runs/arena/TIER)")
    p.add_argument(
        "--isoflop",
        action="store_true",
        help="also train the tier's IsoFLOP plan (several sizes per compute budget); compare the best loss per budget",
    )
    p.add_argument(
        "--lr-extend",
        type=int,
        default=None,
        metavar="K",
        help="rates tried beyond an edge optimum of the learning-rate sweep, one grid step each, per size (default 2)",
    )
    p.add_argument("--list", action="store_true", help="list the registered architectures and the tiers, then exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import arena
    from ..errors import UserError
    from ..models import available_models

    if args.list:
        print("architectures:", ", ".join(n for n in available_models() if n != "factory"))
        for t in arena.TIERS.values():
            print(f"tier {t.name}: {t.description}; default entrants: {', '.join(t.default_entrants)}")
        return 0
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    lr_extend = arena.LR_EXTEND if args.lr_extend is None else args.lr_extend
    if lr_extend < 0:
        raise UserError(f"--lr-extend must be non-negative, got {lr_extend}")
    n_boot = arena.BOOTSTRAP if args.bootstrap is None else args.bootstrap
    if n_boot < 0:
        raise UserError(f"--bootstrap must be non-negative, got {n_boot}")
    summary = arena.run_arena(
        args.archs,
        baseline=args.baseline,
        tier=args.tier,
        out=args.out,
        workers=args.workers,
        n_boot=n_boot,
        isoflop=args.isoflop,
        lr_extend=lr_extend,
    )
    print(summary["table"])
    print(f"results: {summary['out']}/arena.json, arena.png, verdicts.md")
    return 0
