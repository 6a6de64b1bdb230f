"""Small corpora and tiny configs for the training-harness tests (made on the fly, never downloaded)."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = (
    "the model learns a law of scale from data and compute while loss falls as a power of size "
    "tokens train small networks on text so that every run is recorded with its curve and hash"
).split()


def write_text_folder(root: Path, n_docs: int = 24, words: int = 220, seed: int = 0) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_docs):
        lines = [" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(words // 12)]
        (root / f"doc{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return root


def tiny_config(**over):
    from harness.train import TrainConfig

    over_model = over.pop("model", {})
    model = {"name": "gpt", "n_layer": 1, "d_model": 16, "n_head": 2, "n_ctx": 16, "vocab_size": 256}
    if over_model.get("name", "gpt") != "gpt":  # another architecture: only the fields every model has
        model = {"n_ctx": 16, "vocab_size": 256}
    model.update(over_model)
    base = {
        "tokenizer": "byte",
        "tokens": 64 * 12,
        "batch_tokens": 64,
        "eval_points": 4,
        "eval_tokens": 256,
        "lr": 3e-3,
        "model": model,
    }
    base.update(over)
    return TrainConfig.from_dict(base)


def sweep_spec(data_dir, model: dict | None = None, lr: float = 3e-3, **sections) -> dict:
    """A sweep spec of tiny runs on the prepared byte-level folder ``data_dir`` (sections given replace the
    defaults: a 2 x 2 grid of N and D)."""
    spec = {
        "name": "tiny",
        "base": {
            "data": str(data_dir),
            "tokenizer": "byte",
            "batch_tokens": 64,
            "eval_points": 3,
            "eval_tokens": 256,
            "lr": lr,
            "model": {"name": "gpt", "n_ctx": 16, **(model or {})},
        },
        "grid": {"N": [3e3, 1.2e4], "D": [640, 1280], "seeds": [0]},
    }
    spec.update(sections)
    return spec


def bigram_model_class():
    """A minimal registered-model shape for tests: a bigram table with only ``forward`` (no per-token path).
    Built lazily so importing the helpers does not import torch."""
    import torch

    from harness.models import LanguageModel, ModelCounts

    class BigramLM(LanguageModel):
        def __init__(self, cfg):
            super().__init__()
            self.config = cfg
            self.table = torch.nn.Embedding(cfg.vocab_size, cfg.vocab_size)

        def embedding_parameters(self):
            return [self.table.weight]

        @classmethod
        def counts(cls, cfg):
            return ModelCounts(1, 1, cfg.vocab_size**2, 6.0, 6.0)

        def forward(self, idx, targets):
            return torch.nn.functional.cross_entropy(self.table(idx).flatten(0, 1), targets.flatten())

    return BigramLM
