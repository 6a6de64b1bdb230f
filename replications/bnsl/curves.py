"""Our own non-monotonic scaling curves, trained here on CPU, for the BNSL paper's central claim: a broken power
law extrapolates scaling behaviour that a single power law cannot (Caballero et al. 2023, Sections 1 and 4:
double descent, Fig. 5; sharp transitions, Fig. 4 and the arithmetic tasks).

Two kinds of curve, each one run per seed (the seed draws everything random in it):

* ``double_descent``: model-wise double descent of a two-layer ReLU network whose first layer is frozen at its
  random initialisation (random features; Belkin et al. 2019, Mei & Montanari 2022). The second layer is the
  minimum-norm least-squares solution, which is what gradient descent from zero converges to, so every width is
  trained to convergence. The task: a teacher network of ``teacher_width`` tanh units on ``d`` Gaussian inputs,
  ``n_train`` noisy examples. Test error peaks where the width reaches the number of training examples (the
  interpolation threshold) and falls again beyond it. x = width p, y = test mean squared error against the
  noiseless teacher, averaged over ``draws`` feature draws.
* ``grokking``: modular addition ``(a + b) mod P`` learnt by a small MLP from a fraction of all pairs, AdamW with
  strong weight decay, full batch (Power et al. 2022; Liu et al. 2022). Training loss falls within a few hundred
  steps while test loss first rises (memorisation), then drops sharply thousands of steps later. x = optimiser
  steps, y = test cross-entropy (nats) on the held-out pairs.

A record is a JSON file named by the content hash of its config (kind, spec fields, seed). The curve it holds
depends on the config only: the same config gives the same x and y, bit for bit, on the same machine and thread
count (NumPy's LAPACK for double descent; PyTorch's deterministic CPU kernels for grokking). Its provenance
(commit, packages, device, wall time) sits beside the curve and is excluded from the hash.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.provenance import content_hash, provenance

SCHEMA = "bnsl-curve/1"


def _log_ints(lo: int, hi: int, n: int) -> tuple[int, ...]:
    """``n`` log-spaced integers from ``lo`` to ``hi``, duplicates (at the low end) removed."""
    return tuple(sorted({round(float(v)) for v in np.geomspace(lo, hi, n)}))


@dataclass(frozen=True)
class DoubleDescentSpec:
    """Random-features regression; defaults put the interpolation peak (width = n_train = 64) mid-curve."""

    d: int = 16  # input dimension
    teacher_width: int = 8  # tanh units of the teacher
    n_train: int = 64
    noise: float = 0.5  # standard deviation of the label noise (the teacher's outputs have unit variance)
    n_test: int = 2000
    draws: int = 5  # feature draws averaged per width (the curve's y is their mean test error)
    widths: tuple[int, ...] = _log_ints(4, 8192, 28)

    kind = "double_descent"
    x_label = "width (random ReLU features)"
    y_label = "test mean squared error"


@dataclass(frozen=True)
class GrokkingSpec:
    """Modular addition, MLP on concatenated token embeddings; defaults grok within 20,000 steps on CPU."""

    modulus: int = 47
    train_frac: float = 0.4
    emb: int = 64
    hidden: int = 256
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    steps: int = 20_000
    evals: int = 40  # log-spaced evaluation steps from 10 to ``steps``

    kind = "grokking"
    x_label = "optimiser steps"
    y_label = "test cross-entropy (nats)"

    @property
    def eval_steps(self) -> tuple[int, ...]:
        return _log_ints(10, self.steps, self.evals)


SPECS = {"double_descent": DoubleDescentSpec, "grokking": GrokkingSpec}


def spec_config(spec, seed: int) -> dict[str, Any]:
    return {
        "kind": spec.kind,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()},
        "seed": seed,
    }


def run_id(spec, seed: int) -> str:
    return content_hash(spec_config(spec, seed))[:16]


# --------------------------------------------------------------------------------------- double descent
def double_descent(spec: DoubleDescentSpec, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((spec.teacher_width, spec.d)) / math.sqrt(spec.d)
    v = rng.standard_normal(spec.teacher_width)
    x_tr = rng.standard_normal((spec.n_train, spec.d))
    x_te = rng.standard_normal((spec.n_test, spec.d))
    h_te = np.tanh(2.0 * x_te @ u.T) @ v
    scale = 1.0 / h_te.std()  # the teacher's outputs have unit variance on the test inputs

    def teacher(x):
        return scale * np.tanh(2.0 * x @ u.T) @ v

    y_tr = teacher(x_tr) + spec.noise * rng.standard_normal(spec.n_train)
    y_te = teacher(x_te)
    errs = np.zeros((spec.draws, len(spec.widths)))
    for k in range(spec.draws):
        w_all = rng.standard_normal((max(spec.widths), spec.d)) / math.sqrt(spec.d)  # nested: width p uses rows :p
        for j, p in enumerate(spec.widths):
            w = w_all[:p]
            phi_tr = np.maximum(x_tr @ w.T, 0.0) / math.sqrt(p)
            phi_te = np.maximum(x_te @ w.T, 0.0) / math.sqrt(p)
            a = np.linalg.lstsq(phi_tr, y_tr, rcond=None)[0]  # minimum-norm solution: GD from zero's limit
            errs[k, j] = np.mean((phi_te @ a - y_te) ** 2)
    return {"x": [float(p) for p in spec.widths], "y": errs.mean(axis=0).tolist(), "y_draws": errs.tolist()}


# --------------------------------------------------------------------------------------------- grokking
def grokking(spec: GrokkingSpec, seed: int) -> dict[str, list[float]]:
    import torch
    from torch import nn
    from torch.nn import functional as F

    g = torch.Generator().manual_seed(seed)
    P = spec.modulus
    pairs = torch.cartesian_prod(torch.arange(P), torch.arange(P))
    labels = (pairs[:, 0] + pairs[:, 1]) % P
    perm = torch.randperm(len(pairs), generator=g)
    n_tr = round(spec.train_frac * len(pairs))
    tr, te = perm[:n_tr], perm[n_tr:]

    torch.manual_seed(seed)
    emb = nn.Embedding(P, spec.emb)
    mlp = nn.Sequential(nn.Linear(2 * spec.emb, spec.hidden), nn.ReLU(), nn.Linear(spec.hidden, P))
    params = [*emb.parameters(), *mlp.parameters()]
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, betas=spec.betas)

    def forward(idx):
        return mlp(emb(pairs[idx]).flatten(1))

    evals, out = set(spec.eval_steps), {"x": [], "y": [], "train_loss": [], "test_error": []}
    for step in range(1, spec.steps + 1):
        loss = F.cross_entropy(forward(tr), labels[tr])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in evals:
            with torch.no_grad():
                logits = forward(te)
                out["x"].append(float(step))
                out["y"].append(F.cross_entropy(logits, labels[te]).item())
                out["train_loss"].append(loss.item())
                out["test_error"].append((logits.argmax(1) != labels[te]).float().mean().item())
    return out


GENERATORS = {"double_descent": double_descent, "grokking": grokking}


# ---------------------------------------------------------------------------------------------- records
def generate(spec, seed: int) -> dict[str, Any]:
    """Run one curve and return its record (config, curve, provenance)."""
    import torch

    torch.set_num_threads(1)  # one thread: the same reductions in the same order on every machine
    t0 = time.perf_counter()
    curve = GENERATORS[spec.kind](spec, seed)
    wall = time.perf_counter() - t0
    cfg = spec_config(spec, seed)
    return {
        "schema": SCHEMA,
        "run_id": run_id(spec, seed),
        "config": cfg,
        "curve": curve,
        "provenance": provenance(config_sha256=content_hash(cfg), wall_seconds=round(wall, 3), threads=1),
    }


def load_record(path: Path, spec, seed: int) -> dict[str, Any]:
    """Read a record and check it is the one ``spec`` and ``seed`` ask for (its config hashes to its name)."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"curve record {path} is unreadable: {exc}") from exc
    want = spec_config(spec, seed)
    if rec.get("schema") != SCHEMA or rec.get("config") != want or content_hash(rec["config"])[:16] != Path(path).stem:
        raise UserError(f"curve record {path} does not hold the curve its name promises ({spec.kind}, seed {seed})")
    c = rec.get("curve", {})
    x, y = np.asarray(c.get("x", []), float), np.asarray(c.get("y", []), float)
    if x.shape != y.shape or x.size < 4 or not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise UserError(f"curve record {path}: x and y must be equal-length, >= 4 points, y finite and positive")
    return rec


def spec_from(kind: str, **overrides):
    if kind not in SPECS:
        raise UserError(f"unknown curve kind {kind!r}; known: {', '.join(SPECS)}")
    names = {f.name for f in fields(SPECS[kind])}
    bad = sorted(set(overrides) - names)
    if bad:
        raise UserError(f"{kind} has no field(s) {', '.join(bad)}; its fields: {', '.join(sorted(names))}")
    return SPECS[kind](**overrides)
