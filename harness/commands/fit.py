"""``scaling fit DATA.csv``: fit any registered form to your own runs and print parameters with intervals."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

# Form options that have a flag of their own: option name (also the flag's argparse dest) -> flag. A form takes
# a flag only if it has that option (``Form.options()``); which forms do is read from the forms, not listed here.
OPTION_FLAGS = {"n_breaks": "--n-breaks"}


def _default_losses() -> str:
    """The default loss of each form, for --help: e.g. "mse for bnsl; huber for the others"."""
    from ..fit import available_forms, form_class

    by_loss: dict[str, list[str]] = {}
    for name in available_forms():
        by_loss.setdefault(form_class(name).default_loss, []).append(name)
    if len(by_loss) == 1:
        return next(iter(by_loss))
    common = max(by_loss, key=lambda k: len(by_loss[k]))
    rare = [f"{loss} for {', '.join(forms)}" for loss, forms in by_loss.items() if loss != common]
    return f"{'; '.join(rare)}; {common} for the others"


def _forms_with(option: str) -> tuple[list[str], Any]:
    """The forms that have ``option``, and its default (that of the first; ``None`` if no form has it)."""
    from ..fit import available_forms, form_class

    forms = [f for f in available_forms() if option in form_class(f).options()]
    return forms, (form_class(forms[0]).options()[option] if forms else None)


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
        help=f"fitting loss on log residuals (default: each form's own, {_default_losses()})",
    )
    p.add_argument("--delta", type=float, default=1e-3, help="Huber threshold (default 1e-3, Hoffmann et al.)")
    p.add_argument("--reduction", choices=("sum", "mean"), default="sum")
    forms, default = _forms_with("n_breaks")
    p.add_argument(
        OPTION_FLAGS["n_breaks"],
        type=int,
        default=None,
        help=f"number of breaks, for --form {' / '.join(forms)} only (default {default})",
    )
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


def form_options(args) -> dict[str, Any]:
    """The form options given as flags (see ``OPTION_FLAGS``); a flag the form has no option for is an error,
    not silently ignored."""
    from ..fit import form_class

    have = form_class(args.form).options()
    out = {}
    for option, flag in OPTION_FLAGS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if option not in have:
            forms, _ = _forms_with(option)
            raise UserError(f"{flag} is an option of --form {' / '.join(forms)}, not of {args.form!r}")
        out[option] = value
    return out


def run(args) -> int:
    from ..fit import ScalingLaw

    options = form_options(args)  # before reading the file: a wrong flag is the cheaper mistake to report
    xs = [c.strip() for c in args.x.split(",") if c.strip()]
    cols = read_columns(args.csv, [*xs, args.y])
    try:
        law = ScalingLaw(args.form, loss=args.loss, delta=args.delta, reduction=args.reduction, form_kwargs=options)
    except ValueError as exc:  # a bad option value, e.g. --n-breaks -1
        raise UserError(str(exc)) from None
    loss = law.objective.loss  # the form's own default when --loss is not given
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
