"""Upgrade run records and sweep manifests of schema v1 to v2 (``scaling migrate FOLDER``).

v1 run ids hashed the whole flat config, so any new config field changed every id; v1 records had no
content hash. v2 (see :mod:`harness.records`) hashes the canonical config (defaults left out) and seals each
record. Migrating a record changes its id, file name, ``identity``, ``config`` (the model's fields are now
its architecture's own: v1 gave every model every field, e.g. ``n_head`` for an LSTM, which ignored it) and
adds ``sha256`` and ``migrated_from`` (the old schema and id). Measurements (losses, curves, counts, timing)
are kept exactly as they were.

A manifest's runs are renamed to the new ids and given their records' hashes. Its ``spec_sha256`` is set only
when the sweep spec it came from is given (``--spec``) *and* that spec, expanded by today's code, yields
exactly the manifest's configs: a manifest is never attached to a spec it was not planned from.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import records
from .config import TrainConfig
from .errors import UserError
from .models import args_class
from .models.config import ModelCounts
from .provenance import content_hash, write_json_atomic

_FINGERPRINT_KEYS = (("tokenizer_hash", "train_sha256", "val_sha256"), ("streams_sha256", "split"))


def _fingerprint(data: dict[str, Any]) -> dict[str, Any]:
    """The token streams' fingerprint, as :meth:`TokenData.fingerprint` gives it, from a record's data section."""
    for keys in _FINGERPRINT_KEYS:
        if keys[0] in data:
            return {k: data.get(k) for k in keys}
    raise UserError("record's data section has no fingerprint (tokenizer_hash/train_sha256 or streams_sha256)")


def migrate_config(config: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """A v1 config as a :class:`TrainConfig`, and the model fields v1 carried that the model never used."""
    cfg = json.loads(json.dumps(config))
    model = cfg["model"]
    known = {f.name for f in fields(args_class(model["name"]))} | {"name"}
    ignored = {k: model.pop(k) for k in list(model) if k not in known}
    return TrainConfig.from_dict(cfg), ignored


def migrate_record(old: dict[str, Any]) -> dict[str, Any]:
    """The v2 form of a v1 record (same measurements, new identity and id, sealed)."""
    if old.get("schema") != records.SCHEMA_V1:
        raise UserError(f"not a {records.SCHEMA_V1} record (schema {old.get('schema')!r})")
    tc, ignored = migrate_config(old["config"])
    ident = records.identity(tc.canonical(), _fingerprint(old["data"]))
    count_fields = [f.name for f in fields(ModelCounts)]
    counts = {k: old["model"][k] for k in count_fields if k in old["model"]}
    counts.setdefault("n_active", counts["n_total"])
    scale = {}
    for k, v in old["scale"].items():  # v2 order: N_active after N_non_embedding
        scale[k] = v
        if k == "N_non_embedding":
            scale["N_active"] = old["scale"]["N_total"]
    new = {
        "schema": records.SCHEMA,
        "run_id": records.run_id_of(ident),
        "status": old["status"],
        "reason": old["reason"],
        "identity": ident,
        "config": tc.to_dict(),
        "config_hash": content_hash(tc.to_dict()),
        **{k: old[k] for k in ("seed", "resolved")},
        "model": {**tc.model.to_dict(), **counts},
        "scale": scale,
        **{k: old[k] for k in ("loss", "curve", "data", "provenance", "timing")},
        "migrated_from": {"schema": old["schema"], "run_id": old["run_id"], "ignored_model_fields": ignored},
    }
    return records.seal(new)


def _spec_configs(spec: dict) -> list[dict]:
    from .sweep import expand

    want: list[dict] = []
    for cfg, _ in expand(spec)[0]:
        if cfg.to_dict() not in want:
            want.append(cfg.to_dict())
    return want


def migrate_folder(folder: str | os.PathLike, specs: list[Path] = (), log=print) -> dict[str, str]:
    """Migrate every v1 record under ``folder/runs`` and every v1 manifest under ``folder/sweeps`` in place.

    Returns the map old id (16 hex) -> new id (16 hex). Idempotent: v2 files are left alone."""
    folder = Path(folder)
    runs_dir, sweeps_dir = folder / "runs", folder / "sweeps"
    if not runs_dir.is_dir():
        raise UserError(f"{folder} has no runs/ folder of run records")
    id_map: dict[str, str] = {}
    new_records: dict[str, dict] = {}
    for path in sorted(runs_dir.glob("*.json")):
        rec = records.read_json(path)
        if not records.is_record(rec):
            continue
        if rec["schema"] == records.SCHEMA:  # migrated already (e.g. by an interrupted earlier call)
            if "migrated_from" in rec:
                id_map[rec["migrated_from"]["run_id"][:16]] = rec["run_id"][:16]
            continue
        new = migrate_record(rec)
        new_path = records.run_paths(folder, new["run_id"])[0]
        write_json_atomic(new_path, new)
        if new_path != path:
            path.unlink()
        id_map[rec["run_id"][:16]] = new["run_id"][:16]
        new_records[new["run_id"][:16]] = new
    by_name = {}
    for spec_path in specs:
        spec = records.load_spec(spec_path)
        by_name[spec["name"]] = spec
    for path in sorted(sweeps_dir.glob("*.json")) if sweeps_dir.is_dir() else []:
        doc = records.read_json(path)
        if doc.get("schema") == records.MANIFEST_SCHEMA:
            continue
        runs = []
        for entry in doc["runs"]:  # the planned config (device unresolved), in the v2 form
            rid = id_map.get(entry["run_id"], entry["run_id"])
            runs.append((rid, entry["origin"], migrate_config(entry["config"])[0].to_dict()))
        spec_sha = None
        spec = by_name.get(doc["name"])
        if spec is not None:
            if _spec_configs(spec) != [c for _, _, c in runs]:
                raise UserError(f"{path}: the given spec {doc['name']!r} does not expand to this manifest's runs")
            spec_sha = records.spec_digest(spec)
        records.write_manifest(folder, doc["name"], runs, dropped=doc.get("dropped", []), spec_sha256=spec_sha)
        log(f"{path}: {len(runs)} runs" + (", spec checked" if spec_sha else ", no spec given (spec_sha256 null)"))
    log(f"{folder}: {len(id_map)} run record(s) migrated to {records.SCHEMA}")
    return id_map
