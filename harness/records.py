"""Run records and sweep manifests: schema, run identity, paths, building, integrity. No torch here.

A run record is one JSON file ``<out>/runs/<run id[:16]>.json``. Two hashes make it durable:

* **identity.** ``record["identity"]`` is ``{"version", "config", "data"}``: the run's *canonical* config
  (fields equal to their defaults left out, see :meth:`harness.config.TrainConfig.canonical`) and the
  fingerprint of its token streams. The run id is the sha256 of the identity, so a field added later with a
  default changes no existing id, and ``version`` says which rule made the id.
* **content.** ``record["sha256"]`` is the sha256 of the record without that field. A record edited after it
  was written (a loss changed by hand, a curve truncated) no longer matches and is refused when read.

A sweep manifest ``<out>/sweeps/<name>.json`` lists the sweep's runs (id, origin, config) with the sha256 of
each finished record and the sha256 of the sweep spec it was planned from, so a tier's records can be read
back and checked without the data, the models or torch.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError
from .provenance import content_hash, write_json_atomic

SCHEMA = "scaling-harness run v2"
SCHEMA_V1 = "scaling-harness run v1"  # before identities and content hashes; `scaling migrate` upgrades them
IDENTITY_VERSION = 2
MANIFEST_SCHEMA = "scaling-harness sweep manifest v2"


class RecordError(UserError):
    """A record or manifest that cannot be trusted as it is (tampered, truncated, foreign, old schema)."""


# ----------------------------------------------------------------------------------------- identity
def identity(canonical_config: dict[str, Any], data_fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What a run is: its canonical config and the fingerprint of its token streams."""
    return {"version": IDENTITY_VERSION, "config": canonical_config, "data": data_fingerprint}


def run_id_of(ident: dict[str, Any]) -> str:
    """The run id (64 hex digits) of an identity; files use its first 16."""
    return content_hash(ident)


def run_paths(out: str | os.PathLike, run_id: str) -> tuple[Path, Path]:
    """Where a run's record and its checkpoint live under ``out``."""
    out = Path(out)
    return out / "runs" / f"{run_id[:16]}.json", out / "checkpoints" / f"{run_id[:16]}.pt"


# ----------------------------------------------------------------------------------------- building
def scale_of(counts: dict[str, Any], tokens: int, steps_done: int) -> dict[str, Any]:
    """The scale section: N under each convention, tokens D, and compute C = FLOPs per token x D."""
    return {
        "N_kaplan": counts["n_kaplan"],
        "N_total": counts["n_total"],
        "N_non_embedding": counts["n_non_embedding"],
        "N_active": counts.get("n_active") or counts["n_total"],
        "D": tokens,
        "steps_done": steps_done,
        "C_kaplan": counts["flops_per_token_kaplan"] * tokens,
        "C_hoffmann": counts["flops_per_token_hoffmann"] * tokens,
    }


def build_record(
    *,
    ident: dict[str, Any],
    status: str,
    reason: str | None,
    config: dict[str, Any],
    resolved: dict[str, Any],
    model: dict[str, Any],
    counts: dict[str, Any],
    tokens: int,
    steps_done: int,
    loss: dict[str, Any],
    curve: dict[str, list],
    data: dict[str, Any],
    provenance: dict[str, Any],
    timing: dict[str, Any],
) -> dict[str, Any]:
    """Assemble a sealed record (sections in a fixed order; ``sha256`` last)."""
    record = {
        "schema": SCHEMA,
        "run_id": run_id_of(ident),
        "status": status,
        "reason": reason,
        "identity": ident,
        "config": config,
        "config_hash": content_hash(config),
        "seed": config["seed"],
        "resolved": resolved,
        "model": {**model, **counts},
        "scale": scale_of(counts, tokens, steps_done),
        "loss": loss,
        "curve": curve,
        "data": data,
        "provenance": provenance,
        "timing": timing,
    }
    return seal(record)


def digest(record: dict[str, Any]) -> str:
    """sha256 of a record's content (everything but its ``sha256`` field)."""
    return content_hash({k: v for k, v in record.items() if k != "sha256"})


def seal(record: dict[str, Any]) -> dict[str, Any]:
    record = {k: v for k, v in record.items() if k != "sha256"}
    record["sha256"] = digest(record)
    return record


# ----------------------------------------------------------------------------------------- reading
def is_record(obj: Any) -> bool:
    """Whether a parsed JSON document is a run record (of any schema); other JSON files may sit alongside."""
    return isinstance(obj, dict) and obj.get("schema") in (SCHEMA, SCHEMA_V1)


def verify(record: dict[str, Any], where: str | os.PathLike = "record") -> dict[str, Any]:
    """Check a record's schema, content hash and identity; a :class:`RecordError` naming ``where`` if not."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: not a run record (a JSON {type(record).__name__}, not an object)")
    if record.get("schema") == SCHEMA_V1:
        raise RecordError(
            f"{where}: a run record of the old schema ({SCHEMA_V1}, before run identities and content hashes); "
            "upgrade the folder holding it with 'scaling migrate FOLDER'"
        )
    if record.get("schema") != SCHEMA:
        raise RecordError(f"{where}: not a run record (schema {record.get('schema')!r})")
    for key in ("sha256", "identity", "run_id", "status"):
        if key not in record:
            raise RecordError(f"{where}: run record without {key!r} (truncated or hand-made?)")
    if digest(record) != record["sha256"]:
        raise RecordError(
            f"{where}: content does not match its sha256 {record['sha256'][:16]}...: the record was changed after "
            "it was written. Restore it (git checkout) or delete it to train the run again"
        )
    if run_id_of(record["identity"]) != record["run_id"]:
        raise RecordError(f"{where}: run id {record['run_id'][:16]} is not the hash of the record's identity")
    name = Path(where).name
    if name.endswith(".json") and name != f"{record['run_id'][:16]}.json":
        raise RecordError(f"{where}: holds run {record['run_id'][:16]}, not the run its file name says")
    return record


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not a readable JSON file ({exc})") from None


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """A verified record from ``path``."""
    return verify(read_json(path), path)


def finished_or_failed(path: Path) -> dict[str, Any] | None:
    """The verified record at ``path`` if the run ended (finished or failed there), else None."""
    if not path.exists():
        return None
    rec = read_record(path)
    return rec if rec["status"] in ("finished", "failed") else None


def cached_or_redo(path: Path, log: Callable[[str], None]) -> dict[str, Any] | None:
    """For a run about to be trained: :func:`finished_or_failed`, except that a cached file which is not this
    run's intact record (truncated, empty, hand-made, edited, another run's) is moved aside to ``*.json.bad``
    with a warning, and None is returned so the run is trained again. Readers that must not retrain (an audit)
    use :func:`finished_or_failed`, which refuses such a file instead."""
    try:
        return finished_or_failed(path)
    except RecordError as exc:
        aside = path.with_name(path.name + ".bad")
        os.replace(path, aside)
        log(f"warning: {exc}; moved it to {aside.name} and the run will be trained again")
        return None


# ----------------------------------------------------------------------------------------- manifests
def manifest_path(out: str | os.PathLike, name: str) -> Path:
    return Path(out) / "sweeps" / f"{name}.json"


def read_toml(path: Path, label: str) -> dict[str, Any]:
    """A user's TOML file (``label`` names it in messages: "sweep spec x.toml", "--config x.toml"), or a
    :class:`UserError` saying why it cannot be read: missing, not a file, unreadable, not UTF-8, not TOML."""
    if not path.is_file():
        raise UserError(f"{label}: {'not a file' if path.exists() else 'does not exist'}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{label}: invalid TOML ({exc})") from None
    except OSError as exc:
        raise UserError(f"{label}: cannot read it ({exc.strerror or exc})") from None


def load_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a sweep spec (TOML); its ``name`` defaults to the file's stem."""
    p = Path(path)
    spec = read_toml(p, f"sweep spec {p}")
    spec.setdefault("name", p.stem)
    return spec


def spec_digest(spec: dict[str, Any]) -> str:
    """sha256 of a parsed sweep spec (comments and layout of the TOML file do not count)."""
    return content_hash(spec)


def write_manifest(
    out: str | os.PathLike,
    name: str,
    runs: list[tuple[str, str, dict[str, Any]]],
    *,
    dropped: list[str],
    spec_sha256: str | None,
) -> Path:
    """Write ``<out>/sweeps/<name>.json`` for ``runs`` = (run id, origin, config dict), with the sha256 of each
    run's record where it has ended (None while it has not)."""
    entries = []
    for run_id, origin, config in runs:
        rec = finished_or_failed(run_paths(out, run_id)[0])
        entries.append(
            {"run_id": run_id[:16], "origin": origin, "config": config, "sha256": rec["sha256"] if rec else None}
        )
    path = manifest_path(out, name)
    doc = {"schema": MANIFEST_SCHEMA, "name": name, "spec_sha256": spec_sha256, "dropped": dropped, "runs": entries}
    write_json_atomic(path, doc)
    return path


def read_manifest(out: str | os.PathLike, name: str) -> dict[str, Any] | None:
    path = manifest_path(out, name)
    if not path.exists():
        return None
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA:
        raise RecordError(f"{path}: not a sweep manifest of schema {MANIFEST_SCHEMA!r} (run 'scaling migrate')")
    return doc


def manifest_records(out: str | os.PathLike, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The verified records a manifest lists, each checked against the sha256 the manifest holds for it.

    A run the manifest lists without a hash (it had not ended when the manifest was written) is returned if
    its record now exists and verifies; one with no record is left out (the caller counts what is missing)."""
    recs = []
    for entry in manifest["runs"]:
        path = run_paths(out, entry["run_id"])[0]
        if not path.exists():
            if entry.get("sha256"):
                raise RecordError(f"{path}: listed in sweep manifest {manifest['name']!r} but missing")
            continue
        rec = read_record(path)
        if entry.get("sha256") and rec["sha256"] != entry["sha256"]:
            raise RecordError(
                f"{path}: is not the record sweep manifest {manifest['name']!r} lists (sha256 "
                f"{rec['sha256'][:16]}..., manifest {entry['sha256'][:16]}...)"
            )
        recs.append(rec)
    return recs


def check_writable(out: Path) -> None:
    """Fail before any training if run records could not be written under ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write run records under {out}: {exc.strerror or exc}") from None
