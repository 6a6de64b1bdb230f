"""Token streams: memmapped uint16 ``.bin`` files (nanoGPT convention) with a document-level split.

A *prepared data folder* holds ``train.bin``, ``val.bin``, ``meta.json`` (token counts, sha256 of each
stream, the tokenizer's description and hash, where the text came from) and ``tokenizer.json`` for BPE.
Documents are separated by the tokenizer's end-of-document id 0. Each document goes wholly to train or to
validation, decided by a hash of its id, so the split does not move when documents are added.

Other sources a run can point at: a folder of text files or a dataset written by ``datasets.save_to_disk``
(both prepared into the cache on first use), a nanoGPT folder with ``train.bin``/``val.bin``, or a single
``.bin`` (the last ``val_fraction`` of it is held out).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..provenance import sha256_file, write_json_atomic
from .tokenizer import DEFAULT_BPE_VOCAB, BPETokenizer, ByteTokenizer, load_tokenizer

FORMAT = "scaling-harness tokens v1"
FORMAT_SHARDED = "scaling-harness tokens v2 (sharded)"  # train split in shards; see harness.data.shards
DTYPE = np.uint16
TEXT_SUFFIXES = (".txt", ".rst", ".md", ".text")


def is_val_document(doc_id: str, val_fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return h / 2**64 < val_fraction


def prepare_documents(
    docs: Iterable[tuple[str, str]],
    out_dir: str | os.PathLike,
    *,
    tokenizer: str = "bpe",
    vocab_size: int = DEFAULT_BPE_VOCAB,
    val_fraction: float = 0.02,
    source: dict | None = None,
) -> TokenData:
    """Tokenise ``(doc_id, text)`` pairs into a prepared data folder and return it opened.

    The BPE tokenizer is trained on the training documents only. ``meta.json`` is written last, so a
    folder without it is an interrupted preparation and is redone.
    """
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}")
    docs = [(i, t) for i, t in docs]
    if not docs:
        raise UserError("no documents to prepare")
    for doc_id, text in docs:
        if not text.strip():
            raise UserError(f"document {doc_id!r} is empty")
    ids = [d[0] for d in docs]
    if len(set(ids)) != len(ids):
        raise UserError("document ids must be unique")
    is_val = [is_val_document(i, val_fraction) for i in ids]
    if len(docs) < 2:
        raise UserError(f"need at least 2 documents for a train/validation split, got {len(docs)}")
    if not any(is_val) or all(is_val):  # tiny corpora: hold out the one document whose hash is smallest
        smallest = min(range(len(ids)), key=lambda k: hashlib.sha256(ids[k].encode()).digest())
        is_val = [k == smallest for k in range(len(ids))]
    train_docs = [t for (_, t), v in zip(docs, is_val, strict=True) if not v]
    val_docs = [t for (_, t), v in zip(docs, is_val, strict=True) if v]

    if tokenizer == "byte":
        tok = ByteTokenizer()
    elif tokenizer == "bpe":
        tok = BPETokenizer.train(train_docs, vocab_size=vocab_size)
    else:
        raise UserError(f"unknown tokenizer {tokenizer!r}; use 'byte' or 'bpe'")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    meta: dict = {"format": FORMAT, "dtype": "uint16", "tokenizer": tok.describe(), "source": source or {}}
    meta["split"] = {"rule": "sha256(document id) < val_fraction", "val_fraction": val_fraction}
    for name, texts in (("train", train_docs), ("val", val_docs)):
        encoded = tok.encode_batch(texts) if hasattr(tok, "encode_batch") else [tok.encode(t) for t in texts]
        eot = np.array([tok.eot_id], dtype=DTYPE)
        stream = np.concatenate([x for e in encoded for x in (e, eot)]).astype(DTYPE)
        path = out / f"{name}.bin"
        tmp = out / f".{name}.bin.tmp"
        stream.tofile(tmp)
        os.replace(tmp, path)
        meta[name] = {
            "file": path.name,
            "tokens": int(stream.size),
            "documents": len(texts),
            "sha256": sha256_file(path),
        }
    tok.save(out)
    write_json_atomic(out / "meta.json", meta)
    return TokenData.open(out)


def read_text_folder(folder: str | os.PathLike) -> list[tuple[str, str]]:
    """Every text file under ``folder`` (suffixes .txt .rst .md .text), sorted by relative path."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    files = [p for p in files if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if not files:
        raise UserError(f"{folder} holds no text files ({', '.join(TEXT_SUFFIXES)})")
    docs = []
    for p in files:
        raw = p.read_bytes()
        if not raw.strip():
            raise UserError(f"{p} is empty")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        docs.append((p.relative_to(folder).as_posix(), text.replace("\r\n", "\n")))
    return docs


SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def is_saved_dataset(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` was written by ``datasets.Dataset.save_to_disk`` (or ``DatasetDict.save_to_disk``)."""
    p = Path(folder)
    return p.is_dir() and any((p / m).is_file() for m in SAVED_DATASET_MARKERS)


def read_saved_dataset(folder: str | os.PathLike, column: str = "text") -> list[tuple[str, str]]:
    """The ``column`` of a dataset saved with ``datasets.save_to_disk``, one document per row.

    Document ids are ``"<row>"`` (``"<split>/<row>"`` for a ``DatasetDict``, splits in sorted order); the
    harness makes its own document-level train/validation split from them, as for a text folder.
    Needs the optional ``datasets`` package.
    """
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"{folder} is a dataset saved with datasets.save_to_disk; reading it needs the 'datasets' package "
            "(pip install datasets)"
        ) from None
    folder = Path(folder)
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(f"{folder}: could not load the saved dataset ({exc})") from None
    parts = sorted(loaded.items()) if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    docs: list[tuple[str, str]] = []
    for split, ds in parts:
        where = f"{folder}" + (f" (split {split!r})" if split is not None else "")
        if column not in ds.column_names:
            raise UserError(
                f"{where} has no column {column!r}; its columns are {', '.join(map(repr, ds.column_names))} "
                f"(choose one with data = '{folder}#COLUMN')"
            )
        texts = list(ds[column])
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise UserError(
                f"{where}: column {column!r} is not text (row {bad[0]} is {type(texts[bad[0]]).__name__}); "
                f"its columns are {', '.join(map(repr, ds.column_names))}"
            )
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise UserError(
                f"{where}: {len(empty)} of {len(texts)} rows of column {column!r} are empty (first: row {empty[0]}); "
                "filter them out before saving"
            )
        prefix = "" if split is None else f"{split}/"
        docs += [(f"{prefix}{i}", t.replace("\r\n", "\n")) for i, t in enumerate(texts)]
    if not docs:
        raise UserError(f"{folder}: the saved dataset has no rows")
    return docs


def saved_dataset_fingerprint(folder: str | os.PathLike, column: str = "text") -> str:
    """Content key of a saved dataset: the sha256 of its Arrow files (by relative path) and the column."""
    folder = Path(folder)
    files = sorted(folder.rglob("*.arrow"))
    if not files:
        raise UserError(f"{folder} looks like a saved dataset but holds no .arrow files")
    h = hashlib.sha256(b"saved dataset\0" + column.encode() + b"\0")
    for f in files:
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def folder_fingerprint(folder: str | os.PathLike) -> str:
    folder = Path(folder)
    h = hashlib.sha256()
    for doc_id, text in read_text_folder(folder):
        h.update(doc_id.encode() + b"\0" + hashlib.sha256(text.encode()).digest())
    return h.hexdigest()


def _read_stream(path: Path, what: str) -> np.ndarray:
    if not path.exists():
        raise UserError(f"{what}: {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{what}: {path} is empty")
    if size % np.dtype(DTYPE).itemsize:
        raise UserError(f"{what}: {path} has {size} bytes, not a whole number of uint16 tokens (wrong dtype?)")
    return np.memmap(path, dtype=DTYPE, mode="r")


@dataclass
class TokenData:
    """Train and validation token streams plus what is known about them."""

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        for name, arr in (("train", self.train), ("val", self.val)):
            if arr.size < 2:
                raise UserError(f"{self.where}: {name} stream has {arr.size} token(s); it needs at least 2")
            top = int(arr.max())
            if top >= self.vocab_size:
                raise UserError(
                    f"{self.where}: {name} stream holds token id {top} but the vocabulary has {self.vocab_size} "
                    "ids (tokenizer and stream do not match)"
                )

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "token data"

    @classmethod
    def open(cls, directory: str | os.PathLike, train_tokens: int | None = None) -> TokenData:
        """Open a prepared data folder (``meta.json`` + ``train.bin`` + ``val.bin``), checking it.

        A sharded folder (:mod:`harness.data.shards`) opens with all its training shards, or with the
        fewest leading shards that hold ``train_tokens`` (each shard is a random sample of the documents);
        only those are read, and only they enter the fingerprint.
        """
        d = Path(directory)
        meta_path = d / "meta.json"
        if not meta_path.exists():
            raise UserError(f"{d} is not a prepared data folder (no meta.json)")
        meta = json.loads(meta_path.read_text())
        fmt = meta.get("format")
        if fmt not in (FORMAT, FORMAT_SHARDED) or meta.get("dtype") != "uint16":
            raise UserError(f"{meta_path}: unsupported format {fmt!r} / dtype {meta.get('dtype')!r}")
        if train_tokens is not None and fmt != FORMAT_SHARDED:
            raise UserError(f"{d} is not sharded; a token limit applies to sharded corpora only")

        def stream(entry: dict, what: str) -> np.ndarray:
            arr = _read_stream(d / entry["file"], f"{d} ({what})")
            if arr.size != entry["tokens"]:
                raise UserError(f"{d}/{entry['file']} holds {arr.size} tokens; meta.json says {entry['tokens']}")
            return arr

        val = stream(meta["val"], "val")
        if fmt == FORMAT_SHARDED:
            shards = meta["train"]["shards"]
            want = meta["train"]["tokens"] if train_tokens is None else train_tokens
            if want > meta["train"]["tokens"]:
                raise UserError(f"{d}: {want:,} training tokens asked for, the corpus has {meta['train']['tokens']:,}")
            used, have = [], 0
            for s in shards:
                if have >= want and used:
                    break
                used.append(s)
                have += s["tokens"]
            train = np.concatenate([stream(s, f"train shard {s['file']}") for s in used])
            meta = {**meta, "train": {**meta["train"], "shards_used": len(used), "tokens_used": have}}
        else:
            train = stream(meta["train"], "train")
        tok = meta["tokenizer"]
        if tok["kind"] == "bpe":
            loaded = load_tokenizer("bpe", d, tok["vocab_size"])
            if loaded.hash != tok["hash"] or loaded.vocab_size != tok["vocab_size"]:
                raise UserError(f"{d}/tokenizer.json does not match the tokenizer recorded in meta.json")
        return cls(train, val, int(tok["vocab_size"]), meta, d)

    @classmethod
    def from_bin(cls, path: str | os.PathLike, vocab_size: int | None = None, val_fraction: float = 0.01) -> TokenData:
        """A nanoGPT-style uint16 stream: a folder with ``train.bin`` and ``val.bin``, or one ``.bin`` file
        whose last ``val_fraction`` is held out (no document boundaries are known there).

        ``vocab_size`` defaults to the largest id + 1; give it when the model's vocabulary is larger.
        """
        p = Path(path)
        if p.is_dir():
            train, val = _read_stream(p / "train.bin", str(p)), _read_stream(p / "val.bin", str(p))
            split = {"rule": "given train.bin / val.bin"}
            files = {"train": p / "train.bin", "val": p / "val.bin"}
        else:
            full = _read_stream(p, str(p))
            cut = len(full) - max(2, int(len(full) * val_fraction))
            if cut < 2:
                raise UserError(f"{p} has only {len(full)} tokens; too few to hold out a validation part")
            train, val = full[:cut], full[cut:]
            split = {"rule": "last val_fraction of the stream", "val_fraction": val_fraction}
            files = {"train": p}
        top = max(int(train.max()), int(val.max()))
        vocab = vocab_size if vocab_size is not None else top + 1
        meta = {
            "format": "nanogpt bin",
            "tokenizer": {"kind": "unknown", "vocab_size": vocab},
            "split": split,
            "train": {"tokens": int(train.size)},
            "val": {"tokens": int(val.size)},
            "sha256": {k: sha256_file(f) for k, f in files.items()},
        }
        return cls(train, val, vocab, meta, p)

    def fingerprint(self) -> dict:
        """What identifies the token streams (goes into a run's cache key and record)."""
        m = self.meta
        if m.get("format") == FORMAT_SHARDED:
            used = m["train"]["shards"][: m["train"]["shards_used"]]
            train = hashlib.sha256("".join(s["sha256"] for s in used).encode()).hexdigest()
            return {
                "tokenizer_hash": m["tokenizer"]["hash"],
                "train_shards_sha256": train,
                "val_sha256": m["val"]["sha256"],
            }
        if m.get("format") == FORMAT:
            return {
                "tokenizer_hash": m["tokenizer"]["hash"],
                "train_sha256": m["train"]["sha256"],
                "val_sha256": m["val"]["sha256"],
            }
        return {"streams_sha256": m.get("sha256"), "split": m.get("split")}

    def describe(self) -> dict:
        return {
            "path": str(self.path) if self.path else None,
            "vocab_size": self.vocab_size,
            "train_tokens": int(self.train.size),
            "val_tokens": int(self.val.size),
            "tokenizer": self.meta.get("tokenizer"),
            **self.fingerprint(),
        }


class SequenceSampler:
    """Deterministic batches of ``n_ctx + 1``-token windows from a stream, without silent repetition.

    The stream is cut into ``(len - 1) // n_ctx`` windows (stride ``n_ctx``); each epoch visits them all
    once in an order drawn from ``(seed, epoch)``. Batch ``step`` is a pure function of ``step``, so a
    resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, tokens: np.ndarray, n_ctx: int, batch_size: int, seed: int):
        self.tokens, self.n_ctx, self.batch_size, self.seed = tokens, n_ctx, batch_size, seed
        self.n_windows = (len(tokens) - 1) // n_ctx
        if self.n_windows < 1:
            raise UserError(f"stream of {len(tokens)} tokens is shorter than one context of {n_ctx} + 1")
        self._perm: tuple[int, np.ndarray] | None = None

    @property
    def tokens_per_epoch(self) -> int:
        return self.n_windows * self.n_ctx

    def epochs_for(self, steps: int) -> float:
        return steps * self.batch_size / self.n_windows

    def _order(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_windows))
        return self._perm[1]

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets, each ``(batch_size, n_ctx)`` int64."""
        idx = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        starts = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(idx // self.n_windows):
            sel = idx // self.n_windows == epoch
            starts[sel] = self._order(int(epoch))[idx[sel] % self.n_windows] * self.n_ctx
        windows = np.stack([self.tokens[s : s + self.n_ctx + 1] for s in starts]).astype(np.int64)
        return windows[:, :-1], windows[:, 1:]


def eval_windows(
    tokens: np.ndarray, n_ctx: int, max_tokens: int, sample: str = "head"
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed validation set of about ``max_tokens`` target tokens of ``tokens``: the first windows of the
    stream (``sample="head"``) or windows evenly spaced over all of it (``"spread"``), in order either way."""
    whole = (len(tokens) - 1) // n_ctx  # non-overlapping windows the stream holds
    n = min(whole, max(1, max_tokens // n_ctx))
    if n < 1:
        raise UserError(f"validation stream of {len(tokens)} tokens is shorter than one context of {n_ctx} + 1")
    if sample == "head":
        starts = np.arange(n) * n_ctx
    elif sample == "spread":
        starts = (np.arange(n) * whole // n) * n_ctx  # window i of n, out of the stream's `whole`
    else:
        raise ValueError(f"unknown eval sample {sample!r}")
    w = np.stack([tokens[s : s + n_ctx + 1] for s in starts]).astype(np.int64)
    return w[:, :-1], w[:, 1:]
