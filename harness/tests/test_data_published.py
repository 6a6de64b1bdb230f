"""Published data: declared by the replications, checksum-verified cache, clear errors offline or on a corrupted
file."""

import hashlib
import io
import urllib.error
from dataclasses import replace

import pytest

from harness import replication
from harness.data import published
from harness.data.published import PublishedDataset
from harness.errors import UserError
from replications.chinchilla.data import CHINCHILLA

CONTENT = b"x,y\n1,2\n"
# a data set of no paper, so that the cache and download machinery is tested apart from any replication
TOY = PublishedDataset(
    name="toy",
    filename="toy.csv",
    url="https://example.invalid/toy.csv",
    sha256=hashlib.sha256(CONTENT).hexdigest(),
    citation="none",
    licence="none",
    description="two numbers",
)


class Resp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_DATA_DIR", str(tmp_path))
    return tmp_path


def test_load_chinchilla_drops_five_highest(chinchilla_data):
    d = chinchilla_data
    assert len(d.loss) == 240 and d.n_dropped == 5
    assert d.loss.max() < 3.447  # the five dropped rows are the ones with loss >= 3.447
    assert (abs(d.D * 6 * d.N / d.C - 1) < 1e-12).all()
    assert d.sha256 == CHINCHILLA.sha256


def test_the_registry_finds_chinchillas_data_through_its_replication():
    assert replication.get("chinchilla").datasets == (CHINCHILLA,)
    assert replication.registered_datasets()["chinchilla"] is CHINCHILLA
    assert replication.find_dataset("chinchilla") is CHINCHILLA


def test_fetch_by_name_is_fetch_of_the_declared_data_set(chinchilla_data):
    assert published.fetch(replication.find_dataset("chinchilla")) == published.fetch(CHINCHILLA) == CHINCHILLA.path


def test_two_data_sets_under_one_name_are_refused(monkeypatch):
    rep = replication.get("chinchilla")
    other = replace(rep, name="other", datasets=(replace(CHINCHILLA, sha256="0" * 64),))
    monkeypatch.setattr(replication, "available", lambda: ["chinchilla", "other"])
    monkeypatch.setattr(replication, "get", lambda name: rep if name == "chinchilla" else other)
    with pytest.raises(UserError, match="'chinchilla' and 'other' declare different data sets named 'chinchilla'"):
        replication.registered_datasets()


def test_two_data_sets_in_one_cache_file_are_refused(monkeypatch):
    rep = replication.get("chinchilla")
    clash = replace(CHINCHILLA, name="copy", folder="chinchilla", sha256="0" * 64)  # a new name, the same file
    other = replace(rep, name="other", datasets=(clash,))
    monkeypatch.setattr(replication, "available", lambda: ["chinchilla", "other"])
    monkeypatch.setattr(replication, "get", lambda name: rep if name == "chinchilla" else other)
    with pytest.raises(UserError, match="'chinchilla' and 'copy' would share the cache file chinchilla/"):
        replication.registered_datasets()


def test_download_fills_the_cache_once(empty_cache, monkeypatch):
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        return Resp(CONTENT)

    monkeypatch.setattr(published.urllib.request, "urlopen", urlopen)
    path = published.fetch(TOY)
    assert path == empty_cache / "toy" / "toy.csv" and path.read_bytes() == CONTENT
    assert published.fetch(TOY, download=False) == path  # now cached: no second download
    assert calls == [TOY.url]


def test_not_cached_without_download(empty_cache):
    with pytest.raises(UserError, match=r"data set 'toy' is not in the cache .* downloading is off"):
        published.fetch(TOY, download=False)


def test_offline_gives_clear_error(empty_cache, monkeypatch):
    def no_network(*a, **k):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(published.urllib.request, "urlopen", no_network)
    with pytest.raises(UserError, match=r"could not download data set 'toy'.*SCALING_DATA_DIR"):
        published.fetch(TOY)
    assert not list(empty_cache.rglob("*.csv*"))  # no partial file left behind


def test_corrupted_cache_is_refused(empty_cache):
    f = empty_cache / "toy" / "toy.csv"
    f.parent.mkdir()
    f.write_text("x,y\n1,3\n")
    with pytest.raises(UserError, match="not the published one"):
        published.fetch(TOY)


def test_download_verifies_checksum(empty_cache, monkeypatch):
    monkeypatch.setattr(published.urllib.request, "urlopen", lambda *a, **k: Resp(b"tampered"))
    with pytest.raises(UserError, match="sha256"):
        published.fetch(TOY)
    assert not (empty_cache / "toy" / "toy.csv").exists()


def test_unknown_dataset():
    with pytest.raises(UserError, match=r"unknown data set 'nope'; known: .*chinchilla"):
        replication.find_dataset("nope")
