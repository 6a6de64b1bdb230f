"""The seam between ``harness/`` and a replication folder.

A replication is a sub-package ``replications/<name>/`` whose ``__init__.py`` defines ``REPLICATION``, a
:class:`Replication`: its claims file, and one :class:`Tier` per scale at which it can be run (``refit`` for
an audit of published data; ``smoke`` / ``cpu`` / ``gpu`` for replications that train their own models).
A tier's ``measure`` callable returns the measurements its claims refer to, plus figures and tables to save.
Nothing in ``harness/`` names a particular paper: adding a fifth one is adding a folder.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .claims import ClaimsFile, Measurement, Verdict, judge_all, load_claims
from .errors import UserError
from .provenance import REPO_ROOT, provenance, write_json_atomic

RESULTS_DIR = REPO_ROOT / "results"


@dataclass
class TierContext:
    """What a tier's ``measure`` receives: where to write, how much to do, how to report progress."""

    tier: str
    out_dir: Path
    n_bootstrap: int
    seed: int = 0
    log: Callable[[str], None] = print


@dataclass
class TierResult:
    measurements: dict[str, Measurement]
    figures: dict[str, Any] = field(default_factory=dict)  # name -> matplotlib Figure
    artifacts: dict[str, Any] = field(default_factory=dict)  # name -> JSON-serialisable object
    inputs: dict[str, Any] = field(default_factory=dict)  # provenance of inputs (data sha256, run records)


@dataclass(frozen=True)
class Tier:
    """One scale at which a replication runs. ``sweeps`` are the tier's sweep specs (TOML paths); ``measure``
    typically calls :func:`run_tier_sweeps` first, then fits the records it returns."""

    name: str
    description: str
    measure: Callable[[TierContext], TierResult]
    default_bootstrap: int = 1000
    sweeps: tuple[Path, ...] = ()


def run_tier_sweeps(tier: Tier, ctx: TierContext, *, executor=None, workers: int | None = None) -> dict:
    """Run each of ``tier.sweeps`` into the tier's run cache, ``ctx.out_dir / "runs"``, and return each sweep's
    finished runs as a :class:`harness.runs.RunTable`, keyed by the sweep's name.

    Finished runs are skipped and interrupted ones resume from their checkpoints, so a tier too long for one
    sitting is run in pieces by calling this again; runs shared between sweeps are trained once. Failed runs
    are listed in each table's ``failed`` and never enter a fit.
    """
    from .runs import load_runs
    from .sweep import DEFAULT_WORKERS, load_spec, plan, run_sweep

    cache = ctx.out_dir / "runs"
    plans = []
    for path in tier.sweeps:
        spec = load_spec(path)
        plans.append(plan(spec, log=ctx.log))
    for sp in plans:
        run_sweep(sp, cache, executor=executor, workers=workers or DEFAULT_WORKERS, stream=sys.stderr)
    if not (cache / "runs").exists():
        raise UserError(f"the sweeps of tier {tier.name!r} produced no run records in {cache}")
    table = load_runs(cache)
    return {sp.name: table.subset([r.run_id for r in sp.runs]) for sp in plans}


@dataclass(frozen=True)
class Replication:
    name: str
    title: str
    citation: str
    claims_path: Path
    tiers: dict[str, Tier]
    default_tier: str

    def claims(self) -> ClaimsFile:
        return load_claims(self.claims_path)

    def tier(self, name: str | None) -> Tier:
        name = name or self.default_tier
        if name not in self.tiers:
            raise UserError(f"replication {self.name!r} has no tier {name!r}; tiers: {', '.join(self.tiers)}")
        return self.tiers[name]


def available() -> list[str]:
    import replications

    names = []
    for info in pkgutil.iter_modules(replications.__path__):
        if info.ispkg and hasattr(importlib.import_module(f"replications.{info.name}"), "REPLICATION"):
            names.append(info.name)
    return sorted(names)


def get(name: str) -> Replication:
    try:
        mod = importlib.import_module(f"replications.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"replications.{name}"):
            raise UserError(f"unknown replication {name!r}; available: {', '.join(available())}") from None
        raise
    rep = getattr(mod, "REPLICATION", None)
    if not isinstance(rep, Replication):
        raise UserError(f"replications.{name} does not define REPLICATION")
    return rep


@dataclass
class AuditResult:
    replication: Replication
    tier: str
    verdicts: list[Verdict]
    result: TierResult
    seconds: float


def audit(
    name: str,
    *,
    tier: str | None = None,
    n_bootstrap: int | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> AuditResult:
    """Measure a replication at a tier and judge its claims (writes nothing)."""
    rep = get(name)
    t = rep.tier(tier)
    claims = rep.claims()
    ctx = TierContext(
        tier=t.name,
        out_dir=out_dir or RESULTS_DIR / rep.name / t.name,
        n_bootstrap=t.default_bootstrap if n_bootstrap is None else n_bootstrap,
        seed=seed,
        log=log,
    )
    start = time.perf_counter()
    res = t.measure(ctx)
    verdicts = judge_all(claims, res.measurements)
    return AuditResult(rep, t.name, verdicts, res, time.perf_counter() - start)


def write_results(a: AuditResult, out_dir: Path | None = None) -> Path:
    """Write the audit JSON (with provenance), a markdown verdict table and the figures of one tier."""
    from .claims import format_markdown

    out = out_dir or RESULTS_DIR / a.replication.name / a.tier
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(inputs=a.result.inputs, seconds=round(a.seconds, 2))
    record = {
        "replication": a.replication.name,
        "tier": a.tier,
        "claims": [v.to_json() for v in a.verdicts],
        "artifacts": a.result.artifacts,
        "provenance": prov,
    }
    write_json_atomic(out / "audit.json", record)
    md = format_markdown(a.verdicts, f"{a.replication.title} — tier `{a.tier}`")
    (out / "verdicts.md").write_text(md + "\n")
    # figures carry their provenance in the PNG itself (readable with e.g. PIL's Image.open(f).text)
    png_meta = {
        "Software": f"scaling-harness {prov['packages'].get('scaling-harness', '')}",
        "Source": f"git {prov['git_commit']}",
        "Comment": json.dumps({k: prov[k] for k in ("git_commit", "packages", "created_utc", "inputs")}, default=str),
    }
    for fname, fig in a.result.figures.items():
        fig.savefig(out / f"{fname}.png", dpi=120, bbox_inches="tight", metadata=png_meta)
    return out
