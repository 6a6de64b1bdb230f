"""``scaling recipe``: the named training recipes, and fitting the ``tuned`` one's LR(N) rule to a sweep."""

from __future__ import annotations

import math
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("recipe", help="training recipes: list them, fit the tuned recipe's LR(N) to a sweep")
    rsub = p.add_subparsers(dest="recipe_command", required=True, metavar="ACTION")
    ls = rsub.add_parser("list", help="the named recipes (recipe = NAME in a sweep's [base])")
    ls.set_defaults(func=_list)
    fi = rsub.add_parser(
        "fit", help="fit LR(N) = A N^-B to a learning-rate sweep's records (see results/recipe/lr_sweep.toml)"
    )
    fi.add_argument("path", type=Path, help="a folder of run records from a learning-rate sweep")
    fi.add_argument("--plot", type=Path, help="write a loss-vs-learning-rate figure here (PNG)")
    fi.add_argument(
        "--check",
        action="store_true",
        help="check the tuned recipe's rule in use (harness/recipes.py) on these records: print the loss at its "
        "learning rate against each size's best, and mark the rule's values in the figure instead of this fit's",
    )
    fi.set_defaults(func=_fit)


def _list(args) -> int:
    from .. import recipes

    for r in recipes.RECIPES.values():
        print(f"{r.name}: {r.summary}")
    if recipes.TUNED_LR_A is None:
        print("  (tuned: its LR(N) rule is not fitted yet)")
    else:
        print(f"  tuned LR(N) = {recipes.TUNED_LR_A:.4g} * N^({-recipes.TUNED_LR_B:+.4f})")
    return 0


def _fit(args) -> int:
    from ..recipe_fit import fit_lr_rule, format_rule, plot_rule
    from ..recipes import tuned_lr

    rule = fit_lr_rule(args.path)
    print(format_rule(rule))
    mark = None
    if args.check:
        mark = tuned_lr
        for s in rule.sizes:
            want = tuned_lr(s.n_kaplan)
            got = [(abs(math.log(lr / want)), lr, loss) for lr, loss in zip(s.lrs, s.losses, strict=True)]
            _, lr, loss = min(got)
            best = min(v for v in s.losses if math.isfinite(v))
            where = "at" if abs(math.log(lr / want)) < 0.05 else "nearest swept value to"
            print(
                f"tuned rule at N = {s.n_kaplan:.3g}: LR {want:.3g}; loss {loss:.4f} {where} it ({lr:.3g}), "
                f"{loss - best:+.4f} nats from the best swept value"
            )
    if args.plot is not None:
        plot_rule(rule, args.plot, mark=mark)
        print(f"figure: {args.plot}")
    return 0
