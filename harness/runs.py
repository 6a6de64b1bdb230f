"""Load a folder of run records into a table for :mod:`harness.fit`.

    table = load_runs("out/")                 # every runs/*.json below out/, finished ones only
    X, y = table.xy(("N_kaplan", "D"), "loss")  # arrays for ScalingLaw("chinchilla").fit(X, y)
    table.by_position                           # per run: final val loss at each context position 0..n_ctx-1

Failed runs never enter the table (``table.failed`` lists them with their reasons). Every record is
verified as it is read (content hash and run identity, see :mod:`harness.records`): a record edited by hand
is refused with an error naming its file. Reading records imports neither torch nor any model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .records import is_record, read_json, verify

NUMERIC = (
    "N_kaplan",
    "N_total",
    "N_non_embedding",
    "N_active",
    "D",
    "C_kaplan",
    "C_hoffmann",
    "loss",
    "train_loss",
    "seed",
    "n_layer",
    "d_model",
    "n_ctx",
    "vocab_size",
    "wall_s",
    "tokens_per_s",
)


def record_files(path: str | os.PathLike) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise UserError(f"{p} does not exist")
    return sorted(f for f in p.rglob("*.json") if not f.name.startswith("."))


def _row(rec: dict) -> dict:
    s, m = rec["scale"], rec["model"]
    return {
        "run_id": rec["run_id"][:16],
        "model": m["name"],
        "status": rec["status"],
        "N_kaplan": s["N_kaplan"],
        "N_total": s["N_total"],
        "N_non_embedding": s["N_non_embedding"],
        "N_active": s.get("N_active", s["N_total"]),
        "D": s["D"],
        "C_kaplan": s["C_kaplan"],
        "C_hoffmann": s["C_hoffmann"],
        "loss": rec["loss"]["val_final"],
        # the final model's mean loss over the larger final_eval_tokens windows, where the run had them (NaN if not)
        "loss_full": rec["loss"].get("val_final_full", np.nan),
        "train_loss": rec["loss"]["train_final"],
        "seed": rec["seed"],
        "n_layer": m.get("n_layer", np.nan),  # architectures without layers / a width give NaN
        "d_model": m.get("d_model", np.nan),
        "n_ctx": m["n_ctx"],
        "vocab_size": m["vocab_size"],
        "wall_s": rec["timing"]["wall_s"],
        "tokens_per_s": rec["timing"]["tokens_per_s"],
    }


@dataclass
class RunTable:
    """Columns (numpy arrays, one entry per finished run) plus the records they came from."""

    columns: dict[str, np.ndarray]
    records: list[dict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run_id, reason)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise UserError(f"no column {name!r}; columns: {', '.join(self.columns)}") from None

    def xy(self, x: tuple[str, ...] | str, y: str = "loss") -> tuple[np.ndarray, np.ndarray]:
        xs = (x,) if isinstance(x, str) else tuple(x)
        if not len(self):
            raise UserError("no finished runs to fit")
        return np.stack([self[c].astype(float) for c in xs], axis=1), self[y].astype(float)

    @property
    def by_position(self) -> list[np.ndarray | None]:
        """Each run's final validation loss by context position (``record["loss"]["val_by_position"]``, n_ctx
        floats), aligned with the rows; ``None`` for records written before the field existed."""
        out = []
        for r in self.records:
            v = r["loss"].get("val_by_position")
            out.append(None if v is None else np.asarray(v, dtype=float))
        return out

    def subset(self, run_ids) -> RunTable:
        """The rows whose run id (full or its first 16 characters) is in ``run_ids``, in this table's order."""
        keep = {str(r)[:16] for r in run_ids}
        idx = [i for i, r in enumerate(self.records) if r["run_id"][:16] in keep]
        cols = {k: v[idx] for k, v in self.columns.items()}
        failed = [f for f in self.failed if f[0][:16] in keep]
        return RunTable(cols, [self.records[i] for i in idx], failed)


def load_runs(path: str | os.PathLike, *, include_failed: bool = False) -> RunTable:
    """Every run record under ``path`` (a record file or a folder searched recursively), each verified."""
    recs = []
    for f in record_files(path):
        rec = read_json(f)
        if is_record(rec):  # other JSON files (sweep manifests, summaries) live alongside records
            recs.append(verify(rec, f))
    return table_of(recs, include_failed=include_failed)


def table_of(records: list[dict], *, include_failed: bool = False) -> RunTable:
    """A :class:`RunTable` of (already verified) records; unfinished ones go to ``failed`` unless included."""
    rows, recs, failed = [], [], []
    for rec in records:
        if rec["status"] != "finished" and not include_failed:
            failed.append((rec["run_id"][:16], rec.get("reason") or rec["status"]))
            continue
        rows.append(_row(rec))
        recs.append(rec)
    cols: dict[str, np.ndarray] = {}
    keys = list(rows[0]) if rows else ["run_id", "model", "status", *NUMERIC]
    for k in keys:
        vals = [r[k] for r in rows]
        cols[k] = np.asarray(vals, dtype=float) if k in NUMERIC else np.asarray(vals, dtype=object)
    return RunTable(cols, recs, failed)


def format_table(table: RunTable) -> str:
    head = (
        f"{'run':16}  {'model':5} {'N_kaplan':>9} {'N_total':>9} {'D':>9} {'C_kaplan':>9} {'val loss':>8} {'tok/s':>8}"
    )
    lines = [head, "-" * len(head)]
    order = np.lexsort((table["D"], table["N_kaplan"])) if len(table) else []
    for i in order:
        c = table.columns
        lines.append(
            f"{c['run_id'][i]:16}  {c['model'][i]:5} {c['N_kaplan'][i]:9.3g} {c['N_total'][i]:9.3g} {c['D'][i]:9.3g} "
            f"{c['C_kaplan'][i]:9.3g} {c['loss'][i]:8.4f} {c['tokens_per_s'][i]:8.0f}"
        )
    for run_id, reason in table.failed:
        lines.append(f"{run_id:16}  FAILED: {reason}")
    return "\n".join(lines)
