"""The Chinchilla refit audit end to end: numbers, verdicts and their agreement with the recorded ones."""

import pytest

from harness import replication
from harness.claims import regressions


@pytest.fixture(scope="module")
def audit(chinchilla_data):
    # 200 resamples keep the test quick; the committed results use 1000
    return replication.audit("chinchilla", n_bootstrap=200, seed=0, log=lambda s: None)


def test_reproduces_besiroglu_refit(audit):
    m = audit.result.measurements
    assert m["sum_fit.E"].value == pytest.approx(1.8172, abs=5e-4)
    assert m["sum_fit.alpha"].value == pytest.approx(0.3473, abs=5e-4)
    assert m["sum_fit.beta"].value == pytest.approx(0.3672, abs=5e-4)
    assert m["sum_fit.objective"].value == pytest.approx(1.0183e-3, rel=1e-4)
    assert m["mle_fit.A"].value == pytest.approx(482.0, rel=0.01)
    assert m["mle_fit.B"].value == pytest.approx(2085.0, rel=0.01)


def test_derived_quantities(audit):
    m = audit.result.measurements
    a, b = m["sum_fit.a"].value, m["sum_fit.b"].value
    assert a + b == pytest.approx(1.0)
    # derived from the same bootstrap replicates as the parameters (Bootstrap.derive): b = 1 - a in every one
    assert m["sum_fit.a"].ci[0] + m["sum_fit.b"].ci[1] == pytest.approx(1.0)
    assert 0.50 < a < 0.53  # about 0.51 (Besiroglu et al.)
    assert 15 < m["sum_fit.tokens_per_param"].value < 25  # about 20
    assert 60 < m["published_fit.tokens_per_param"].value < 100  # about 90 from eq. 10


def test_every_claim_has_a_verdict_matching_the_recorded_one(audit):
    ids = {v.claim.id for v in audit.verdicts}
    assert len(ids) == len(audit.verdicts) >= 15
    assert all(v.verdict in ("PASS", "FAIL", "INCONCLUSIVE") for v in audit.verdicts)
    assert regressions(audit.verdicts) == []


def test_expected_failures_of_published_values(audit):
    verdict = {v.claim.id: v.verdict for v in audit.verdicts}
    assert verdict["hoffmann.eq10.E"] == "FAIL"
    assert verdict["hoffmann.eq10.beta"] == "FAIL"
    assert verdict["besiroglu.sum_fit.E"] == "PASS"


def test_bootstrap_intervals_are_not_degenerate(audit):
    lo, hi = audit.result.measurements["sum_fit.alpha"].ci
    assert 0.01 < hi - lo < 0.2  # a replicate stuck at its start would give a near-zero width


def test_write_results(audit, tmp_path):
    import json

    out = replication.write_results(audit, tmp_path)
    rec = json.loads((out / "audit.json").read_text())
    assert rec["replication"] == "chinchilla"
    assert rec["provenance"]["inputs"]["data"] == "chinchilla"
    assert rec["provenance"]["inputs"]["data_sha256"].startswith("193478df")
    assert {"git_commit", "packages", "created_utc"} <= set(rec["provenance"])
    assert (out / "isoloss_contours.png").stat().st_size > 10_000
    assert "| claim |" in (out / "verdicts.md").read_text()
