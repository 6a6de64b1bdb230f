"""``scaling audit NAME``: measure a replication, judge its claims, print the verdict table."""

from __future__ import annotations

import sys

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "audit",
        help="print the verdict table of a replication's claims",
        description=(
            "Compute every claim's verdict for a replication from its data or its committed run records (an audit "
            "never trains: 'scaling replicate' does). Exit status 0 when the audit ran, whatever the "
            "verdicts; 2 when it could not run; 1 with --strict when a verdict differs from the one recorded "
            "in the claims file for that tier."
        ),
    )
    p.add_argument("name", help="replication name (see 'scaling replicate --list')")
    p.add_argument("--tier", help="tier to audit (default: the replication's default tier)")
    p.add_argument(
        "--format", choices=("table", "json", "markdown"), default="table", help="output format (default table)"
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="N",
        help="bootstrap resamples per interval (default: the tier's, 1000 for chinchilla)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if any computed verdict differs from the recorded one (regression guard)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..claims import format_json, format_markdown, format_table, regressions
    from ..replication import audit

    if args.bootstrap is not None and args.bootstrap < 0:
        raise UserError("--bootstrap must be >= 0")
    if args.seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {args.seed}")
    quiet = args.format == "json"
    a = audit(
        args.name,
        tier=args.tier,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        log=(lambda s: print(s, file=sys.stderr)) if not quiet else (lambda s: None),
        train=False,
        show_progress=not quiet,
    )
    a.close_figures()  # an audit prints; only 'scaling replicate' writes figures
    title = f"{a.replication.title} — tier {a.tier}"
    if args.format == "json":
        print(format_json(a.replication.name, a.verdicts, tier=a.tier))
    elif args.format == "markdown":
        print(format_markdown(a.verdicts, title))
    else:
        print(format_table(a.verdicts, title))
    if args.strict and all(v.recorded is None for v in a.verdicts):
        print(f"--strict: the claims file records no verdicts for tier {a.tier!r}; nothing to compare", file=sys.stderr)
    elif args.strict:
        bad = regressions(a.verdicts)
        for v in bad:
            print(f"regression: {v.claim.id} is {v.verdict}, recorded {v.recorded}", file=sys.stderr)
        if bad:
            return 1
    return 0
