"""Published data: checksum-verified cache, clear errors offline or on a corrupted file."""

import urllib.error

import pytest

from harness.data import published
from harness.errors import UserError


def test_load_chinchilla_drops_five_highest(chinchilla_data):
    d = chinchilla_data
    assert len(d.loss) == 240 and d.n_dropped == 5
    assert d.loss.max() < 3.447  # the five dropped rows are the ones with loss >= 3.447
    assert (abs(d.D * 6 * d.N / d.C - 1) < 1e-12).all()
    assert d.sha256 == published.DATASETS["chinchilla"].sha256


def test_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_DATA_DIR", str(tmp_path))

    def no_network(*a, **k):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(published.urllib.request, "urlopen", no_network)
    with pytest.raises(UserError, match=r"could not download data set 'chinchilla'.*SCALING_DATA_DIR"):
        published.fetch("chinchilla")
    assert not list(tmp_path.rglob("*.csv"))  # no partial file left behind


def test_corrupted_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_DATA_DIR", str(tmp_path))
    f = tmp_path / "chinchilla" / "svg_extracted_data.csv"
    f.parent.mkdir()
    f.write_text("x,y\n1,2\n")
    with pytest.raises(UserError, match="not the published one"):
        published.fetch("chinchilla")


def test_download_verifies_checksum(tmp_path, monkeypatch):
    import io

    monkeypatch.setenv("SCALING_DATA_DIR", str(tmp_path))

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(published.urllib.request, "urlopen", lambda *a, **k: Resp(b"tampered"))
    with pytest.raises(UserError, match="sha256"):
        published.fetch("chinchilla")
    assert not (tmp_path / "chinchilla" / "svg_extracted_data.csv").exists()


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown data set"):
        published.fetch("nope")
