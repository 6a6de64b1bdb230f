"""The scaling-law extrapolation benchmark of Alabdulmohsin, Neyshabur and Zhai (2022), and its loader.

92 learning curves (72 image classification, 5 machine translation, 5 language modelling, 10 BIG-Bench), each
split by its authors into a fit part and an extrapolation part beyond it; Caballero et al. (2023) compare BNSL
with M1-M4 on it. Declared here, by the replication that audits it; the harness caches and verifies the files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from harness.data.published import PublishedDataset, fetch
from harness.errors import UserError
from harness.provenance import sha256_file

_ORIGIN = (
    "https://raw.githubusercontent.com/google-research/google-research/"
    "9853680c781781bd8d3de20aa61c7373ce059913/revisiting_neural_scaling_laws/data/"
)
_CITATION = (
    "Alabdulmohsin, Neyshabur, Zhai. 'Revisiting Neural Scaling Laws in Language and Vision.' NeurIPS 2022, "
    "arXiv:2209.06640; data: github.com/google-research/google-research, revisiting_neural_scaling_laws/data"
)
_LICENCE = "CC BY 4.0 (the repository's datasets; its code is Apache 2.0). Attribute Alabdulmohsin et al. (2022)."

VISION = PublishedDataset(
    name="bnsl-vision",
    folder="bnsl",
    filename="benchmark.vision.csv",
    url=_ORIGIN + "benchmark.vision.csv",
    sha256="23b00692d71e58aa5a2a941e831d57688e0977fdcf5f5125ff7b64283b5d9e83",
    citation=_CITATION,
    licence=_LICENCE,
    description="72 image-classification learning curves (n-shot error against examples seen), 18,883 rows.",
)
LANG = PublishedDataset(
    name="bnsl-lang",
    folder="bnsl",
    filename="benchmark.lang.csv",
    url=_ORIGIN + "benchmark.lang.csv",
    sha256="63c346db00a66b692e1ea9a0f71a2f2b267e55f74be5b863a92e199dffbf0983",
    citation=_CITATION,
    licence=_LICENCE,
    description="20 language curves (5 NMT, 5 LM, 10 BIG-Bench) against examples or tokens seen, 1,399 rows.",
)
COLUMNS = ("Domain", "Task", "Model", "Seen Examples", "Loss", "Training")
DOMAINS = ("IC", "NMT", "LM", "BB")


@dataclass(frozen=True)
class Curve:
    """One learning curve, sorted by x, with its authors' split: ``train`` marks the points a law is fitted to."""

    domain: str
    task: str
    model: str
    x: np.ndarray
    y: np.ndarray
    train: np.ndarray  # bool

    @property
    def key(self) -> str:
        return f"{self.domain} | {self.task} | {self.model}"

    @property
    def n_fit(self) -> int:
        return int(self.train.sum())

    @property
    def n_test(self) -> int:
        return int((~self.train).sum())


@dataclass(frozen=True)
class Benchmark:
    curves: list[Curve]
    sha256: dict[str, str]  # file name -> sha256
    n_duplicates: int  # rows dropped as exact repeats (the language file lists some curves several times)

    def by_domain(self, domain: str) -> list[Curve]:
        return [c for c in self.curves if c.domain == domain]


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise UserError(f"{path} lacks the columns {', '.join(missing)}")
        return list(reader)


def load_benchmark() -> Benchmark:
    """Both files, as 92 curves. Exact repeated rows are dropped (counted in ``n_duplicates``); a curve whose
    fit part does not lie entirely below its extrapolation part is an error, since every claim assumes it."""
    paths = {ds.filename: fetch(ds) for ds in (VISION, LANG)}
    groups: dict[tuple[str, str, str], set[tuple[float, float, bool]]] = {}
    n_rows = 0
    for path in paths.values():
        for r in _rows(path):
            n_rows += 1
            try:
                point = (float(r["Seen Examples"]), float(r["Loss"]), r["Training"].strip() == "1")
            except ValueError as exc:
                raise UserError(f"{path}: a value is not a number ({exc})") from None
            groups.setdefault((r["Domain"], r["Task"], r["Model"]), set()).add(point)
    curves = []
    for (domain, task, model), points in sorted(groups.items(), key=lambda kv: (DOMAINS.index(kv[0][0]), kv[0])):
        pts = sorted(points)
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        train = np.array([p[2] for p in pts])
        c = Curve(domain, task, model, x, y, train)
        if not (train.any() and (~train).any() and x[train].max() < x[~train].min()):
            raise UserError(f"curve {c.key}: its fit points do not all lie below its extrapolation points")
        curves.append(c)
    n_unique = sum(len(p) for p in groups.values())
    return Benchmark(curves, {f: sha256_file(p) for f, p in paths.items()}, n_rows - n_unique)
