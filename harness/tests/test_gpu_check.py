"""The GPU check (``python -m harness.benchmarks.gpu_check``), on CPU: its dry run goes through every step end to
end and writes only under --out and --bundle; without CUDA (and without --dry-run) it exits 2 and writes
nothing; a dry run refuses results/; a deadline too short skips steps but still leaves a summary; a step past
its slice is killed with its whole process group; and the parts that only a GPU run feeds with real numbers
(pytest's XML and log, the goals, the card's figures, the GPU sweep spec) are checked on made-up inputs.

The dry run goes in a subprocess: it sets TRITON_INTERPRET=1 for its steps, which must not leak into the kernel
tests of this pytest process (on a GPU machine they run compiled)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from harness.benchmarks import gpu_check as gc
from harness.data.corpus import default_tokens_dir

MODULE = "harness.benchmarks.gpu_check"
STEPS = ["tests", "kernels", "train_step", "sweep"]
GOALS = ["kernels vs PyTorch reference", "training-step MFU at 1e8 parameters", "packed small runs"]


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def _summary(out: Path) -> dict:
    (path,) = out.glob("gpu_check_*.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_only_under_out(tmp_path):
    out, bundle = tmp_path / "out", tmp_path / "bundle"
    results_before, runs_before = _snapshot(gc.RESULTS / "bench"), _snapshot(gc.ROOT / "runs")
    t0 = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(
        [sys.executable, "-m", MODULE, "--dry-run", "--out", str(out), "--bundle", str(bundle)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    took = time.monotonic() - t0
    assert took < 120, f"the dry run took {took:.0f} s"
    doc = _summary(out)
    assert doc["check"] == MODULE and doc["dry_run"] and doc["finished"]
    assert doc["card"]["name"] == "cpu (dry run)" and doc["card"]["bf16_peak_flops"] == gc.H100_BF16_DENSE_PEAK
    steps = {s["name"]: s for s in doc["steps"]}
    assert list(steps) == STEPS
    if not (default_tokens_dir() / "meta.json").exists():  # the check never downloads the corpus
        assert p.returncode == 1 and steps["sweep"]["status"] == "skipped", steps["sweep"]
        assert "the default corpus is not prepared" in steps["sweep"]["error"]
        pytest.skip("the default corpus is not prepared here (scaling corpus build): the sweep step was skipped")
    assert p.returncode == 0, p.stderr[-4000:]
    for s in doc["steps"]:
        assert s["status"] == "ok", s
        assert 0 < s["elapsed_s"] <= s["slice_s"] and (out / s["log"]).is_file()

    tests = steps["tests"]["result"]  # the gpu-marked tests, skipped on CPU, counted from pytest's XML
    assert tests["source"] == "junit xml" and tests["skipped"] > 0
    assert tests["passed"] == tests["failed"] == tests["errors"] == 0 and tests["failures"] == []

    rows = steps["kernels"]["result"]["rows"]
    assert {r["op"] for r in rows} == {"layer_norm", "rms_norm", "add_rms_norm", "linear_cross_entropy"}
    for r in rows:
        assert r["speedup"] > 0 and r["max_abs_err"] < 1e-4, r
        assert ("fwd_bwd_bandwidth" in r) == (r["op"] != "linear_cross_entropy")

    train = steps["train_step"]["result"]
    eager = [c for c in train["configs"] if c["mode"] == "eager"]
    assert {c["kernels"] for c in eager} == {"triton", "torch"} and all(c["mfu"] > 0 for c in eager)
    assert all("skipped" in c for c in train["configs"] if c["mode"] != "eager")
    assert {p["concurrency"] for p in train["packing"] if "runs_per_hour" in p} == {1, 2}

    sweep = steps["sweep"]["result"]
    assert sweep["spec"] == "harness/benchmarks/gpu_check_sweep_dry.toml" and len(sweep["runs"]) == 2
    for r in sweep["runs"]:  # written by the sweep machinery into --out
        assert r["status"] == "finished" and r["device"] == "cpu", r
        assert (out / "runs" / f"{r['run_id']}.json").is_file()
    assert (out / "sweeps" / "gpu-check-dry.json").is_file()

    goals = {g["name"]: g for g in doc["goals"]}
    assert list(goals) == GOALS
    for g in goals.values():  # values are computed, but a dry run measures nothing
        assert g["status"] == "not measured" and isinstance(g["value"], float), g
        assert "dry run" in g["detail"]

    md = next(out.glob("gpu_check_*.md")).read_text()
    assert "## Goals (reported, not asserted)" in md and md.count("| not measured |") == 3
    assert all(f"| {name} | ok |" in md for name in STEPS)

    # the bundle, for the device tool's $OUT: the summary and one archive of what the check wrote under --out
    names = sorted(p.name for p in bundle.iterdir())
    stem = names[0].rsplit(".", 1)[0]
    assert names == [f"{stem}.json", f"{stem}.md", f"{stem}.tar.gz"]
    with tarfile.open(bundle / f"{stem}.tar.gz") as tar:
        members = tar.getnames()
    wrote = {
        stem + ".json",
        stem + ".md",
        "sweeps/gpu-check-dry.json",
        *(f"runs/{r['run_id']}.json" for r in sweep["runs"]),
    }
    wrote |= {f for s in doc["steps"] for f in [s["log"], *s["files"]]}
    assert set(members) == wrote and any(m.startswith("kernels_") for m in members)

    assert _snapshot(gc.RESULTS / "bench") == results_before and _snapshot(gc.ROOT / "runs") == runs_before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_without_cuda_it_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gc, "DEFAULT_OUT", tmp_path / "results" / "bench" / "gpu")
    assert gc.main([]) == 2
    assert gc.main(["--out", str(tmp_path / "out"), "--bundle", str(tmp_path / "bundle")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no CUDA device" in err and "Nothing was run or written" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--out", "--bundle"])
def test_a_dry_run_refuses_to_write_under_results(flag, capsys):
    target = gc.RESULTS / "bench" / "gpu_check_dry_run_must_not_write_here"
    with pytest.raises(SystemExit) as exc:
        gc.main(["--dry-run", flag, str(target)])
    assert exc.value.code == 2
    assert "a dry run writes nothing under results/" in capsys.readouterr().err
    assert not target.exists()


def test_a_deadline_too_short_skips_the_steps_and_still_writes_the_summary(tmp_path):
    assert gc.main(["--dry-run", "--deadline-s", "15", "--out", str(tmp_path)]) == 1
    doc = _summary(tmp_path)
    assert doc["finished"] and [s["name"] for s in doc["steps"]] == STEPS
    for s in doc["steps"]:
        assert s["status"] == "skipped" and "of the deadline left" in s["error"] and s["command"] is None, s
    assert [(g["status"], g["value"]) for g in doc["goals"]] == [("not measured", None)] * 3
    assert "| tests | skipped: only" in next(tmp_path.glob("gpu_check_*.md")).read_text()


def test_a_step_past_its_slice_is_killed_with_its_process_group(tmp_path):
    """The step's own child (as a benchmark's worker or a sweep's pool process) goes too."""
    child = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"
    cmd = [sys.executable, "-c", f"{child}; print(p.pid, flush=True); time.sleep(60)"]
    log = tmp_path / "step.log"
    t0 = time.monotonic()
    assert gc.run_logged(cmd, dict(os.environ), log, timeout_s=3) is None
    assert time.monotonic() - t0 < 30
    pid = int(log.read_text().splitlines()[-1])
    for _ in range(50):  # gone, or a zombie waiting for its new parent to reap it
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "\nState:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the step's child {pid} outlived the step")


def test_a_hung_step_is_recorded_as_a_timeout_with_what_it_had_printed(tmp_path, monkeypatch):
    hang = "print('kernels/tests/test_gpu.py::test_a[bf16] PASSED', flush=True); import time; time.sleep(60)"
    monkeypatch.setitem(gc.STEP_FNS, "tests", (lambda ctx, s: [sys.executable, "-c", hang], "x", gc.tests_result))
    logs = tmp_path / "logs" / "now"
    logs.mkdir(parents=True)
    ctx = gc.Context(tmp_path, logs, False, gc.card_for("NVIDIA H200"), dict(os.environ))
    step = gc.plan_steps()[0]
    step.min_s = 1
    gc.run_step(ctx, step, slice_s=3)
    assert step.status == "timeout" and step.error.startswith("killed after its")
    assert step.elapsed_s < step.slice_s + 10 and step.log == "logs/now/tests.log"
    assert step.result["passed"] == 1 and step.result["source"] == "pytest log (no XML: cut off)"


def test_pytest_results_come_from_the_xml_or_from_the_log_of_a_cut_off_run(tmp_path):
    xml = tmp_path / "tests.xml"
    xml.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest">'
        '<testcase classname="kernels.tests.test_gpu" name="test_a[bf16]"/>'
        '<testcase classname="kernels.tests.test_gpu" name="test_b[bf16]"><failure message="assert 1 == 2">'
        "tb</failure></testcase>"
        '<testcase classname="kernels.tests.test_gpu" name="test_c"><error message="CUDA error: boom">tb</error>'
        "</testcase>"
        '<testcase classname="kernels.tests.test_norms" name="test_d"><skipped message="no"/></testcase>'
        "</testsuite></testsuites>"
    )
    got = gc.parse_junit(xml)
    assert (got["passed"], got["failed"], got["errors"], got["skipped"]) == (1, 1, 1, 1)
    assert got["failures"] == [
        {"test": "kernels.tests.test_gpu::test_b[bf16]", "kind": "failure", "message": "assert 1 == 2"},
        {"test": "kernels.tests.test_gpu::test_c", "kind": "error", "message": "CUDA error: boom"},
    ]
    log = "\n".join(
        [
            "kernels/tests/test_gpu.py::test_a[bf16] PASSED                   [  1%]",
            "kernels/tests/test_gpu.py::test_b[bf16] FAILED                   [  2%]",
            "[gw1] [  3%] SKIPPED kernels/tests/test_norms.py::test_d",  # pytest-xdist's form
            "[gw0] [  4%] PASSED kernels/tests/test_norms.py::test_e[fp16-8x1000]",
            "FAILED kernels/tests/test_gpu.py::test_b[bf16] - assert 1 == 2",  # the short summary: counted once
            "kernels/tests/test_gpu.py::test_f ",  # cut off while it ran
        ]
    )
    got = gc.parse_pytest_log(log)
    assert (got["passed"], got["failed"], got["errors"], got["skipped"]) == (2, 1, 0, 1)
    assert [f["test"] for f in got["failures"]] == ["kernels/tests/test_gpu.py::test_b[bf16]"]


def _kernel_records(ratio: dict[str, float]) -> dict:
    """gpu_kernels' records for one shape per op, ours ``ratio[op]`` times faster than eager (fwd+bwd)."""
    shapes = {"layer_norm": [8192, 1024], "rms_norm": [8192, 1024], "linear_cross_entropy": [8192, 768, 50257]}
    recs = []
    for op, shape in shapes.items():
        for impl, ms in (("eager", 1.0), ("triton", 1.0 / ratio[op])):
            err = {"out0": 1e-3, "grad0": 2e-3}
            recs.append({"op": op, "shape": shape, "dtype": "bfloat16", "impl": impl, "fwd_ms": ms / 3})
            recs[-1].update(fwd_bwd_ms=ms, peak_extra_mib=1.0, max_abs_err=err)
    recs.append({"op": "rms_norm", "shape": [8192, 1024], "dtype": "bfloat16", "impl": "compile", "error": "boom"})
    return {"records": recs}


def test_goals_are_judged_against_the_issue_and_the_card():
    card = gc.card_for("NVIDIA H200")
    rows = gc.kernel_rows(_kernel_records({"layer_norm": 2.0, "rms_norm": 1.5, "linear_cross_entropy": 1.31}), card)
    g = gc.kernel_goal(rows, dry_run=False)
    assert g.status == "met" and g.value == pytest.approx(1.31) and "linear_cross_entropy" in g.measured
    ln = next(r for r in rows if r["op"] == "layer_norm")  # 5 x 8192 x 1024 bf16 values moved in 0.5 ms
    assert ln["fwd_bwd_bandwidth"] == pytest.approx(5 * 8192 * 1024 * 2 / 0.5e-3)
    assert ln["bandwidth_fraction"] == pytest.approx(ln["fwd_bwd_bandwidth"] / 4.8e12)
    assert next(r for r in rows if r["op"] == "rms_norm")["errors"] == {"compile": "boom"}
    slow = gc.kernel_rows(_kernel_records({"layer_norm": 2.0, "rms_norm": 1.2, "linear_cross_entropy": 1.5}), card)
    assert gc.kernel_goal(slow, dry_run=False).status == "not met"
    assert gc.kernel_goal(slow, dry_run=True).status == "not measured"
    assert gc.kernel_goal([], dry_run=False).status == "not measured"

    configs = [
        {"size": "1e8", "mode": "eager", "kernels": "torch", "mfu": 0.31},
        {"size": "1e8", "mode": "compile", "kernels": "triton", "mfu": 0.43},
        {"size": "1e8", "mode": "compile", "kernels": "torch", "error": "timeout after 120 s"},
        {"size": "1e7", "mode": "eager", "kernels": "triton", "mfu": 0.55},  # another size: not the goal's
    ]
    g = gc.mfu_goal(configs, "1e8", dry_run=False)
    assert g.status == "met" and g.value == 0.43 and g.measured == "43.0 % (compile, kernels triton)"
    assert gc.mfu_goal(configs[:1], "1e8", dry_run=False).status == "not met"
    assert gc.mfu_goal(configs[3:], "1e8", dry_run=False).status == "not measured"

    packing = [
        {"mode": "eager", "concurrency": 1, "runs_per_hour": 100.0},
        {"mode": "eager", "concurrency": 4, "runs_per_hour": 280.0},
        {"mode": "cudagraph", "concurrency": 1, "runs_per_hour": 150.0},
        {"mode": "cudagraph", "concurrency": 4, "skipped": "time budget of 200 s used up"},
    ]
    g = gc.packing_goal(packing, dry_run=False)
    assert g.status == "not met" and g.value == pytest.approx(2.8) and "eager, 4 runs at once" in g.measured
    packing[3] = {"mode": "cudagraph", "concurrency": 4, "runs_per_hour": 480.0}
    assert gc.packing_goal(packing, dry_run=False).status == "met"


@pytest.mark.parametrize(
    ("name", "peak", "bandwidth", "known"),
    [
        ("NVIDIA H200", gc.H100_BF16_DENSE_PEAK, 4.8e12, True),
        ("NVIDIA H100 80GB HBM3", gc.H100_BF16_DENSE_PEAK, 3.35e12, True),
        ("NVIDIA H100 PCIe", 756e12, 2.0e12, True),
        ("NVIDIA A100-SXM4-80GB", 312e12, 2.039e12, True),
        ("Tesla T4", gc.H100_BF16_DENSE_PEAK, 3.35e12, False),
    ],
)
def test_the_card_figures_come_from_its_name_and_say_where_from(name, peak, bandwidth, known):
    card = gc.card_for(name)
    assert (card.name, card.bf16_peak_flops, card.mem_bandwidth) == (name, peak, bandwidth)
    assert card.source.startswith("unknown card") != known


def test_the_gpu_sweep_spec_is_valid_and_targets_the_gpu():
    from harness.sweep import expand, load_spec

    configs, dropped = expand(load_spec(gc.SWEEP_SPEC))
    assert dropped == [] and len(configs) == 4
    for cfg, _ in configs:
        assert (cfg.device, cfg.precision, cfg.data, cfg.model.kernels) == ("cuda", "bf16", "default", "auto")
        assert cfg.tokens <= 6.6e6  # under one epoch of the default corpus's training split


def test_the_sweep_step_says_why_when_the_default_corpus_is_not_prepared(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "empty-cache"))
    why = gc.sweep_data_missing(gc.SWEEP_SPEC_DRY)
    assert why is not None and str(default_tokens_dir()) in why and "downloads nothing" in why
    assert not (tmp_path / "empty-cache").exists()
