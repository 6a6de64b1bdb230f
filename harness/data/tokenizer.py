"""Tokenizers: byte-level (vocab 256) and byte-level BPE trained deterministically with HF ``tokenizers``.

Both reserve id 0 as the end-of-document token that separates documents in a token stream: for the byte
tokenizer it is the NUL byte (stripped from input text), for BPE the special token ``<|endoftext|>``.
A tokenizer's ``hash`` (sha256 of its serialised form) is recorded with every stream it produced.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import UserError

EOT = "<|endoftext|>"
DEFAULT_BPE_VOCAB = 4096


class ByteTokenizer:
    """UTF-8 bytes as tokens; id 0 (NUL) marks document ends."""

    kind = "byte"
    vocab_size = 256
    eot_id = 0

    @property
    def hash(self) -> str:
        return hashlib.sha256(b"scaling-harness byte tokenizer v1").hexdigest()

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8").replace(b"\0", b""), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")

    def save(self, directory: str | os.PathLike) -> None:
        """Nothing to save: the byte tokenizer has no learned state."""

    def describe(self) -> dict:
        return {"kind": self.kind, "vocab_size": self.vocab_size, "eot_id": self.eot_id, "hash": self.hash}


class BPETokenizer:
    """Byte-level BPE (GPT-2 pre-tokenisation) from HF ``tokenizers``; id 0 is ``<|endoftext|>``."""

    kind = "bpe"
    eot_id = 0
    FILENAME = "tokenizer.json"

    def __init__(self, tok, vocab_size: int | None = None):
        self._tok = tok
        self.learned_vocab = tok.get_vocab_size()
        # A small corpus may yield fewer merges than asked for; the id space (model vocabulary) stays as asked.
        self.vocab_size = max(vocab_size or 0, self.learned_vocab)
        if tok.token_to_id(EOT) != 0:
            raise UserError(f"BPE tokenizer must map {EOT} to id 0")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = DEFAULT_BPE_VOCAB) -> BPETokenizer:
        """Train on ``texts`` (in order). Deterministic: same texts and vocab size give the same merges."""
        tokenizers = _import_tokenizers()
        if not 256 < vocab_size <= 65536:
            raise UserError(f"BPE vocab size must be in (256, 65536] (uint16 streams), got {vocab_size}")
        tok = tokenizers.Tokenizer(tokenizers.models.BPE())
        tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tokenizers.decoders.ByteLevel()
        trainer = tokenizers.trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOT],
            initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, vocab_size)

    @classmethod
    def load(cls, path: str | os.PathLike, vocab_size: int | None = None) -> BPETokenizer:
        tokenizers = _import_tokenizers()
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILENAME
        if not path.exists():
            raise UserError(f"no tokenizer at {path}")
        return cls(tokenizers.Tokenizer.from_str(path.read_text()), vocab_size)

    def to_str(self) -> str:
        # Canonical form: re-serialise with sorted keys so the hash does not depend on dict order.
        return json.dumps(json.loads(self._tok.to_str()), sort_keys=True, ensure_ascii=False)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_str().encode()).hexdigest()

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text.replace(EOT, "")).ids, dtype=np.uint16)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        encs = self._tok.encode_batch([t.replace(EOT, "") for t in texts])
        return [np.asarray(e.ids, dtype=np.uint16) for e in encs]

    def decode(self, ids) -> str:
        return self._tok.decode(np.asarray(ids).tolist(), skip_special_tokens=False)

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / self.FILENAME
        path.write_text(self.to_str())
        return path

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "learned_vocab": self.learned_vocab,
            "eot_id": self.eot_id,
            "hash": self.hash,
        }


def load_tokenizer(kind: str, directory: str | os.PathLike | None = None, vocab_size: int | None = None):
    """The tokenizer a prepared data folder was made with: ``byte``, or ``bpe`` read from ``directory``."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        if directory is None:
            raise UserError("a BPE tokenizer must be loaded from a folder holding tokenizer.json")
        return BPETokenizer.load(directory, vocab_size)
    raise UserError(f"unknown tokenizer {kind!r}; use 'byte' or 'bpe'")


def _import_tokenizers():
    try:
        import tokenizers
        import tokenizers.decoders
        import tokenizers.models
        import tokenizers.pre_tokenizers
        import tokenizers.trainers
    except ImportError:
        raise UserError("the BPE tokenizer needs the 'tokenizers' package: pip install tokenizers") from None
    return tokenizers
