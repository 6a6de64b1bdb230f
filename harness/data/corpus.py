"""The embedded default training corpus, and resolving a run's ``data`` setting to token streams.

The default corpus is the reStructuredText / plain-text documentation shipped inside source distributions
of large Python projects on PyPI. Released files on PyPI are immutable, so each source is pinned by URL and
sha256 and the whole build is reproducible: members are read in sorted order from the archives in the order
listed below, decoded as UTF-8 (invalid bytes replaced), CRLF normalised, and written one JSON document per
line to ``corpus.jsonl``, whose sha256 is pinned too (``TEXT_SHA256``) and checked after every build.

``scaling corpus build`` runs the build (about 63 MB of downloads, once); it also runs on first use of
``data = "default"``. The tokenised default (BPE, vocab 4096) is about 12 MB of uint16 tokens.

Licences of the documentation (all permit redistribution with notice; see each project's LICENSE):
Django BSD-3-Clause, SQLAlchemy MIT, NumPy BSD-3-Clause, Sphinx BSD-2-Clause, SymPy BSD-3-Clause,
Twisted MIT, Celery BSD-3-Clause, Docutils (documentation in the public domain / BSD-2-Clause).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..provenance import sha256_file
from .published import cache_dir
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

_PY = "https://files.pythonhosted.org/packages"


@dataclass(frozen=True)
class CorpusSource:
    project: str
    version: str
    url: str
    sha256: str
    members: str  # regex on the archive member path; matching files are the documents
    licence: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


SOURCES: tuple[CorpusSource, ...] = (
    CorpusSource(
        "Django",
        "5.1.4",
        f"{_PY}/d3/e8/536555596dbb79f6e77418aeb40bdc1758c26725aba31919ba449e6d5e6a/Django-5.1.4.tar.gz",
        "de450c09e91879fa5a307f696e57c851955c910a438a35e6b4c895e86bedc82a",
        r"^[^/]+/docs/.+\.txt$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "SQLAlchemy",
        "2.0.36",
        f"{_PY}/50/65/9cbc9c4c3287bed2499e05033e207473504dc4df999ce49385fb1f8b058a/sqlalchemy-2.0.36.tar.gz",
        "7f2767680b6d2398aea7082e45a774b2b0767b5c8d8ffb9c8b683088ea9b29c5",
        r"^[^/]+/doc/build/.+\.rst$",
        "MIT",
    ),
    CorpusSource(
        "numpy",
        "2.1.3",
        f"{_PY}/25/ca/1166b75c21abd1da445b97bf1fa2f14f423c6cfb4fc7c4ef31dccf9f6a94/numpy-2.1.3.tar.gz",
        "aa08e04e08aaf974d4458def539dece0d28146d866a39da5639596f4921fd761",
        r"^[^/]+/doc/.+\.rst$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "Sphinx",
        "8.1.3",
        f"{_PY}/6f/6d/be0b61178fe2cdcb67e2a92fc9ebb488e3c51c4f74a36a7824c0adf23425/sphinx-8.1.3.tar.gz",
        "43c1911eecb0d3e161ad78611bc905d1ad0e523e4ddc202a58a821773dc4c927",
        r"^[^/]+/doc/.+\.rst$",
        "BSD-2-Clause",
    ),
    CorpusSource(
        "SymPy",
        "1.13.3",
        f"{_PY}/11/8a/5a7fd6284fa8caac23a26c9ddf9c30485a48169344b4bd3b0f02fef1890f/sympy-1.13.3.tar.gz",
        "b27fd2c6530e0ab39e275fc9b683895367e51d5da91baa8d3d64db2565fec4d9",
        r"^[^/]+/doc/src/.+\.(rst|md)$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "Twisted",
        "24.11.0",
        f"{_PY}/77/1c/e07af0df31229250ab58a943077e4adbd5e227d9f2ac826920416b3e5fa2/twisted-24.11.0.tar.gz",
        "695d0556d5ec579dcc464d2856b634880ed1319f45b10d19043f2b57eb0115b5",
        r"^[^/]+/(docs/.+\.rst|NEWS\.rst)$",
        "MIT",
    ),
    CorpusSource(
        "Celery",
        "5.4.0",
        f"{_PY}/8a/9c/cf0bce2cc1c8971bf56629d8f180e4ca35612c7e79e6e432e785261a8be4/celery-5.4.0.tar.gz",
        "504a19140e8d3029d5acad88330c541d4c3f64c789d85f94756762d8bca7e706",
        r"^[^/]+/docs/.+\.rst$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "docutils",
        "0.21.2",
        f"{_PY}/ae/ed/aefcc8cd0ba62a0560c3c18c33925362d46c6075480bfa4df87b28e169a9/docutils-0.21.2.tar.gz",
        "3a6b18732edf182daa3cd12775bbb338cf5691468f91eeeb109deff6ebfa986f",
        r"^[^/]+/docs/.+\.(txt|rst)$",
        "public domain / BSD-2-Clause",
    ),
)

# sha256 of corpus.jsonl as built from SOURCES; a build that gives anything else is rejected.
TEXT_SHA256 = "16687a55657a32081c336014f42a1de151f7caf4fb0051d20121b2124af03851"
CORPUS_NAME = "pydocs-v1"


def corpus_dir() -> Path:
    return cache_dir() / "corpus" / CORPUS_NAME


def _download(src: CorpusSource, dest: Path) -> Path:
    path = dest / src.filename
    if path.exists() and sha256_file(path) == src.sha256:
        return path
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{src.filename}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(src.url, timeout=120) as resp:
            shutil.copyfileobj(resp, out)
        got = sha256_file(tmp)
        if got != src.sha256:
            raise UserError(f"{src.url}: sha256 {got} does not match the pinned {src.sha256}")
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"could not download {src.url}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _documents(src: CorpusSource, archive: Path) -> Iterator[tuple[str, str]]:
    pat = re.compile(src.members)
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and pat.match(m.name)), key=lambda m: m.name)
        for m in members:
            text = tar.extractfile(m).read().decode("utf-8", errors="replace").replace("\r\n", "\n")
            text = text.replace("\0", "")
            if text.strip():
                yield f"{src.project}-{src.version}/{m.name.split('/', 1)[1]}", text


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


def prepared_default(tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB, log=print) -> TokenData:
    """The default corpus tokenised (built and prepared on first use)."""
    name = "byte" if tokenizer == "byte" else f"bpe{vocab_size}"
    out = corpus_dir() / name
    if (out / "meta.json").exists():
        return TokenData.open(out)
    log(f"preparing the default corpus ({name}) in {out} ...")
    manifest_path = corpus_dir() / "manifest.json"
    docs = corpus_documents()
    manifest = json.loads(manifest_path.read_text())
    source = {"corpus": CORPUS_NAME, "text_sha256": manifest["text_sha256"]}
    return prepare_documents(docs, out, tokenizer=tokenizer, vocab_size=vocab_size, source=source)


def open_data(spec: str, tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB, log=print) -> TokenData:
    """Resolve a run's data setting.

    * ``"default"``: the embedded corpus (built on first use), tokenised with ``tokenizer``;
    * a prepared data folder (has ``meta.json``);
    * a nanoGPT folder (``train.bin`` + ``val.bin``) or a ``.bin`` file: uint16 tokens, vocab ``vocab_size``;
    * a folder of text files: tokenised into the cache on first use (keyed by the files' content);
    * a dataset written by ``datasets.save_to_disk`` (folder with ``state.json`` / ``dataset_info.json``, or
      ``dataset_dict.json``): its ``text`` column, one document per row, prepared like a text folder; write
      ``PATH#COLUMN`` to read another column. Needs the optional ``datasets`` package.
    """
    if spec == "default":
        return prepared_default(tokenizer, vocab_size, log=log)
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
