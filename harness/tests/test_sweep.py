"""Sweep specs, the run cache, resume after interruption, the executors, and the CLI commands."""

import io
import json
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.data.stream import prepare_documents, read_text_folder
from harness.errors import UserError
from harness.models import model_counts
from harness.sweep import SlurmExecutor, expand, load_spec, plan, run_sweep
from harness.tests.train_helpers import sweep_spec, write_text_folder
from harness.train import train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweepdata")
    prepare_documents(
        read_text_folder(write_text_folder(root / "txt", 24)), root / "byte", tokenizer="byte", val_fraction=0.15
    )
    return root / "byte"


def _spec(data_dir, **sections):
    return sweep_spec(data_dir, **sections)


def test_expand_grid_and_isoflop(data_dir):
    configs, dropped = expand(_spec(data_dir, grid={"N": [3e3, 1.2e4], "D": [640, 1280], "seeds": [0, 1]}))
    assert len(configs) == 8 and not dropped
    assert {c.tokens for c, _ in configs} == {640, 1280} and {c.seed for c, _ in configs} == {0, 1}
    spec = _spec(data_dir, isoflop={"C": [1e8], "N": [3e3, 1.2e4, 1e9]})
    del spec["grid"]
    configs, dropped = expand(spec)
    assert len(configs) == 2 and len(dropped) == 1 and "below one batch" in dropped[0]
    for cfg, _ in configs:
        n = model_counts(cfg.model).n_kaplan
        d = 1e8 / (6 * n)
        assert d - 64 < cfg.tokens <= d and cfg.tokens % 64 == 0  # D = C / 6N, whole batches
    with pytest.raises(UserError, match=r"unknown \[sweep spec\] key"):
        expand(_spec(data_dir, grids={}))
    with pytest.raises(UserError, match=r"grid\.N"):
        expand(_spec(data_dir, grid={"N": ["big"], "D": [1]}))


def test_isoflop_tables_and_hoffmann_count(data_dir):
    """[[isoflop]] gives each budget its own sizes; count = "hoffmann" spends C in the whole model's FLOPs."""
    spec = _spec(
        data_dir,
        isoflop=[
            {"C": [1e8], "N": [3e3, 1.2e4], "count": "hoffmann", "min_layers": 2},
            {"C": [3e8], "N": [1.2e4]},
        ],
    )
    del spec["grid"]
    configs, dropped = expand(spec)
    assert len(configs) == 3 and not dropped
    assert [o.split()[0] for _, o in configs] == ["isoflop[0]", "isoflop[0]", "isoflop[1]"]
    for cfg, _ in configs[:2]:
        per_token = model_counts(cfg.model).flops_per_token_hoffmann
        assert 1e8 - 64 * per_token < per_token * cfg.tokens <= 1e8 and cfg.model.args.n_layer >= 2
    n = model_counts(configs[2][0].model).n_kaplan
    assert configs[2][0].tokens == int(3e8 / (6 * n) // 64) * 64  # the default count is Kaplan's 6 N
    bad = dict(spec, isoflop={"C": [1e8], "N": [3e3], "count": "mine"})
    with pytest.raises(UserError, match=r"isoflop\.count must be one of kaplan, hoffmann"):
        expand(bad)
    with pytest.raises(UserError, match="list of tables"):
        expand(dict(spec, isoflop=[1, 2]))
    with pytest.raises(UserError, match=r"isoflop\[1\]\.N"):
        expand(dict(spec, isoflop=[{"C": [1e8], "N": [3e3]}, {"C": [1e8], "N": ["x"]}]))


def test_plan_rejects_budget_beyond_corpus(data_dir):
    with pytest.raises(UserError, match="epochs"):
        plan(_spec(data_dir, grid={"N": [3e3], "D": [1e7]}), log=lambda s: None)


def test_sweep_caches_and_resumes(data_dir, tmp_path):
    sp = plan(_spec(data_dir), log=lambda s: None)
    assert len(sp.runs) == 4
    # Simulate a sweep killed midway: one run finished, one interrupted with a checkpoint.
    train(sp.runs[0].config, tmp_path, threads=1)
    train(sp.runs[1].config, tmp_path, threads=1, stop_after=4)
    err = io.StringIO()
    results = run_sweep(sp, tmp_path, workers=1, threads=1, stream=err)
    assert [r["status"] for r in results] == ["finished"] * 4
    assert results[0].get("cached") and not results[1].get("cached")
    assert "1 already done, 3 to run" in err.getvalue()
    rec1 = json.loads((tmp_path / "runs" / f"{sp.runs[1].run_id[:16]}.json").read_text())
    assert rec1["timing"]["resumed_from_steps"] == [4]
    again = run_sweep(sp, tmp_path, workers=1, threads=1, stream=io.StringIO())
    assert all(r.get("cached") for r in again)
    # A second sweep sharing the folder shares the records of its overlapping runs.
    sp2 = plan(_spec(data_dir, grid={"N": [3e3], "D": [640, 1920]}), log=lambda s: None)
    res2 = run_sweep(sp2, tmp_path, workers=1, threads=1, stream=io.StringIO())
    assert [bool(r.get("cached")) for r in res2] == [True, False]


def test_process_pool_gives_the_same_records(data_dir, tmp_path):
    sp = plan(_spec(data_dir, grid={"N": [3e3, 1.2e4], "D": [640]}), log=lambda s: None)
    run_sweep(sp, tmp_path / "pool", workers=2, threads=1, stream=io.StringIO())
    run_sweep(sp, tmp_path / "inproc", workers=1, threads=1, stream=io.StringIO())
    for r in sp.runs:
        a, b = (json.loads((tmp_path / w / "runs" / f"{r.run_id[:16]}.json").read_text()) for w in ("pool", "inproc"))
        a.pop("timing"), b.pop("timing"), a.pop("sha256"), b.pop("sha256")
        assert a == b


def test_cli_sweep_runs_and_train(data_dir, tmp_path, capsys):
    spec = _spec(data_dir, grid={"N": [3e3], "D": [640, 1280]})
    lines = [f'name = "{spec["name"]}"', "[base]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in spec["base"].items() if k != "model"]
    lines += ["[base.model]", 'name = "gpt"', "n_ctx = 16", "[grid]", "N = [3e3]", "D = [640, 1280]"]
    path = tmp_path / "tiny.toml"
    path.write_text("\n".join(lines) + "\n")
    assert load_spec(path)["grid"]["D"] == [640, 1280]
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 finished, 0 failed" in text
    assert main(["runs", str(out), "--format", "csv"]) == 0
    csv = capsys.readouterr().out.strip().splitlines()
    assert csv[0].startswith("run_id,model,status,N_kaplan") and len(csv) == 3
    assert (
        main(
            [
                "train",
                "--data",
                str(data_dir),
                "--tokenizer",
                "byte",
                "--n-layer",
                "1",
                "--d-model",
                "8",
                "--n-head",
                "1",
                "--n-ctx",
                "16",
                "--tokens",
                "320",
                "--batch-tokens",
                "64",
                "--out",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert "final val loss" in printed.out
    assert "\r" not in printed.err  # progress in a log (not a terminal) is plain lines, no carriage returns
    assert main(["train", "--data", str(data_dir), "--tokenizer", "byte", "--N", "1e4", "--n-layer", "2"]) == 2
    assert "either --N or an explicit shape" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "nope.toml")]) == 2


def test_slurm_executor_through_submitit_local_backend(data_dir, tmp_path):
    """Jobs submitted through submitit (its local backend standing in for SLURM) write into the run cache."""
    pytest.importorskip("submitit")
    sp = plan(_spec(data_dir, grid={"N": [3e3], "D": [640, 1280]}), log=lambda s: None)
    ex = SlurmExecutor(partition="debug", time_min=5, cpus_per_task=1, cluster="local", poll_s=0.2)
    err = io.StringIO()
    results = run_sweep(sp, tmp_path, executor=ex, stream=err)
    assert [r["status"] for r in results] == ["finished"] * 2 and not any(r.get("cached") for r in results)
    assert "0 already done, 2 to run (local via submitit: job array of 2" in err.getvalue()
    for r in sp.runs:
        rec = json.loads((tmp_path / "runs" / f"{r.run_id[:16]}.json").read_text())
        assert rec["status"] == "finished" and rec["run_id"] == r.run_id
    assert list((tmp_path / "slurm" / "logs").iterdir())  # submitit's job folders
    # The records equal an in-process run of the same configs (timing aside).
    run_sweep(sp, tmp_path / "inproc", workers=1, threads=1, stream=io.StringIO())
    for r in sp.runs:
        a, b = (json.loads((d / "runs" / f"{r.run_id[:16]}.json").read_text()) for d in (tmp_path, tmp_path / "inproc"))
        a.pop("timing"), b.pop("timing"), a.pop("sha256"), b.pop("sha256")
        assert a == b
    # A second invocation submits nothing: every run is already in the cache.
    err = io.StringIO()
    again = run_sweep(sp, tmp_path, executor=ex, stream=err)
    assert all(r.get("cached") for r in again) and "2 already done, 0 to run" in err.getvalue()


def test_slurm_executor_errors(data_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    sp = plan(_spec(data_dir, grid={"N": [3e3], "D": [640]}), log=lambda s: None)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UserError, match="needs SLURM's sbatch and srun on PATH"):
        run_sweep(sp, tmp_path, executor=SlurmExecutor(), stream=io.StringIO())
    with pytest.raises(UserError, match="invalid SLURM parameter: Unknown argument 'no_such_option'"):
        run_sweep(sp, tmp_path, executor=SlurmExecutor(params={"no_such_option": 1}, cluster="local"))
    assert not (tmp_path / "runs").exists()  # nothing ran
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(UserError, match=r"optional 'submitit' package"):
        SlurmExecutor(cluster="local").setup(1, tmp_path)
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\ndata = "default"\n[grid]\nN = [1e4]\nD = [1e5]\n')
    assert main(["sweep", str(spec), "--executor", "slurm", "--slurm-param", "oops"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_slurm_job_failure_is_reported_and_rerun_via_cli(data_dir, tmp_path, capsys):
    """A job that dies outside the trainer writes no record; the next `scaling sweep --executor slurm` reruns it."""
    pytest.importorskip("submitit")
    import shutil

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    sp = plan(_spec(data, grid={"N": [3e3], "D": [640]}), log=lambda s: None)
    shutil.move(data, tmp_path / "away")  # the job cannot open the data
    out = tmp_path / "out"
    res = run_sweep(sp, out, executor=SlurmExecutor(cluster="local", poll_s=0.2), stream=io.StringIO())
    assert (
        res[0]["status"] == "error" and "SLURM job" in res[0]["reason"] and "nor an existing path" in res[0]["reason"]
    )
    assert not list((out / "runs").glob("*.json"))
    shutil.move(tmp_path / "away", data)
    spec = tmp_path / "tiny.toml"
    base = {k: v for k, v in _spec(data)["base"].items() if k != "model"}
    lines = ["[base]", *(f"{k} = {json.dumps(v)}" for k, v in base.items())]
    spec.write_text("\n".join([*lines, "[base.model]", "n_ctx = 16", "[grid]", "N = [3e3]", "D = [640]"]) + "\n")
    argv = ["sweep", str(spec), "--out", str(out), "--executor", "slurm", "--slurm-cluster", "local"]
    assert main([*argv, "--slurm-partition", "p", "--slurm-time", "5"]) == 0
    text = capsys.readouterr()
    assert "1 finished, 0 failed" in text.out and "0 already done, 1 to run" in text.err
    assert (out / "runs" / f"{sp.runs[0].run_id[:16]}.json").exists()


def test_grid_aspect_ratios_give_shapes_of_one_size(data_dir):
    configs, _ = expand(_spec(data_dir, grid={"N": [2e4], "D": [640], "aspect": [4, 16, 64]}))
    shapes = [(c.model.args.n_layer, c.model.args.d_model) for c, _ in configs]
    assert len(set(shapes)) == 3  # three different shapes ...
    ns = [model_counts(c.model).n_kaplan for c, _ in configs]
    assert max(ns) / min(ns) < 2.0  # ... of about the same non-embedding size
    assert shapes[0][0] > shapes[-1][0]  # a small aspect ratio means a deeper, narrower model
    assert all("aspect=" in origin for _, origin in configs)


def test_grid_min_layers_floors_the_depth_of_small_models(data_dir):
    plain, _ = expand(_spec(data_dir, grid={"N": [3e3, 1e6], "D": [640]}))
    floored, _ = expand(_spec(data_dir, grid={"N": [3e3, 1e6], "D": [640], "min_layers": 2}))
    assert (
        plain[0][0].model.args.n_layer == 1 and floored[0][0].model.args.n_layer == 2
    )  # the small one gets a 2nd layer
    assert plain[1][0].model == floored[1][0].model  # a size deep enough already is left alone
    n = model_counts(floored[0][0].model).n_kaplan
    assert 0.4 < n / 3e3 < 2.5  # ... at about the requested size


def test_tier_sweeps_run_into_the_tier_cache_and_resume(data_dir, tmp_path):
    from harness.replication import TierContext, run_tier_sweeps

    base = _spec(data_dir)["base"]
    lines = [f'data = "{base["data"]}"', 'tokenizer = "byte"', "batch_tokens = 64", "eval_points = 3"]
    lines += ["eval_tokens = 256", "lr = 3e-3", "[base.model]", 'name = "gpt"', "n_ctx = 16"]
    body = "\n".join(lines)
    a = tmp_path / "a.toml"
    a.write_text(f'name = "a"\n[grid]\nN = [3e3]\nD = [640, 1280]\n[base]\n{body}\n')
    b = tmp_path / "b.toml"  # shares the run N=3e3, D=640 with sweep a
    b.write_text(f'name = "b"\n[grid]\nN = [3e3, 1.2e4]\nD = [640]\n[base]\n{body}\n')
    ctx = TierContext(tier="t", out_dir=tmp_path / "out", n_bootstrap=0, log=lambda s: None, sweeps=(a, b))
    first = run_tier_sweeps(ctx, workers=1)
    assert {k: len(v) for k, v in first.items()} == {"a": 2, "b": 2}
    records = sorted((tmp_path / "out" / "runs").glob("*.json"))
    assert len(records) == 3  # the shared run was trained once
    stamps = [r.stat().st_mtime_ns for r in records]
    again = run_tier_sweeps(ctx, workers=1)
    assert [r.stat().st_mtime_ns for r in records] == stamps  # nothing retrained
    assert list(again["b"]["loss"]) == list(first["b"]["loss"])

    # Reading back without training (what `scaling audit` does) needs neither the data nor a trainer ...
    ctx.train = False
    read = run_tier_sweeps(ctx)
    assert list(read["a"]["loss"]) == list(first["a"]["loss"]) and list(read["b"]["D"]) == list(first["b"]["D"])
    # ... and refuses records made from another version of a spec instead of mixing them in
    b.write_text(f'name = "b"\n[grid]\nN = [3e3, 1.2e4]\nD = [1280]\n[base]\n{body}\n')
    with pytest.raises(UserError, match="has changed since its records"):
        run_tier_sweeps(ctx)
    c = tmp_path / "c.toml"
    c.write_text(f'name = "c"\n[grid]\nN = [3e3]\nD = [640]\n[base]\n{body}\n')
    ctx.sweeps = (a, c)
    with pytest.raises(UserError, match="no records of sweep 'c'"):
        run_tier_sweeps(ctx)


@pytest.mark.parametrize("name", ["../outside", "/etc/x", "a/b", "", "..", "x" * 101, 7])
def test_a_sweep_name_cannot_point_outside_the_manifest_folder(data_dir, name):
    with pytest.raises(UserError, match="sweep name"):
        plan(_spec(data_dir, name=name), log=lambda s: None)


def test_an_unwritable_out_folder_fails_before_any_training(data_dir, tmp_path):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    with pytest.raises(UserError, match="cannot write run records under"):
        run_sweep(plan(_spec(data_dir), log=lambda s: None), blocked / "out", workers=1, stream=io.StringIO())


@pytest.mark.parametrize("content", ["", "[]", '{"status": "finished"}', "{not json", "foreign"])
def test_a_bad_cached_record_is_moved_aside_and_its_run_trained_again(data_dir, tmp_path, content):
    sp = plan(_spec(data_dir, grid={"N": [3e3], "D": [640, 1280]}), log=lambda s: None)
    run_sweep(sp, tmp_path, workers=1, threads=1, stream=io.StringIO())
    a, b = (tmp_path / "runs" / f"{r.run_id[:16]}.json" for r in sp.runs)
    good = a.read_text()
    a.write_text(b.read_text() if content == "foreign" else content)  # another run's record under a's name
    stale = tmp_path / "checkpoints" / ".deadbeef.pt.999999999.tmp"  # a half-written checkpoint of a dead process
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"partial")
    err = io.StringIO()
    results = run_sweep(sp, tmp_path, workers=1, threads=1, stream=err)
    assert [r["status"] for r in results] == ["finished", "finished"]
    assert not results[0].get("cached") and results[1].get("cached")  # a is redone, b is untouched
    assert "moved it to" in err.getvalue() and (tmp_path / "runs" / f"{a.name}.bad").exists()
    redone, first = json.loads(a.read_text()), json.loads(good)
    assert redone["run_id"] == first["run_id"] and redone["loss"] == first["loss"]  # the same run, bit for bit
    assert not stale.exists() and "partial checkpoint" in err.getvalue()


def _toml(spec: dict) -> str:
    """A flat sweep spec (base, base.model, grid) as TOML text."""
    lines = [f'name = "{spec["name"]}"', "[base]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in spec["base"].items() if k != "model"]
    lines += ["[base.model]"] + [f"{k} = {json.dumps(v)}" for k, v in spec["base"]["model"].items()]
    lines += ["[grid]"] + [f"{k} = {json.dumps(v)}" for k, v in spec["grid"].items()]
    return "\n".join(lines) + "\n"


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the worker processes")
@pytest.mark.parametrize("how", ["kill", "interrupt"])
def test_workers_do_not_outlive_their_sweep(data_dir, tmp_path, how):
    # a sweep killed with SIGKILL (workers notice within a second) or interrupted with SIGINT sent to it alone
    # (it stops them itself): no worker goes on training, and the next sweep resumes what was left
    import signal
    import subprocess
    import time

    spec = tmp_path / "spec.toml"
    tiny = _spec(data_dir, grid={"N": [3e3, 1.2e4], "D": [64 * 8000], "seeds": [0, 1]})  # runs of a few seconds
    tiny["base"]["max_epochs"] = 30.0
    spec.write_text(_toml(tiny))
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "2"]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(_children(parent.pid)) < 3:  # the queue's manager and 2 workers
        time.sleep(0.2)
    time.sleep(2)  # the workers are training now
    workers = _children(parent.pid)
    assert len(workers) >= 3, "the sweep started no worker processes"
    parent.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "a worker kept running after its sweep ended"
    if how == "interrupt":
        assert parent.returncode == 130


def test_a_run_another_process_is_training_is_left_to_it(data_dir, tmp_path):
    # the lock of one run is held (as by a concurrent sweep): this sweep trains the others, waits, and trains
    # the locked run itself only once its holder has let go without writing a record
    import threading
    import time

    from harness.records import run_paths
    from harness.runlock import RunLock

    sp = plan(_spec(data_dir), log=lambda s: None)
    other, err, result = sp.runs[1], io.StringIO(), []
    with RunLock(tmp_path, other.run_id):
        t = threading.Thread(target=lambda: result.extend(run_sweep(sp, tmp_path, workers=1, stream=err)))
        t.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "waiting for 1 run" not in err.getvalue():
            time.sleep(0.1)
        assert "waiting for 1 run" in err.getvalue()
        assert all(run_paths(tmp_path, r.run_id)[0].exists() for r in sp.runs if r is not other)
        time.sleep(0.5)
        assert not run_paths(tmp_path, other.run_id)[0].exists(), "a locked run was trained"
    t.join(timeout=120)
    assert not t.is_alive() and len(result) == 4
    assert run_paths(tmp_path, other.run_id)[0].exists()


def test_train_refuses_a_run_that_is_being_trained(data_dir, tmp_path, capsys):
    from harness.runlock import RunBusy, RunLock

    run = plan(_spec(data_dir), log=lambda s: None).runs[0]
    with RunLock(tmp_path, run.run_id):
        with pytest.raises(RunBusy, match=r"is being trained by pid \d+ on "):
            train(run.config, tmp_path, threads=1)
    assert train(run.config, tmp_path, threads=1)["status"] == "finished"  # released: it trains


def test_two_sweeps_on_one_out_folder_share_the_work(data_dir, tmp_path):
    import subprocess

    spec = tmp_path / "spec.toml"
    tiny = _spec(data_dir, grid={"N": [3e3, 1.2e4], "D": [64 * 600], "seeds": [0, 1]})  # runs of about a second
    tiny["base"]["max_epochs"] = 10.0
    spec.write_text(_toml(tiny))
    out = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--out", out, "--workers", "1", "--threads", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = [ln for _, e in outs for ln in e.splitlines() if "val loss" in ln and "another process" not in ln]
    ids = [ln.split()[0] for ln in trained]
    assert len(list((tmp_path / "out" / "runs").glob("*.json"))) == 4
    assert len(ids) == 4 and len(set(ids)) == 4, f"a run was trained twice: {trained}"
