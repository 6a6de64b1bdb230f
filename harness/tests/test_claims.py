"""Verdicts are computed from measurements and tolerances; claims files are validated."""

from pathlib import Path

import pytest

from harness.claims import (
    Claim,
    ClaimsFile,
    Measurement,
    format_json,
    format_table,
    judge,
    judge_all,
    load_claims,
    regressions,
)
from harness.errors import UserError


def claim(tol, published=1.0, recorded=None):
    return Claim(
        id="x",
        kind="refit",
        statement="s",
        citation="c",
        published=published,
        measured="m",
        tolerance=tol,
        why="because",
        recorded=recorded,
    )


@pytest.mark.parametrize(
    ("tol", "value", "ci", "verdict"),
    [
        ({"abs": 0.1}, 1.05, None, "PASS"),
        ({"abs": 0.1}, 1.2, None, "FAIL"),
        ({"rel": 0.02}, 1.019, None, "PASS"),
        ({"rel": 0.02}, 0.97, None, "FAIL"),
        ({"ci": 0.95}, 1.3, (0.9, 1.5), "PASS"),
        ({"ci": 0.95}, 1.3, (1.1, 1.5), "FAIL"),
        ({"ci": 0.95}, 1.3, None, "INCONCLUSIVE"),
        ({"min": 0.5}, 0.6, None, "PASS"),
        ({"max": 0.5}, 0.6, None, "FAIL"),
        ({"min": 0.0}, 0.2, (0.1, 0.3), "PASS"),  # one-sided with an interval: the whole interval is judged
        ({"min": 0.0}, -0.2, (-0.3, -0.1), "FAIL"),
        ({"min": 0.0}, 0.2, (-0.1, 0.3), "INCONCLUSIVE"),  # the point passes, but the sign is not settled
        ({"max": 0.02}, 0.002, (-0.13, 0.13), "INCONCLUSIVE"),
        ({"abs": 0.1}, float("nan"), None, "INCONCLUSIVE"),
    ],
)
def test_judge(tol, value, ci, verdict):
    v = judge(claim(tol), Measurement(value, ci, 0.95 if ci else None))
    assert v.verdict == verdict


def test_published_in_ci_flag_independent_of_tolerance():
    v = judge(claim({"abs": 0.5}), Measurement(1.2, (1.1, 1.3), 0.95))
    assert v.verdict == "PASS" and v.published_in_ci is False


def test_qualitative_and_missing():
    assert judge(claim({"equals": True}, True), Measurement(True)).verdict == "PASS"
    assert judge(claim({"equals": True}, True), Measurement(False)).verdict == "FAIL"
    v = judge(claim({"abs": 1}), Measurement.missing("fit failed: too few runs"))
    assert v.verdict == "INCONCLUSIVE" and "too few" in v.reason
    assert judge(claim({"abs": 1}), None).verdict == "INCONCLUSIVE"


def _file(*claims):
    return ClaimsFile(path=Path("claims.toml"), replication="r", title="t", claims=list(claims))


def test_regressions_compare_with_recorded():
    ok = judge_all(_file(claim({"abs": 0.1}, recorded="PASS")), {"m": Measurement(1.0)})
    bad = judge_all(_file(claim({"abs": 0.1}, recorded="PASS")), {"m": Measurement(2.0)})
    assert regressions(ok) == [] and regressions(bad) == bad and bad[0].recorded == "PASS"


def test_recorded_verdicts_per_tier():
    # a plain string is the default tier's verdict; a table records each tier's own, and other tiers have none
    plain = _file(claim({"abs": 0.1}, recorded="PASS"))
    assert judge_all(plain, {"m": Measurement(2.0)}, "cpu", "cpu")[0].recorded == "PASS"
    assert judge_all(plain, {"m": Measurement(2.0)}, "gpu", "cpu")[0].recorded is None
    by_tier = _file(claim({"abs": 0.1}, recorded={"old": "FAIL", "new": "PASS"}))
    old = judge_all(by_tier, {"m": Measurement(2.0)}, "old", "new")
    new = judge_all(by_tier, {"m": Measurement(2.0)}, "new", "new")
    assert old[0].recorded == "FAIL" and regressions(old) == []
    assert new[0].recorded == "PASS" and regressions(new) == new
    assert judge_all(by_tier, {"m": Measurement(2.0)}, "smoke", "new")[0].recorded is None


def test_recorded_table_is_validated(tmp_path):
    base = 'id = "a"\nkind = "refit"\nstatement = "s"\ncitation = "c"\npublished = 1\nmeasured = "m"\n'
    base += 'tolerance = { abs = 1 }\nwhy = "w"\n'
    for bad in ('recorded = { cpu = "MAYBE" }', "recorded = {}", 'recorded = "maybe"'):
        p = tmp_path / "claims.toml"
        p.write_text(f'[replication]\nname = "r"\ntitle = "t"\n\n[[claim]]\n{base}{bad}\n')
        with pytest.raises(UserError, match="recorded must"):
            load_claims(p)


def test_formats():
    v = [judge(claim({"ci": 0.95}), Measurement(1.2, (1.0, 1.4), 0.95))]
    assert "1 PASS, 0 FAIL, 0 INCONCLUSIVE" in format_table(v)
    import json

    js = json.loads(format_json("r", v))
    assert js["replication"] == "r"
    assert set(js["claims"][0]) >= {"id", "kind", "published", "measured", "ci", "tolerance", "verdict"}
    assert js["claims"][0]["ci"] == [1.0, 1.4]


GOOD = """
[replication]
name = "t"
[[claim]]
id = "a"
kind = "refit"
statement = "s"
citation = "c"
published = 1.0
measured = "m"
tolerance = { abs = 0.1 }
why = "w"
"""


def test_load_claims(tmp_path):
    p = tmp_path / "claims.toml"
    p.write_text(GOOD)
    cf = load_claims(p)
    assert cf.replication == "t" and cf.claims[0].tolerance == {"abs": 0.1}
    assert cf.claims[0].tiers is None and cf.of_kind("refit", "any").claims == cf.claims
    p.write_text(GOOD + 'tiers = ["cpu"]\n')
    cf = load_claims(p)
    assert cf.claims[0].tiers == ("cpu",)
    assert cf.of_kind("refit", "cpu").claims and not cf.of_kind("refit", "gpu").claims
    assert cf.of_kind("refit").claims and not cf.of_kind("small-scale", "cpu").claims


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.replace('kind = "refit"', 'kind = "vibes"'), "kind must be one of"),
        (lambda s: s.replace('why = "w"', 'why = "  "'), "one-line reason"),
        (lambda s: s.replace("tolerance = { abs = 0.1 }", "tolerance = { wide = 1 }"), "tolerance must be"),
        (lambda s: s.replace('measured = "m"\n', ""), "missing measured"),
        (lambda s: s + s[s.index("[[claim]]") :], "duplicate id"),
        (lambda s: s.replace("[[claim]]", "[claims_typo]"), "defines no"),
        (lambda s: s.replace("published = 1.0", "published = "), "not valid TOML"),
        (lambda s: s + 'tiers = "cpu"\n', "tiers must be a list of tier names"),
    ],
)
def test_load_claims_errors(tmp_path, edit, match):
    p = tmp_path / "claims.toml"
    p.write_text(edit(GOOD))
    with pytest.raises(UserError, match=match):
        load_claims(p)
