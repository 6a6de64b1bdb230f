"""The routing data set: every run of Clark et al. (2022), released by its authors, and its loader.

Declared here, by the replication that audits it (``REPLICATION.datasets``); the harness only caches and
verifies the file (:mod:`harness.data.published`).
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass

import numpy as np

from harness.data.published import PublishedDataset, fetch
from harness.errors import UserError
from harness.provenance import sha256_file

ROUTING = PublishedDataset(
    name="routing",
    filename="curves.csv.gz",
    url=(
        "https://raw.githubusercontent.com/google-deepmind/scaling_laws_for_routing/"
        "42da0c392b127df2c01fa7b705f72396050d05e5/data/curves.csv.gz"
    ),
    sha256="c03e7531add85e594f368d33bac4a0220280be858a7ed12d147cf73af6a3819f",
    citation=(
        "Clark, de las Casas, Guy, Mensch et al. 'Unified Scaling Laws for Routed Language Models.' ICML 2022, "
        "arXiv:2202.01169; data: github.com/google-deepmind/scaling_laws_for_routing"
    ),
    licence="CC-BY 4.0 (the data; the repository's code is Apache 2.0). Attribute Clark et al. (2022).",
    description=(
        "223 dense and routed Transformers (routers Dense, Hash, S-Base, RL-R; 1 - 512 experts; 15M - 1.3B dense "
        "parameters), validation and downstream losses every 10,000 steps (5,799 rows)."
    ),
)

COLUMNS = ("hyper_id", "step", "router_type", "num_experts", "k", "routing_frequency", "flop_increase", "seed")
COLUMNS += ("dense_parameter_count", "total_parameter_count", "model_size_label", "loss_validation")


@dataclass(frozen=True)
class RoutingRuns:
    """One row per training run (``hyper_id``), at its last evaluation: the loss the paper's laws use."""

    hyper_id: np.ndarray
    router: np.ndarray  # "Dense", "Hash", "S-Base", "RL-R"
    N: np.ndarray  # dense parameter count: the parameters one token sees (the paper's N)
    E: np.ndarray  # experts per routed layer (1 for dense)
    k: np.ndarray  # experts per token
    routing_frequency: np.ndarray  # fraction of blocks that are routed
    flop_increase: np.ndarray  # dense only: the FFN widened by this factor
    size_label: np.ndarray
    step: np.ndarray
    loss: np.ndarray  # loss_validation: held-out part of the training data
    sha256: str
    n_rows: int  # rows of the file (every evaluation of every run)

    def select(self, mask: np.ndarray) -> RoutingRuns:
        kw = {f: getattr(self, f)[mask] for f in ("hyper_id", "router", "N", "E", "k", "routing_frequency")}
        kw |= {f: getattr(self, f)[mask] for f in ("flop_increase", "size_label", "step", "loss")}
        return RoutingRuns(**kw, sha256=self.sha256, n_rows=self.n_rows)

    def main_grid(self, router: str) -> RoutingRuns:
        """The runs of Eq. (1) for one router: its top-1 runs routing every other block (the paper's default
        configuration; the other frequencies and k are ablations) and the plain dense runs, which are E = 1."""
        dense = (self.router == "Dense") & (self.k == 1) & (self.flop_increase == 1.0)
        routed = (self.router == router) & (self.k == 1) & np.isclose(self.routing_frequency, 0.5)
        return self.select(dense | routed)

    def __len__(self) -> int:
        return len(self.loss)


def load_routing() -> RoutingRuns:
    """Every run at its final evaluation (the largest ``step`` of its ``hyper_id``)."""
    path = fetch(ROUTING)
    with gzip.open(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise UserError(f"{path} lacks the columns {', '.join(missing)}")
        rows = list(reader)
    last: dict[str, dict] = {}
    try:
        for r in rows:
            if r["hyper_id"] not in last or int(r["step"]) > int(last[r["hyper_id"]]["step"]):
                last[r["hyper_id"]] = r
        runs = sorted(last.values(), key=lambda r: r["hyper_id"])

        def col(name, kind=float):
            return np.array([kind(r[name]) for r in runs])

        return RoutingRuns(
            hyper_id=col("hyper_id", str),
            router=col("router_type", str),
            N=col("dense_parameter_count"),
            E=col("num_experts"),
            k=col("k", int),
            routing_frequency=col("routing_frequency"),
            flop_increase=col("flop_increase"),
            size_label=col("model_size_label", str),
            step=col("step", int),
            loss=col("loss_validation"),
            sha256=sha256_file(path),
            n_rows=len(rows),
        )
    except ValueError as exc:
        raise UserError(f"{path}: a value is not a number ({exc})") from None
