"""Tokenizers, prepared token streams, loaders, the sampler, and the corpus build (offline)."""

import hashlib
import io
import json
import sys
import tarfile

import numpy as np
import pytest

from harness.data import corpus as corpus_mod
from harness.data.corpus import SOURCES, open_data
from harness.data.sources import CorpusSource
from harness.data.stream import (
    SequenceSampler,
    TokenData,
    eval_windows,
    is_saved_dataset,
    prepare_documents,
    read_text_folder,
)
from harness.data.tokenizer import BPETokenizer, ByteTokenizer, load_tokenizer
from harness.errors import UserError
from harness.tests.train_helpers import write_text_folder

SAMPLE = "Scaling laws — naïve café, 東京, emoji 🚀\n\ttabs and  double  spaces.\n"


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    ids = tok.encode(SAMPLE)
    assert ids.dtype == np.uint16 and ids.max() < 256 and 0 not in ids
    assert tok.decode(ids) == SAMPLE
    assert tok.decode(tok.encode("a\0b")) == "ab"  # NUL is the end-of-document id, stripped from text


def test_bpe_round_trip_and_determinism(tmp_path):
    texts = [SAMPLE * 3] + [f"document number {i} about compute-optimal training of models." for i in range(50)]
    a = BPETokenizer.train(texts, vocab_size=300)
    b = BPETokenizer.train(texts, vocab_size=300)
    assert a.hash == b.hash and a.vocab_size == 300 and a.eot_id == 0 and a.learned_vocab <= 300
    for t in (SAMPLE, "unseen words: zebra quokka Ωmega", ""):
        assert a.decode(a.encode(t)) == t
    assert len(a.encode("document number 7")) < len("document number 7")  # merges learned
    a.save(tmp_path)
    c = BPETokenizer.load(tmp_path)
    assert c.hash == a.hash and list(c.encode(SAMPLE)) == list(a.encode(SAMPLE))
    with pytest.raises(UserError, match="vocab"):
        BPETokenizer.train(texts, vocab_size=100)


@pytest.mark.parametrize("tokenizer", ["byte", "bpe"])
def test_prepare_text_folder_document_split(tmp_path, tokenizer):
    folder = write_text_folder(tmp_path / "txt", n_docs=30)
    docs = read_text_folder(folder)
    assert [d[0] for d in docs] == sorted(d[0] for d in docs)
    data = prepare_documents(docs, tmp_path / "prep", tokenizer=tokenizer, vocab_size=320, val_fraction=0.2)
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert meta["train"]["documents"] + meta["val"]["documents"] == 30 and meta["val"]["documents"] >= 1
    for split in ("train", "val"):
        path = tmp_path / "prep" / f"{split}.bin"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == meta[split]["sha256"]
    tok = load_tokenizer(tokenizer, tmp_path / "prep", 320)
    # Each document lies wholly in one split: the val stream decodes to exactly the val documents.
    pieces = np.split(np.asarray(data.val), np.where(np.asarray(data.val) == 0)[0] + 1)
    val_texts = {tok.decode(p[:-1]) for p in pieces if len(p)}
    texts = {t for _, t in docs}
    assert val_texts <= texts and len(val_texts) == meta["val"]["documents"]
    reopened = TokenData.open(tmp_path / "prep")
    assert reopened.fingerprint() == data.fingerprint() and reopened.vocab_size == tok.vocab_size


def test_text_folder_errors(tmp_path):
    with pytest.raises(UserError, match="no text files"):
        read_text_folder(tmp_path)
    folder = write_text_folder(tmp_path / "t", n_docs=3)
    (folder / "empty.txt").write_text("  \n")
    with pytest.raises(UserError, match=r"empty\.txt is empty"):
        read_text_folder(folder)
    (folder / "empty.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(UserError, match="not UTF-8"):
        read_text_folder(folder)


def test_bin_loaders_and_errors(tmp_path):
    ids = (np.arange(5000) % 250).astype(np.uint16)
    ids.tofile(tmp_path / "all.bin")
    d = TokenData.from_bin(tmp_path / "all.bin", val_fraction=0.1)
    assert d.vocab_size == 250 and len(d.train) == 4500 and len(d.val) == 500
    nano = tmp_path / "nano"
    nano.mkdir()
    ids[:4000].tofile(nano / "train.bin")
    ids[4000:].tofile(nano / "val.bin")
    d2 = open_data(str(nano), vocab_size=256)
    assert d2.vocab_size == 256 and len(d2.train) == 4000
    with pytest.raises(UserError, match="token id 249 but the vocabulary has 100"):
        TokenData.from_bin(tmp_path / "all.bin", vocab_size=100)
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x02")
    with pytest.raises(UserError, match="whole number of uint16"):
        TokenData.from_bin(tmp_path / "odd.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        open_data(str(tmp_path / "empty.bin"))
    with pytest.raises(UserError, match="neither 'default' nor an existing path"):
        open_data(str(tmp_path / "missing"))


def test_prepared_folder_tamper_is_detected(tmp_path):
    data = prepare_documents(
        read_text_folder(write_text_folder(tmp_path / "t", 6)),
        tmp_path / "p",
        tokenizer="bpe",
        vocab_size=300,
        val_fraction=0.3,
    )
    assert data.vocab_size == 300  # the id space asked for, even if the small corpus gives fewer merges
    tj = tmp_path / "p" / "tokenizer.json"
    tj.write_text(tj.read_text().replace('"trim_offsets": true', '"trim_offsets": false', 1))
    with pytest.raises(UserError, match="does not match"):
        TokenData.open(tmp_path / "p")


def test_text_folder_is_prepared_into_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_text_folder(tmp_path / "t", 8)
    a = open_data(str(folder), tokenizer="byte", log=lambda s: None)
    b = open_data(str(folder), tokenizer="byte", log=lambda s: None)
    assert a.path == b.path and str(tmp_path / "cache") in str(a.path)


def _save_dataset(path, columns: dict):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    datasets.Dataset.from_dict(columns).save_to_disk(str(path))
    return path


def test_saved_dataset_is_prepared_like_a_text_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "cache"))
    docs = read_text_folder(write_text_folder(tmp_path / "t", 8))
    texts = [t for _, t in docs]
    ds = _save_dataset(tmp_path / "ds", {"text": texts, "label": list(range(8))})
    assert is_saved_dataset(ds) and not is_saved_dataset(tmp_path / "t")
    data = open_data(str(ds), tokenizer="byte", log=lambda s: None)
    assert str(tmp_path / "cache") in str(data.path)
    assert data.meta["source"]["column"] == "text" and data.meta["source"]["saved_dataset"] == str(ds.resolve())
    assert data.meta["train"]["documents"] + data.meta["val"]["documents"] == 8
    # One document per row: the streams hold exactly the rows' bytes plus one end-of-document id each.
    assert len(data.train) + len(data.val) == sum(len(t.encode()) + 1 for t in texts)
    tok = ByteTokenizer()
    pieces = np.split(np.asarray(data.val), np.where(np.asarray(data.val) == 0)[0] + 1)
    assert {tok.decode(p[:-1]) for p in pieces if len(p)} <= set(texts)
    again = open_data(str(ds), tokenizer="byte", log=lambda s: (_ for _ in ()).throw(AssertionError(s)))
    assert again.path == data.path and again.fingerprint() == data.fingerprint()  # cached, not re-tokenised
    # Another text column through PATH#COLUMN; a different column is a different cache entry.
    ds2 = _save_dataset(tmp_path / "ds2", {"body": texts, "id": list(range(8))})
    other = open_data(f"{ds2}#body", tokenizer="byte", log=lambda s: None)
    assert other.meta["source"]["column"] == "body" and other.fingerprint() == data.fingerprint()
    assert other.path != data.path


def test_saved_dataset_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "cache"))
    ds = _save_dataset(tmp_path / "ds", {"content": ["one text", "two texts"], "n": [1, 2]})
    with pytest.raises(UserError, match=r"no column 'text'; its columns are 'content', 'n'"):
        open_data(str(ds), tokenizer="byte", log=lambda s: None)
    with pytest.raises(UserError, match="column 'n' is not text"):
        open_data(f"{ds}#n", tokenizer="byte", log=lambda s: None)
    with pytest.raises(UserError, match="PATH#COLUMN needs PATH to be a dataset"):
        open_data(f"{write_text_folder(tmp_path / 't', 2)}#text", tokenizer="byte")
    empty = _save_dataset(tmp_path / "empty", {"text": ["fine", " ", "also fine"]})
    with pytest.raises(UserError, match=r"1 of 3 rows of column 'text' are empty \(first: row 1\)"):
        open_data(str(empty), tokenizer="byte", log=lambda s: None)
    # Without the optional package: a clear error saying what to install.
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UserError, match=r"needs the 'datasets' package \(pip install datasets\)"):
        open_data(f"{ds}#content", tokenizer="byte", log=lambda s: None)


def test_sampler_visits_every_window_once_per_epoch():
    tokens = np.arange(16 * 10 + 1, dtype=np.uint16)
    s = SequenceSampler(tokens, n_ctx=16, batch_size=4, seed=3)
    assert s.n_windows == 10
    starts = [int(x[0]) for step in range(5) for x in s.batch(step)[0]]  # 20 windows = 2 epochs
    assert sorted(starts[:10]) == sorted(starts[10:]) == list(range(0, 160, 16))
    assert starts[:10] != starts[10:]  # a fresh order each epoch
    x, y = s.batch(2)
    assert np.array_equal(x[:, 1:], y[:, :-1])
    x2, _ = SequenceSampler(tokens, 16, 4, seed=3).batch(2)
    assert np.array_equal(x, x2)  # a pure function of (seed, step)
    vx, _ = eval_windows(tokens, 16, 48)
    assert vx.shape == (3, 16) and vx[0, 0] == 0
    # "spread": the same number of windows, evenly over the stream (tokens[i] == i here), still whole windows
    sx, sy = eval_windows(tokens, 16, 48, sample="spread")
    whole = (len(tokens) - 1) // 16
    assert sx.shape == (3, 16) and sx[:, 0].tolist() == [16 * (i * whole // 3) for i in range(3)]
    assert np.array_equal(sx[:, 1:], sy[:, :-1]) and sx[-1, 0] > len(tokens) // 2
    assert np.array_equal(eval_windows(tokens, 16, 10**6, "spread")[0], eval_windows(tokens, 16, 10**6)[0])


def _tar(tmp_path, files: dict) -> tuple:
    path = tmp_path / "proj-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            raw = text.encode()
            info = tarfile.TarInfo(f"proj-1.0/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_corpus_build_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "cache"))
    archive, sha = _tar(
        tmp_path, {"docs/b.rst": "Bee doc.\r\n", "docs/a.rst": "Ay doc.", "src/x.py": "code", "docs/empty.rst": "   "}
    )
    src = CorpusSource("proj", "1.0", f"https://example.invalid/{archive.name}", sha, r"^[^/]+/docs/.+\.rst$", "MIT")
    monkeypatch.setattr(corpus_mod, "SOURCES", (src,))
    monkeypatch.setattr(corpus_mod, "TEXT_SHA256", None)
    monkeypatch.setattr(corpus_mod, "_download", lambda s, dest: archive)
    path = corpus_mod.build_corpus(log=lambda s: None)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [d["id"] for d in lines] == ["proj-1.0/docs/a.rst", "proj-1.0/docs/b.rst"]  # sorted, filtered
    assert lines[1]["text"] == "Bee doc.\n"  # CRLF normalised
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["text_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["sources"][0]["sha256"] == sha
    # A pinned hash that the build does not reproduce is an error, not a silent new corpus.
    monkeypatch.setattr(corpus_mod, "TEXT_SHA256", "0" * 64)
    with pytest.raises(UserError, match="not reproducible"):
        corpus_mod.build_corpus(force=True, log=lambda s: None)


def test_pinned_sources_are_well_formed():
    assert len(SOURCES) >= 5
    for s in SOURCES:
        assert s.url.startswith("https://files.pythonhosted.org/packages/") and s.filename.endswith(".tar.gz")
        assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0 and s.licence
    assert len(corpus_mod.TEXT_SHA256) == 64


def test_eval_sample_field_keeps_old_run_ids():
    """eval_sample = "head" (the default) is left out of a config's canonical form and record, so every run id
    made before the field existed is unchanged; "spread" is part of the identity; anything else is refused."""
    from harness.config import TrainConfig

    assert "eval_sample" not in TrainConfig().canonical() and "eval_sample" not in TrainConfig().to_dict()
    assert TrainConfig(eval_sample="spread").canonical()["eval_sample"] == "spread"
    with pytest.raises(UserError, match="eval_sample must be one of head, spread"):
        TrainConfig.from_dict({"eval_sample": "middle"})
