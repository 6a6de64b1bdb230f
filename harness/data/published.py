"""Registry of published data sets that replications audit.

Files are never committed to this repository (most have no licence for redistribution). They are
downloaded from their public origin on first use, verified against a sha256, and kept in a cache:

* ``$SCALING_DATA_DIR`` if set (CI and tests point it at ``../shared/data``, which may be read-only), else
* ``$XDG_CACHE_HOME/scaling-harness/data`` (``~/.cache/scaling-harness/data``).

A data set lives at ``<cache>/<name>/<filename>``. A file whose checksum does not match is never used.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..provenance import sha256_file


@dataclass(frozen=True)
class PublishedDataset:
    name: str
    filename: str
    url: str
    sha256: str
    citation: str
    licence: str
    description: str

    @property
    def path(self) -> Path:
        return data_dir() / self.name / self.filename


DATASETS: dict[str, PublishedDataset] = {
    "chinchilla": PublishedDataset(
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
    ),
}


def cache_dir() -> Path:
    """Where the project keeps what it builds (the training corpus, tokenizers): ``$SCALING_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/scaling-harness`` (``~/.cache/scaling-harness``). Kept apart from :func:`data_dir`,
    which may be a read-only folder of published files."""
    env = os.environ.get("SCALING_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scaling-harness"


def data_dir() -> Path:
    """Where published data sets are cached: ``$SCALING_DATA_DIR``, else ``cache_dir() / "data"``."""
    env = os.environ.get("SCALING_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


def _get(name: str) -> PublishedDataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def fetch(name: str, *, download: bool = True, timeout: float = 60.0) -> Path:
    """Path to the verified file of data set ``name``, downloading it into the cache if needed."""
    ds = _get(name)
    path = ds.path
    if path.exists():
        digest = sha256_file(path)
        if digest != ds.sha256:
            raise UserError(
                f"{path} has sha256 {digest}, expected {ds.sha256}: the file is not the published one. "
                "Delete it to download it again."
            )
        return path
    if not download:
        raise UserError(f"data set {name!r} is not in the cache ({path}) and downloading is off")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the data cache {path.parent} ({exc}); set SCALING_DATA_DIR") from None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{ds.filename}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(ds.url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        digest = sha256_file(tmp)
        if digest != ds.sha256:
            raise UserError(f"downloaded {ds.url} but its sha256 is {digest}, expected {ds.sha256}; not using it")
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise UserError(
            f"could not download data set {name!r} from {ds.url} ({exc}). If you are offline, put the file "
            f"at {path} (sha256 {ds.sha256}) or point SCALING_DATA_DIR at a folder holding "
            f"{name}/{ds.filename}."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
    path = fetch("chinchilla")
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
