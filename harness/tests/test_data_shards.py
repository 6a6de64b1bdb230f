"""Large sharded corpora (offline): readers, the resumable build, shard prefixes and their fingerprints."""

import gzip
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from harness.data import shards as shards_mod
from harness.data.corpus import open_data, sharded_corpus_spec
from harness.data.pystack import PYSTACK
from harness.data.shards import ShardedCorpus, build_tokens, composition, pinned_infos
from harness.data.sources import CorpusSource, json_docs, py_docstrings
from harness.data.stream import TokenData
from harness.errors import UserError

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()


def _text(i: int, n: int = 60) -> str:
    return " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(n)) + f" document {i}.\n"


def _archive(tmp_path, n_docs=40):
    """A fake sdist: rst docs, Python code, a gzipped JSON API description, a file too large to keep."""
    files = {f"proj-1.0/docs/d{i:02d}.rst": _text(i) for i in range(n_docs)}
    code = 'def f{i}():\n    """{doc}"""\n    return {i}\n'
    files |= {f"proj-1.0/src/m{i:02d}.py": code.format(i=i, doc=_text(i, 12)) for i in range(n_docs)}
    api = {"operations": {"Get": {"documentation": "<p>Gets the <b>thing</b> you asked for, by its name.</p>"}}}
    files["proj-1.0/data/api/service-2.json.gz"] = gzip.compress(json.dumps(api).encode())
    files["proj-1.0/src/generated_table.py"] = "x = 1\n" * 10_000
    path = tmp_path / "proj-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, body in sorted(files.items(), reverse=True):  # packed out of order on purpose
            raw = body if isinstance(body, bytes) else body.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _corpus(tmp_path, monkeypatch, **kw) -> ShardedCorpus:
    archive, sha = _archive(tmp_path)
    monkeypatch.setattr(shards_mod, "download", lambda src, dest: archive)
    url = f"https://example.invalid/{archive.name}"
    sources = (
        CorpusSource("proj", "1.0", url, sha, r"^[^/]+/docs/.+\.rst$", "MIT"),
        CorpusSource(
            "proj", "1.0", url, sha, r"^[^/]+/data/.+\.json\.gz$", "MIT", reader="json-docs", keys=("documentation",)
        ),
        CorpusSource("proj", "1.0", url, sha, r"^[^/]+/src/.+\.py$", "MIT", kind="code", max_bytes=20_000),
    )
    defaults = dict(name="toy-v1", description="toy", sources=sources, val_fraction=0.2, n_shards=3)
    return ShardedCorpus(**(defaults | kw))


def test_json_docs_strip_markup_and_keep_each_paragraph_once():
    doc = "<p>Returns the list of buckets &amp; their owners.</p>"
    raw = json.dumps({"a": {"documentation": doc}, "b": [{"documentation": "Short."}]})
    seen: set[str] = set()
    assert json_docs(raw.encode(), ("documentation",), seen) == "Returns the list of buckets & their owners."
    assert json_docs(raw.encode(), ("documentation",), seen) == ""  # a second API version adds nothing new
    assert json_docs(b"not json", ("documentation",), set()) == ""


def test_py_docstrings_reads_triple_quoted_strings_once_per_source():
    src = 'def f():\n    """Compute the thing that the caller asked for, carefully.\n\n    Short."""\n'
    seen: set[str] = set()
    assert py_docstrings(src, seen) == "Compute the thing that the caller asked for, carefully."
    assert py_docstrings(src, seen) == ""


def test_build_composition_shards_and_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "cache"))
    corpus = _corpus(tmp_path, monkeypatch)
    data = build_tokens(corpus, tokenizer="byte", log=lambda s: None)
    meta = data.meta
    comp = meta["composition"]
    assert set(comp["by_kind"]) == {"prose", "code"}
    parts = {s["part"]: s for s in comp["by_source"]}
    assert parts["proj-1.0-code"]["documents"] == 40  # the 60 kB generated file is left out (max_bytes)
    assert parts["proj-1.0-prose"]["documents"] == 40
    # every document lands in exactly one of val and the shards
    docs = sum(s["documents"] for s in meta["train"]["shards"]) + meta["val"]["documents"]
    assert docs == sum(s["documents"] for s in comp["by_source"])
    assert len(meta["train"]["shards"]) == 3 and all(s["tokens"] > 0 for s in meta["train"]["shards"])
    assert data.train.size == meta["train"]["tokens"]
    # a later open is the same data
    again = open_data(str(corpus.tokens_dir("byte")), tokenizer="byte")
    assert again.fingerprint() == data.fingerprint()


def test_a_token_limit_reads_only_the_leading_shards(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "cache"))
    corpus = _corpus(tmp_path, monkeypatch)
    full = build_tokens(corpus, tokenizer="byte", log=lambda s: None)
    first = full.meta["train"]["shards"][0]["tokens"]
    one = TokenData.open(corpus.tokens_dir("byte"), train_tokens=first)
    two = TokenData.open(corpus.tokens_dir("byte"), train_tokens=first + 1)
    assert one.train.size == first and one.meta["train"]["shards_used"] == 1
    assert two.meta["train"]["shards_used"] == 2
    assert np.array_equal(two.train[:first], one.train)
    fps = {d.fingerprint()["train_shards_sha256"] for d in (one, two, full)}
    assert len(fps) == 3  # a different prefix is different data, hence a different run id
    assert one.fingerprint()["val_sha256"] == full.fingerprint()["val_sha256"]
    with pytest.raises(UserError, match="training tokens asked for"):
        TokenData.open(corpus.tokens_dir("byte"), train_tokens=full.train.size + 1)


def test_an_interrupted_build_resumes_to_the_same_streams(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "clean"))
    clean = build_tokens(_corpus(tmp_path, monkeypatch), tokenizer="bpe", vocab_size=300, log=lambda s: None)

    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "broken"))
    corpus = _corpus(tmp_path, monkeypatch)
    real_append, calls = shards_mod._append, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:  # the second part's tokens: the first part is done and recorded
            real_append(*args)
            raise KeyboardInterrupt
        real_append(*args)

    monkeypatch.setattr(shards_mod, "_append", failing)
    with pytest.raises(KeyboardInterrupt):
        build_tokens(corpus, tokenizer="bpe", vocab_size=300, log=lambda s: None)
    progress = json.loads((corpus.tokens_dir("bpe", 300) / "progress.json").read_text())
    assert progress["done"] == ["proj-1.0-prose"]
    monkeypatch.setattr(shards_mod, "_append", real_append)
    resumed = build_tokens(corpus, tokenizer="bpe", vocab_size=300, log=lambda s: None)
    assert resumed.fingerprint() == clean.fingerprint()
    assert not (corpus.tokens_dir("bpe", 300) / "progress.json").exists()


def test_a_part_that_does_not_reproduce_its_pinned_hash_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "cache"))
    corpus = _corpus(tmp_path, monkeypatch, parts={"proj-1.0-prose": {"sha256": "0" * 64}})
    with pytest.raises(UserError, match="does not reproduce"):
        build_tokens(corpus, tokenizer="byte", log=lambda s: None)


def test_corpus_spec_names_and_sizes():
    assert sharded_corpus_spec("default") is None and sharded_corpus_spec("/some/folder") is None
    assert sharded_corpus_spec("pystack-v1") == (PYSTACK, None)
    assert sharded_corpus_spec("pystack-v1:30M") == (PYSTACK, 30_000_000)
    assert sharded_corpus_spec("pystack-v1:1.5g")[1] == 1_500_000_000
    with pytest.raises(UserError, match="token count like 30M"):
        sharded_corpus_spec("pystack-v1:lots")


def test_pystack_is_pinned_and_at_least_a_third_prose():
    infos = pinned_infos(PYSTACK)
    assert infos is not None, "every part of pystack-v1 is pinned (sha256, documents, bytes)"
    comp = composition(infos)
    assert comp["prose_fraction"] >= 1 / 3
    assert comp["text_bytes"] > 300e6
    for s in PYSTACK.sources:
        assert s.url.startswith("https://files.pythonhosted.org/packages/") and len(s.sha256) == 64 and s.licence
        assert len(PYSTACK.parts[s.part]["sha256"]) == 64


def test_cli_reports_the_composition_before_a_build_and_refuses_unknown_names(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert main(["data", "info", "pystack-v1"]) == 0
    out = capsys.readouterr().out
    assert "not built: scaling data build pystack-v1" in out and "prose 132.8 MB (37%)" in out
    assert "botocore 1.44.8" in out and "Apache-2.0" in out
    assert main(["data", "list"]) == 0
    assert "pystack-v1" in capsys.readouterr().out
    assert main(["data", "info", "nope"]) == 2
    assert "known: default, pydocs-v1, pystack-v1" in capsys.readouterr().err
