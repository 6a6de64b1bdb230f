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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .claims import KINDS, ClaimsFile, Measurement, Verdict, judge_all, load_claims
from .data.published import PublishedDataset
from .errors import UserError
from .progress import ProgressFn, ProgressLine, no_progress
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
    train: bool = True  # False: read the tier's committed run records, never train (``scaling audit``)
    sweeps: tuple[Path, ...] = ()  # the tier's sweep specs (filled in from :attr:`Tier.sweeps`)
    workers: int | None = None  # training processes (None: the sweep module's default)
    replication: str = "NAME"  # for messages
    show_progress: bool = True  # False: long steps draw no progress line (``--format json``)

    def progress(self, label: str) -> ProgressFn:
        """The ``progress(done, total)`` callback of one long step (a bootstrap, a multi-start fit): a line on
        stderr that a terminal redraws in place and a log file gets a few plain lines of."""
        return ProgressLine(f"{self.replication}: {label}") if self.show_progress else no_progress


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
    # False for a pipeline check (e.g. a ``smoke`` tier of tiny models): its numbers are shown, but every verdict
    # is INCONCLUSIVE, because passing or failing a published claim at that scale would mean nothing
    judged: bool = True
    # which claims of the file the tier judges: "refit" (the paper's data and procedure) or "small-scale" (our
    # own runs). The two kinds are never mixed: a replication with both has a tier of each.
    kind: str = "small-scale"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"tier {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


def run_tier_sweeps(ctx: TierContext, *, executor=None, workers: int | None = None) -> dict:
    """Run each of the tier's sweeps (``ctx.sweeps``) into the tier's run cache ``ctx.out_dir`` and return
    each sweep's finished runs as a :class:`harness.runs.RunTable`, keyed by the sweep's name.

    The tier's runs go through one pool, longest first, and runs shared between sweeps are trained once.
    Finished runs are skipped and interrupted ones resume from their checkpoints, so a tier too long for one
    sitting is run in pieces by calling this again. Failed runs are listed in each table's ``failed`` and never
    enter a fit. With ``ctx.train`` false nothing is trained: the records are read back through the sweeps'
    manifests (see :func:`load_tier_sweeps`).
    """
    if not ctx.train:
        return load_tier_sweeps(ctx)
    from .sweep import DEFAULT_WORKERS, SweepPlan, load_spec, plan, run_sweep, write_manifest

    plans = [plan(load_spec(path), log=ctx.log) for path in ctx.sweeps]
    unique = {}
    for sp in plans:
        write_manifest(sp, ctx.out_dir)
        for r in sp.runs:
            unique.setdefault(r.run_id, replace(r, origin=f"{sp.name}: {r.origin}"))
    dropped = [d for sp in plans for d in sp.dropped]
    whole = SweepPlan(f"tier-{ctx.tier}", list(unique.values()), dropped)
    workers = workers or ctx.workers or DEFAULT_WORKERS
    try:
        run_sweep(whole, ctx.out_dir, executor=executor, workers=workers, stream=sys.stderr)
    finally:
        for sp in plans:  # each sweep's manifest now lists the hashes of its records
            write_manifest(sp, ctx.out_dir)
    return load_tier_sweeps(ctx)


def load_tier_sweeps(ctx: TierContext) -> dict:
    """The finished runs of each of the tier's sweeps (``ctx.sweeps``), read from ``ctx.out_dir`` without
    training, data, models or torch.

    Each sweep's manifest (written when it ran) names its runs and the sha256 of the spec they were planned
    from: a spec edited since is refused rather than its old records silently used. Every record is verified
    against its own content hash, its identity and the hash the manifest lists for it (see harness.records).
    """
    from .records import load_spec, manifest_records, read_manifest, spec_digest
    from .runs import table_of

    how = f"run 'scaling replicate {ctx.replication} --tier {ctx.tier}' to train them"
    out: dict = {}
    for path in ctx.sweeps:
        spec = load_spec(path)
        name = spec["name"]
        manifest = read_manifest(ctx.out_dir, name)
        if manifest is None:
            raise UserError(f"no records of sweep {name!r} in {ctx.out_dir}; {how}")
        if manifest["spec_sha256"] != spec_digest(spec):
            raise UserError(f"sweep {name!r} in {path} has changed since its records in {ctx.out_dir} were made; {how}")
        recs = manifest_records(ctx.out_dir, manifest)
        n_missing = len(manifest["runs"]) - len(recs)
        if n_missing:
            raise UserError(f"sweep {name!r}: {n_missing} of {len(manifest['runs'])} runs have no record yet; {how}")
        out[name] = table_of(recs)
    return out


@dataclass(frozen=True)
class Replication:
    name: str
    title: str
    citation: str
    claims_path: Path
    tiers: dict[str, Tier]
    default_tier: str  # the tier whose verdicts the claims file records (``scaling audit`` without --tier)
    # the quickest end-to-end tier, or tiers (``scaling replicate --smoke``, CI): a replication with a refit and a
    # trained tier names both, so CI pushes each kind of claim through its whole pipeline
    smoke_tier: str | tuple[str, ...] | None = None
    datasets: tuple[PublishedDataset, ...] = ()  # published data it audits (``scaling data list`` / ``fetch``)

    def claims(self) -> ClaimsFile:
        return load_claims(self.claims_path)

    def smoke_tiers(self) -> tuple[str, ...]:
        """The tiers ``scaling replicate --smoke`` runs: :attr:`smoke_tier`, else the default tier."""
        if self.smoke_tier is None:
            return (self.default_tier,)
        return (self.smoke_tier,) if isinstance(self.smoke_tier, str) else tuple(self.smoke_tier)

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


def registered_datasets() -> dict[str, PublishedDataset]:
    """Every data set the replications declare, by name, in the order of the replications.

    Filled from the replications themselves (``replications/<name>/``, each one's ``Replication.datasets``),
    so a new paper's data is found by adding its folder, never by editing the harness. Two different data sets
    under one name would share a cache folder, so that is an error rather than one silently hiding the other.
    """
    out: dict[str, PublishedDataset] = {}
    owner: dict[str, str] = {}
    at: dict[str, str] = {}  # cache path -> data set name
    for rep_name in available():  # imports each replication package
        for ds in get(rep_name).datasets:
            if ds.name in out and out[ds.name] != ds:
                raise UserError(
                    f"replications {owner[ds.name]!r} and {rep_name!r} declare different data sets named {ds.name!r}"
                )
            if at.get(ds.relpath, ds.name) != ds.name:
                raise UserError(f"data sets {at[ds.relpath]!r} and {ds.name!r} would share the cache file {ds.relpath}")
            out.setdefault(ds.name, ds)
            owner.setdefault(ds.name, rep_name)
            at.setdefault(ds.relpath, ds.name)
    return out


def find_dataset(name: str) -> PublishedDataset:
    """The data set a replication declares under ``name`` (see :func:`registered_datasets`)."""
    known = registered_datasets()
    try:
        return known[name]
    except KeyError:
        raise UserError(f"unknown data set {name!r}; known: {', '.join(sorted(known)) or 'none'}") from None


@dataclass
class AuditResult:
    replication: Replication
    tier: str
    verdicts: list[Verdict]
    result: TierResult
    seconds: float

    def close_figures(self) -> None:
        """Release the tier's matplotlib figures (pyplot keeps every figure alive until it is closed)."""
        import matplotlib.pyplot as plt

        for fig in self.result.figures.values():
            plt.close(fig)


def audit(
    name: str,
    *,
    tier: str | None = None,
    n_bootstrap: int | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
    train: bool = True,
    workers: int | None = None,
    show_progress: bool = True,
) -> AuditResult:
    """Measure a replication at a tier and judge its claims. With ``train`` a tier that trains models runs its
    missing runs into its run cache (and writes nothing else); without, it only reads the records there."""
    rep = get(name)
    t = rep.tier(tier)
    claims = rep.claims()
    ctx = TierContext(
        tier=t.name,
        out_dir=out_dir or RESULTS_DIR / rep.name / t.name,
        n_bootstrap=t.default_bootstrap if n_bootstrap is None else n_bootstrap,
        seed=seed,
        log=log,
        train=train,
        sweeps=t.sweeps,
        workers=workers,
        replication=rep.name,
        show_progress=show_progress,
    )
    start = time.perf_counter()
    res = t.measure(ctx)
    verdicts = judge_all(claims.of_kind(t.kind, t.name), res.measurements, t.name, rep.default_tier)
    if not t.judged:
        why = f"tier {t.name!r} is a pipeline check, not judged: {t.description}"
        verdicts = [
            Verdict(v.claim, v.measurement, "INCONCLUSIVE", v.published_in_ci, why, v.recorded) for v in verdicts
        ]
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
    a.close_figures()
    return out
