"""``scaling replicate NAME [--tier T]``: run a replication end to end and write ``results/NAME/TIER/``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError

SCRATCH = "runs/replicate"  # where a rerun's summaries go when the tier's results folder already holds some


def register(sub) -> None:
    p = sub.add_parser(
        "replicate",
        help="run replications and write their results (audit JSON, verdicts, figures)",
        description="Run one or more replications at a tier, print each verdict table, write results/NAME/TIER/.",
    )
    p.add_argument("names", nargs="*", help="replications to run")
    p.add_argument("--all", action="store_true", help="run every available replication")
    p.add_argument("--list", action="store_true", help="list replications and their tiers, then exit")
    p.add_argument("--tier", help="tier (default: each replication's default tier)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="run each replication's quickest end-to-end tier (what CI runs), e.g. kaplan's 'smoke'",
    )
    p.add_argument("--workers", type=int, default=None, help="training processes for tiers that train (default 2)")
    p.add_argument("--bootstrap", type=int, default=None, metavar="N", help="bootstrap resamples (default: the tier's)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the bootstrap resamples (default 0; training seeds are in the sweeps)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="results folder, run cache included (default: results/NAME/TIER)"
    )
    p.add_argument(
        "--update-results",
        action="store_true",
        help=(
            "replace the audit, verdicts and figures already in results/NAME/TIER (without it, a tier that has "
            f"them writes its new ones to {SCRATCH}/NAME/TIER and leaves the committed results as they are)"
        ),
    )
    p.set_defaults(func=run)


def run(args) -> int:
    """Run each named replication; with several (or --all), one that fails is reported and the others still run,
    and the exit status is 1 if any failed."""
    from ..replication import available, get

    if args.list:
        for name in available():
            rep = get(name)
            print(f"{name}: {rep.title}")
            for t in rep.tiers.values():
                mark = " (default)" if t.name == rep.default_tier else ""
                print(f"    {t.name}{mark}: {t.description}")
        return 0
    names = available() if args.all else args.names
    if not names:
        raise UserError("name a replication, or pass --all (see --list)")
    if args.smoke and args.tier:
        raise UserError("--smoke and --tier are exclusive")
    # checked before any replication starts: a bad count would otherwise surface only once training begins
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be a positive whole number, got {args.workers}")
    if args.bootstrap is not None and args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0 (0: no bootstrap), got {args.bootstrap}")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    failed: dict[str, str] = {}
    for name in names:
        try:
            _replicate(name, args, args.out if len(names) == 1 else None)
        except Exception as exc:  # with several replications, one that fails does not stop the others
            if len(names) == 1:
                raise
            failed[name] = _failure(name, exc)
    if failed:
        print(f"{len(failed)} of {len(names)} replications failed:", file=sys.stderr)
        for name, why in failed.items():
            print(f"  {name}: {why}", file=sys.stderr)
        return 1
    return 0


def _replicate(name: str, args, out: Path | None) -> None:
    from ..replication import get

    if not args.smoke:
        return _replicate_tier(name, args.tier, args, out)
    tiers = get(name).smoke_tiers()
    for tier in tiers:  # several: each tier's results in its own folder below --out
        _replicate_tier(name, tier, args, out / tier if out is not None and len(tiers) > 1 else out)


def _replicate_tier(name: str, tier: str | None, args, out: Path | None) -> None:
    from ..claims import format_table
    from ..replication import audit, write_results

    a = audit(
        name,
        tier=tier,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        log=lambda s: print(s, file=sys.stderr),
        workers=args.workers,
        out_dir=out,
    )
    written = write_results(a, summary_dir(a.replication.name, a.tier, out, args))
    print(format_table(a.verdicts, f"{a.replication.title} — tier {a.tier}"))
    print(f"results written to {written} ({a.seconds:.1f} s)\n")


def _failure(name: str, exc: Exception) -> str:
    """One line saying why replication ``name`` failed; a bug (not a UserError) also gets its traceback."""
    if isinstance(exc, UserError):
        print(f"scaling replicate: {name}: error: {exc}", file=sys.stderr)
        return str(exc)
    import traceback

    print(f"scaling replicate: {name}: unexpected error (a bug; please report it):", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    return f"{type(exc).__name__}: {exc}"


def summary_dir(name: str, tier: str, out: Path | None, args) -> Path:
    """Where the audit, verdicts and figures go: ``--out``; else results/NAME/TIER unless it already holds an
    audit (committed results are replaced only with --update-results), in which case a scratch folder."""
    from ..provenance import REPO_ROOT
    from ..replication import RESULTS_DIR

    if out is not None:
        return out
    committed = RESULTS_DIR / name / tier
    if args.update_results or not (committed / "audit.json").exists():
        return committed
    scratch = REPO_ROOT / SCRATCH / name / tier
    print(
        f"{committed} already holds results: writing this run's to {scratch} instead (pass --update-results "
        "to replace them); new run records still go to the tier's run cache",
        file=sys.stderr,
    )
    return scratch
