"""The architecture arena: train an architecture fairly next to a Transformer baseline and compare their laws.

The protocol, the same for every entrant (``scaling arena ARCH ... --baseline gpt --tier T``):

1. **Fair learning rate.** Architectures differ in their best learning rate, and comparing them at one rate is
   the classic confound (zoology and MAD-lab sweep it per architecture). At each of the tier's ``lr_sizes`` the
   entrant trains at ``tuned_lr(N) x f`` for every factor ``f`` in ``lr_factors`` (the ``tuned`` recipe's rule,
   fitted on the GPT, is only the centre of the grid). Each size's optimum is the vertex of a parabola in
   ``log lr`` through the best point and its neighbours (:func:`harness.recipe_fit.size_optimum`); the
   entrant's own rule ``log lr*(N)`` is the straight line in ``log N`` through those optima (one optimum:
   the same factor at every size). An optimum on the edge of the grid is not an optimum: the grid is extended
   one step (the grid's own ratio) beyond that edge, at most ``LR_EXTEND`` times per size, and an optimum
   still on the edge after that is used as is and flagged. Every extension is noted in ``arena.json``.
2. **Size sweep.** Each of the tier's ``sizes`` (target Kaplan N, through the entrant's own shape policy)
   trains ``tokens_per_param x N_active`` tokens (a fixed tokens-per-parameter ratio, N counting every
   parameter a token passes through, embeddings included, as Hoffmann et al. count N) at the entrant's rule's
   learning rate, once per seed, with the ``tuned`` recipe's warmup, cosine and AdamW settings. The run cache
   is content-addressed, so re-running resumes and shares every run already made.
3. **Fits.** Per entrant, the final validation loss against training compute C (Hoffmann et al. App. F
   FLOPs: every matmul, attention and embeddings included, forward + backward; for a sparse model the active
   path) is fitted by the power law ``L = A C^-alpha`` and, with at least four distinct sizes,
   ``L = E + A C^-alpha`` (:class:`harness.fit.ScalingLaw`, bootstrap intervals over runs).
4. **Gap to the baseline.** At each of the entrant's runs, the gap is its loss minus the baseline's power law
   at the same compute (fitted by least squares in log-log space; a point outside the baseline's compute range
   is an extrapolation and is flagged). The *trend* is the least-squares slope of the gap against log10 C, in
   nats per decade of compute, with a 95 % bootstrap interval (runs of both entrants resampled, the baseline
   law refitted each time).
5. **Verdict**, computed from the trend's interval: ``better`` (the whole interval below zero: the gap shrinks,
   or the lead grows, with compute), ``worse`` (the whole interval above zero), ``same`` (the interval inside
   +-``SAME_BAND``), otherwise ``inconclusive`` (more sizes or seeds would decide it). ``worse`` becomes
   ``plateaus`` when the entrant's own loss falls by less than ``PLATEAU_FRACTION`` of what the baseline's
   falls per decade over the same compute. The gap's level (at the entrant's median compute) is reported
   beside the verdict: an entrant can scale the same and sit 0.2 nats above.

Both views are plotted (``arena.png``): loss against compute (equal FLOPs) and against active parameters
(equal N), with the gap per run. ``arena.json`` holds every number (the protocol, the tier, each entrant's
learning-rate table and rule, runs, fits, gaps, trend and verdict).

An entrant is a registered model name (``transformer_pp``), an import path of a
:class:`~harness.models.LanguageModel` subclass, or an import path of any factory
``(vocab_size, n_ctx, size) -> nn.Module`` returning logits (see :mod:`harness.models.factory`).
Tiers are in ``TIERS``: ``smoke`` is a pipeline check (CI, not judged), ``cpu`` and ``gpu`` are the real ones.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

SAME_BAND = 0.02  # nats per decade of compute: ~10 % of the baseline's own slope at our scales (0.1-0.3 nats
# per decade in the Kaplan and Chinchilla cpu tiers), below which a difference in trend is not worth a verdict
PLATEAU_FRACTION = 1 / 3  # an entrant improving by under a third of the baseline's rate per decade has levelled off
BOOTSTRAP = 1000
LR_EXTEND = 2  # extra rates tried beyond an edge optimum, per size: two grid steps (4x at the cpu tier's ratio 2)
# cover the optima we have seen sit past a 16x grid, and bound what a diverging entrant can cost
FLOP_CONVENTION = (
    "C = (FLOPs per token) x D with Hoffmann et al. (2022) App. F's count of every matmul of the model, embeddings, "
    "attention logits and softmax included, forward x 3; a sparse model counts the path one token takes"
)
N_CONVENTION = "N_active: parameters one token passes through, embeddings included (= all parameters if dense)"
LEVEL = 0.95


@dataclass(frozen=True)
class ArenaTier:
    """How much the arena trains. Sizes are target Kaplan N, each through the entrant's own shape policy."""

    name: str
    description: str
    sizes: tuple[float, ...]
    lr_sizes: tuple[float, ...]
    lr_factors: tuple[float, ...]
    tokens_per_param: float
    seeds: tuple[int, ...] = (0,)
    data: str = "default"
    tokenizer: str = "byte"
    n_ctx: int = 128
    batch_tokens: int = 4096
    eval_points: int = 8
    eval_tokens: int = 32768
    default_entrants: tuple[str, ...] = ()
    judged: bool = True
    max_epochs: float = 1.0
    # the IsoFLOP option (``--isoflop``): at each budget, every size in ``isoflop_sizes`` with D = C / (FLOPs per
    # token); the best loss per budget (parabola vertex in log N, else the grid minimum) is the frontier point
    isoflop_budgets: tuple[float, ...] = ()
    isoflop_sizes: tuple[float, ...] = ()

    def train_base(self) -> dict[str, Any]:
        return {
            "recipe": "tuned",
            "data": self.data,
            "tokenizer": self.tokenizer,
            "batch_tokens": self.batch_tokens,
            "eval_points": self.eval_points,
            "eval_tokens": self.eval_tokens,
            "eval_sample": "spread",
            "max_epochs": self.max_epochs,
        }


# Byte-level tokens for every tier: at CPU scale a 4,096-entry vocabulary's embedding and output layer would be
# most of every model's parameters and FLOPs, so the comparison would measure the shared head, not the
# architectures; with 256 ids the blocks are most of the compute from N ~ 1e4 up.
TIERS: dict[str, ArenaTier] = {
    "smoke": ArenaTier(
        "smoke",
        "pipeline check for CI (not judged): 3 tiny sizes, a 3-point learning-rate sweep at 2 of them, 5 tokens "
        "per parameter, 64-token context",
        sizes=(2e3, 6e3, 1.8e4),
        lr_sizes=(2e3, 1.8e4),
        lr_factors=(0.5, 1.0, 2.0),
        tokens_per_param=5,
        n_ctx=64,
        batch_tokens=1024,
        eval_points=4,
        eval_tokens=8192,
        default_entrants=("transformer_pp", "lstm"),
        judged=False,
    ),
    "cpu": ArenaTier(
        "cpu",
        "4 sizes over 1.5 decades of N (about 2.5 decades of compute), 20 tokens per parameter (Hoffmann et al.'s "
        "ratio), a 5-point learning-rate sweep at 2 sizes; about 15-20 process-minutes per entrant",
        sizes=(1e4, 3e4, 1e5, 3e5),
        lr_sizes=(1e4, 1e5),
        lr_factors=(0.25, 0.5, 1.0, 2.0, 4.0),
        tokens_per_param=20,
        default_entrants=("transformer_pp", "lstm", "mamba", "rwkv", "switch"),
        isoflop_budgets=(1e12, 3e12, 1e13),
        isoflop_sizes=(1e4, 3e4, 1e5, 3e5),
    ),
    "gpu": ArenaTier(
        "gpu",
        "6 sizes over 2.5 decades of N, 20 tokens per parameter, 5-point learning-rate sweeps at 3 sizes, 2 seeds "
        "(planned for a lent GPU; several epochs of the default corpus at the top size)",
        sizes=(1e5, 3e5, 1e6, 3e6, 1e7, 3e7),
        lr_sizes=(1e5, 1e6, 1e7),
        lr_factors=(0.25, 0.5, 1.0, 2.0, 4.0),
        tokens_per_param=20,
        seeds=(0, 1),
        n_ctx=256,
        batch_tokens=16384,
        default_entrants=("transformer_pp", "lstm", "mamba", "rwkv", "switch", "hybrid"),
        max_epochs=40.0,
        isoflop_budgets=(1e15, 3e15, 1e16),
        isoflop_sizes=(1e5, 3e5, 1e6, 3e6, 1e7),
    ),
}


# ------------------------------------------------------------------------------------------------ entrants
@dataclass(frozen=True)
class Entrant:
    """What one contender is: a label for tables and the flat model table (without its shape)."""

    label: str
    model: dict[str, Any]

    @property
    def slug(self) -> str:
        """The label as a sweep name may spell it (letters, digits, '.', '_', '-')."""
        return "".join(c if c.isalnum() or c in "._-" else "." for c in self.label).strip(".") or "entrant"


def entrant(spec: str) -> Entrant:
    """A registered model name, a ``pkg.mod:Class`` LanguageModel, or a ``pkg.mod:factory`` (any callable)."""
    from .models import model_class
    from .models.factory import resolve_factory

    if not isinstance(spec, str) or not spec:
        raise UserError(f"an architecture is a registered model name or an import path, got {spec!r}")
    try:
        model_class(spec)
        return Entrant(spec, {"name": spec})
    except UserError:
        if ":" not in spec:
            raise
    resolve_factory(spec)  # a UserError if it is not importable or not callable
    return Entrant(spec, {"name": "factory", "factory": spec})


def check_causal(ent: Entrant, tier: ArenaTier, size: float) -> None:
    """Refuse an entrant whose logits at a position depend on later tokens (measured on a random batch)."""
    import torch

    from .models import ModelConfig, build_model, shape_for_n

    cfg = ModelConfig.from_dict({**_model_table(ent, tier), **shape_for_n(size, ent.model["name"])})
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        T, V = cfg.n_ctx, cfg.vocab_size
        x = torch.randint(0, V, (2, T))
        x2 = x.clone()
        t = T // 2
        x2[:, t:] = (x2[:, t:] + 1) % V
        with torch.no_grad():
            a, b = model.logits(x), model.logits(x2)
    finally:
        torch.random.set_rng_state(state)
    leak = (a[:, :t] - b[:, :t]).abs().max().item()
    if not math.isfinite(leak) or leak > 1e-5 * max(1.0, a.abs().max().item()):
        raise UserError(
            f"{ent.label} is not causal: changing tokens from position {t} on moved a logit before it by {leak:.3g}; "
            "a language model's logits at position t may depend on tokens 0..t only"
        )


def _model_table(ent: Entrant, tier: ArenaTier) -> dict[str, Any]:
    return {**ent.model, "n_ctx": tier.n_ctx, "vocab_size": 256 if tier.tokenizer == "byte" else 4096}


# ------------------------------------------------------------------------------------------------ planning
def _size_config(ent: Entrant, tier: ArenaTier, n: float, lr: float, seed: int):
    """The run of ``ent`` at target size ``n``: its shape, ``tokens_per_param x N_active`` tokens (whole batches)."""
    from .config import TrainConfig
    from .models import ModelConfig, model_counts, shape_for_n

    model = {**_model_table(ent, tier), **shape_for_n(n, ent.model["name"])}
    counts = model_counts(ModelConfig.from_dict(model))
    tokens = max(1, int(tier.tokens_per_param * counts.n_active // tier.batch_tokens)) * tier.batch_tokens
    return TrainConfig.from_dict({**tier.train_base(), "model": model, "tokens": tokens, "lr": lr, "seed": seed})


def _round_lr(lr: float) -> float:
    """Four significant digits: a rate the rule gives equal to a swept one is the same run (one cache entry)."""
    return float(f"{lr:.4g}")


def lr_grid(tier: ArenaTier, n: float) -> list[float]:
    from .recipes import tuned_lr

    return [_round_lr(tuned_lr(n) * f) for f in tier.lr_factors]


def _plan(name: str, configs, tier: ArenaTier, data, log):
    from . import records, sweep

    digest = records.spec_digest({"arena": name, "tier": asdict(tier)})
    return sweep.plan_configs(name, configs, [], digest, data, log)


def _run(plan, out: Path, workers: int, stream) -> list[dict]:
    from . import records, sweep

    sweep.run_sweep(plan, out, workers=workers, stream=stream)
    recs = []
    for r in plan.runs:
        rec = records.finished_or_failed(records.run_paths(out, r.run_id)[0])
        if rec is not None:
            recs.append(rec)
    return recs


def _load(plan, out: Path, workers: int, stream) -> list[dict]:
    """:func:`_run` without training (an audit): each planned run's verified record, or an error naming how
    many are missing."""
    from . import records

    recs = [records.finished_or_failed(records.run_paths(out, r.run_id)[0]) for r in plan.runs]
    missing = sum(r is None for r in recs)
    if missing:
        raise UserError(f"{missing} of {len(recs)} runs of {plan.name} have no record in {out}; train them first")
    return recs


def _loss(rec: dict) -> float:
    v = rec["loss"].get("val_final") if rec["status"] == "finished" else None
    return math.inf if v is None else float(v)


@dataclass
class LRChoice:
    """An entrant's learning-rate sweep and the rule it gives: ``lr(N) = exp(icpt) N^slope``."""

    table: list[dict]  # per size: N_kaplan, lrs, losses, optimum, note
    slope: float
    icpt: float
    notes: list[str] = field(default_factory=list)

    def lr(self, n: float) -> float:
        return _round_lr(math.exp(self.icpt + self.slope * math.log(n)))


def choose_lr(tier: ArenaTier, by_size: dict[float, list[dict]]) -> LRChoice:
    """The rule through each swept size's optimum (see the module docstring, step 1)."""
    from .recipe_fit import size_optimum
    from .recipes import TUNED_LR_B

    table, points, notes = [], [], []
    for n, recs in sorted(by_size.items()):
        lrs = [float(r["resolved"]["peak_lr"]) for r in recs]
        losses = [_loss(r) for r in recs]
        opt = size_optimum(n, lrs, losses)
        lr_opt, note = opt.lr_opt, opt.note
        if lr_opt is None and any(math.isfinite(v) for v in opt.losses):
            lr_opt = opt.lrs[int(np.argmin(opt.losses))]  # an edge optimum, used as is and flagged
        if note:
            notes.append(f"N = {n:.3g}: {note}")
        table.append({"N_target": n, "lrs": opt.lrs, "losses": opt.losses, "lr_opt": lr_opt, "note": note})
        if lr_opt is not None:
            points.append((n, lr_opt))
    if not points:
        raise UserError("every run of the learning-rate sweep diverged: no learning rate to train the sizes at")
    if len(points) == 1:
        (n, lr), slope = points[0], -TUNED_LR_B
        return LRChoice(table, slope, math.log(lr) - slope * math.log(n), notes)
    slope, icpt = np.polyfit(np.log([p[0] for p in points]), np.log([p[1] for p in points]), 1)
    return LRChoice(table, float(slope), float(icpt), notes)


def edge_extensions(choice: LRChoice) -> list[tuple[float, float]]:
    """``(N, lr)`` one grid step beyond each size whose best finished run is at the edge of its grid: above the
    largest rate tried or below the smallest, the step being the ratio of the two rates at that edge."""
    out = []
    for row in choice.table:
        lrs, losses = row["lrs"], row["losses"]
        if len(lrs) < 2 or not any(math.isfinite(v) for v in losses):
            continue
        k = int(np.argmin(losses))
        if k == len(lrs) - 1:
            out.append((row["N_target"], _round_lr(lrs[-1] * lrs[-1] / lrs[-2])))
        elif k == 0:
            out.append((row["N_target"], _round_lr(lrs[0] * lrs[0] / lrs[1])))
    return out


# ------------------------------------------------------------------------------------------------ running
def run_entrant(
    ent: Entrant,
    tier: ArenaTier,
    out: Path,
    workers: int,
    data,
    log,
    stream,
    lr_extend: int = LR_EXTEND,
    train: bool = True,
) -> dict[str, Any]:
    """Both phases for one entrant; returns its learning-rate choice and its size-sweep records. With ``train``
    false nothing is trained: the same plan is made and every run of it must already have a record in ``out``."""
    from .train import run_key

    if train:
        check_causal(ent, tier, min(tier.sizes))
    execute = _run if train else _load
    by_size: dict[float, list[dict]] = {}

    def sweep(name: str, points: list[tuple[float, float]]) -> None:
        configs = [
            (_size_config(ent, tier, n, lr, tier.seeds[0]), f"arena lr-sweep {ent.label} N={n:.3g} lr={lr:.3g}")
            for n, lr in points
        ]
        by_id = {r["run_id"]: r for r in execute(_plan(name, configs, tier, data, log), out, workers, stream)}
        for (cfg, _), (n, _) in zip(configs, points, strict=True):
            rec = by_id.get(run_key(cfg, data))
            have = by_size.setdefault(n, [])
            if rec is not None and all(r["run_id"] != rec["run_id"] for r in have):
                have.append(rec)

    sweep(f"arena-{tier.name}-{ent.slug}-lr", [(n, lr) for n in tier.lr_sizes for lr in lr_grid(tier, n)])
    choice, extended = choose_lr(tier, by_size), []
    for _ in range(lr_extend):  # one step beyond each edge optimum per round; the manifest grows with the rounds
        new = edge_extensions(choice)
        if not new:
            break
        extended += new
        sweep(f"arena-{tier.name}-{ent.slug}-lr-ext", extended)
        choice = choose_lr(tier, by_size)
    for n, lr in extended:
        choice.notes.append(f"N = {n:.3g}: the grid was extended to lr {lr:.3g} (an optimum at its edge)")
    size_configs = []
    for n in tier.sizes:
        for seed in tier.seeds:
            cfg = _size_config(ent, tier, n, choice.lr(n), seed)
            size_configs.append((cfg, f"arena size {ent.label} N={n:.3g} lr={choice.lr(n):.3g} seed={seed}"))
    size_plan = _plan(f"arena-{tier.name}-{ent.slug}-size", size_configs, tier, data, log)
    size_recs = execute(size_plan, out, workers, stream)
    result = {"lr": choice, "runs": size_recs}
    if tier.isoflop_budgets:
        iso_configs = _isoflop_configs(ent, tier, choice)
        plan = _plan(f"arena-{tier.name}-{ent.slug}-isoflop", iso_configs, tier, data, log)
        result["isoflop"] = execute(plan, out, workers, stream)
    return result


def _isoflop_configs(ent: Entrant, tier: ArenaTier, choice: LRChoice) -> list:
    """Every (budget, size) of the IsoFLOP option: D = C / (Hoffmann FLOPs per token) in whole batches, at the
    entrant's learning-rate rule; a size whose D would be under one batch is left out of that budget."""
    from dataclasses import replace

    from .models import model_counts

    configs = []
    for c in tier.isoflop_budgets:
        for n in tier.isoflop_sizes:
            probe = _size_config(ent, tier, n, choice.lr(n), tier.seeds[0])
            per_token = model_counts(probe.model).flops_per_token_hoffmann
            tokens = int(c / per_token // tier.batch_tokens) * tier.batch_tokens
            if tokens >= tier.batch_tokens:
                cfg = replace(probe, tokens=tokens)
                configs.append((cfg, f"arena isoflop {ent.label} C={c:.3g} N={n:.3g} lr={choice.lr(n):.3g}"))
    return configs


def frontier(recs: list[dict], budgets: tuple[float, ...]) -> dict[str, np.ndarray]:
    """The best loss at each IsoFLOP budget: the vertex of Hoffmann et al.'s parabola in log10 N when it has at
    least four sizes and lies inside them (:func:`harness.fit.isoflop.fit_profile`), else the grid minimum
    (``how`` says which). Each run belongs to the budget nearest its compute (D is rounded down to batches)."""
    from .fit.isoflop import fit_profile, group_by_budget

    p = _points(recs)
    out: dict[str, list] = {"C": [], "N": [], "L": [], "run_id": [], "how": []}
    if not len(p["C"]):
        return {k: np.array(v) if k in "CNL" else v for k, v in out.items()}
    group = group_by_budget(p["C"], np.array(budgets), tol_dex=0.3)
    for k, c in enumerate(budgets):
        at = group == k
        if not at.any():
            continue
        prof = fit_profile(p["N"][at], p["L"][at], c)
        best = int(np.argmin(np.where(at, p["L"], np.inf)))
        if prof is not None and prof.vertex_inside:
            n, loss, how = 10**prof.log10_n_opt, prof.loss_min, "parabola vertex"
        else:
            n, loss, how = p["N"][best], p["L"][best], "grid minimum"
        out["C"].append(c)
        out["N"].append(float(n))
        out["L"].append(float(loss))
        out["run_id"].append(p["run_id"][best])
        out["how"].append(how)
    return {k: np.array(v) if k in "CNL" else v for k, v in out.items()}


# ------------------------------------------------------------------------------------------------ analysis
def _points(recs: list[dict]) -> dict[str, np.ndarray]:
    ok = [r for r in recs if r["status"] == "finished" and math.isfinite(_loss(r))]
    return {
        "C": np.array([float(r["scale"]["C_hoffmann"]) for r in ok]),
        "N": np.array([float(r["scale"]["N_active"]) for r in ok]),
        "L": np.array([_loss(r) for r in ok]),
        "run_id": [r["run_id"][:16] for r in ok],
    }


def _loglog_line(C: np.ndarray, L: np.ndarray) -> tuple[float, float]:
    """log L = icpt + slope log C by least squares (the baseline law used for gaps)."""
    slope, icpt = np.polyfit(np.log(C), np.log(L), 1)
    return float(slope), float(icpt)


def _trend(C: np.ndarray, L: np.ndarray, Cb: np.ndarray, Lb: np.ndarray) -> float:
    """Slope (nats per decade) of the entrant's gap to the baseline's log-log line."""
    slope, icpt = _loglog_line(Cb, Lb)
    gap = L - np.exp(icpt + slope * np.log(C))
    return float(np.polyfit(np.log10(C), gap, 1)[0])


def _per_decade(C: np.ndarray, L: np.ndarray) -> float:
    return float(np.polyfit(np.log10(C), L, 1)[0])


def _fit_laws(p: dict[str, np.ndarray], n_boot: int, seed: int) -> dict[str, Any]:
    import warnings

    from .fit import ScalingLaw

    out: dict[str, Any] = {}
    forms = ["power"] + (["saturating_power"] if len(np.unique(p["C"])) >= 4 else [])
    for form in forms:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                law = ScalingLaw(form).fit(p["C"][:, None], p["L"])
                boot = law.bootstrap(n_boot, seed=seed) if n_boot else None
        except UserError as exc:
            out[form] = {"error": str(exc)}
            continue
        entry = {"params": {k: float(v) for k, v in law.params_.items()}}
        if boot is not None and len(boot.samples):
            entry["intervals"] = {k: list(boot.interval(k, LEVEL)) for k in law.param_names}
        out[form] = entry
    return out


def _interval(reps: list[float]) -> tuple[float, float]:
    """The ``LEVEL`` percentile interval of bootstrap replicates (unbounded when there are none)."""
    if not reps:
        return -math.inf, math.inf
    lo, hi = np.percentile(reps, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return float(lo), float(hi)


def _level_at(c: float, C: np.ndarray, L: np.ndarray, slope: float, icpt: float) -> float:
    """The gap to the baseline's log-log line at compute ``c``, interpolated in log C between the points (one
    mean gap per distinct C, so a resample's repeated points count once)."""
    gap = L - np.exp(icpt + slope * np.log(C))
    xs = np.unique(C)
    ys = np.array([gap[C == x].mean() for x in xs])
    return float(np.interp(np.log(c), np.log(xs), ys))


def compare(
    entrant_runs: list[dict], baseline_runs: list[dict], n_boot: int = BOOTSTRAP, seed: int = 0
) -> dict[str, Any]:
    """The gap of an entrant's runs to the baseline's law, its trend per decade with an interval, and the verdict."""
    return compare_points(_points(entrant_runs), _points(baseline_runs), n_boot, seed)


def compare_points(p: dict, b: dict, n_boot: int = BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """:func:`compare` on points (``C``, ``N``, ``L`` arrays and ``run_id``): the size sweep's or a frontier's."""
    if len(np.unique(p["C"])) < 2 or len(np.unique(b["C"])) < 2:
        return {"verdict": "inconclusive", "why": "fewer than two finished sizes", "gaps": []}
    slope, icpt = _loglog_line(b["C"], b["L"])
    base_at = np.exp(icpt + slope * np.log(p["C"]))
    lo_c, hi_c = b["C"].min(), b["C"].max()
    gaps = [
        {
            "run_id": rid,
            "C": float(c),
            "N_active": float(n),
            "loss": float(v),
            "baseline": float(bv),
            "gap": float(v - bv),
            "extrapolated": bool(c < lo_c / 1.5 or c > hi_c * 1.5),
        }
        for rid, c, n, v, bv in zip(p["run_id"], p["C"], p["N"], p["L"], base_at, strict=True)
    ]
    trend = _trend(p["C"], p["L"], b["C"], b["L"])
    mid = float(np.median(p["C"]))
    rng = np.random.default_rng(seed)
    reps, level_reps = [], []
    for _ in range(n_boot):
        i = rng.integers(0, len(p["C"]), len(p["C"]))
        j = rng.integers(0, len(b["C"]), len(b["C"]))
        if len(np.unique(p["C"][i])) < 2 or len(np.unique(b["C"][j])) < 2:
            continue
        reps.append(_trend(p["C"][i], p["L"][i], b["C"][j], b["L"][j]))
        level_reps.append(_level_at(mid, p["C"][i], p["L"][i], *_loglog_line(b["C"][j], b["L"][j])))
    lo, hi = _interval(reps)
    own, base = _per_decade(p["C"], p["L"]), _per_decade(b["C"], b["L"])
    if lo > 0:
        verdict = "plateaus" if own > PLATEAU_FRACTION * base else "worse"  # both slopes negative when improving
    elif hi < 0:
        verdict = "better"
    elif -SAME_BAND <= lo and hi <= SAME_BAND:
        verdict = "same"
    else:
        verdict = "inconclusive"
    level = _level_at(mid, p["C"], p["L"], slope, icpt)
    return {
        "gaps": gaps,
        "trend_per_decade": trend,
        "trend_interval": [lo, hi],
        "bootstrap_replicates": len(reps),
        "loss_per_decade": own,
        "baseline_loss_per_decade": base,
        "gap_at_median_C": {"C": mid, "gap": level, "interval": list(_interval(level_reps))},
        "verdict": verdict,
    }


def analyse(results: dict[str, dict], baseline: str, tier: ArenaTier, n_boot: int = BOOTSTRAP) -> dict[str, Any]:
    """Every entrant's fits and comparison with the baseline (``results``: label -> run_entrant's output)."""
    out = {
        "tier": asdict(tier),
        "baseline": baseline,
        "flop_convention": FLOP_CONVENTION,
        "n_convention": N_CONVENTION,
        "protocol": __doc__,
        "same_band_nats_per_decade": SAME_BAND,
        "plateau_fraction": PLATEAU_FRACTION,
        "entrants": {},
    }
    base_runs = results[baseline]["runs"]
    for label, res in results.items():
        p = _points(res["runs"])
        choice: LRChoice = res["lr"]
        entry = {
            "lr_sweep": choice.table,
            "lr_rule": {"slope": choice.slope, "icpt": choice.icpt, "notes": choice.notes},
            "runs": [
                {"run_id": r, "C": float(c), "N_active": float(n), "loss": float(v)}
                for r, c, n, v in zip(p["run_id"], p["C"], p["N"], p["L"], strict=True)
            ],
            "fits": _fit_laws(p, n_boot, seed=0) if len(np.unique(p["C"])) >= 2 else {},
        }
        if label != baseline:
            entry["comparison"] = compare(res["runs"], base_runs, n_boot)
        if "isoflop" in res:
            front = frontier(res["isoflop"], tier.isoflop_budgets)
            entry["isoflop"] = {
                "runs": [
                    {
                        "run_id": r["run_id"][:16],
                        "C": r["scale"]["C_hoffmann"],
                        "N_active": r["scale"]["N_active"],
                        "loss": _loss(r),
                    }
                    for r in res["isoflop"]
                ],
                "frontier": [
                    {"C": float(c), "N_active": float(n), "loss": float(v), "how": h}
                    for c, n, v, h in zip(front["C"], front["N"], front["L"], front["how"], strict=True)
                ],
            }
            if label != baseline:
                base_front = frontier(results[baseline]["isoflop"], tier.isoflop_budgets)
                entry["isoflop"]["comparison"] = compare_points(front, base_front, n_boot)
        out["entrants"][label] = entry
    return out


# ------------------------------------------------------------------------------------------------ report
def verdict_table(summary: dict[str, Any]) -> str:
    tier, base = summary["tier"], summary["baseline"]
    judged = "" if tier["judged"] else "  (tier not judged: a pipeline check)"
    lines = [
        f"arena tier {tier['name']}: baseline {base}; loss vs compute C in Hoffmann FLOPs (attention included){judged}",
        f"{'architecture':<28}{'runs':>5}  {'alpha (L = A C^-alpha)':<26}{'gap @ median C':>15}  "
        f"{'gap trend / decade [95%]':<28}verdict",
    ]
    for label, e in summary["entrants"].items():
        fit = e["fits"].get("power", {})
        a = fit.get("params", {}).get("alpha")
        ai = fit.get("intervals", {}).get("alpha")
        alpha = "-" if a is None else f"{a:.3f}" + (f" [{ai[0]:.3f}, {ai[1]:.3f}]" if ai else "")
        if label == base:
            lines.append(f"{label:<28}{len(e['runs']):>5}  {alpha:<26}{'-':>15}  {'-':<28}baseline")
            continue
        c = e["comparison"]
        if "trend_per_decade" not in c:
            lines.append(f"{label:<28}{len(e['runs']):>5}  {alpha:<26}{'-':>15}  {'-':<28}{c['verdict']} ({c['why']})")
            continue
        lo, hi = c["trend_interval"]
        gap = f"{c['gap_at_median_C']['gap']:+.3f}"
        trend = f"{c['trend_per_decade']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        lines.append(f"{label:<28}{len(e['runs']):>5}  {alpha:<26}{gap:>15}  {trend:<28}{c['verdict']}")
        iso = e.get("isoflop", {}).get("comparison")
        if iso and "trend_per_decade" in iso:
            lo, hi = iso["trend_interval"]
            n_front = len(e["isoflop"]["frontier"])
            trend = f"{iso['trend_per_decade']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            gap = f"{iso['gap_at_median_C']['gap']:+.3f}"
            lines.append(f"{'  IsoFLOP frontier':<28}{n_front:>5}  {'':<26}{gap:>15}  {trend:<28}{iso['verdict']}")
    lines.append(
        f"verdict: trend interval < 0 better, > 0 worse (plateaus: own slope under {PLATEAU_FRACTION:.2g} of the "
        f"baseline's), inside +-{SAME_BAND} nats/decade same, else inconclusive"
    )
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: os.PathLike) -> None:
    """:func:`figure`, saved to ``path``."""
    import matplotlib.pyplot as plt

    fig = figure(summary)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figure(summary: dict[str, Any]):
    """Loss vs compute (equal FLOPs), loss vs active parameters (equal N), and each run's gap to the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import tidy_log_axis

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    base = summary["baseline"]
    for i, (label, e) in enumerate(summary["entrants"].items()):
        color = f"C{i}" if len(summary["entrants"]) <= 10 else plt.get_cmap("tab20")(i % 20)
        runs = sorted(e["runs"], key=lambda r: r["C"])
        if not runs:
            continue
        C = np.array([r["C"] for r in runs])
        L = np.array([r["loss"] for r in runs])
        N = np.array([r["N_active"] for r in runs])
        style = dict(color=color, lw=2.2 if label == base else 1.2)
        axes[0].plot(C, L, "o", color=color, label=label + (" (baseline)" if label == base else ""))
        power = e["fits"].get("power", {}).get("params")
        if power:
            grid = np.geomspace(C.min(), C.max(), 50)
            axes[0].plot(grid, power["A"] * grid ** -power["alpha"], **style)
        axes[1].plot(N, L, "o-", **style, label=label)
        front = e.get("isoflop", {}).get("frontier")
        if front:
            axes[0].plot([f["C"] for f in front], [f["loss"] for f in front], "*--", color=color, ms=10, lw=0.8)
        if label != base and e["comparison"].get("gaps"):
            g = sorted(e["comparison"]["gaps"], key=lambda r: r["C"])
            axes[2].plot([r["C"] for r in g], [r["gap"] for r in g], "-", color=color, label=label)
            for r in g:  # hollow: outside the baseline's compute range (the baseline law is extrapolated there)
                face = "none" if r["extrapolated"] else color
                axes[2].plot([r["C"]], [r["gap"]], "o", color=color, markerfacecolor=face)
    axes[0].set(
        xlabel="training compute C (FLOPs, Hoffmann et al. App. F count)",
        ylabel="final validation loss (nats)",
        title="equal compute: points and L = A C^-alpha (stars: IsoFLOP best)",
    )
    axes[1].set(
        xlabel="active parameters N (embeddings included)",
        ylabel="final validation loss (nats)",
        title="equal parameters",
    )
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].set(
        xlabel="training compute C (FLOPs)",
        ylabel="loss minus baseline law (nats)",
        title=f"gap to {base}: a rising line scales worse",
    )
    for ax in axes:
        ax.set_xscale("log")
        tidy_log_axis(ax.xaxis)
        ax.legend(fontsize=7)
    tier = summary["tier"]
    fig.suptitle(f"architecture arena, tier {tier['name']}: {tier['description']}", fontsize=9)
    fig.tight_layout()
    return fig


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def run_arena(
    specs: list[str],
    *,
    baseline: str = "gpt",
    tier: str | ArenaTier = "smoke",
    out: os.PathLike | None = None,
    workers: int = 2,
    n_boot: int = BOOTSTRAP,
    isoflop: bool = False,
    lr_extend: int = LR_EXTEND,
    train: bool = True,
    write: bool = True,
    stream=None,
) -> dict[str, Any]:
    """Train (or reuse) every entrant's runs and the baseline's, analyse them, write arena.json/.png/verdicts.md.
    ``isoflop`` adds the tier's IsoFLOP plan: the same comparison on each budget's best loss. ``lr_extend``: at
    most this many rates tried beyond an edge optimum of the learning-rate sweep, per size (0: none). With
    ``train`` false nothing is trained (every planned run must have its record in ``out``: an audit); with
    ``write`` false nothing is written to ``out`` beyond run records (the caller saves the summary)."""
    from .data.corpus import open_data
    from .provenance import write_json_atomic

    stream = stream or sys.stderr
    if isinstance(tier, ArenaTier):
        t = tier
    elif tier in TIERS:
        t = TIERS[tier]
    else:
        raise UserError(f"unknown arena tier {tier!r}; tiers: {', '.join(TIERS)}")
    if isoflop and not t.isoflop_budgets:
        raise UserError(
            f"arena tier {t.name!r} has no IsoFLOP plan (isoflop_budgets); tiers with one: "
            f"{', '.join(k for k, v in TIERS.items() if v.isoflop_budgets)}"
        )
    if not isoflop:
        from dataclasses import replace

        t = replace(t, isoflop_budgets=())
    specs = list(specs) or list(t.default_entrants)
    entrants = [entrant(baseline)] + [entrant(s) for s in specs if s != baseline]
    labels = [e.label for e in entrants]
    if len(set(labels)) != len(labels):
        raise UserError(f"an architecture is named twice: {', '.join(labels)}")
    out = Path(out) if out is not None else Path("runs") / "arena" / t.name
    if train:
        out.mkdir(parents=True, exist_ok=True)
    elif not out.is_dir():
        raise UserError(f"{out}: no arena results to read (train them first)")
    data = open_data(t.data, t.tokenizer, 256 if t.tokenizer == "byte" else 4096, log=lambda s: stream.write(s + "\n"))
    results = {}
    for i, ent in enumerate(entrants, 1):
        stream.write(f"[{i}/{len(entrants)}] {ent.label}{' (baseline)' if ent.label == baseline else ''}\n")
        results[ent.label] = run_entrant(
            ent, t, out, workers, data, lambda s: stream.write(s + "\n"), stream, lr_extend, train
        )
    summary = _jsonable(analyse(results, baseline, t, n_boot))
    table = verdict_table(summary)
    if write:
        write_json_atomic(out / "arena.json", summary)
        (out / "verdicts.md").write_text("```\n" + table + "\n```\n")
        plot(summary, out / "arena.png")
    summary["table"] = table
    summary["out"] = str(out)
    return summary


def entrants_help() -> str:
    from .models import available_models

    names = [n for n in available_models() if n != "factory"]
    return json.dumps(names)
