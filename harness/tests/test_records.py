"""Durable run records: committed records verify and keep their ids, tampering is refused, v1 migrates,
and reading records (what ``scaling audit`` does) needs neither the trainer nor any model."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import records
from harness.config import TrainConfig
from harness.errors import UserError
from harness.migrate import migrate_record
from harness.provenance import REPO_ROOT
from harness.runs import load_runs

ALL_COMMITTED = sorted(REPO_ROOT.glob("results/*/*/runs/*.json"))
# BNSL's own curves are records of another schema, verified by their own loader (test_bnsl_ours.py)
OTHER_SCHEMAS = {"bnsl-curve/1"}
COMMITTED = [p for p in ALL_COMMITTED if json.loads(p.read_text()).get("schema") not in OTHER_SCHEMAS]
KAPLAN_CPU = REPO_ROOT / "results" / "kaplan" / "cpu-kaplan-recipe"
V1_FIXTURE = Path(__file__).with_name("data") / "run_v1_lstm.json"


def test_there_are_committed_records():
    assert len(COMMITTED) >= 41


def test_every_committed_record_is_of_a_schema_some_test_verifies():
    schemas = {json.loads(p.read_text()).get("schema") for p in ALL_COMMITTED}
    assert schemas <= {records.SCHEMA} | OTHER_SCHEMAS, schemas


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.parent.parent.name}/{p.stem}")
def test_committed_record_verifies_and_its_config_still_gives_its_id(path):
    rec = records.read_record(path)  # content hash, identity hash, file name
    # today's code, from the config the record shows, computes the same identity and so the same id
    canonical = TrainConfig.from_dict(rec["config"]).canonical()
    assert canonical == rec["identity"]["config"]
    assert records.run_id_of(records.identity(canonical, rec["identity"]["data"])) == rec["run_id"]


def test_committed_manifests_list_every_record_with_its_hash():
    for path in sorted((KAPLAN_CPU / "sweeps").glob("*.json")):
        manifest = records.read_manifest(KAPLAN_CPU, path.stem)
        recs = records.manifest_records(KAPLAN_CPU, manifest)
        assert len(recs) == len(manifest["runs"]) and all(e["sha256"] for e in manifest["runs"])


def _copy_tier(tmp_path) -> Path:
    out = tmp_path / "cpu"
    shutil.copytree(KAPLAN_CPU / "runs", out / "runs")
    shutil.copytree(KAPLAN_CPU / "sweeps", out / "sweeps")
    return out


def _edit_a_loss(out: Path, delta: float = -0.02) -> Path:
    path = next(p for p in sorted((out / "runs").glob("*.json")) if json.loads(p.read_text())["status"] == "finished")
    rec = json.loads(path.read_text())
    rec["loss"]["val_final"] = round(rec["loss"]["val_final"] + delta, 3)
    path.write_text(json.dumps(rec, indent=2))
    return path


def test_an_edited_loss_is_refused_with_the_file_named(tmp_path):
    out = _copy_tier(tmp_path)
    path = _edit_a_loss(out)
    with pytest.raises(UserError, match=rf"{path.name}: content does not match its sha256"):
        load_runs(out / "runs")


def test_audit_refuses_a_tampered_tier(tmp_path, capsys):
    from harness.replication import audit

    out = _copy_tier(tmp_path)
    quiet = {"tier": "cpu-kaplan-recipe", "out_dir": out, "train": False, "n_bootstrap": 5, "log": lambda s: None}
    audit("kaplan", **quiet).close_figures()  # intact: fine
    path = _edit_a_loss(out)
    with pytest.raises(UserError, match=rf"{path.name}: content does not match"):
        audit("kaplan", **quiet)


def test_a_resealed_record_is_still_caught_by_its_manifest(tmp_path):
    out = _copy_tier(tmp_path)
    path = _edit_a_loss(out)
    path.write_text(json.dumps(records.seal(json.loads(path.read_text())), indent=2))  # hash recomputed by hand
    records.read_record(path)  # the record alone now looks intact ...
    manifest = records.read_manifest(out, "cpu-kaplan-recipe-nd")
    if path.stem not in {e["run_id"] for e in manifest["runs"]}:
        manifest = records.read_manifest(out, "tier-cpu-kaplan-recipe")
    with pytest.raises(UserError, match="is not the record sweep manifest"):  # ... but not to its manifest
        records.manifest_records(out, manifest)


def test_renamed_or_foreign_records_are_refused(tmp_path):
    a, b = COMMITTED[0], COMMITTED[1]
    (tmp_path / "runs").mkdir()
    shutil.copy(a, tmp_path / "runs" / b.name)
    with pytest.raises(UserError, match="not the run its file name says"):
        records.read_record(tmp_path / "runs" / b.name)
    (tmp_path / "runs" / b.name).write_text('{"schema": "scaling-harness run v2", "status": "finished"}')
    with pytest.raises(UserError, match="without 'sha256'"):
        load_runs(tmp_path)


def test_a_v1_record_migrates_to_the_committed_v2_record_of_the_same_run(tmp_path):
    old = json.loads(V1_FIXTURE.read_text())
    assert old["schema"] == records.SCHEMA_V1 and old["config"]["model"]["n_head"] == 1  # v1 gave the LSTM one
    with pytest.raises(UserError, match="scaling migrate"):
        records.verify(old, V1_FIXTURE)
    new = migrate_record(old)
    records.verify(new)
    assert new["migrated_from"] == {
        "schema": records.SCHEMA_V1,
        "run_id": old["run_id"],
        "ignored_model_fields": {"n_head": 1, "mlp_ratio": 4, "pos": "learned"},
    }
    assert "n_head" not in new["config"]["model"] and new["loss"] == old["loss"] and new["curve"] == old["curve"]
    committed = records.read_record(records.run_paths(KAPLAN_CPU, new["run_id"])[0])
    assert committed == new


def test_migrating_a_folder_is_resumable_and_checks_the_spec(tmp_path):
    from harness.migrate import migrate_folder

    out = tmp_path / "old"
    (out / "runs").mkdir(parents=True)
    old = json.loads(V1_FIXTURE.read_text())
    shutil.copy(V1_FIXTURE, out / "runs" / f"{old['run_id'][:16]}.json")
    (out / "sweeps").mkdir()
    manifest = {
        "name": "s",
        "dropped": [],
        "runs": [{"run_id": old["run_id"][:16], "origin": "o", "config": old["config"]}],
    }
    (out / "sweeps" / "s.json").write_text(json.dumps(manifest))
    spec = tmp_path / "s.toml"
    spec.write_text('name = "s"\n[grid]\nN = [1]\nD = [8192]\n[base.model]\nname = "lstm"\n')
    with pytest.raises(UserError, match="does not expand to this manifest's runs"):
        migrate_folder(out, [spec], log=lambda s: None)
    id_map = migrate_folder(out, [], log=lambda s: None)  # again, without the wrong spec: picks up where it was
    old_id = old["run_id"][:16]
    assert id_map == {old_id: migrate_record(old)["run_id"][:16]}
    doc = records.read_manifest(out, "s")
    assert doc["runs"][0]["run_id"] == id_map[old_id] and doc["runs"][0]["sha256"] and doc["spec_sha256"] is None


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def test_reading_records_imports_no_torch():
    r = _run_python(
        "import sys\n"
        "import harness.records, harness.runs, harness.replication\n"
        f"t = harness.runs.load_runs({str(KAPLAN_CPU / 'runs')!r})\n"
        "assert len(t) >= 41\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('harness.train', 'harness.models')))\n"
        "assert not bad, bad\n"
    )
    assert r.returncode == 0, r.stderr


def test_audit_loads_neither_the_trainer_nor_any_model():
    r = _run_python(
        "import sys\n"
        "from harness.cli import main\n"
        "assert main(['audit', 'kaplan', '--bootstrap', '5', '--format', 'json']) == 0\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('harness.train', 'harness.models', 'harness.sweep')))\n"
        "assert not bad, bad\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]
