"""Large corpora: built from pinned sources in resumable steps and tokenised into shards.

A :class:`ShardedCorpus` is a list of :class:`~harness.data.sources.CorpusSource` rules. Building it goes
through three steps, each of which survives an interruption and is skipped once done:

1. **text**: every rule's documents go to ``parts/<project>-<version>-<kind>.jsonl``, one JSON document a
   line, written to a temporary file and renamed when complete; the part's sha256 is checked against the
   pinned one (``ShardedCorpus.parts``, which also records each part's size, so the composition is known
   before anything is downloaded), so a build that does not reproduce is an error.
2. **tokenizer**: BPE is trained on a fixed sample of the training documents (``sha256(id)`` decides),
   so memory stays bounded whatever the corpus size.
3. **tokens**: documents are encoded part by part and appended to ``val.bin`` or to one of
   ``n_shards`` training shards, chosen by a hash of the document id, so every shard is a random sample of
   the whole corpus and a run that needs 30 M tokens can read just the first shards. After each part the
   shard lengths are recorded; a resumed build truncates the shards to them and carries on.

Memory stays in the tens of MB per part; nothing holds the whole corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..provenance import sha256_file, write_json_atomic
from .published import cache_dir
from .sources import CorpusSource, documents, download
from .stream import DTYPE, FORMAT_SHARDED, TokenData, is_val_document
from .tokenizer import DEFAULT_BPE_VOCAB, BPETokenizer, ByteTokenizer

Log = Callable[[str], None]
ENCODE_BATCH = 256  # documents per tokenizer call


@dataclass(frozen=True)
class ShardedCorpus:
    name: str
    description: str
    sources: tuple[CorpusSource, ...]
    # pinned description of each part: {"sha256": of its jsonl, "documents": ..., "text_bytes": ...}
    parts: dict[str, dict] = field(default_factory=dict)
    val_fraction: float = 0.03
    n_shards: int = 16
    tokenizer_sample: float = 0.12  # fraction of the training documents BPE is trained on

    def __post_init__(self):
        names = [s.part for s in self.sources]
        if len(set(names)) != len(names):
            raise UserError(f"{self.name}: two sources share a part name ({names})")

    @property
    def root(self) -> Path:
        return cache_dir() / "corpus" / self.name

    def tokens_dir(self, tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB) -> Path:
        return self.root / ("byte" if tokenizer == "byte" else f"bpe{vocab_size}")

    def is_built(self, tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB) -> bool:
        return (self.tokens_dir(tokenizer, vocab_size) / "meta.json").exists()


def _shard_of(doc_id: str, n_shards: int) -> int:
    return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[8:16], "big") % n_shards


def _in_sample(doc_id: str, fraction: float) -> bool:
    return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[16:24], "big") / 2**64 < fraction


def _part_docs(path: Path) -> Iterator[tuple[str, str]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            yield d["id"], d["text"]


def build_text(corpus: ShardedCorpus, log: Log = print) -> list[dict]:
    """Step 1: every source's documents as a checked jsonl part. Returns the parts' descriptions."""
    parts_dir = corpus.root / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    infos = []
    for i, src in enumerate(corpus.sources, 1):
        path, info_path = parts_dir / f"{src.part}.jsonl", parts_dir / f"{src.part}.json"
        if info_path.exists() and path.exists():
            info = json.loads(info_path.read_text())
            if info.get("sha256") == sha256_file(path):
                infos.append(info)
                continue
        log(f"  [{i}/{len(corpus.sources)}] {src.part}: reading {src.filename}")
        archive = download(src, corpus.root / "sources")
        tmp = parts_dir / f".{src.part}.jsonl.tmp"
        h, n_docs, n_bytes = hashlib.sha256(), 0, 0
        with open(tmp, "w", encoding="utf-8") as out:
            for doc_id, text in documents(src, archive):
                line = json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n"
                out.write(line)
                h.update(line.encode("utf-8"))
                n_docs += 1
                n_bytes += len(text.encode("utf-8"))
        digest = h.hexdigest()
        pinned = corpus.parts.get(src.part, {}).get("sha256")
        if pinned is not None and digest != pinned:
            tmp.unlink()
            raise UserError(
                f"{corpus.name}: part {src.part} has sha256 {digest}, expected {pinned}; the build does not "
                "reproduce here"
            )
        if n_docs == 0:
            tmp.unlink()
            raise UserError(f"{corpus.name}: source {src.part} gave no documents (members {src.members!r})")
        os.replace(tmp, path)
        info = {**src.describe(), "part": src.part, "sha256": digest, "documents": n_docs, "text_bytes": n_bytes}
        write_json_atomic(info_path, info)
        infos.append(info)
    return infos


def pinned_infos(corpus: ShardedCorpus) -> list[dict] | None:
    """The parts' descriptions as pinned in the corpus definition (None if any part is not pinned)."""
    if any(s.part not in corpus.parts for s in corpus.sources):
        return None
    return [{**s.describe(), "part": s.part, **corpus.parts[s.part]} for s in corpus.sources]


def composition(infos: list[dict]) -> dict:
    """Text bytes by kind (prose / code) and by source, from the parts' descriptions."""
    by_kind: Counter = Counter()
    for p in infos:
        by_kind[p["kind"]] += p["text_bytes"]
    total = sum(by_kind.values())
    return {
        "text_bytes": total,
        "by_kind": dict(by_kind),
        "prose_fraction": by_kind["prose"] / total if total else 0.0,
        "by_source": [
            {k: p[k] for k in ("part", "project", "version", "kind", "licence", "documents", "text_bytes")}
            for p in infos
        ],
    }


def _train_tokenizer(corpus: ShardedCorpus, infos: list[dict], vocab_size: int, log: Log) -> BPETokenizer:
    def sample() -> Iterator[str]:
        for p in infos:
            for doc_id, text in _part_docs(corpus.root / "parts" / f"{p['part']}.jsonl"):
                if not is_val_document(doc_id, corpus.val_fraction) and _in_sample(doc_id, corpus.tokenizer_sample):
                    yield text

    log(f"  training BPE (vocab {vocab_size}) on {corpus.tokenizer_sample:.0%} of the training documents")
    return BPETokenizer.train(sample(), vocab_size=vocab_size)


def _stream_files(corpus: ShardedCorpus) -> list[str]:
    return [f"train-{k:03d}.bin" for k in range(corpus.n_shards)] + ["val.bin"]


def build_tokens(
    corpus: ShardedCorpus, tokenizer: str = "bpe", vocab_size: int = DEFAULT_BPE_VOCAB, log: Log = print
) -> TokenData:
    """Steps 1-3: the corpus built, tokenised into shards, and opened (all shards)."""
    out = corpus.tokens_dir(tokenizer, vocab_size)
    if (out / "meta.json").exists():
        return TokenData.open(out)
    infos = build_text(corpus, log)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer == "byte":
        tok = ByteTokenizer()
    elif (out / BPETokenizer.FILENAME).exists():
        tok = BPETokenizer.load(out, vocab_size)
    else:
        tok = _train_tokenizer(corpus, infos, vocab_size, log)
        tok.save(out)

    files = _stream_files(corpus)
    progress_path = out / "progress.json"
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
    if progress.get("tokenizer_hash") not in (None, tok.hash):
        progress = {}
    done: list[str] = progress.get("done", [])
    sizes: dict[str, int] = progress.get("sizes", {f: 0 for f in files})
    docs: dict[str, int] = progress.get("documents", {f: 0 for f in files})
    handles = {}
    for f in files:  # a resumed build drops whatever an interrupted part had appended
        fh = open(out / f, "r+b" if (out / f).exists() else "w+b")
        fh.truncate(sizes[f] * np.dtype(DTYPE).itemsize)
        fh.seek(0, os.SEEK_END)
        handles[f] = fh
    eot = np.array([tok.eot_id], dtype=DTYPE).tobytes()
    try:
        for i, p in enumerate(infos, 1):
            if p["part"] in done:
                continue
            log(f"  [{i}/{len(infos)}] tokenising {p['part']} ({p['text_bytes'] / 1e6:.1f} MB)")
            batch: list[tuple[str, str]] = []
            for item in _part_docs(corpus.root / "parts" / f"{p['part']}.jsonl"):
                batch.append(item)
                if len(batch) == ENCODE_BATCH:
                    _append(corpus, tok, batch, handles, sizes, docs, eot)
                    batch = []
            _append(corpus, tok, batch, handles, sizes, docs, eot)
            for fh in handles.values():
                fh.flush()
                os.fsync(fh.fileno())
            done.append(p["part"])
            write_json_atomic(
                progress_path, {"tokenizer_hash": tok.hash, "done": done, "sizes": sizes, "documents": docs}
            )
    finally:
        for fh in handles.values():
            fh.close()

    def entry(f: str) -> dict:
        return {"file": f, "tokens": sizes[f], "documents": docs[f], "sha256": sha256_file(out / f)}

    shards = [entry(f) for f in files[:-1]]
    meta = {
        "format": FORMAT_SHARDED,
        "dtype": "uint16",
        "tokenizer": tok.describe(),
        "source": {"corpus": corpus.name, "parts": {p["part"]: p["sha256"] for p in infos}},
        "split": {
            "rule": "sha256(document id) < val_fraction; training shard = sha256(id)[8:16] mod n_shards",
            "val_fraction": corpus.val_fraction,
            "n_shards": corpus.n_shards,
        },
        "composition": composition(infos),
        "train": {"shards": shards, "tokens": sum(s["tokens"] for s in shards)},
        "val": entry("val.bin"),
    }
    write_json_atomic(out / "meta.json", meta)
    progress_path.unlink(missing_ok=True)
    return TokenData.open(out)


def _append(corpus, tok, batch, handles, sizes, docs, eot) -> None:
    if not batch:
        return
    texts = [t for _, t in batch]
    encoded = tok.encode_batch(texts) if hasattr(tok, "encode_batch") else [tok.encode(t) for t in texts]
    for (doc_id, _), ids in zip(batch, encoded, strict=True):
        if is_val_document(doc_id, corpus.val_fraction):
            f = "val.bin"
        else:
            f = f"train-{_shard_of(doc_id, corpus.n_shards):03d}.bin"
        handles[f].write(np.asarray(ids, dtype=DTYPE).tobytes() + eot)
        sizes[f] += len(ids) + 1
        docs[f] += 1
