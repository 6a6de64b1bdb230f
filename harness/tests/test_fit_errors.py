"""Bad input gets a clear error, never a traceback from deep inside the optimiser."""

import numpy as np
import pytest

from harness.errors import UserError
from harness.fit import ConvergenceError, FitInputError, ScalingLaw

X2 = np.array([[1e8, 1e10], [2e8, 3e10], [4e8, 1e11], [8e8, 2e11], [1e9, 5e11], [2e9, 1e12], [4e9, 2e12]])
Y = np.array([3.0, 2.8, 2.6, 2.5, 2.4, 2.35, 2.3])


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (X2, np.where(np.arange(7) == 2, np.nan, Y), "NaN"),
        (X2, np.where(np.arange(7) == 2, -1.0, Y), "non-positive"),
        (np.where(X2 == 1e8, 0.0, X2), Y, "non-positive"),
        (X2, Y[:-1], "lengths must match"),
        (X2[:, :1], Y, r"shape \(n_points, 2\)"),
        (X2[:5], Y[:5], "too few to fit 5 parameters"),
        (X2, np.array(["a"] * 7), "numeric"),
    ],
)
def test_bad_input(X, y, match):
    with pytest.raises(FitInputError, match=match):
        ScalingLaw("chinchilla").fit(X, y)


def test_fit_errors_reach_the_user_as_one_line_with_exit_status_2(tmp_path, capsys, monkeypatch):
    # the classes are UserErrors so that the CLI prints them as one line (no traceback) and exits 2
    from harness.cli import main

    assert issubclass(FitInputError, UserError) and issubclass(ConvergenceError, UserError)
    csv = tmp_path / "runs.csv"
    rows = [f"{n:g},{d:g},{-1.0 if i == 2 else y}" for i, ((n, d), y) in enumerate(zip(X2, Y, strict=True))]
    csv.write_text("N,D,loss\n" + "\n".join(rows) + "\n")
    argv = ["fit", str(csv), "--form", "chinchilla", "--x", "N,D", "--y", "loss"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "column 'loss' has 1 non-positive value(s), the first at line 4 (value -1)" in err

    def no_convergence(self, X, y, **kw):
        raise ConvergenceError("none of the 4500 starts converged")

    csv.write_text("N,D,loss\n" + "\n".join(f"{n:g},{d:g},{y}" for (n, d), y in zip(X2, Y, strict=True)) + "\n")
    monkeypatch.setattr(ScalingLaw, "fit", no_convergence)
    assert main(argv) == 2
    assert capsys.readouterr().err == "scaling fit: error: none of the 4500 starts converged\n"


def test_non_convergence_is_reported():
    with pytest.raises(ConvergenceError, match=r"none of the .* starts converged"):
        ScalingLaw("chinchilla", max_iter=1).fit(X2, Y)


def test_unknown_form_and_options():
    with pytest.raises(ValueError, match="unknown form 'nope'"):
        ScalingLaw("nope")
    with pytest.raises(ValueError, match="unknown loss"):
        ScalingLaw("power", loss="l7")
    with pytest.raises(ValueError, match="reduction"):
        ScalingLaw("power", reduction="median")


def test_predict_before_fit():
    from harness.errors import UserError
    from harness.fit import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted") as info:
        ScalingLaw("power").predict([1.0, 2.0])
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)  # one line on the CLI


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"starts": np.empty((0, 5))}, r"n_starts >= 1"),  # used to loop forever in the optimiser
        ({"max_iter": 0}, "max_iter must be a whole number >= 1"),  # used to be reported as converged
        ({"max_iter": 2.5}, "max_iter must be a whole number"),
        ({"gtol": -1.0}, "gtol must be a finite number >= 0"),
        ({"ftol": float("nan")}, "ftol must be a finite number >= 0"),
    ],
)
def test_bad_optimiser_settings_are_refused_before_fitting(kwargs, match):
    with pytest.raises(FitInputError, match=match):
        ScalingLaw("chinchilla", **kwargs).fit(X2, Y)
