"""Pinned corpus sources: released PyPI source distributions, and what is read out of each.

A :class:`CorpusSource` names one immutable archive (URL + sha256) and one rule for the documents in it:
the archive members matching ``members`` (and not ``exclude``), read either as whole text files
(``reader="text"``) or, for JSON API descriptions, as the natural-language strings under some keys
(``reader="json-docs"``). Each rule says whether its documents are natural-language ``prose`` or ``code``,
which is how a corpus reports its composition. A project may appear twice (its docs as prose, its source
as code) with disjoint member rules; the archive is downloaded once.

Members are read in sorted order, decoded as UTF-8 (invalid bytes replaced), CRLF normalised and NUL
stripped, so a source's documents are a pure function of its archive.
"""

from __future__ import annotations

import gzip
import html
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

PYPI = "https://files.pythonhosted.org/packages"
KINDS = ("prose", "code")
READERS = ("text", "json-docs", "py-docstrings")


@dataclass(frozen=True)
class CorpusSource:
    project: str
    version: str
    url: str
    sha256: str
    members: str  # regex on the archive member path; matching files are the documents
    licence: str
    kind: str = "prose"  # "prose" (natural language) | "code"
    # "text": a file is a document; "json-docs": the strings under ``keys`` of a JSON file; "py-docstrings":
    # the triple-quoted strings of a Python file. The last two keep each paragraph once per source.
    reader: str = "text"
    keys: tuple[str, ...] = ()
    exclude: str | None = None  # regex of member paths to leave out (tests, generated files, vendored code)
    max_bytes: int | None = None  # larger members are left out (generated tables, data files in code trees)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserError(f"{self.project}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.reader not in READERS:
            raise UserError(f"{self.project}: reader must be one of {READERS}, got {self.reader!r}")
        if self.reader == "json-docs" and not self.keys:
            raise UserError(f"{self.project}: the json-docs reader needs the keys whose strings it reads")

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def part(self) -> str:
        """A name for this rule's documents, unique within a corpus: project, version, kind (and reader)."""
        reader = "" if self.reader == "text" else f"-{self.reader}"
        return f"{self.project}-{self.version}-{self.kind}{reader}"

    def describe(self) -> dict:
        return {
            "project": self.project,
            "version": self.version,
            "url": self.url,
            "sha256": self.sha256,
            "licence": self.licence,
            "kind": self.kind,
            "members": self.members,
        }


def download(src: CorpusSource, dest: Path) -> Path:
    """The source's archive in ``dest``, downloaded once and checked against its pinned sha256."""
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


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\0", "")


_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"[ \t]+")


def _json_strings(obj, keys: tuple[str, ...], out: list[str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in keys and isinstance(v, str):
                out.append(v)
            else:
                _json_strings(v, keys, out)
    elif isinstance(obj, list):
        for v in obj:
            _json_strings(v, keys, out)


def _new_paragraphs(strings: list[str], seen: set[str], markup: bool) -> str:
    """The paragraphs of ``strings`` not in ``seen`` (which they join), markup removed if ``markup``.

    Paragraphs shorter than 40 characters are labels ("The ID."), not prose, and are left out.
    """
    out = []
    for s in strings:
        s = _clean(s)
        if markup:
            s = html.unescape(_TAG.sub(" ", s))
        for para in s.split("\n\n"):
            para = "\n".join(_SPACE.sub(" ", line).strip() for line in para.strip().splitlines()).strip()
            if len(para) >= 40 and para not in seen:
                seen.add(para)
                out.append(para)
    return "\n\n".join(out)


def json_docs(raw: bytes, keys: tuple[str, ...], seen: set[str]) -> str:
    """The prose of one JSON API description: its strings under ``keys``, markup removed.

    ``seen`` carries the paragraphs already taken from earlier files of the same source (API versions
    repeat most of their documentation), so a paragraph enters the corpus once per source.
    """
    try:
        obj = json.loads(raw)
    except ValueError:
        return ""
    found: list[str] = []
    _json_strings(obj, keys, found)
    return _new_paragraphs(found, seen, markup=True)


_DOCSTRING = re.compile(r'"""(.*?)"""', re.S)


def py_docstrings(source: str, seen: set[str]) -> str:
    """The documentation of one Python file: its triple-quoted strings, each paragraph once per source."""
    return _new_paragraphs(_DOCSTRING.findall(source), seen, markup=False)


def documents(src: CorpusSource, archive: Path) -> Iterator[tuple[str, str]]:
    """``(doc_id, text)`` for every document of ``src`` in ``archive``, in sorted member order."""
    pat, skip = re.compile(src.members), re.compile(src.exclude) if src.exclude else None

    def wanted(m: tarfile.TarInfo) -> bool:
        small = src.max_bytes is None or m.size <= src.max_bytes
        return m.isfile() and small and bool(pat.match(m.name)) and not (skip and skip.match(m.name))

    # One sequential pass (seeking back in a gzip stream decompresses it again from the start), then the
    # members in sorted order, so the documents do not depend on how the archive was packed.
    with tarfile.open(archive, "r:gz") as tar:
        found = {m.name: tar.extractfile(m).read() for m in tar if wanted(m)}
    seen: set[str] = set()
    for name in sorted(found):
        raw = found.pop(name)
        path = name.split("/", 1)[1]
        if src.reader == "json-docs":
            if name.endswith(".gz"):
                raw = gzip.decompress(raw)
            text = json_docs(raw, src.keys, seen)
        elif src.reader == "py-docstrings":
            text = py_docstrings(raw.decode("utf-8", errors="replace"), seen)
        else:
            text = _clean(raw.decode("utf-8", errors="replace"))
        if text.strip():
            yield f"{src.project}-{src.version}/{path}", text
