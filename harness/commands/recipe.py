"""``scaling recipe``: the named training recipes, and fitting the ``tuned`` one's LR(N) rule to a sweep."""

from __future__ import annotations

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

    rule = fit_lr_rule(args.path)
    print(format_rule(rule))
    if args.plot is not None:
        plot_rule(rule, args.plot)
        print(f"figure: {args.plot}")
    return 0
