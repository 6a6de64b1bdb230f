"""Claims and verdicts.

A claims file (TOML, one per replication) lists published claims. Each claim names the measured quantity it
is compared with; a replication computes measurements; this module turns the two into verdicts. A verdict is
always computed here, never read from the file: the ``recorded`` field of a claim is only the verdict last
verified by a person, which ``--strict`` compares against to catch regressions. A replication with several
judged tiers records one verdict per tier (``recorded = { cpu = "PASS", gpu = "FAIL" }``); a plain string is
the verdict on the replication's default tier.

Claim fields::

    [[claim]]
    id = "refit.beta"                      # stable identifier
    kind = "refit"                         # "refit" (paper's data and procedure) or "small-scale" (our runs)
    statement = "..."                      # one line
    citation = "Besiroglu et al. 2024, arXiv:2404.10102, Table 1"
    published = 0.3672                     # number, or true/false for a qualitative claim
    measured = "sum_fit.beta"              # key of the replication's measurement
    tolerance = { abs = 0.002 }            # or rel, ci, min, max, equals (below)
    why = "one line: why this width"
    recorded = "PASS"                      # optional: last verified verdict (regression guard), or per tier
    tiers = ["cpu", "gpu"]                 # optional: the tiers that judge it (default: every tier of its kind)

Tolerance kinds:

* ``abs`` / ``rel``: PASS when ``|measured - published| <= abs`` (or ``<= rel * |published|``).
* ``ci``: PASS when the published value lies inside the measured bootstrap interval at that level: "the
  paper's number is statistically consistent with its own data".
* ``min`` / ``max``: one-sided bound on the measured value (``published`` is then what the paper reports, and
  the bound is the claim's threshold). With a bootstrap interval the whole interval is judged: PASS when it lies
  on the claim's side of the bound, FAIL when it lies on the other, INCONCLUSIVE when it straddles the bound (a
  sign or threshold the data cannot settle is not a result either way). Without an interval, the value is.
* ``equals``: a qualitative claim, PASS when the measured boolean equals it.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

KINDS = ("refit", "small-scale")
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")
TOLERANCE_KINDS = ("abs", "rel", "ci", "min", "max", "equals")


@dataclass(frozen=True)
class Measurement:
    """A measured value with an optional bootstrap interval, or ``value=None`` with the reason it is missing."""

    value: float | bool | None
    ci: tuple[float, float] | None = None
    ci_level: float | None = None
    note: str = ""

    @classmethod
    def missing(cls, reason: str) -> Measurement:
        return cls(value=None, note=reason)


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str
    statement: str
    citation: str
    published: float | bool
    measured: str
    tolerance: dict[str, Any]
    why: str
    recorded: str | dict[str, str] | None = None  # a verdict (the default tier's) or {tier: verdict}
    notes: str = ""
    tiers: tuple[str, ...] | None = None  # the tiers that judge it; None: every tier of its kind

    def recorded_for(self, tier: str | None, default_tier: str | None = None) -> str | None:
        """The verdict recorded for ``tier``: a plain ``recorded`` string is the default tier's."""
        if isinstance(self.recorded, dict):
            return self.recorded.get(tier) if tier is not None else None
        return self.recorded if tier == default_tier else None

    @property
    def tolerance_text(self) -> str:
        ((k, v),) = self.tolerance.items()
        if k == "abs":
            return f"±{v:g}"
        if k == "rel":
            return f"±{100 * v:g}%"
        if k == "ci":
            return f"in {100 * v:g}% CI"
        if k == "min":
            return f">= {v:g}"
        if k == "max":
            return f"<= {v:g}"
        return f"== {v}"


@dataclass
class Verdict:
    claim: Claim
    measurement: Measurement
    verdict: str
    published_in_ci: bool | None
    reason: str = ""
    recorded: str | None = None  # the verdict recorded for the tier judged (see Claim.recorded_for)

    def to_json(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "id": self.claim.id,
            "kind": self.claim.kind,
            "statement": self.claim.statement,
            "citation": self.claim.citation,
            "published": self.claim.published,
            "measured": m.value,
            "ci": list(m.ci) if m.ci is not None else None,
            "ci_level": m.ci_level,
            "tolerance": dict(self.claim.tolerance),
            "tolerance_why": self.claim.why,
            "verdict": self.verdict,
            "published_in_ci": self.published_in_ci,
            "recorded": self.recorded,
            "reason": self.reason,
            "note": m.note,
        }


@dataclass
class ClaimsFile:
    path: Path
    replication: str
    title: str
    claims: list[Claim] = field(default_factory=list)

    def of_kind(self, kind: str, tier: str | None = None) -> ClaimsFile:
        """The claims of one kind ("refit" or "small-scale") that ``tier`` judges (any tier: ``None``): what a
        tier of that kind judges. A claim with ``tiers`` is judged only by those."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        keep = [c for c in self.claims if c.kind == kind and (tier is None or c.tiers is None or tier in c.tiers)]
        return ClaimsFile(self.path, self.replication, self.title, keep)


def load_claims(path: str | Path) -> ClaimsFile:
    """Parse and validate a claims file; every problem is reported with the claim id and file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"claims file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    meta = data.get("replication", {})
    out = ClaimsFile(path=path, replication=meta.get("name", path.parent.name), title=meta.get("title", ""))
    seen: set[str] = set()
    for i, raw in enumerate(data.get("claim", [])):
        where = f"{path}: claim #{i + 1} ({raw.get('id', '?')})"
        missing = [
            k
            for k in ("id", "kind", "statement", "citation", "published", "measured", "tolerance", "why")
            if k not in raw
        ]
        if missing:
            raise UserError(f"{where} is missing {', '.join(missing)}")
        if raw["id"] in seen:
            raise UserError(f"{where}: duplicate id")
        seen.add(raw["id"])
        if raw["kind"] not in KINDS:
            raise UserError(f"{where}: kind must be one of {KINDS}, got {raw['kind']!r}")
        tol = raw["tolerance"]
        if not isinstance(tol, dict) or len(tol) != 1 or next(iter(tol)) not in TOLERANCE_KINDS:
            raise UserError(f"{where}: tolerance must be a table with exactly one of {TOLERANCE_KINDS}")
        rec = raw.get("recorded")
        if isinstance(rec, dict):
            bad = {t: v for t, v in rec.items() if v not in VERDICTS}
            if bad or not rec:
                raise UserError(f"{where}: recorded must map tiers to one of {VERDICTS}, got {bad or rec!r}")
        elif rec not in (None, *VERDICTS):
            raise UserError(f"{where}: recorded must be one of {VERDICTS}, or a table of them by tier")
        if not str(raw["why"]).strip():
            raise UserError(f"{where}: every tolerance needs a one-line reason ('why')")
        tiers = raw.get("tiers")
        if tiers is not None and (
            not isinstance(tiers, list) or not tiers or not all(isinstance(t, str) for t in tiers)
        ):
            raise UserError(f"{where}: tiers must be a list of tier names, got {tiers!r}")
        out.claims.append(
            Claim(
                id=raw["id"],
                kind=raw["kind"],
                statement=raw["statement"],
                citation=raw["citation"],
                published=raw["published"],
                measured=raw["measured"],
                tolerance=dict(tol),
                why=raw["why"],
                recorded=dict(rec) if isinstance(rec, dict) else rec,
                notes=raw.get("notes", ""),
                tiers=tuple(tiers) if tiers is not None else None,
            )
        )
    if not out.claims:
        raise UserError(f"{path} defines no [[claim]] entries")
    return out


def judge(claim: Claim, m: Measurement | None) -> Verdict:
    """Compute the verdict of one claim from its measurement."""
    if m is None:
        return Verdict(claim, Measurement.missing("not measured"), "INCONCLUSIVE", None, "no measurement")
    if m.value is None:
        return Verdict(claim, m, "INCONCLUSIVE", None, m.note or "measurement missing")
    ((kind, tol),) = claim.tolerance.items()
    pub = claim.published
    in_ci = None
    if m.ci is not None and isinstance(pub, (int, float)) and not isinstance(pub, bool):
        in_ci = bool(m.ci[0] <= pub <= m.ci[1])
    if kind == "equals":
        ok = bool(m.value) == bool(tol)
        return Verdict(claim, m, "PASS" if ok else "FAIL", in_ci)
    value = float(m.value)
    if not math.isfinite(value):
        return Verdict(claim, m, "INCONCLUSIVE", in_ci, "measured value is not finite")
    if kind == "abs":
        ok = abs(value - float(pub)) <= float(tol)
    elif kind == "rel":
        ok = abs(value - float(pub)) <= float(tol) * abs(float(pub))
    elif kind in ("min", "max"):
        holds = (lambda x: x >= float(tol)) if kind == "min" else (lambda x: x <= float(tol))
        if m.ci is not None:  # one-sided claims are judged on the whole interval, not on the point alone
            lo, hi = m.ci
            if holds(lo) != holds(hi):
                why = f"the {_level(m)} interval [{lo:.4g}, {hi:.4g}] straddles the bound {float(tol):g}"
                return Verdict(claim, m, "INCONCLUSIVE", in_ci, why)
            ok = holds(lo) and holds(hi)
        else:
            ok = holds(value)
    else:  # ci
        if m.ci is None:
            return Verdict(claim, m, "INCONCLUSIVE", None, "no bootstrap interval to compare with")
        if m.ci_level is not None and abs(m.ci_level - float(tol)) > 1e-9:
            return Verdict(claim, m, "INCONCLUSIVE", in_ci, f"interval level {m.ci_level} is not the claim's {tol}")
        ok = bool(in_ci)
    return Verdict(claim, m, "PASS" if ok else "FAIL", in_ci)


def _level(m: Measurement) -> str:
    return f"{100 * m.ci_level:g}%" if m.ci_level else "bootstrap"


def judge_all(
    claims: ClaimsFile,
    measurements: dict[str, Measurement],
    tier: str | None = None,
    default_tier: str | None = None,
) -> list[Verdict]:
    """Every claim's verdict; each carries the verdict recorded for ``tier`` (``None``: the default tier's)."""
    tier = tier if tier is not None else default_tier
    out = []
    for c in claims.claims:
        v = judge(c, measurements.get(c.measured))
        v.recorded = c.recorded_for(tier, default_tier)
        out.append(v)
    return out


def regressions(verdicts: list[Verdict]) -> list[Verdict]:
    """Claims whose computed verdict differs from the one recorded (for the tier judged) in the claims file."""
    return [v for v in verdicts if v.recorded is not None and v.recorded != v.verdict]


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        x = float(x)
        if x == 0 or 1e-3 <= abs(x) < 1e5:
            return f"{x:.5g}"
        return f"{x:.3e}"
    return str(x)


def as_rows(verdicts: list[Verdict]) -> list[list[str]]:
    rows = []
    for v in verdicts:
        m = v.measurement
        ci = f"[{_fmt(m.ci[0])}, {_fmt(m.ci[1])}]" if m.ci is not None else "—"
        rows.append(
            [
                v.claim.id,
                v.claim.kind,
                _fmt(v.claim.published),
                _fmt(m.value),
                ci,
                v.claim.tolerance_text,
                v.verdict,
                _fmt(v.published_in_ci),
            ]
        )
    return rows


HEADER = ["claim", "kind", "published", "measured", "95% CI", "tolerance", "verdict", "published in CI"]


def format_table(verdicts: list[Verdict], title: str = "") -> str:
    rows = as_rows(verdicts)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADER)]  # no rows: the header
    line = "  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True))
    out = [title] if title else []
    out += [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    counts = {k: sum(v.verdict == k for v in verdicts) for k in VERDICTS}
    out.append(f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['INCONCLUSIVE']} INCONCLUSIVE")
    return "\n".join(out)


def format_markdown(verdicts: list[Verdict], title: str = "") -> str:
    rows = as_rows(verdicts)
    out = [f"### {title}", ""] if title else []
    out.append("| " + " | ".join(HEADER) + " |")
    out.append("|" + "---|" * len(HEADER))
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out.append("")
    out += [
        f"- **{v.claim.id}**: {v.claim.statement} ({v.claim.citation}). Tolerance: {v.claim.why.rstrip('.')}."
        + (f" Note: {v.measurement.note.rstrip('.')}." if v.measurement.note else "")
        for v in verdicts
    ]
    return "\n".join(out)


def format_json(replication: str, verdicts: list[Verdict], **extra: Any) -> str:
    return json.dumps({"replication": replication, "claims": [v.to_json() for v in verdicts], **extra}, indent=2)


__all__ = [
    "Claim",
    "ClaimsFile",
    "Measurement",
    "Verdict",
    "as_rows",
    "format_json",
    "format_markdown",
    "format_table",
    "judge",
    "judge_all",
    "load_claims",
    "regressions",
]
