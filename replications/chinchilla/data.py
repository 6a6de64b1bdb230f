"""The Chinchilla data set: Epoch AI's extraction of Hoffmann et al. (2022) Figure 4, and its loader.

Declared here, by the replication that audits it (``REPLICATION.datasets``); the harness only caches and
verifies the file (:mod:`harness.data.published`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from harness.data.published import PublishedDataset, fetch
from harness.errors import UserError
from harness.provenance import sha256_file

CHINCHILLA = PublishedDataset(
    name="chinchilla",
    filename="svg_extracted_data.csv",
    url=(
        "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/"
        "92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv"
    ),
    sha256="193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30",
    citation=(
        "Besiroglu, Erdil, Barnett, You. 'Chinchilla Scaling: A replication attempt.' arXiv:2404.10102 "
        "(2024): points extracted from Hoffmann et al. (2022), 'Training Compute-Optimal Large Language "
        "Models', arXiv:2203.15556, Figure 4."
    ),
    licence=("No licence file in the source repository: downloaded for auditing, never redistributed here."),
    description=(
        "245 training runs (model size N, training FLOP C, final loss) read off the SVG of Hoffmann et "
        "al. Figure 4 by Epoch AI; tokens D = C / (6 N)."
    ),
)


@dataclass(frozen=True)
class ChinchillaData:
    """Hoffmann et al. Figure 4 points: parameters N, tokens D = C/(6N), compute C, final loss."""

    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    loss: np.ndarray
    n_dropped: int
    sha256: str

    @property
    def X(self) -> np.ndarray:
        return np.stack([self.N, self.D], axis=1)


def load_chinchilla(drop_highest_loss: int = 5) -> ChinchillaData:
    """Load the Chinchilla points, dropping the ``drop_highest_loss`` highest-loss rows as Besiroglu et al.
    did (they are the unconverged small-budget runs at the top of the colour bar)."""
    path = fetch(CHINCHILLA)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    try:
        N = np.array([float(r["Model Size"]) for r in rows])
        C = np.array([float(r["Training FLOP"]) for r in rows])
        L = np.array([float(r["loss"]) for r in rows])
    except (KeyError, ValueError) as exc:
        raise UserError(
            f"{path} does not have the expected columns 'Model Size', 'Training FLOP', 'loss' ({exc})"
        ) from None
    if drop_highest_loss:
        keep = np.sort(np.argsort(L, kind="stable")[: len(L) - drop_highest_loss])
        N, C, L = N[keep], C[keep], L[keep]
    return ChinchillaData(N=N, D=C / (6.0 * N), C=C, loss=L, n_dropped=drop_highest_loss, sha256=sha256_file(path))
