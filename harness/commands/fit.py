"""``scaling fit DATA.csv``: fit any registered form to your own runs and print parameters with intervals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..errors import UserError


def register(sub) -> None:
    from ..fit import available_forms

    p = sub.add_parser(
        "fit",
        help="fit a scaling law to a CSV of your own runs",
        description=(
            "Fit a functional form to columns of a CSV file with the same code the replications use: many "
            "starts at once, log-space Huber (or squared) loss, bootstrap percentile intervals. Example: "
            "scaling fit runs.csv --form chinchilla --x N,D --y loss --bootstrap 1000 --plot fit.png"
        ),
    )
    p.add_argument("csv", type=Path, help="CSV file with a header row")
    p.add_argument("--form", required=True, choices=available_forms(), help="functional form")
    p.add_argument("--x", required=True, help="input column(s), comma-separated in the form's order (e.g. N,D)")
    p.add_argument("--y", required=True, help="target column (e.g. loss)")
    p.add_argument(
        "--loss",
        choices=("huber", "mse", "huber_nll"),
        default=None,
        help="fitting loss on log residuals (default: huber; mse for bnsl as in Caballero et al.)",
    )
    p.add_argument("--delta", type=float, default=1e-3, help="Huber threshold (default 1e-3, Hoffmann et al.)")
    p.add_argument("--reduction", choices=("sum", "mean"), default="sum")
    p.add_argument("--n-breaks", type=int, default=1, help="number of breaks for --form bnsl (default 1)")
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples for intervals (default 0)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--holdout-above",
        type=float,
        default=None,
        metavar="X",
        help="extrapolation check: fit only the points whose first input is below X, report RMSLE on the rest",
    )
    p.add_argument("--plot", type=Path, default=None, help="write a plot of data and fit (PNG)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run)


def read_columns(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Read numeric columns from a CSV; errors name the file, column and row."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise UserError(f"{path} is empty")
        missing = [n for n in names if n not in reader.fieldnames]
        if missing:
            raise UserError(
                f"{path} has no column {', '.join(map(repr, missing))}; columns: {', '.join(reader.fieldnames)}"
            )
        cols: dict[str, list[float]] = {n: [] for n in names}
        for i, row in enumerate(reader, start=2):
            for n in names:
                try:
                    cols[n].append(float(row[n]))
                except (TypeError, ValueError):
                    raise UserError(f"{path}, line {i}: column {n!r} value {row[n]!r} is not a number") from None
    if not cols[names[0]]:
        raise UserError(f"{path} has a header but no data rows")
    return {n: np.asarray(v) for n, v in cols.items()}


def run(args) -> int:
    from ..fit import ScalingLaw

    xs = [c.strip() for c in args.x.split(",") if c.strip()]
    cols = read_columns(args.csv, [*xs, args.y])
    loss = args.loss or ("mse" if args.form == "bnsl" else "huber")
    kwargs = {"n_breaks": args.n_breaks} if args.form == "bnsl" else {}
    law = ScalingLaw(args.form, loss=loss, delta=args.delta, reduction=args.reduction, form_kwargs=kwargs)
    if len(xs) != law.form.n_inputs:
        raise UserError(
            f"form {args.form!r} takes {law.form.n_inputs} input column(s) ({', '.join(law.form.input_names)}), "
            f"got {len(xs)}: {args.x}"
        )
    X = np.stack([cols[c] for c in xs], axis=1)
    extrapolation = None
    if args.holdout_above is not None:
        from ..fit.extrapolate import extrapolation_score

        score = extrapolation_score(law, X, cols[args.y], args.holdout_above)  # leaves law fitted below the cut
        extrapolation = {"cut": score.cut, "n_fit": score.n_fit, "n_test": score.n_test, "rmsle": score.rmsle}
    else:
        law.fit(X, cols[args.y])
    boot = law.bootstrap(args.bootstrap, seed=args.seed) if args.bootstrap > 0 else None
    result = {
        "form": args.form,
        "formula": law.form.formula,
        "n_points": len(X),
        "loss": loss,
        "reduction": args.reduction,
        "objective": law.objective_,
        "starts": {"total": law.n_starts_, "converged": law.n_converged_},
        "status": law.status_,
        "params": {k: {"value": v, "ci95": list(boot.interval(k)) if boot else None} for k, v in law.params_.items()},
    }
    if boot is not None:
        result["bootstrap"] = {"n": boot.n_resamples, "failed": boot.n_failed, "seed": boot.seed}
    if extrapolation is not None:
        result["extrapolation"] = extrapolation
    if law.warnings_:
        result["warnings"] = law.warnings_
    if args.plot:
        from ..report import plot_fit

        plot_fit(law, xs, args.y).savefig(args.plot, dpi=120, bbox_inches="tight")
        result["plot"] = str(args.plot)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{law.form.formula}   ({len(X)} points, {loss} loss, {args.reduction})")
    print(f"objective {law.objective_:.6g}; {law.n_converged_}/{law.n_starts_} starts converged; {law.status_}")
    width = max(len(k) for k in law.params_)
    for k, v in law.params_.items():
        ci = f"   95% CI [{boot.interval(k)[0]:.6g}, {boot.interval(k)[1]:.6g}]" if boot else ""
        print(f"  {k.ljust(width)} = {v:.6g}{ci}")
    if boot is not None:
        print(f"bootstrap: {boot.n_resamples} resamples, seed {boot.seed}, {boot.n_failed} failed")
    if extrapolation is not None:
        e = extrapolation
        print(
            f"extrapolation: fitted on {e['n_fit']} points with {xs[0]} < {e['cut']:g}; "
            f"RMSLE on the {e['n_test']} points above: {e['rmsle']:.4g}"
        )
    for w in law.warnings_:
        print(f"warning: {w}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
