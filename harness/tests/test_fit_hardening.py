"""``scaling fit`` and the fitting API against bad input: one-line errors naming the argument (exit 2), never a
traceback, never a meaningless fit reported as converged; warnings for parameters the data do not determine."""

import gzip
import json
import math

import numpy as np
import pytest

from harness.cli import build_parser, main
from harness.fit import ConvergenceError, FitInputError, ScalingLaw, validate_xy

CHIN = ["--form", "chinchilla", "--x", "N,D", "--y", "loss"]
POWER = ["--form", "power", "--x", "x", "--y", "y"]


def _runs_text(rows=None):
    rng = np.random.default_rng(0)
    N = np.repeat(np.logspace(7, 9, 5), 4)
    D = np.tile(np.logspace(9, 11, 4), 5)
    L = (1.7 + 400 / N**0.34 + 400 / D**0.28) * np.exp(rng.normal(0, 0.003, N.size))
    idx = range(N.size) if rows is None else rows
    return "N,D,loss\n" + "".join(f"{N[i]:.17g},{D[i]:.17g},{L[i]:.17g}\n" for i in idx)


def _curve_text(n=30, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = np.logspace(1, 5, n)
    y = (0.5 + 3.0 * x**-0.3) * np.exp(rng.normal(0, noise, n))
    return "x,y\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in zip(x, y, strict=True))


def _fit(capsys, path, args):
    rc = main(["fit", str(path), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def _one_line_error(capsys, path, args, *needles):
    rc, out, err = _fit(capsys, path, args)
    assert rc == 2, (out, err)
    assert err.startswith("scaling fit: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def runs_csv(tmp_path):
    p = tmp_path / "runs.csv"
    p.write_text(_runs_text())
    return p


@pytest.fixture
def curve_csv(tmp_path):
    p = tmp_path / "curve.csv"
    p.write_text(_curve_text(noise=0.01))
    return p


# ---------------------------------------------------------------------------------------------- reading files


def test_gzip_and_bom_are_read_like_plain_csv(tmp_path, capsys, curve_csv):
    text = curve_csv.read_text()
    gz = tmp_path / "runs.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    gz_no_suffix = tmp_path / "runs_compressed.csv"  # told by its magic bytes, not its name
    gz_no_suffix.write_bytes(gzip.compress(text.encode()))
    bom = tmp_path / "bom.csv"
    bom.write_text(text, encoding="utf-8-sig")
    results = []
    for p in (curve_csv, gz, gz_no_suffix, bom):
        rc, out, _ = _fit(capsys, p, [*POWER, "--format", "json"])
        assert rc == 0
        results.append(json.loads(out)["params"])
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda p: p.mkdir(), ["is a directory, not a CSV file"]),
        (lambda p: p.write_bytes(bytes(range(256)) * 4), ["is a binary file"]),
        (lambda p: p.write_bytes("N,D,loss,café\n1,2,3,x\n".encode("latin-1")), ["line 1", "0xe9", "UTF-8"]),
        (lambda p: p.write_text("N,D,loss\n1,2,3\n", encoding="utf-16"), ["UTF-16", "UTF-8"]),
        (lambda p: p.write_bytes(gzip.compress(b"N,D,loss\n" * 50)[:20]), ["gzip", "cannot be decompressed"]),
        (lambda p: p.write_text(""), ["is empty"]),
        (lambda p: p.write_text("\n\n  \n"), ["is empty"]),
        (lambda p: p.write_text("1e8,1e10,2.5\n2e8,1e10,2.4\n"), ["no header row", "1e8, 1e10, 2.5"]),
        (lambda p: p.write_text("N,D,D,loss\n1,2,3,4\n"), ["names column 'D' more than once"]),
    ],
    ids=["directory", "binary", "latin-1", "utf-16", "bad-gzip", "empty", "blank", "no-header", "dup-header"],
)
def test_unreadable_files_are_one_line_errors(tmp_path, capsys, make, needles):
    p = tmp_path / "data.csv"
    make(p)
    _one_line_error(capsys, p, CHIN, str(p), *needles)


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        # line numbers are those of the file: the blank line is counted
        ("1e8,1e10,2.5\n\n2e8,1e10,nan\n", ["column 'loss'", "line 4", "NaN or infinite"]),
        ("1e8,1e10,2.5\n2e8,1e999,2.4\n", ["column 'D'", "line 3", "overflows to infinity"]),
        ("1e8,1e10,2.5\n0,1e10,2.4\n", ["column 'N'", "line 3", "non-positive", "> 0"]),
        ("1e8,1e10,2.5\n2e8,1e10\n", ["line 3", "no value for column 'loss'"]),
        ("1e8,1e10,2.5\n2e8,1e10, \n", ["line 3", "column 'loss' value '' is not a number"]),
    ],
    ids=["nan", "overflow", "zero", "short-row", "empty-value"],
)
def test_bad_values_name_column_and_line(tmp_path, capsys, rows, needles):
    p = tmp_path / "d.csv"
    p.write_text("N,D,loss\n" + rows + "4e8,1e11,2.3\n" * 8)
    _one_line_error(capsys, p, CHIN, *needles)


# ------------------------------------------------------------------------------------- arguments of the command


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--form", "power", "--x", "N", "--y", "N"], ["--y 'N' is also an input column"]),
        (["--form", "chinchilla", "--x", "N,N", "--y", "loss"], ["--x names column 'N' more than once"]),
        ([*CHIN, "--bootstrap", "-5"], ["--bootstrap must be >= 0"]),
        ([*CHIN, "--delta", "0"], ["delta must be positive"]),
    ],
    ids=["y-in-x", "x-twice", "negative-bootstrap", "delta"],
)
def test_bad_arguments_are_one_line_errors(runs_csv, capsys, args, needles):
    _one_line_error(capsys, runs_csv, args, *needles)


def test_bnsl_start_grid_too_large_is_an_error_not_an_allocation(tmp_path, capsys):
    p = tmp_path / "curve.csv"
    p.write_text("x,y\n" + "".join(f"{a:.17g},{0.5 + 3 * a**-0.3:.17g}\n" for a in np.logspace(1, 5, 40)))
    args = [*POWER[2:], "--form", "bnsl", "--n-breaks", "4"]
    _one_line_error(capsys, p, args, "n_breaks=4", "start grid", "4.92e+07")


def test_every_fit_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    fit = sub.choices["fit"]
    missing = [a.option_strings or a.dest for a in fit._actions if not a.help]
    assert missing == []


# ------------------------------------------------------------------------------------------ unidentifiable input


@pytest.mark.parametrize(
    ("text", "args", "needles"),
    [
        ("N,D,loss\n" + "1e8,1e10,2.5\n" * 20, CHIN, ["cannot determine", "only 1 distinct", "5 parameters"]),
        ("x,y\n" + "".join(f"100,{2 + 0.01 * i}\n" for i in range(20)), POWER, ["only 1 distinct", "column 'x'"]),
        (
            "N,D,loss\n" + "".join(f"{n},1e10,{2 + 100 / n**0.3}\n" for n in np.logspace(7, 9, 12)),
            CHIN,
            ["column 'D' takes the single value 1e+10", "cannot be separated"],
        ),
        (
            "N,D,loss\n" + "".join(f"{n},{d},2.5\n" for n, d in [(1e8, 1e10), (2e8, 1e10), (1e8, 2e10)] * 4),
            CHIN,
            ["only 3 distinct", "fewer than the 5 parameters"],
        ),
    ],
    ids=["identical-rows", "constant-x", "constant-second-input", "too-few-distinct"],
)
def test_unidentifiable_input_is_refused(tmp_path, capsys, text, args, needles):
    p = tmp_path / "d.csv"
    p.write_text(text)
    _one_line_error(capsys, p, args, *needles)


def test_a_parameter_that_overflows_is_an_error_not_a_fit(tmp_path, capsys):
    lx = np.linspace(5, 10, 30)  # y = 1.7e318 x^-2: every y is finite, A = 1.7e318 is not
    p = tmp_path / "big.csv"
    p.write_text("x,y\n" + "".join(f"{10**a:.17g},{1.7 * 10 ** (318 - 2 * a):.17g}\n" for a in lx))
    _one_line_error(capsys, p, [*POWER, "--format", "json"], "fitted A overflows double precision", "rescale")


def test_json_never_holds_infinity(curve_csv, capsys, monkeypatch):
    from harness.fit import Bootstrap

    monkeypatch.setattr(Bootstrap, "interval", lambda self, name, level=0.95: (1.0, math.inf))
    args = ["--form", "saturating_power", "--x", "x", "--y", "y", "--bootstrap", "5", "--format", "json"]
    rc, out, err = _fit(capsys, curve_csv, args)
    assert rc == 0

    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")

    res = json.loads(out, parse_constant=refuse)
    assert res["params"]["E"]["ci95"] == [1.0, None]
    assert any("params.E.ci95[1] is inf and is written as null" in w for w in res["warnings"])
    assert "scaling fit: warning: params.E.ci95[1] is inf" in err


# -------------------------------------------------------------------------------- poorly determined parameters


def test_poorly_determined_parameters_are_named_on_stderr(tmp_path, capsys):
    p = tmp_path / "nine.csv"
    p.write_text(_runs_text(range(0, 18, 2)))  # 9 points, 5 parameters, and only 2 distinct D: E, B, beta trade off
    rc, out, err = _fit(capsys, p, CHIN)
    assert rc == 0 and "warning" not in out
    line = next(ln for ln in err.splitlines() if ln.startswith("scaling fit: warning: the data do not determine"))
    assert "E, B, beta" in line and "Jacobian at the fit is singular" in line
    assert "Criterion: a 95% interval" in line and "3 decades" in line


def test_poorly_determined_from_the_bootstrap_width(tmp_path, capsys, curve_csv):
    # a pure power law never levels off, so M3's gamma (where it would) is anything far below the smallest 1/x:
    # its interval spans many decades
    p = tmp_path / "m3.csv"
    x = np.logspace(1, 5, 30)
    y = 2 * x**-0.4 * np.exp(np.random.default_rng(1).normal(0, 0.01, 30))
    p.write_text("x,y\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in zip(x, y, strict=True)))
    args = ["--form", "m3", "--x", "x", "--y", "y", "--bootstrap", "50", "--format", "json"]
    rc, out, err = _fit(capsys, p, args)
    assert rc == 0
    res = json.loads(out)
    (warning,) = [w for w in res["warnings"] if w.startswith("the data do not determine")]
    assert "gamma (95% bootstrap interval" in warning and "decades" in warning and "(bootstrap)" in warning
    lo, hi = res["params"]["gamma"]["ci95"]
    assert math.log10(hi / lo) > ScalingLaw.UNDETERMINED_DECADES
    assert "scaling fit: warning: the data do not determine gamma" in err
    # a well-determined fit: no warning at all, with or without bootstrap (a bootstrap slower than the progress
    # line's threshold, e.g. on a loaded machine, may leave its progress line on stderr: that is not a warning)
    for extra in ([], ["--bootstrap", "50"]):
        rc, out, err = _fit(capsys, curve_csv, ["--form", "saturating_power", "--x", "x", "--y", "y", *extra])
        assert rc == 0 and "warning" not in err


# --------------------------------------------------------------------------------------------------- plots


def test_plot_into_a_directory_says_where(curve_csv, tmp_path, capsys):
    out_dir = tmp_path / "plots"
    out_dir.mkdir()
    rc, out, _ = _fit(capsys, curve_csv, [*POWER, "--plot", str(out_dir)])
    png = out_dir / "curve_power_fit.png"
    assert rc == 0 and png.stat().st_size > 5000
    assert f"plot written to {png}" in out
    rc, out, err = _fit(capsys, curve_csv, [*POWER, "--plot", str(tmp_path / "noext"), "--format", "json"])
    assert rc == 0 and json.loads(out)["plot"] == str(tmp_path / "noext.png")
    assert f"plot written to {tmp_path / 'noext.png'}" in err and (tmp_path / "noext.png").exists()


@pytest.mark.parametrize(
    ("plot", "needles"),
    [("fit.txt", ["cannot write '.txt' files"]), ("missing/fit.png", ["directory", "missing", "does not exist"])],
)
def test_bad_plot_path_is_refused_before_fitting(runs_csv, tmp_path, capsys, plot, needles):
    _one_line_error(capsys, runs_csv, [*CHIN, "--plot", str(tmp_path / plot)], "--plot", *needles)


def _overlaps(fig):
    """Pairs of visible tick labels that overlap, on every axis of ``fig``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bad = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            bad += [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    return bad


def test_plot_draws_fitted_curves_bands_and_tidy_ticks():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from harness.fit import Bootstrap
    from harness.report import plot_fit

    rng = np.random.default_rng(0)
    N = np.repeat(np.logspace(5, 7, 5), 4)
    S = np.tile(np.logspace(3, 5, 4), 5)
    L = ((3e4 / N) ** 0.08 + (2e3 / S) ** 0.7) * np.exp(rng.normal(0, 0.003, N.size))
    law = ScalingLaw("kaplan_ns").fit(np.stack([N, S], 1), L)  # a two-input form with a small start grid
    # replicates near the fit stand in for a bootstrap (refitting this autograd form 20 times takes a minute)
    nat = np.array(list(law.params_.values()))
    samples = nat[None, :] * np.exp(rng.normal(0, 0.01, (20, nat.size)))
    fig = plot_fit(law, ["N", "S"], "loss", boot=Bootstrap(law.param_names, samples, 20, 0, 0))
    FigureCanvasAgg(fig)
    main_ax = fig.axes[0]
    assert len(main_ax.get_lines()) == 4  # one fitted curve per distinct S
    assert len(main_ax.collections) >= 4 + 4  # a bootstrap band and the points of each S
    assert _overlaps(fig) == []
    x = np.logspace(1, 5, 25)
    one = ScalingLaw("saturating_power").fit(x, (0.5 + 3 * x**-0.3) * np.exp(rng.normal(0, 0.02, 25)))
    fig = plot_fit(one, ["x"], "y", boot=one.bootstrap(20, seed=0))
    FigureCanvasAgg(fig)
    assert len(fig.axes[0].get_lines()) == 1 and len(fig.axes) == 2  # the fit, and a residual panel
    assert _overlaps(fig) == []
    labels = [t.get_text() for t in fig.axes[0].yaxis.get_ticklabels() if t.get_text()]
    assert len(labels) >= 3  # a y axis under a decade still gets round-number labels


# ------------------------------------------------------------------------------------------------------ API


@pytest.fixture(scope="module")
def power_law():
    x = np.logspace(1, 5, 20)
    return ScalingLaw("power").fit(x, 2 * x**-0.3)


def test_predict_checks_its_input(power_law):
    with pytest.raises(FitInputError, match=r"X must have shape \(n_points, 1\) \(x\) for form 'power'; got \(20, 2\)"):
        power_law.predict(np.ones((20, 2)))
    with pytest.raises(FitInputError, match="finite and > 0"):
        power_law.predict([1.0, -2.0])
    assert power_law.predict(np.ones((3, 1))).shape == (3,)
    assert power_law.predict(10.0).shape == (1,)


def test_bootstrap_names_and_counts(power_law):
    boot = power_law.bootstrap(10, seed=0)
    with pytest.raises(FitInputError, match=r"name 'gamma' is not a parameter of this fit \(parameters: A, alpha\)"):
        boot.interval("gamma")
    with pytest.raises(FitInputError, match="n_resamples must be a whole number >= 0, got -1"):
        power_law.bootstrap(-1)
    with pytest.raises(FitInputError, match="n_starts_from_fit must be a whole number >= 1"):
        power_law.bootstrap(5, n_starts_from_fit=0)
    with pytest.raises(ConvergenceError, match="no bootstrap interval for 'A': no replicates"):
        power_law.bootstrap(0).interval("A")


@pytest.mark.parametrize("form", ["power", "m1", "isoflop_parabola", "saturating_power", "bnsl"])
def test_constant_x_is_refused_before_any_linear_algebra(form):
    with pytest.raises(FitInputError, match="only 1 distinct value"):
        ScalingLaw(form, loss="mse").fit(np.full(20, 100.0), np.linspace(2, 3, 20))


def test_validate_xy_names_column_and_row():
    X = np.array([[1e8, 1e10], [2e8, -1.0], [4e8, 2e10], [8e8, 4e10]])
    with pytest.raises(FitInputError, match=r"X column 1 \(D\) has 1 non-positive value\(s\), the first at row 1"):
        validate_xy(X, np.ones(4), 2, 2, ("N", "D"))
    with pytest.raises(FitInputError, match="starts must be finite"):
        ScalingLaw("power", starts=np.array([[0.0, np.nan]])).fit(np.logspace(1, 3, 5), np.ones(5))


def test_large_fits_screen_the_start_grid_and_reach_the_same_optimum(monkeypatch):
    import harness.fit.estimator as est

    rng = np.random.default_rng(3)
    n = 300
    X = np.stack([10 ** rng.uniform(7, 10, n), 10 ** rng.uniform(9, 12, n)], axis=1)
    y = (1.69 + 406.4 / X[:, 0] ** 0.34 + 410.7 / X[:, 1] ** 0.28) * np.exp(rng.normal(0, 0.01, n))
    full = ScalingLaw("chinchilla").fit(X, y)  # 4,500 starts x 300 points: below the threshold, not screened
    assert full.n_screened_ is None and full.n_starts_ == 4500
    monkeypatch.setattr(est, "SCREEN_ABOVE", 100_000)  # as if the data were large
    screened = ScalingLaw("chinchilla").fit(X, y)
    assert screened.n_screened_ == 4500 and screened.n_starts_ == est.SCREEN_KEEP
    assert screened.objective_ == pytest.approx(full.objective_, rel=1e-7)  # the same optimum, to the stopping rule
    for k, v in full.params_.items():
        assert screened.params_[k] == pytest.approx(v, rel=1e-4), k
    explicit = ScalingLaw("chinchilla", starts=full.start_raw_[:100]).fit(X, y)  # a user's own starts: all run
    assert explicit.n_screened_ is None and explicit.n_starts_ == 100
    assert ScalingLaw("chinchilla", screen=False).fit(X, y).n_screened_ is None  # off, even on large data
    monkeypatch.setattr(est, "SCREEN_ABOVE", 2_000_000)
    forced = ScalingLaw("chinchilla", screen=True).fit(X, y)  # on, even on small data
    assert forced.n_screened_ == 4500 and forced.objective_ == pytest.approx(full.objective_, rel=1e-7)
    with pytest.raises(FitInputError, match="screen must be"):
        ScalingLaw("chinchilla", screen="yes")
