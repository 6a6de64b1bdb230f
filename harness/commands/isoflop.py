"""``scaling isoflop``: compute-optimal N and D from a CSV of runs, by Hoffmann et al.'s Approaches 1, 2 or 3."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

from ..errors import UserError

APPROACHES = {1: "envelope of learning curves", 2: "IsoFLOP profiles", 3: "parametric L(N, D)"}


def register(sub) -> None:
    p = sub.add_parser(
        "isoflop",
        help="compute-optimal N and D (Hoffmann et al. Approaches 1-3) from a CSV of runs",
        description=(
            "How model size and tokens should grow with compute, from your own runs. Approach 2 (default): per "
            "FLOP budget, a parabola in log N through the runs near that budget's minimum gives N_opt; the "
            "exponents a (N_opt ~ C^a) and b (D_opt ~ C^b) come from a fit across budgets, with bootstrap "
            "intervals. Approach 1: the envelope of learning curves (one row per evaluation, --run names the "
            "curve). Approach 3: the parametric fit L = E + A/N^alpha + B/D^beta. Example: "
            "scaling isoflop runs.csv --n N --budget C --y loss --tokens-at 1e21 --plot isoflop.png"
        ),
    )
    p.add_argument("csv", type=Path, help="CSV file (UTF-8, optionally gzip-compressed) with a header row")
    p.add_argument("--approach", type=int, choices=sorted(APPROACHES), default=2, help="1, 2 or 3 (default 2)")
    p.add_argument("--n", default="N", metavar="COL", help="column of parameter counts (default N)")
    p.add_argument("--budget", default="C", metavar="COL", help="column of FLOP budgets, Approach 2 (default C)")
    p.add_argument("--d", default=None, metavar="COL", help="column of training tokens (needed by Approaches 1, 3)")
    p.add_argument("--y", default="loss", metavar="COL", help="column of losses (default loss)")
    p.add_argument("--run", default=None, metavar="COL", help="column naming each run's curve (Approach 1)")
    p.add_argument(
        "--window",
        type=float,
        default=0.5,
        metavar="DEX",
        help="Approach 2: fit each budget's parabola to the runs within DEX (log10 N) of its lowest-loss run "
        "(default 0.5, a factor of ~3 each side)",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=0.05,
        metavar="DEX",
        help="Approach 2: runs whose log10 C lie within DEX of each other share a budget (default 0.05)",
    )
    p.add_argument(
        "--flops-per-token",
        type=float,
        default=None,
        metavar="K",
        help="k in C = k N D, for D_opt = C / (k N_opt) (default: the table's median C/(N D) if it has --d "
        "and --budget columns, else 6)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap (default 0)")
    p.add_argument(
        "--tokens-at",
        type=float,
        action="append",
        default=None,
        metavar="C",
        help="also report tokens per parameter at this budget (FLOPs); repeat for several",
    )
    p.add_argument("--plot", type=Path, default=None, metavar="PATH", help="write a figure (e.g. isoflop.png)")
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table: for people; json: one JSON object on stdout (default table)",
    )
    p.set_defaults(func=run)


def _check_args(args) -> None:
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    for flag, v, ok in (
        ("--window", args.window, args.window > 0),
        ("--tol", args.tol, args.tol >= 0),
        ("--flops-per-token", args.flops_per_token, args.flops_per_token is None or args.flops_per_token > 0),
    ):
        if v is not None and not (math.isfinite(v) and ok):
            raise UserError(f"{flag} must be a positive number, got {v}")
    for c in args.tokens_at or ():
        if not (math.isfinite(c) and c > 0):
            raise UserError(f"--tokens-at must be a positive number of FLOPs, got {c}")
    if args.approach in (1, 3) and args.d is None:
        raise UserError(f"Approach {args.approach} needs a tokens column: pass --d COL")
    if args.approach == 1 and args.run is None:
        raise UserError("Approach 1 needs --run COL naming each row's learning curve")


def _progress(args, label: str):
    from ..progress import ProgressLine, no_progress

    if args.format == "json":
        return contextlib.nullcontext(no_progress)
    return ProgressLine(f"isoflop: {label}")


def run(args) -> int:
    from ..fit import FitInputError, optimal
    from .fit import json_safe, plot_path, read_columns

    _check_args(args)
    plot = plot_path(args.plot, args.csv, f"approach{args.approach}") if args.plot is not None else None
    numeric = [args.n, args.y] + ([args.budget] if args.approach == 2 else []) + ([args.d] if args.d else [])
    cols, _ = read_columns(args.csv, numeric, text=(args.run,) if args.approach == 1 else ())
    k = args.flops_per_token
    if k is None:
        has_c = args.budget in cols and args.d is not None
        k = optimal.flops_per_param_token(cols[args.n], cols[args.d], cols[args.budget]) if has_c else 6.0
    common = {"n_bootstrap": args.bootstrap, "seed": args.seed, "tokens_at": args.tokens_at}
    try:
        with _progress(args, "bootstrap" if args.approach != 3 else "starts and bootstrap") as bar:
            if args.approach == 2:
                res = optimal.approach2(
                    cols[args.n], cols[args.budget], cols[args.y], tol_dex=args.tol, window_dex=args.window, k=k,
                    names=(args.n, args.budget, args.y), progress=bar, **common,
                )  # fmt: skip
            elif args.approach == 1:
                res = optimal.approach1(
                    cols[args.run], cols[args.n], cols[args.d], cols[args.y], k=k,
                    names=(args.run, args.n, args.d, args.y), progress=bar, **common,
                )  # fmt: skip
            else:
                res = optimal.approach3(
                    cols[args.n], cols[args.d], cols[args.y], names=(args.n, args.d, args.y), progress=bar, **common
                )
    except FitInputError as exc:
        raise UserError(f"{args.csv}: {exc}") from None
    if plot is not None:
        from ..report import plot_allocation

        budget = cols.get(args.budget) if args.approach == 2 else None
        plot_allocation(res, cols[args.n], cols[args.y], budget).savefig(plot, dpi=130)
    if args.format == "json":
        notes: list[str] = []
        out = {"csv": str(args.csv), "columns": {"N": args.n, "C": args.budget, "D": args.d, "loss": args.y}}
        out |= json_safe(res.to_json(), "", notes)
        out["notes"] += notes
        if plot is not None:
            out["plot"] = str(plot)
        print(json.dumps(out, indent=2))
    else:
        print(format_allocation(res, args.csv, len(cols[args.n])))
        if plot is not None:
            print(f"plot written to {plot}")
    for w in res.notes if args.format == "json" else ():
        print(f"note: {w}", file=sys.stderr)
    return 0


def _est(e, fmt: str = ".3g") -> str:
    if e is None:
        return "—"
    ci = f" [{e.ci[0]:{fmt}}, {e.ci[1]:{fmt}}]" if e.ci is not None else ""
    return f"{e.value:{fmt}}{ci}"


def format_allocation(res, csv: Path, n_rows: int) -> str:
    lines = [f"Approach {res.approach} ({APPROACHES[res.approach]}) on {csv}: {n_rows} rows"]
    if res.budgets:
        head = f"{'budget C':>10}  {'runs':>4}  {'used':>4}  {'N_opt [95% CI]':<30}  {'D_opt [95% CI]':<30}  loss_min"
        lines += ["", head]
        for b in res.budgets:
            if b.excluded:
                lines.append(f"{b.budget:>10.3g}  {b.n_runs:>4}  {b.n_used:>4}  excluded: {b.excluded}")
            else:
                lines.append(
                    f"{b.budget:>10.3g}  {b.n_runs:>4}  {b.n_used:>4}  {_est(b.N_opt):<30}  {_est(b.D_opt):<30}  "
                    f"{b.loss_min:.4f}"
                )
        lines.append("")
    lines.append(f"a = {_est(res.a, '.4f')}   (N_opt ~ C^a)")
    lines.append(f"b = {_est(res.b, '.4f')}   (D_opt ~ C^b)")
    for c, e in res.tokens_per_param.items():
        lines.append(f"tokens per parameter at C = {c:.3g}: {_est(e)}")
    if res.n_bootstrap:
        lines.append(f"bootstrap: {res.n_bootstrap} resamples, {res.n_failed} without an exponent")
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)
