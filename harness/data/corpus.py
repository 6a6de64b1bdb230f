"""The embedded default training corpus, and resolving a run's ``data`` setting to token streams.

The default corpus is the reStructuredText / plain-text documentation shipped inside source distributions
of large Python projects on PyPI. Released files on PyPI are immutable, so each source is pinned by URL and
sha256 and the whole build is reproducible: members are read in sorted order from the archives in the order
listed below, decoded as UTF-8 (invalid bytes replaced), CRLF normalised, and written one JSON document per
line to ``corpus.jsonl``, whose sha256 is pinned too (``TEXT_SHA256``) and checked after every build.

``scaling corpus build`` runs the build (about 63 MB of downloads, once); it also runs on first use of
``data = "default"``. The tokenised default (BPE, vocab 4096) is about 12 MB of uint16 tokens.

The sources and their licences are in :mod:`harness.data.pydocs`. Larger corpora built in shards
(:mod:`harness.data.shards`, e.g. ``pystack-v1``) are named by ``data = "NAME"`` or ``"NAME:30M"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..errors import UserError
from ..provenance import sha256_file
from .published import cache_dir
from .pydocs import CORPUS_NAME, SOURCES, TEXT_SHA256
from .sources import documents as _documents
from .sources import download as _download
from .stream import (
    TokenData,
    folder_fingerprint,
    is_saved_dataset,
    prepare_documents,
    read_saved_dataset,
    read_text_folder,
    saved_dataset_fingerprint,
)
from .tokenizer import DEFAULT_BPE_VOCAB


def corpus_dir() -> Path:
    return cache_dir() / "corpus" / CORPUS_NAME


def build_corpus(force: bool = False, log=print) -> Path:
    """Download the pinned sources, write ``corpus.jsonl`` and its manifest, and check the text's sha256."""
    root = corpus_dir()
    text_path, manifest_path = root / "corpus.jsonl", root / "manifest.json"
    if not force and manifest_path.exists() and text_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if sha256_file(text_path) == manifest["text_sha256"]:
            return text_path
    sources = []
    tmp = root / ".corpus.jsonl.tmp"
    root.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n_docs = n_chars = 0
    with open(tmp, "w", encoding="utf-8") as out:
        for src in SOURCES:
            log(f"  {src.project} {src.version}: {src.url}")
            archive = _download(src, root / "sources")
            k = 0
            for doc_id, text in _documents(src, archive):
                line = json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n"
                out.write(line)
                h.update(line.encode("utf-8"))
                k += 1
                n_chars += len(text)
            n_docs += k
            sources.append(
                {
                    "project": src.project,
                    "version": src.version,
                    "url": src.url,
                    "sha256": src.sha256,
                    "licence": src.licence,
                    "documents": k,
                }
            )
    digest = h.hexdigest()
    if TEXT_SHA256 is not None and digest != TEXT_SHA256:
        tmp.unlink()
        raise UserError(
            f"built corpus text has sha256 {digest}, expected {TEXT_SHA256}; the build is not reproducible here"
        )
    os.replace(tmp, text_path)
    manifest = {
        "name": CORPUS_NAME,
        "text_sha256": digest,
        "documents": n_docs,
        "characters": n_chars,
        "bytes": text_path.stat().st_size,
        "sources": sources,
    }
    from ..provenance import write_json_atomic

    write_json_atomic(manifest_path, manifest)
    return text_path


def corpus_documents() -> list[tuple[str, str]]:
    path = build_corpus()
    with open(path, encoding="utf-8") as fh:
        return [(d["id"], d["text"]) for d in map(json.loads, fh)]


def default_tokens_dir(tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB) -> Path:
    """Where the default corpus tokenised with ``tokenizer`` lives (it is prepared when it has ``meta.json``)."""
    return corpus_dir() / ("byte" if tokenizer == "byte" else f"bpe{vocab_size}")


def prepared_default(tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB, log=print) -> TokenData:
    """The default corpus tokenised (built and prepared on first use)."""
    out = default_tokens_dir(tokenizer, vocab_size)
    if (out / "meta.json").exists():
        return TokenData.open(out)
    log(f"preparing the default corpus ({out.name}) in {out} ...")
    manifest_path = corpus_dir() / "manifest.json"
    docs = corpus_documents()
    manifest = json.loads(manifest_path.read_text())
    source = {"corpus": CORPUS_NAME, "text_sha256": manifest["text_sha256"]}
    return prepare_documents(docs, out, tokenizer=tokenizer, vocab_size=vocab_size, source=source)


def sharded_corpora() -> dict:
    """The large corpora the harness can build, by name."""
    from .pystack import PYSTACK

    return {PYSTACK.name: PYSTACK}


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMG]?)$")


def sharded_corpus_spec(spec: str):
    """``(corpus, train_tokens or None)`` when ``spec`` names a large corpus (``NAME`` or ``NAME:SIZE``)."""
    name, _, size = spec.partition(":")
    corpora = sharded_corpora()
    if name not in corpora:
        return None
    if not size:
        return corpora[name], None
    m = _SIZE.match(size.upper())
    if not m:
        raise UserError(f"data {spec!r}: the size after ':' must be a token count like 30M, 500K or 1.5G")
    tokens = int(float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(2)])
    if tokens < 1:
        raise UserError(f"data {spec!r}: the token count must be positive")
    return corpora[name], tokens


def open_data(spec: str, tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB, log=print) -> TokenData:
    """Resolve a run's data setting.

    * ``"default"`` (or ``"pydocs-v1"``): the embedded corpus (built on first use), tokenised with ``tokenizer``;
    * ``"pystack-v1"``, ``"pystack-v1:30M"``: a large sharded corpus (:func:`sharded_corpora`), all of its
      training shards or the fewest that hold the given number of training tokens (suffix K, M or G);
    * a prepared data folder (has ``meta.json``);
    * a nanoGPT folder (``train.bin`` + ``val.bin``) or a ``.bin`` file: uint16 tokens, vocab ``vocab_size``;
    * a folder of text files: tokenised into the cache on first use (keyed by the files' content);
    * a dataset written by ``datasets.save_to_disk`` (folder with ``state.json`` / ``dataset_info.json``, or
      ``dataset_dict.json``): its ``text`` column, one document per row, prepared like a text folder; write
      ``PATH#COLUMN`` to read another column. Needs the optional ``datasets`` package.
    """
    if spec in ("default", CORPUS_NAME):
        return prepared_default(tokenizer, vocab_size, log=log)
    named = sharded_corpus_spec(spec)
    if named is not None:
        corpus, train_tokens = named
        from .shards import build_tokens

        if not corpus.is_built(tokenizer, vocab_size):
            log(f"building the {corpus.name} corpus in {corpus.root} (once; resumable) ...")
            build_tokens(corpus, tokenizer, vocab_size, log=log)
        return TokenData.open(corpus.tokens_dir(tokenizer, vocab_size), train_tokens=train_tokens)
    p = Path(spec).expanduser()
    column = None
    if not p.exists() and "#" in spec:
        base, _, column = spec.rpartition("#")
        p = Path(base).expanduser()
        if not is_saved_dataset(p):
            raise UserError(f"data {spec!r}: PATH#COLUMN needs PATH to be a dataset saved with datasets.save_to_disk")
        if not column:
            raise UserError(f"data {spec!r}: empty column name after '#'")
    if not p.exists():
        raise UserError(f"data {spec!r} is neither 'default' nor an existing path")
    if p.is_file():
        if p.suffix != ".bin":
            raise UserError(f"{p}: a data file must be a uint16 .bin token stream")
        return TokenData.from_bin(p, vocab_size)
    if (p / "meta.json").exists():
        return TokenData.open(p)
    if (p / "train.bin").exists():
        return TokenData.from_bin(p, vocab_size)
    name = "byte" if tokenizer == "byte" else f"bpe{vocab_size}"
    if is_saved_dataset(p):
        column = column or "text"
        key = saved_dataset_fingerprint(p, column)
        source = {"saved_dataset": str(p.resolve()), "column": column, "content_sha256": key}
        read = lambda: read_saved_dataset(p, column)  # noqa: E731
    else:
        key = folder_fingerprint(p)
        source = {"folder": str(p.resolve()), "content_sha256": key}
        read = lambda: read_text_folder(p)  # noqa: E731
    out = cache_dir() / "prepared" / key[:16] / name
    if (out / "meta.json").exists():
        return TokenData.open(out)
    log(f"tokenising {p} into {out} ...")
    return prepare_documents(read(), out, tokenizer=tokenizer, vocab_size=vocab_size, source=source)
