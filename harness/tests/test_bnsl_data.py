"""The extrapolation benchmark's loader: 92 curves, the authors' split, duplicates dropped, checksums."""

import numpy as np
import pytest

from harness.data.published import fetch
from harness.errors import UserError
from replications.bnsl import data as bd


@pytest.fixture
def bench(bnsl_benchmark):
    return bnsl_benchmark


def test_ninety_two_curves_in_four_domains_with_their_split(bench):
    assert len(bench.curves) == 92
    assert {d: len(bench.by_domain(d)) for d in bd.DOMAINS} == {"IC": 72, "NMT": 5, "LM": 5, "BB": 10}
    for c in bench.curves:
        assert np.all(np.diff(c.x) >= 0) and c.n_fit >= 9 and c.n_test >= 1
        assert c.x[c.train].max() < c.x[~c.train].min()
    assert bench.n_duplicates == 687  # exact repeats in the language file, each kept once
    assert bench.sha256["benchmark.vision.csv"] == bd.VISION.sha256


def test_both_files_share_one_cache_folder_under_their_own_names(bnsl_benchmark):
    assert bd.VISION.relpath == "bnsl/benchmark.vision.csv" and bd.LANG.relpath == "bnsl/benchmark.lang.csv"
    assert fetch(bd.LANG).parent == fetch(bd.VISION).parent


def test_a_curve_whose_split_overlaps_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "b.csv"
    bad.write_text("Domain,Task,Model,Seen Examples,Loss,Training\nIC,t,m,1,0.5,1\nIC,t,m,2,0.4,0\nIC,t,m,3,0.3,1\n")
    monkeypatch.setattr(bd, "fetch", lambda ds: bad)
    with pytest.raises(UserError, match="do not all lie below"):
        bd.load_benchmark()
