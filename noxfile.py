"""Developer and CI sessions.  ``nox -l`` lists them; only ``tests`` runs by default.

Every session installs the project with pip. On a machine without a GPU, keep pip from pulling a
multi-GB CUDA build of torch by pointing pip at a CPU wheel, e.g. ``PIP_CONSTRAINT=.ci/constraints.txt``
(CI does exactly that); users with a GPU install whatever torch build suits them.

    nox -s tests                  # unit tests (CPU; Triton kernels under TRITON_INTERPRET=1)
    nox -s lint                   # ruff check + format check
    nox -s notebooks              # execute every notebook, 300 s per cell at most
    nox -s bench                  # pytest-benchmark benchmarks, side by side with their baselines
    nox -s replicate              # every replication at its default tier
    nox -s replicate -- chinchilla  # only the named ones
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "venv"
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


def _install(session: nox.Session, *groups: str) -> None:
    reqs = [r for g in groups for r in nox.project.dependency_groups(PYPROJECT, g)]
    session.install("-e", ".", *reqs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the unit tests."""
    _install(session, "test")
    session.run("pytest", *session.posargs, env=_env())


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def notebooks(session: nox.Session) -> None:
    """Execute every notebook in notebooks/ (they read committed results, so each takes seconds)."""
    _install(session, "test")
    session.install("nbmake>=1.5")
    session.run(
        "pytest",
        "--nbmake",
        "--nbmake-timeout=300",
        "-p",
        "no:cacheprovider",
        "notebooks",
        *session.posargs,
        env=_env(),
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (pytest-benchmark), each next to its plain baseline; ratios are printed at the end."""
    _install(session, "test")
    session.run(
        "pytest",
        "harness/benchmarks",
        "-o",
        "python_files=bench_*.py",
        "--benchmark-only",
        "--benchmark-columns=mean,stddev,rounds",
        "-s",
        *session.posargs,
        env=_env(),
    )


@nox.session(default=False)
def replicate(session: nox.Session) -> None:
    """Run every replication (or those named after --) at its default tier and print the verdicts."""
    _install(session)
    names = session.posargs or ["--all"]
    session.run("scaling", "replicate", *names, env=_env())
