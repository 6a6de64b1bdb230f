"""``scaling fit DATA.csv``: fit any registered form to your own runs and print parameters with intervals."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import sys
import warnings
import zlib
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
    p.add_argument("csv", type=Path, help="CSV file (UTF-8, optionally gzip-compressed) with a header row")
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
    p.add_argument(
        "--reduction",
        choices=("sum", "mean"),
        default="sum",
        help="sum (Hoffmann et al.) or mean of the per-point losses; same optimum, different stopping (default sum)",
    )
    forms, default = _forms_with("n_breaks")
    p.add_argument(
        OPTION_FLAGS["n_breaks"],
        type=int,
        default=None,
        help=f"number of breaks, for --form {' / '.join(forms)} only (default {default})",
    )
    p.add_argument(
        "--procedure",
        choices=("harness", "authors"),
        default="harness",
        help="harness: multi-start minimisation of --loss (default); authors: for --form bnsl with one break, "
        "Caballero et al.'s grid search then Levenberg-Marquardt on log(y + 1) (no bootstrap)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples for intervals (default 0)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap resamples (default 0)")
    p.add_argument(
        "--holdout-above",
        type=float,
        default=None,
        metavar="X",
        help="extrapolation check: fit only the points whose first input is below X, report RMSLE on the rest",
    )
    p.add_argument(
        "--predict",
        action="append",
        default=[],
        metavar="X=V[,X=V] | FILE",
        help="also predict the target at these inputs: the --x columns with values (e.g. N=1e9,D=2e10; "
        "repeatable) or a CSV file with those columns; printed, and under 'predictions' in the JSON (with a 95%% "
        "band when --bootstrap is given)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PATH",
        help="write a plot of data, fit (and bootstrap band) and residuals: a file (.png, .pdf, .svg, ...; "
        "no suffix: .png) or an existing directory (then DIR/<csv name>_<form>_fit.png); the path is printed",
    )
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table: for people; json: one JSON object on stdout, warnings also to stderr (default table)",
    )
    p.set_defaults(func=run)


GZIP_MAGIC = b"\x1f\x8b"


def read_text(path: Path) -> str:
    """The text of a CSV file: UTF-8 (a byte-order mark is dropped), gzip-compressed or not (told by its first
    bytes, not its name). Anything else is a one-line :class:`UserError` naming the file."""
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a CSV file")
    if not path.exists():
        raise UserError(f"{path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{path} starts like a gzip file but cannot be decompressed ({exc})") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UserError(f"{path} is UTF-16 text; save it as UTF-8")
    if b"\x00" in data[:65536]:
        raise UserError(f"{path} is a binary file, not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; the file must be UTF-8 text "
            "(convert it, e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_columns(path: Path, names: list[str], text: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], list[int]]:
    """Read numeric columns (and the ``text`` columns, e.g. run labels, as strings) from a CSV; returns the
    columns and the file line of each row. Errors name the file, column and line."""
    names = list(dict.fromkeys([*names, *text]))
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next((row for row in reader if any(f.strip() for f in row)), None)
        if header is None:
            raise UserError(f"{path} is empty")
        header = [h.strip() for h in header]
        if all(_is_number(h) for h in header if h):
            first = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
            raise UserError(f"{path} has no header row: its first line ({first}) is numbers; add a header")
        missing = [n for n in names if n not in header]
        if missing:
            raise UserError(f"{path} has no column {', '.join(map(repr, missing))}; columns: {', '.join(header)}")
        twice = [n for n in names if header.count(n) > 1]
        if twice:
            raise UserError(f"{path}: the header names column {twice[0]!r} more than once")
        index = {n: header.index(n) for n in names}
        cols: dict[str, list] = {n: [] for n in names}
        lines: list[int] = []
        for row in reader:
            if not row or all(not f.strip() for f in row):
                continue  # blank line
            i = reader.line_num
            for n in names:
                if index[n] >= len(row):
                    raise UserError(f"{path}, line {i}: {len(row)} field(s), no value for column {n!r}")
                field = row[index[n]].strip()
                if n in text:
                    if not field:
                        raise UserError(f"{path}, line {i}: column {n!r} is empty")
                    cols[n].append(field)
                    continue
                try:
                    cols[n].append(float(field))
                except ValueError:
                    raise UserError(f"{path}, line {i}: column {n!r} value {field!r} is not a number") from None
            lines.append(i)
    except csv.Error as exc:
        raise UserError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    if not lines:
        raise UserError(f"{path} has a header but no data rows")
    return {n: np.asarray(v) for n, v in cols.items()}, lines


def plot_path(plot: Path, csv_path: Path, form: str) -> Path:
    """Where ``--plot`` writes: an existing directory gets ``<csv name>_<form>_fit.png`` inside it; a name
    without a suffix gets ``.png``. Checked before fitting, so a bad path costs no fit."""
    from matplotlib.backend_bases import FigureCanvasBase

    if plot.is_dir() or str(plot).endswith(("/", "\\")):
        if not plot.is_dir():
            raise UserError(f"--plot: directory {plot} does not exist")
        stem = csv_path.name.split(".")[0] or "fit"
        return plot / f"{stem}_{form}_fit.png"
    if not plot.suffix:
        plot = plot.with_name(plot.name + ".png")
    kinds = FigureCanvasBase.get_supported_filetypes()
    if plot.suffix[1:].lower() not in kinds:
        raise UserError(f"--plot: cannot write {plot.suffix!r} files; use one of {', '.join(sorted(kinds))}")
    if not plot.parent.is_dir():
        raise UserError(f"--plot: directory {plot.parent} does not exist")
    return plot


def json_safe(value, where: str, notes: list[str]):
    """``value`` with every non-finite float replaced by None (JSON has no Infinity or NaN); each replacement is
    noted in ``notes``."""
    if isinstance(value, dict):
        return {k: json_safe(v, f"{where}.{k}" if where else str(k), notes) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, f"{where}[{i}]", notes) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        notes.append(f"{where} is {value} and is written as null (JSON has no infinity or NaN)")
        return None
    return value


def _progress(args, label: str):
    """A progress line on stderr for a long fit step, or a silent one with ``--format json`` (a script reading
    the JSON wants nothing else on its terminal)."""
    from ..progress import ProgressLine, no_progress

    if args.format == "json":
        return contextlib.nullcontext(no_progress)
    return ProgressLine(f"fit: {label}")


def poorly_determined_warning(law, boot) -> str | None:
    """One line naming the parameters the data do not determine (``ScalingLaw.poorly_determined``), with the
    criterion; None when there are none."""
    bad = law.poorly_determined(boot)
    if not bad:
        return None
    by_reason: dict[str, list[str]] = {}
    for name, reason in bad.items():
        by_reason.setdefault(reason, []).append(name)
    what = "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items())
    source = "bootstrap" if boot is not None else "linearised from the Jacobian at the fit"
    return (
        f"the data do not determine {what}. Criterion: a 95% interval ({source}) wider than "
        f"{law.UNDETERMINED_DECADES:g} decades for a positive parameter or than {law.UNDETERMINED_REL_WIDTH:g} x "
        "|estimate| for an exponent, or a direction of the parameters that changes no prediction."
        " Do not read these values as estimates: add data, or fit a form with fewer parameters"
    )


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


def prediction_inputs(specs: list[str], xs: list[str]) -> np.ndarray:
    """The ``--predict`` points as an (n, len(xs)) array: each spec is ``name=value`` pairs for every input
    column, or the path of a CSV file holding those columns."""
    rows: list[list[float]] = []
    for spec in specs:
        if "=" not in spec:
            cols, _ = read_columns(Path(spec), xs)
            rows.extend(np.stack([cols[c] for c in xs], axis=1).tolist())
            continue
        values: dict[str, float] = {}
        for part in spec.split(","):
            name, eq, value = part.partition("=")
            name = name.strip()
            if not eq or name not in xs:
                raise UserError(f"--predict {spec!r}: give a value for each input column ({', '.join(xs)}) as NAME=V")
            if name in values:
                raise UserError(f"--predict {spec!r}: {name} is given twice")
            try:
                values[name] = float(value)
            except ValueError:
                raise UserError(f"--predict {spec!r}: {name}={value.strip()!r} is not a number") from None
        missing = [c for c in xs if c not in values]
        if missing:
            raise UserError(f"--predict {spec!r}: no value for {', '.join(missing)}")
        rows.append([values[c] for c in xs])
    X = np.asarray(rows, dtype=float).reshape(-1, len(xs))
    bad = ~(np.isfinite(X) & (X > 0)).all(axis=1)
    if bad.any():
        raise UserError(f"--predict: every input must be finite and > 0; got {X[bad][0].tolist()}")
    return X


def predictions(law, boot, X: np.ndarray, xs: list[str]) -> list[dict]:
    """The fitted law at each row of ``X``, with the 95% band of the bootstrap replicates' laws if there are any."""
    from ..fit import percentile_interval

    y = law.predict(X)
    band = None
    if boot is not None and len(boot.samples):
        reps = np.stack([law.form.predict(dict(zip(boot.param_names, row, strict=True)), X) for row in boot.samples])
        band = [percentile_interval(reps[:, i]) for i in range(len(X))]
    out = []
    for i, row in enumerate(X):
        point = {c: float(v) for c, v in zip(xs, row, strict=True)}
        out.append({**point, "y": float(y[i]), "ci95": list(band[i]) if band else None})
    return out


def run(args) -> int:
    from ..fit import FitWarning, ScalingLaw, validate_xy

    options = form_options(args)  # before reading the file: a wrong flag is the cheaper mistake to report
    xs = [c.strip() for c in args.x.split(",") if c.strip()]
    twice = sorted({c for c in xs if xs.count(c) > 1})
    if twice:
        raise UserError(f"--x names column {twice[0]!r} more than once: {args.x}")
    if args.y.strip() in xs:
        raise UserError(f"--y {args.y.strip()!r} is also an input column (--x {args.x}): the target cannot be an input")
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0 (0: no bootstrap), got {args.bootstrap}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if args.procedure == "authors":
        from ..fit.authors import CaballeroBNSL

        if args.form != "bnsl" or options.get("n_breaks", 1) != 1:
            raise UserError("--procedure authors is Caballero et al.'s fit of a 1-break BNSL: use --form bnsl")
        if args.bootstrap or args.loss is not None:
            raise UserError("--procedure authors fixes its own loss (log(y + 1)) and has no bootstrap")
        law = CaballeroBNSL()
    else:
        try:
            law = ScalingLaw(args.form, loss=args.loss, delta=args.delta, reduction=args.reduction, form_kwargs=options)
        except ValueError as exc:  # a bad option value, e.g. --n-breaks -1
            raise UserError(str(exc)) from None
    # the form's own default when --loss is not given
    loss = "squared log(y + 1), the authors' procedure" if args.procedure == "authors" else law.objective.loss
    if len(xs) != law.form.n_inputs:
        raise UserError(
            f"form {args.form!r} takes {law.form.n_inputs} input column(s) ({', '.join(law.form.input_names)}), "
            f"got {len(xs)}: {args.x}"
        )
    plot = plot_path(args.plot, args.csv, args.form) if args.plot else None
    X_pred = prediction_inputs(args.predict, xs) if args.predict else None
    y_name = args.y.strip()
    cols, lines = read_columns(args.csv, [*xs, y_name])
    X = np.stack([cols[c] for c in xs], axis=1)
    y = cols[y_name]
    # the one validation layer, here with the file's column names and line numbers in its messages
    validate_xy(
        X,
        y,
        law.form.n_inputs,
        law.form.n_params + law.objective.n_extra,
        x_labels=[f"column {c!r}" for c in xs],
        y_label=f"column {y_name!r}",
        row_labels=[f"line {i}" for i in lines],
    )
    extrapolation = None
    with warnings.catch_warnings(record=True) as caught:  # reported below as one line each, not as tracebacks
        warnings.simplefilter("always")
        if args.holdout_above is not None:
            from ..fit.extrapolate import extrapolation_score

            score = extrapolation_score(law, X, y, args.holdout_above)  # leaves law fitted below the cut
            extrapolation = {"cut": score.cut, "n_fit": score.n_fit, "n_test": score.n_test, "rmsle": score.rmsle}
        else:
            with _progress(args, "starts") as bar:
                law.fit(X, y, progress=bar)
        boot = None
        if args.bootstrap > 0:
            with _progress(args, "bootstrap refits") as bar:
                boot = law.bootstrap(args.bootstrap, seed=args.seed, progress=bar)
        if boot is not None and boot.samples.shape[0] == 0:
            raise UserError(f"none of the {boot.n_resamples} bootstrap replicates converged: no intervals")
        undetermined = poorly_determined_warning(law, boot)
    notes = list(law.warnings_)
    if undetermined:
        notes.append(undetermined)
    for w in caught:
        text = str(w.message).splitlines()[0] if str(w.message) else w.category.__name__
        if not issubclass(w.category, FitWarning) and text not in notes:
            notes.append(f"{w.category.__name__}: {text}")
    result = {
        "form": args.form,
        "formula": law.form.formula,
        "n_points": len(X),
        "procedure": args.procedure,
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
    if X_pred is not None:
        result["predictions"] = predictions(law, boot, X_pred, xs)
    if plot is not None:
        from ..report import plot_fit

        heldout = None
        if extrapolation is not None:
            above = X[:, 0] >= args.holdout_above
            heldout = (X[above], y[above])
        fig = plot_fit(law, xs, y_name, boot=boot, heldout=heldout)
        try:
            fig.savefig(plot, dpi=120, bbox_inches="tight")
        except OSError as exc:
            raise UserError(f"--plot: cannot write {plot}: {exc.strerror or exc}") from None
        result["plot"] = str(plot)
    if args.format == "json":
        result = json_safe(result, "", notes)
        if notes:
            result["warnings"] = notes
        print(json.dumps(result, indent=2, allow_nan=False))
        _warn(notes)
        if plot is not None:
            print(f"plot written to {plot}", file=sys.stderr)
        return 0
    print(f"{law.form.formula}   ({len(X)} points, {loss} loss, {args.reduction})")
    if args.procedure == "authors":
        print(f"objective {law.objective_:.6g}; {law.status_}, over a grid of {law.n_starts_:,} points")
    else:
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
    for p in result.get("predictions", []):
        at = ", ".join(f"{c}={p[c]:.6g}" for c in xs)
        ci = f"   95% band [{p['ci95'][0]:.6g}, {p['ci95'][1]:.6g}]" if p["ci95"] else ""
        print(f"predicted {y_name} at {at}: {p['y']:.6g}{ci}")
    if plot is not None:
        print(f"plot written to {plot}")
    _warn(notes)
    return 0


def _warn(notes: list[str]) -> None:
    for note in notes:
        print(f"scaling fit: warning: {note}", file=sys.stderr)
