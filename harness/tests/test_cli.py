"""The ``scaling`` command: output, exit codes, and one-line errors."""

import json

import numpy as np
import pytest

from harness.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("audit", "replicate", "fit", "data"):
        assert cmd in out


@pytest.fixture
def runs_csv(tmp_path):
    rng = np.random.default_rng(0)
    N = np.repeat(np.logspace(7, 9, 5), 4)
    D = np.tile(np.logspace(9, 11, 4), 5)
    L = (1.7 + 400 / N**0.34 + 400 / D**0.28) * np.exp(rng.normal(0, 0.003, N.size))
    p = tmp_path / "runs.csv"
    p.write_text("N,D,loss\n" + "".join(f"{n},{d},{l}\n" for n, d, l in zip(N, D, L, strict=True)))
    return p


def test_fit_json_with_bootstrap_and_plot(runs_csv, tmp_path, capsys):
    png = tmp_path / "fit.png"
    rc = main(
        [
            "fit",
            str(runs_csv),
            "--form",
            "chinchilla",
            "--x",
            "N,D",
            "--y",
            "loss",
            "--bootstrap",
            "50",
            "--plot",
            str(png),
            "--format",
            "json",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr()
    assert "fit:" not in printed.err  # no progress lines around JSON output
    res = json.loads(printed.out)
    assert res["params"]["alpha"]["ci95"][0] < res["params"]["alpha"]["value"] < res["params"]["alpha"]["ci95"][1]
    assert png.stat().st_size > 5000


def test_fit_table(runs_csv, capsys):
    assert main(["fit", str(runs_csv), "--form", "power", "--x", "N", "--y", "loss"]) == 0
    out = capsys.readouterr().out
    assert "alpha =" in out and "huber loss" in out  # the form's default loss


def test_fit_form_options_and_default_loss(tmp_path, capsys):
    x = np.logspace(1, 5, 30)
    p = tmp_path / "curve.csv"
    p.write_text("x,y\n" + "".join(f"{a},{0.5 + 3.0 * a**-0.3}\n" for a in x))
    args = ["fit", str(p), "--form", "bnsl", "--x", "x", "--y", "y", "--format", "json"]
    assert main([*args, "--n-breaks", "0"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["loss"] == "mse" and set(res["params"]) == {"a", "b", "c0"}  # BNSL's own loss; no break
    assert main([*args, "--n-breaks", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "scaling fit: error: n_breaks must be >= 0\n"


def test_fit_option_of_another_form_is_an_error(runs_csv, capsys):
    rc = main(["fit", str(runs_csv), "--form", "power", "--x", "N", "--y", "loss", "--n-breaks", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == "scaling fit: error: --n-breaks is an option of --form bnsl, not of 'power'\n"


def test_fit_help_gives_each_forms_default_loss(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "mse for bnsl, routing; huber for the others" in out
    assert "for --form bnsl only (default 1)" in out


def test_fit_holdout_reports_extrapolation_error(runs_csv, capsys):
    args = ["fit", str(runs_csv), "--form", "chinchilla", "--x", "N,D", "--y", "loss", "--format", "json"]
    assert main([*args, "--holdout-above", "3e8"]) == 0
    e = json.loads(capsys.readouterr().out)["extrapolation"]
    assert e["n_fit"] + e["n_test"] == 20 and e["n_test"] == 8
    assert 0 < e["rmsle"] < 0.05  # the law is right, so extrapolating it costs little


def test_fit_predicts_at_given_points_and_from_a_file(runs_csv, tmp_path, capsys):
    args = ["fit", str(runs_csv), "--form", "chinchilla", "--x", "N,D", "--y", "loss", "--format", "json"]
    points = tmp_path / "at.csv"
    points.write_text("D,N\n2e10,1e9\n1e12,1e10\n")
    assert main([*args, "--predict", "N=1e9,D=2e10", "--predict", str(points), "--bootstrap", "20"]) == 0
    preds = json.loads(capsys.readouterr().out)["predictions"]
    assert [(p["N"], p["D"]) for p in preds] == [(1e9, 2e10), (1e9, 2e10), (1e10, 1e12)]
    truth = 1.7 + 400 / 1e9**0.34 + 400 / 2e10**0.28
    assert preds[0]["y"] == pytest.approx(truth, rel=0.02) and preds[0]["y"] == preds[1]["y"]
    lo, hi = preds[0]["ci95"]
    assert lo <= preds[0]["y"] <= hi
    assert main([*args[:-2], "--predict", "N=1e9,D=2e10"]) == 0  # the table says it too
    assert "predicted loss at N=1e+09, D=2e+10:" in capsys.readouterr().out
    for bad, why in [("N=1e9", "no value for D"), ("N=1e9,D=x", "not a number"), ("N=-1,D=1e9", "> 0")]:
        assert main([*args, "--predict", bad]) == 2
        assert why in capsys.readouterr().err


def test_fit_with_the_bnsl_authors_procedure(tmp_path, capsys):
    from replications.bnsl import example

    p = tmp_path / "add.csv"
    p.write_text("n,loss\n" + "".join(f"{x},{y}\n" for x, y in zip(example.X, example.Y, strict=True)))
    args = ["fit", str(p), "--form", "bnsl", "--x", "n", "--y", "loss", "--procedure", "authors"]
    assert main([*args, "--holdout-above", "750", "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["procedure"] == "authors" and res["extrapolation"]["n_test"] == 3
    assert res["params"]["d1"]["value"] == pytest.approx(example.PUBLISHED["d1"], rel=1e-4)
    assert res["extrapolation"]["rmsle"] == pytest.approx(0.0109157, rel=1e-3)
    assert main([*args, "--bootstrap", "10"]) == 2
    assert "no bootstrap" in capsys.readouterr().err
    assert main(["fit", str(p), "--form", "power", "--x", "n", "--y", "loss", "--procedure", "authors"]) == 2
    assert "use --form bnsl" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "args", "match"),
    [
        (None, ["--x", "N,D", "--y", "loss"], "does not exist"),
        ("N,D,loss\n1e8,1e10,2.5\n", ["--x", "N,Q", "--y", "loss"], "no column 'Q'"),
        (
            "N,D,loss\n1e8,1e10,abc\n",
            ["--x", "N,D", "--y", "loss"],
            "line 2: column 'loss' value 'abc' is not a number",
        ),
        ("N,D,loss\n", ["--x", "N,D", "--y", "loss"], "no data rows"),
        ("N,D,loss\n1e8,1e10,2.5\n2e8,1e10,-1\n", ["--x", "N,D", "--y", "loss"], "non-positive"),
        ("N,D,loss\n1e8,1e10,2.5\n2e8,1e10,2.4\n", ["--x", "N,D", "--y", "loss"], "too few"),
        ("N,D,loss\n1e8,1e10,2.5\n", ["--x", "N", "--y", "loss"], "takes 2 input column"),
    ],
)
def test_fit_errors_are_one_line(tmp_path, capsys, content, args, match):
    p = tmp_path / "d.csv"
    if content is not None:
        p.write_text(content)
    rc = main(["fit", str(p), "--form", "chinchilla", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("scaling fit: error:") and err.count("\n") == 1
    assert match in err


def test_audit_json_and_strict(capsys, chinchilla_data):
    assert main(["audit", "chinchilla", "--format", "json", "--bootstrap", "100", "--strict"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["replication"] == "chinchilla"
    c = res["claims"][0]
    assert set(c) >= {"id", "kind", "published", "measured", "ci", "tolerance", "verdict"}


def test_unknown_replication(capsys):
    assert main(["audit", "nope"]) == 2
    assert "unknown replication 'nope'" in capsys.readouterr().err


def test_replicate_list_and_data_list(capsys):
    assert main(["replicate", "--list"]) == 0
    assert "chinchilla" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "chinchilla:" in out and "cached" in out and "origin https://" in out


def test_data_fetch(capsys, chinchilla_data):
    from replications.chinchilla.data import CHINCHILLA

    assert main(["data", "fetch", "chinchilla"]) == 0
    assert capsys.readouterr().out == f"{CHINCHILLA.path}\n"
    assert main(["data", "fetch", "nope"]) == 2
    known = "bnsl-lang, bnsl-vision, chinchilla, routing"
    assert capsys.readouterr().err == f"scaling data: error: unknown data set 'nope'; known: {known}\n"


def test_strict_fails_on_a_verdict_that_differs_from_the_recorded_one(tmp_path, monkeypatch, capsys, chinchilla_data):
    from dataclasses import replace

    from harness import replication

    rep = replication.get("chinchilla")
    claims = rep.claims_path.read_text()
    # pretend a person had recorded the failing published E as passing: --strict must catch the difference
    block = claims.split('id = "hoffmann.eq10.E"', 1)[1].split("[[claim]]", 1)[0]
    path = tmp_path / "claims.toml"
    path.write_text(claims.replace(block, block.replace('recorded = "FAIL"', 'recorded = "PASS"')))
    monkeypatch.setattr(replication, "get", lambda name: replace(rep, claims_path=path))
    assert main(["audit", "chinchilla", "--bootstrap", "50", "--strict"]) == 1
    assert "regression: hoffmann.eq10.E is FAIL, recorded PASS" in capsys.readouterr().err


def test_unjudged_tier_shows_numbers_but_judges_nothing(monkeypatch, capsys, chinchilla_data):
    from dataclasses import replace

    from harness import replication

    rep = replication.get("chinchilla")
    tier = replace(rep.tiers["refit"], judged=False)
    monkeypatch.setattr(replication, "get", lambda name: replace(rep, tiers={"refit": tier}))
    assert main(["audit", "chinchilla", "--bootstrap", "20", "--format", "json"]) == 0
    claims = json.loads(capsys.readouterr().out)["claims"]
    assert all(c["verdict"] == "INCONCLUSIVE" and "pipeline check" in c["reason"] for c in claims)
    assert all(c["measured"] is not None for c in claims if c["id"].startswith("besiroglu.sum_fit"))


def test_replicate_smoke_falls_back_to_the_default_tier(tmp_path, monkeypatch, chinchilla_data):
    # a replication without a smoke tier: --smoke runs its default tier (here chinchilla's refit, quick already)
    from dataclasses import replace

    from harness import replication

    rep = replication.get("chinchilla")
    monkeypatch.setattr(replication, "get", lambda name: replace(rep, smoke_tier=None))
    assert main(["replicate", "chinchilla", "--smoke", "--bootstrap", "20", "--out", str(tmp_path)]) == 0
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["tier"] == "refit" and len(audit["claims"]) == 17
    assert main(["replicate", "chinchilla", "--smoke", "--tier", "refit"]) == 2


def test_replicate_smoke_runs_every_smoke_tier_into_its_own_folder(tmp_path, monkeypatch, chinchilla_data):
    # chinchilla names two smoke tiers (its refit and its trained smoke tier); each gets its own folder in --out
    from dataclasses import replace

    from harness import replication

    rep = replication.get("chinchilla")
    assert rep.smoke_tiers() == ("refit", "smoke")
    again = replace(rep.tiers["refit"], name="refit-again")
    fake = replace(rep, tiers={**rep.tiers, "refit-again": again}, smoke_tier=("refit", "refit-again"))
    monkeypatch.setattr(replication, "get", lambda name: fake)
    assert main(["replicate", "chinchilla", "--smoke", "--bootstrap", "20", "--out", str(tmp_path)]) == 0
    for tier in ("refit", "refit-again"):
        assert json.loads((tmp_path / tier / "audit.json").read_text())["tier"] == tier


def test_replicate_all_runs_past_a_failing_replication_and_reports_it(tmp_path, monkeypatch, capsys):
    # one replication without its data, one with a bug: the third still runs; the summary names both; exit 1
    from types import SimpleNamespace

    import harness.replication
    from harness.errors import UserError

    ran = []

    def audit(name, **kw):
        ran.append(name)
        if name == "nodata":
            raise UserError("data set 'x' is not cached and cannot be downloaded (offline?)")
        if name == "buggy":
            raise ZeroDivisionError("division by zero")
        return SimpleNamespace(replication=SimpleNamespace(name=name, title="Fine"), tier="t", verdicts=[], seconds=0)

    monkeypatch.setattr(harness.replication, "available", lambda: ["nodata", "buggy", "fine"])
    monkeypatch.setattr(harness.replication, "audit", audit)
    monkeypatch.setattr(harness.replication, "write_results", lambda a, out: tmp_path)
    monkeypatch.setattr(harness.replication, "RESULTS_DIR", tmp_path / "results")
    assert main(["replicate", "--all"]) == 1
    out, err = capsys.readouterr()
    assert ran == ["nodata", "buggy", "fine"], err
    assert f"results written to {tmp_path}" in out  # the one that works wrote its results
    assert "scaling replicate: nodata: error: data set 'x' is not cached" in err
    assert "Traceback" in err and "ZeroDivisionError" in err  # a bug keeps its traceback
    summary = err.split("2 of 3 replications failed:\n", 1)[1]
    assert summary.splitlines() == [
        "  nodata: data set 'x' is not cached and cannot be downloaded (offline?)",
        "  buggy: ZeroDivisionError: division by zero",
    ]
    # a single named replication still fails as one line, exit 2
    assert main(["replicate", "nodata"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("cannot be downloaded (offline?)")


def test_replicate_leaves_committed_results_alone_unless_asked(tmp_path, monkeypatch, capsys, chinchilla_data):
    import harness.provenance
    import harness.replication

    monkeypatch.setattr(harness.replication, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(harness.provenance, "REPO_ROOT", tmp_path)
    committed = tmp_path / "results" / "chinchilla" / "refit"
    argv = ["replicate", "chinchilla", "--bootstrap", "5"]
    assert main(argv) == 0  # nothing there yet: the tier's results folder is filled
    first = (committed / "audit.json").read_bytes()
    capsys.readouterr()
    assert main(argv) == 0  # a rerun writes beside it, and says where
    scratch = tmp_path / "runs" / "replicate" / "chinchilla" / "refit"
    assert (committed / "audit.json").read_bytes() == first and (scratch / "audit.json").exists()
    out = capsys.readouterr()
    assert f"results written to {scratch}" in out.out and "--update-results" in out.err
    (committed / "verdicts.md").write_text("stale\n")
    assert main([*argv, "--update-results"]) == 0  # asked: replaced
    assert (committed / "verdicts.md").read_text() != "stale\n"
