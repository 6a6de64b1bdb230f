"""Published data sets that replications audit: how they are declared, cached, downloaded and verified.

A replication declares its data sets (``Replication.datasets``, each a :class:`PublishedDataset`) and loads
them through :func:`fetch`; nothing here names a paper. Files are never committed to this repository (most
have no licence for redistribution). They are downloaded from their public origin on first use, verified
against a sha256, and kept in a cache:

* ``$SCALING_DATA_DIR`` if set (CI and tests point it at ``../shared/data``, which may be read-only), else
* ``$XDG_CACHE_HOME/scaling-harness/data`` (``~/.cache/scaling-harness/data``).

A data set lives at ``<cache>/<name>/<filename>``. A file whose checksum does not match is never used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..provenance import sha256_file


@dataclass(frozen=True)
class PublishedDataset:
    """One published file: where it comes from, its checksum, and what a user must know before using it."""

    name: str  # unique across replications; also the cache folder that holds it, unless ``folder`` is given
    filename: str
    url: str
    sha256: str
    citation: str
    licence: str
    description: str
    folder: str | None = None  # the cache folder, when several files of one release share it (default: name)

    @property
    def relpath(self) -> str:
        """Where the file lies below the data cache: ``<folder or name>/<filename>``."""
        return f"{self.folder or self.name}/{self.filename}"

    @property
    def path(self) -> Path:
        return data_dir() / self.relpath


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


def fetch(ds: PublishedDataset, *, download: bool = True, timeout: float = 60.0) -> Path:
    """Path to the verified file of ``ds``, downloading it into the cache if needed. (The data sets the
    replications declare, by name: :func:`harness.replication.registered_datasets`.)"""
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
        raise UserError(f"data set {ds.name!r} is not in the cache ({path}) and downloading is off")
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
            f"could not download data set {ds.name!r} from {ds.url} ({exc}). If you are offline, put the file "
            f"at {path} (sha256 {ds.sha256}) or point SCALING_DATA_DIR at a folder holding "
            f"{ds.relpath}."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
