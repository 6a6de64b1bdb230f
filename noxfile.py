"""Developer and CI sessions.  ``nox -l`` lists them; only ``tests`` runs by default.

Every session installs the project with pip. On a machine without a GPU, keep pip from pulling a
multi-GB CUDA build of torch by pointing pip at a CPU wheel, e.g. ``PIP_CONSTRAINT=.ci/constraints.txt``
(CI does exactly that); users with a GPU install whatever torch build suits them.

    nox -s tests                  # unit tests (CPU; Triton kernels under TRITON_INTERPRET=1)
    nox -s lint                   # ruff check + format check
    nox -s notebooks              # execute every notebook, 300 s per cell at most
    nox -s bench                  # pytest-benchmark benchmarks, side by side with their baselines
    nox -s fuzz                   # ~200 bad inputs at the CLI and API; prints how many were refused cleanly
    nox -s replicate              # every replication at its quickest tier (its smoke tier, else its refit)
    nox -s replicate -- kaplan --tier cpu  # arguments after -- go to 'scaling replicate'
    nox -s gpu                    # the GPU check in one command (~7.5 min on one H100/H200; needs CUDA)
    nox -s gpu -- --dry-run       # the same steps on CPU (~1 min on 2 cores), into a temp folder
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "venv"  # lint only; the other sessions share .nox/shared (below)
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
SHARED_DATA = ROOT.parent / "shared" / "data"


def _env() -> dict[str, str]:
    """Point the published-data cache at ../shared/data when it exists (developer and CI machines)."""
    env = {"PYTHONHASHSEED": "0"}
    if "SCALING_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
        env["SCALING_DATA_DIR"] = str(SHARED_DATA)
    return env


SHARED_VENV = ROOT / ".nox" / "shared"


def _shared_env(session: nox.Session, *groups: str, extras: str = "kernels") -> Path:
    """One virtualenv for every session that needs the package (tests, notebooks, bench, replicate), so torch
    is installed once. Created on first use, then only topped up; returns its bin/ folder."""
    bindir = SHARED_VENV / ("Scripts" if sys.platform == "win32" else "bin")
    if not (bindir / "python").exists() and not (bindir / "python.exe").exists():
        session.run(sys.executable, "-m", "venv", str(SHARED_VENV), external=True)
    reqs = [r for g in groups for r in nox.project.dependency_groups(PYPROJECT, g)]
    # the kernels extra brings Triton, whose kernels the tests run on CPU under TRITON_INTERPRET=1
    target = f".[{extras}]" if extras else "."
    session.run(str(bindir / "python"), "-m", "pip", "install", "-q", "-e", target, *reqs, external=True)
    return bindir


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the unit tests (kernels under the Triton CPU interpreter when there is no GPU)."""
    bindir = _shared_env(session, "test")
    session.run(str(bindir / "pytest"), *session.posargs, env=_env(), external=True)


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(venv_backend="none", default=False)
def notebooks(session: nox.Session) -> None:
    """Execute every notebook in notebooks/ (each takes well under a minute)."""
    bindir = _shared_env(session, "test", "notebooks")
    session.run(
        str(bindir / "pytest"),
        "--nbmake",
        "--nbmake-timeout=300",
        "-p",
        "no:cacheprovider",
        "notebooks",
        *session.posargs,
        env=_env(),
        external=True,
    )


@nox.session(venv_backend="none", default=False)
def fuzz(session: nox.Session) -> None:
    """Every bad input of harness/tests/test_fuzz.py (also part of ``tests``), with its tally printed."""
    bindir = _shared_env(session, "test")
    session.run(
        str(bindir / "pytest"), "-p", "no:cacheprovider", "-s", "harness/tests/test_fuzz.py", env=_env(), external=True
    )


@nox.session(venv_backend="none", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (pytest-benchmark), each next to its plain baseline; ratios are printed at the end."""
    bindir = _shared_env(session, "test")
    session.run(
        str(bindir / "pytest"),
        "harness/benchmarks",
        "-o",
        "python_files=bench_*.py",
        "--benchmark-only",
        "--benchmark-columns=mean,stddev,rounds",
        "-s",
        *session.posargs,
        env=_env(),
        external=True,
    )


@nox.session(venv_backend="none", default=False)
def replicate(session: nox.Session) -> None:
    """Run every replication at its quickest end-to-end tier (kaplan: smoke; chinchilla: refit) and print the
    verdicts; arguments after -- go to 'scaling replicate' instead (e.g. -- kaplan --tier cpu)."""
    bindir = _shared_env(session)
    names = session.posargs or ["--all", "--smoke"]
    session.run(str(bindir / "scaling"), "replicate", *names, env=_env(), external=True)


@nox.session(venv_backend="none", default=False)
def arena(session: nox.Session) -> None:
    """The architecture arena at its smoke tier (the tier's default architectures against the GPT); arguments
    after -- go to 'scaling arena' instead (e.g. -- mamba rwkv --tier cpu)."""
    bindir = _shared_env(session)
    args = session.posargs or ["--tier", "smoke"]
    session.run(str(bindir / "scaling"), "arena", *args, env=_env(), external=True)


@nox.session(venv_backend="none", default=False)
def gpu(session: nox.Session) -> None:
    """The GPU check (harness/benchmarks/gpu_check.py): GPU tests, kernel and training-step benchmarks, a small
    GPU sweep and the issue's goals, with a hard deadline; arguments after -- go to it (e.g. -- --dry-run)."""
    bindir = _shared_env(session, "test")
    session.run(
        str(bindir / "python"), "-m", "harness.benchmarks.gpu_check", *session.posargs, env=_env(), external=True
    )
