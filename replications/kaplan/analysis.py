"""Kaplan et al. (2020) at small scale: from run records to the paper's fits and claims.

Every fit is a call into :mod:`harness.fit`; this module only says which runs and which points go into which
of the paper's functional forms. The CLI (``scaling replicate`` / ``scaling audit``) and the notebook both go
through :func:`analyse`, so no analysis lives anywhere else.

Procedures (Kaplan et al. 2020, arXiv:2001.08361), all least squares on log loss, as in the paper's figures:

* ``L(N)``: final losses of the Transformers trained on the largest budget, ``power`` form (eq. 1.1).
* ``L(D)``: final losses of the largest Transformer at every budget, ``power`` form (eq. 1.2).
* ``L(N, D)``: every Transformer run, ``kaplan`` form (eq. 1.5, Table 2).
* ``L(N, S)``: the learning curves of the largest-budget runs after warmup, ``kaplan_ns`` form (eq. 1.6).
* ``L(C_min)`` and ``N_opt(C)``: the lower envelope of the same learning curves against C = 6 N S B
  (``harness.fit.frontier``), fitted from the end of the smallest run to the end of the largest (eq. 1.3,
  Fig. 14). Unlike the paper, C is not corrected to the critical batch size.

Intervals: bootstrap over runs (whole learning curves for the curve-based fits, see
``ScalingLaw.bootstrap(groups=...)``), and over context positions for the per-token comparisons.
Runs with one layer are left out of every fit (Kaplan et al. Section 3.1: they fall off the trend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.claims import Measurement
from harness.fit import Bootstrap, ScalingLaw, percentile_interval
from harness.fit.frontier import Frontier, learning_curve_frontier
from harness.progress import ProgressFn, no_progress
from harness.replication import TierContext, TierResult, run_tier_sweeps
from harness.runs import RunTable

from .constants import EARLY_BIN, LATE_BIN, LEVEL, OPTIONAL_ROLES, ROLES, WARMUP_FRACTION, role_of, tier_specs


def tables_by_role(sweeps: Sequence[Path], tables: dict[str, RunTable]) -> dict[str, RunTable]:
    """The tier's run tables keyed by role (``ROLES``) instead of by sweep name.

    ``run_tier_sweeps`` returns one table per spec of the tier, in the order of its specs (``ctx.sweeps``), keyed
    by the spec's name; a spec's role is its file's name (:func:`role_of`), never guessed from the sweep's name.
    """
    if len(tables) != len(sweeps):
        raise ValueError(f"expected one run table per sweep spec ({len(sweeps)}), got {len(tables)}: {sorted(tables)}")
    return {role_of(spec): t for spec, t in zip(sweeps, tables.values(), strict=True)}


def _multi_layer(t: RunTable) -> RunTable:
    return t.subset([r for r, nl in zip(t["run_id"], t["n_layer"], strict=True) if nl >= 2])


@dataclass
class PowerFit:
    """A pure power law ``L = (x_c / x)^alpha`` fitted by least squares in log space, with its bootstrap."""

    x: np.ndarray
    y: np.ndarray
    law: ScalingLaw
    boot: Bootstrap

    @property
    def alpha(self) -> float:
        return float(self.law.params_["alpha"])

    @property
    def x_c(self) -> float:
        return float(self.law.params_["A"] ** (1.0 / self.law.params_["alpha"]))

    def residuals(self) -> np.ndarray:
        return np.log(self.y) - np.log(self.law.predict(self.x))

    def r2(self) -> float:
        ly = np.log(self.y)
        return float(1 - np.sum(self.residuals() ** 2) / np.sum((ly - ly.mean()) ** 2))

    def max_residual_interval(self) -> tuple[float, float]:
        """Bootstrap interval of the max |log residual|: each replicate's law on the points it was fitted to."""
        a, al = self.boot.column("A"), self.boot.column("alpha")
        pred = np.log(a)[:, None] - al[:, None] * np.log(self.x)[None, :]
        resid = np.abs(np.log(self.y)[None, :] - pred)
        m = np.max(np.where(self.boot.weights > 0, resid, 0.0), axis=1)
        return percentile_interval(m, LEVEL)


def fit_power(x, y, n_bootstrap: int, seed: int, groups=None, progress: ProgressFn = no_progress) -> PowerFit:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    law = ScalingLaw("power", loss="mse").fit(x, y)
    return PowerFit(x, y, law, law.bootstrap(n_bootstrap, seed=seed, groups=groups, progress=progress))


@dataclass
class EnvelopeFit:
    """L(C_min) and N_opt(C) from the envelope of learning curves, with a bootstrap over whole curves."""

    curves: list[tuple[float, np.ndarray, np.ndarray]]  # (N, tokens, val loss) of each run after warmup
    frontier: Frontier
    keep: np.ndarray  # frontier points used in the fits
    alpha_C: float
    C_c: float
    n_opt_exponent: float
    max_residual: float
    boot_alpha_C: np.ndarray
    boot_n_opt: np.ndarray
    boot_max_residual: np.ndarray


def _curve_points(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, tokens, val loss) of a run's learning curve after warmup."""
    c = rec["curve"]
    step, tok, loss = (np.asarray(c[k], dtype=float) for k in ("step", "tokens", "val_loss"))
    first = max(1.0, np.ceil(WARMUP_FRACTION * step[-1]))
    keep = step >= first
    return step[keep], tok[keep], loss[keep]


def _envelope(curves, c_lo: float, c_hi: float) -> tuple[Frontier, np.ndarray, np.ndarray, np.ndarray]:
    fr = learning_curve_frontier(curves, n_grid=60)
    keep = (fr.compute >= c_lo * (1 - 1e-9)) & (fr.compute <= c_hi * (1 + 1e-9)) & np.isfinite(fr.loss)
    lc, ll, ln = np.log(fr.compute[keep]), np.log(fr.loss[keep]), np.log(fr.n_params[keep])
    return fr, keep, np.polyfit(lc, ll, 1), np.polyfit(lc, ln, 1)


def fit_envelope(table: RunTable, n_bootstrap: int, seed: int, progress: ProgressFn = no_progress) -> EnvelopeFit:
    """Kaplan et al.'s L(C_min) (eq. 1.3) and N_opt(C) (Fig. 14): the envelope is taken between the end of the
    smallest run and the end of the largest, where it is made of trained models rather than warmup transients.
    Both are straight lines in log-log space, fitted by least squares (the ``power`` form's estimator)."""
    curves = []
    for rec in table.records:
        _, tok, loss = _curve_points(rec)
        curves.append((float(rec["scale"]["N_kaplan"]), tok, loss))
    ends = np.array([6 * n * tok[-1] for n, tok, _ in curves])
    c_lo, c_hi = ends.min(), ends.max()
    fr, keep, pl, pn = _envelope(curves, c_lo, c_hi)
    resid = np.log(fr.loss[keep]) - np.polyval(pl, np.log(fr.compute[keep]))
    rng = np.random.default_rng(seed)
    b_alpha, b_nopt, b_res = [], [], []
    for i in range(n_bootstrap):
        progress(i, n_bootstrap)
        idx = rng.integers(0, len(curves), len(curves))
        if len(set(idx)) < 2:
            continue
        sample = [curves[i] for i in idx]
        e = ends[idx]
        fr_b, keep_b, pl_b, pn_b = _envelope(sample, e.min(), e.max())
        if keep_b.sum() < 3:
            continue
        b_alpha.append(-pl_b[0])
        b_nopt.append(pn_b[0])
        b_res.append(np.max(np.abs(np.log(fr_b.loss[keep_b]) - np.polyval(pl_b, np.log(fr_b.compute[keep_b])))))
    progress(n_bootstrap, n_bootstrap)
    return EnvelopeFit(
        curves,
        fr,
        keep,
        alpha_C=float(-pl[0]),
        C_c=float(np.exp(pl[1] / -pl[0])),
        n_opt_exponent=float(pn[0]),
        max_residual=float(np.max(np.abs(resid))),
        boot_alpha_C=np.array(b_alpha),
        boot_n_opt=np.array(b_nopt),
        boot_max_residual=np.array(b_res),
    )


def _bins(n_ctx: int) -> tuple[slice, slice]:
    e = slice(int(EARLY_BIN[0] * n_ctx), int(EARLY_BIN[1] * n_ctx))
    l_ = slice(int(LATE_BIN[0] * n_ctx), int(LATE_BIN[1] * n_ctx))
    return e, l_


@dataclass
class KaplanAnalysis:
    """Everything the analysis computed, for the claims, the figures and the notebook."""

    tables: dict[str, RunTable]  # the tier's run tables by role (``ROLES``)
    transformers: RunTable  # every multi-layer Transformer run of the N x D grid and the D sweep
    n_sweep: RunTable  # the largest-budget column of the grid: L(N)
    d_sweep: RunTable  # the largest Transformer at every budget: L(D)
    L_N: PowerFit
    L_D: PowerFit
    L_ND: ScalingLaw
    L_ND_boot: Bootstrap
    L_NS: ScalingLaw
    L_NS_boot: Bootstrap
    L_NS_points: tuple[np.ndarray, np.ndarray, np.ndarray]  # (N, S, loss)
    envelope: EnvelopeFit
    aspect: RunTable
    lstm: RunTable
    n_bootstrap: int
    seed: int
    seeds: RunTable | None = None  # the same configs with several seeds: our own seed-to-seed noise
    notes: dict[str, str] = field(default_factory=dict)

    def seed_noise(self) -> dict[str, dict[str, float]]:
        """Per size: mean and sample standard deviation of the final loss over seeds (information only)."""
        if self.seeds is None or not len(self.seeds):
            return {}
        out = {}
        n = self.seeds["N_kaplan"].astype(float)
        for size in sorted(set(n)):
            loss = self.seeds["loss"].astype(float)[n == size]
            if loss.size >= 2:
                d = float(self.seeds["D"][n == size][0])
                out[f"N={size:.3g} D={d:.3g}"] = {
                    "seeds": int(loss.size),
                    "mean": float(loss.mean()),
                    "std": float(loss.std(ddof=1)),
                    "range": float(loss.max() - loss.min()),
                }
        return out

    def validation_sensitivity(self) -> dict[str, float] | None:
        """L(N) refitted on each run's loss over its larger final validation set (``final_eval_tokens``) instead
        of the curve's last evaluation (the first ``eval_tokens`` of the validation split), which the claims use
        because the learning curves are measured on it too. Information only: how much the L(N) verdicts
        depend on which validation tokens measure the loss. None when a run lacks the larger set."""
        full = self.n_sweep["loss_full"].astype(float)
        if not np.isfinite(full).all():
            return None
        n = self.n_sweep["N_kaplan"].astype(float)
        law = ScalingLaw("power", loss="mse").fit(n, full)
        curve = self.n_sweep["loss"].astype(float)
        return {
            "alpha_N": float(law.params_["alpha"]),
            "max_abs_log_residual": float(np.abs(np.log(full) - np.log(law.predict(n))).max()),
            "alpha_N_curve_eval": float(self.L_N.alpha),
            "mean_difference": float(np.mean(curve - full)),
            "tokens": float(self.n_sweep.records[0]["config"]["final_eval_tokens"]),
        }

    # ------------------------------------------------------------------ derived comparisons
    def lstm_gaps(self, params: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """LSTM loss minus the Transformer L(N) law at each LSTM's N (nats); rows follow ``self.lstm``.
        ``params`` = (A, alpha) arrays of bootstrap replicates gives one row per replicate."""
        n, loss = self.lstm["N_kaplan"].astype(float), self.lstm["loss"].astype(float)
        if params is None:
            return loss - self.L_N.law.predict(n)
        a, al = params
        return loss[None, :] - a[:, None] * n[None, :] ** -al[:, None]

    def gap_slope(self, gaps: np.ndarray) -> np.ndarray:
        """Slope of the gap against log10 N (nats per decade), one per row of ``gaps``."""
        u = np.log10(self.lstm["N_kaplan"].astype(float))
        u = u - u.mean()
        g = np.atleast_2d(gaps)
        return (g - g.mean(axis=1, keepdims=True)) @ u / np.sum(u**2)

    def context_pair(self) -> tuple[dict, dict]:
        """The largest LSTM and the largest-budget Transformer nearest to it in log N (their records)."""
        li = int(np.argmax(self.lstm["N_kaplan"]))
        n_l = float(self.lstm["N_kaplan"][li])
        ti = int(np.argmin(np.abs(np.log(self.n_sweep["N_kaplan"].astype(float) / n_l))))
        return self.lstm.records[li], self.n_sweep.records[ti]

    def context_gains(self, rng: np.random.Generator | None = None, n: int = 0) -> dict[str, np.ndarray]:
        """Per-token loss gained between the early and late position bins, for the pair of ``context_pair``:
        point values, and with ``n`` > 0 bootstrap replicates resampling positions within each bin (the same
        positions for both models, so their shared difficulty cancels in the difference)."""
        lstm_rec, tf_rec = self.context_pair()
        bl = np.asarray(lstm_rec["loss"]["val_by_position"], dtype=float)
        bt = np.asarray(tf_rec["loss"]["val_by_position"], dtype=float)
        e, l_ = _bins(len(bl))
        ei, li = np.arange(len(bl))[e], np.arange(len(bl))[l_]
        if n == 0:
            idx_e, idx_l = ei[None, :], li[None, :]
        else:
            idx_e = rng.choice(ei, size=(n, ei.size))
            idx_l = rng.choice(li, size=(n, li.size))
        g_l = bl[idx_e].mean(axis=1) - bl[idx_l].mean(axis=1)
        g_t = bt[idx_e].mean(axis=1) - bt[idx_l].mean(axis=1)
        return {"lstm": g_l, "transformer": g_t, "difference": g_t - g_l}

    def aspect_spread(self, rng: np.random.Generator | None = None, n: int = 0) -> np.ndarray:
        """(max - min) / min of the aspect sweep's final losses; with ``n`` > 0, replicates in which each
        run's loss is the mean of its per-position losses over resampled positions (the same for all runs).

        Where every run has its loss by position, the estimate is the mean over positions too, so that it and
        its interval measure the same validation tokens (a run's ``final_eval_tokens`` windows can be many more
        than the curve's ``eval_tokens``, and their mean loss differs)."""
        by_position = self.aspect.by_position
        if n == 0 and any(b is None for b in by_position):
            loss = self.aspect["loss"].astype(float)[None, :]
        else:
            by_pos = np.stack(by_position)  # (runs, n_ctx)
            if n == 0:
                idx = np.arange(by_pos.shape[1])[None, :]
            else:
                idx = rng.integers(0, by_pos.shape[1], size=(n, by_pos.shape[1]))
            loss = by_pos[:, idx].mean(axis=2).T  # (n or 1, runs)
        return (loss.max(axis=1) - loss.min(axis=1)) / loss.min(axis=1)

    def convergence(self) -> list[dict[str, float]]:
        """How far each L(N) run is from its converged loss, by the joint fit (information only; no claim): per
        size, the measured loss at the L(N) budget D, the fit's L(N, D) and L(N, 2D), and the fit's limit
        L(N, D -> inf) = (N_c / N)^alpha_N (eq. 1.5). A run is not budget-limited when doubling its budget would
        change its loss by less than the seed noise; the rest of the gap to the limit is what the joint fit
        accounts for (Kaplan et al. Sec. 4: L(N) is the D -> inf limit)."""
        p = self.L_ND.params_
        t = self.n_sweep
        order = np.argsort(t["N_kaplan"].astype(float))
        out = []
        for n, d, loss in zip(
            t["N_kaplan"].astype(float)[order], t["D"].astype(float)[order], t["loss"].astype(float)[order], strict=True
        ):
            at_d, at_2d = self.L_ND.predict(np.array([[n, d], [n, 2 * d]]))
            limit = float((p["N_c"] / n) ** p["alpha_N"])
            out.append(
                {
                    "N": float(n),
                    "D": float(d),
                    "tokens_per_param": float(d / n),
                    "loss": float(loss),
                    "fit": float(at_d),
                    "fit_2D": float(at_2d),
                    "doubling_gain": float(at_d - at_2d),
                    "limit": limit,
                    "gap_to_limit": float(at_d - limit),
                }
            )
        return out

    def budget_curve(self) -> list[tuple[float, float]]:
        """(D, final loss) of the largest Transformer at every budget: the direct view of its convergence."""
        d = self.d_sweep["D"].astype(float)
        order = np.argsort(d)
        return [(float(d[i]), float(self.d_sweep["loss"][i])) for i in order]

    def measured_doubling_gain(self) -> float | None:
        """The largest model's loss drop per doubling of D between its two largest budgets (measured, no fit)."""
        pts = self.budget_curve()
        if len(pts) < 2:
            return None
        (d0, l0), (d1, l1) = pts[-2], pts[-1]
        return float((l0 - l1) / np.log2(d1 / d0))

    def context_bin_se(self) -> dict[str, dict[str, float | int | None]]:
        """Standard error of each context bin's mean loss for the pair of ``context_pair``, from the records'
        per-position standard errors over validation windows: between sqrt(sum se^2) / n (positions independent)
        and mean(se) (positions perfectly correlated within a window). None where a record has no errors."""
        out = {}
        for label, rec in zip(("lstm", "transformer"), self.context_pair(), strict=True):
            se = rec["loss"].get("val_by_position_se")
            res = rec.get("resolved", {})
            tokens = res.get("final_eval_tokens", res.get("eval_tokens"))
            windows = tokens // rec["model"]["n_ctx"] if tokens else None
            if se is None:
                out[label] = {"windows": windows, "early_bin": None, "late_bin": None, "single_position": None}
                continue
            se = np.asarray(se, dtype=float)
            row: dict[str, float | int | None] = {"windows": windows, "single_position": float(se.mean())}
            for name, b in zip(("early_bin", "late_bin"), _bins(se.size), strict=True):
                part = se[b]
                row[name] = float(np.sqrt(np.sum(part**2)) / part.size)
                row[name + "_if_correlated"] = float(part.mean())
            out[label] = row
        return out

    # ------------------------------------------------------------------ claims
    def measurements(self) -> dict[str, Measurement]:
        m: dict[str, Measurement] = {}
        B = self.n_bootstrap

        def ci(samples) -> tuple[float, float] | None:
            s = np.asarray(samples, dtype=float)
            s = s[np.isfinite(s)]
            if s.size < 2:
                return None
            return percentile_interval(s, LEVEL)

        def meas(value, samples, note):
            interval = ci(samples)
            return Measurement(float(value), interval, LEVEL if interval else None, note)

        for key, f, what in (("L_N", self.L_N, "sizes"), ("L_D", self.L_D, "budgets")):
            note = f"{len(f.x)} {what}, {B} bootstrap refits over runs ({f.boot.n_failed} failed); R^2 {f.r2():.4f}"
            alpha = "alpha_N" if key == "L_N" else "alpha_D"
            m[f"{key}.{alpha}"] = meas(f.alpha, f.boot.column("alpha"), note)
            lo_hi = f.max_residual_interval()
            m[f"{key}.max_abs_log_residual"] = Measurement(
                float(np.max(np.abs(f.residuals()))),
                lo_hi,
                LEVEL,
                f"{note}; interval: each bootstrap replicate's fit on its own resampled points",
            )
        e = self.envelope
        env_note = (
            f"envelope of {len(self.n_sweep)} learning curves, {int(e.keep.sum())} points from C = "
            f"{e.frontier.compute[e.keep].min():.3g} to {e.frontier.compute[e.keep].max():.3g} FLOPs; "
            f"{len(e.boot_alpha_C)} bootstrap resamples of whole curves"
        )
        m["L_C.alpha_C"] = meas(e.alpha_C, e.boot_alpha_C, env_note)
        m["L_C.max_abs_log_residual"] = meas(e.max_residual, e.boot_max_residual, env_note)
        m["N_opt.exponent"] = meas(e.n_opt_exponent, e.boot_n_opt, env_note)
        nd_note = f"{len(self.transformers)} Transformer runs, {B} bootstrap refits over runs"
        for k in ("alpha_N", "alpha_D"):
            m[f"L_ND.{k}"] = meas(self.L_ND.params_[k], self.L_ND_boot.column(k), nd_note)
        n_pts = len(self.L_NS_points[2])
        m["L_NS.alpha_S"] = meas(
            self.L_NS.params_["alpha_S"],
            self.L_NS_boot.column("alpha_S"),
            f"{n_pts} learning-curve points of {len(self.n_sweep)} runs (raw steps, not S_min); "
            f"{B} cluster-bootstrap refits over whole curves",
        )
        rng = np.random.default_rng(self.seed)
        if len(self.aspect) >= 2:
            shapes = ", ".join(
                f"{int(nl)}x{int(d)}" for nl, d in zip(self.aspect["n_layer"], self.aspect["d_model"], strict=True)
            )
            m["aspect.relative_spread"] = meas(
                self.aspect_spread()[0],
                self.aspect_spread(rng, B),
                f"shapes (layers x d_model) {shapes}; interval: bootstrap over context positions of the validation "
                "set (one seed per shape: seed noise, about 0.4% of the loss, is not in it)",
            )
        else:
            m["aspect.relative_spread"] = Measurement.missing("fewer than two aspect-ratio runs")
        if len(self.lstm) >= 2:
            gaps = self.lstm_gaps()
            boot_gaps = self.lstm_gaps((self.L_N.boot.column("A"), self.L_N.boot.column("alpha")))
            big = int(np.argmax(self.lstm["N_kaplan"]))
            gap_note = (
                f"{len(self.lstm)} LSTMs (N = "
                + ", ".join(f"{n:.3g}" for n in self.lstm["N_kaplan"])
                + f"); gaps {', '.join(f'{g:+.3f}' for g in gaps)} nats; interval: the Transformer L(N) bootstrap"
            )
            m["lstm.gap_at_largest"] = meas(gaps[big], boot_gaps[:, big], gap_note)
            m["lstm.gap_slope"] = meas(self.gap_slope(gaps)[0], self.gap_slope(boot_gaps), gap_note)
            pt = self.context_gains()
            bt = self.context_gains(rng, B)
            lstm_rec, tf_rec = self.context_pair()
            n_ctx = len(lstm_rec["loss"]["val_by_position"])
            e_, l_ = _bins(n_ctx)
            ctx_note = (
                f"LSTM N={lstm_rec['scale']['N_kaplan']:.3g} vs Transformer N={tf_rec['scale']['N_kaplan']:.3g}; "
                f"mean loss at positions {e_.start}-{e_.stop - 1} minus {l_.start}-{l_.stop - 1}: LSTM "
                f"{pt['lstm'][0]:+.4f}, Transformer {pt['transformer'][0]:+.4f} nats; interval: bootstrap over "
                "positions"
            )
            m["context.lstm_late_gain"] = meas(pt["lstm"][0], bt["lstm"], ctx_note)
            m["context.gain_difference"] = meas(pt["difference"][0], bt["difference"], ctx_note)
        else:
            for k in ("lstm.gap_at_largest", "lstm.gap_slope", "context.lstm_late_gain", "context.gain_difference"):
                m[k] = Measurement.missing("fewer than two LSTM runs")
        return m

    def constants(self) -> dict[str, float]:
        """Fitted constants, for information only (they depend on tokenizer and data)."""
        p = self.L_ND.params_
        return {
            "L_N.N_c": self.L_N.x_c,
            "L_D.D_c": self.L_D.x_c,
            "L_C.C_c_flops": self.envelope.C_c,
            "L_ND.N_c": float(p["N_c"]),
            "L_ND.D_c": float(p["D_c"]),
            "L_NS.N_c": float(self.L_NS.params_["N_c"]),
            "L_NS.S_c": float(self.L_NS.params_["S_c"]),
            "L_NS.alpha_N": float(self.L_NS.params_["alpha_N"]),
        }


def analyse(
    tables: dict[str, RunTable],
    n_bootstrap: int = 1000,
    seed: int = 0,
    log=print,
    progress: Callable[[str], ProgressFn] | None = None,
) -> KaplanAnalysis:
    """Fit everything from the tier's sweeps by role (``{role: RunTable}``, see :func:`tables_by_role`); every role
    of ``ROLES`` but the optional ones must be there. ``progress(label)``, if given, makes the progress callback
    of each bootstrap (the tier passes :meth:`harness.replication.TierContext.progress`)."""
    bar = progress or (lambda label: no_progress)
    missing = [r for r in ROLES if r not in tables and r not in OPTIONAL_ROLES]
    if missing:
        raise ValueError(f"no run table for the role(s) {', '.join(missing)}; have {', '.join(sorted(tables))}")
    nd, data = _multi_layer(tables["nd"]), _multi_layer(tables["data"])
    aspect, lstm = tables["aspect"], tables["lstm"]
    ids = list(dict.fromkeys([*nd["run_id"], *data["run_id"]]))
    both = load_union(nd, data, ids)
    d_max = nd["D"].max()
    n_sweep = nd.subset([r for r, d in zip(nd["run_id"], nd["D"], strict=True) if d == d_max])
    n_max = both["N_kaplan"].max()
    d_sweep = both.subset([r for r, n in zip(both["run_id"], both["N_kaplan"], strict=True) if n == n_max])
    log(f"kaplan: L(N) on {len(n_sweep)} sizes at D = {d_max:.3g}; L(D) on {len(d_sweep)} budgets at N = {n_max:.3g}")
    L_N = fit_power(n_sweep["N_kaplan"], n_sweep["loss"], n_bootstrap, seed, progress=bar("L(N) bootstrap"))
    L_D = fit_power(d_sweep["D"], d_sweep["loss"], n_bootstrap, seed, progress=bar("L(D) bootstrap"))
    log(f"kaplan: L(N, D) on {len(both)} runs ...")
    X, y = both.xy(("N_kaplan", "D"))
    L_ND = ScalingLaw("kaplan", loss="mse").fit(X, y)
    L_ND_boot = L_ND.bootstrap(n_bootstrap, seed=seed, progress=bar("L(N, D) bootstrap"))
    log("kaplan: L(N, S) on the learning curves, L(C_min) and N_opt(C) on their envelope ...")
    ns, ss, ls, gs = [], [], [], []
    for i, rec in enumerate(n_sweep.records):
        step, _, loss = _curve_points(rec)
        ns.append(np.full(step.size, rec["scale"]["N_kaplan"], dtype=float))
        ss.append(step)
        ls.append(loss)
        gs.append(np.full(step.size, i))
    N_, S_, L_, G_ = (np.concatenate(a) for a in (ns, ss, ls, gs))
    L_NS = ScalingLaw("kaplan_ns", loss="mse").fit(np.stack([N_, S_], axis=1), L_)
    L_NS_boot = L_NS.bootstrap(n_bootstrap, seed=seed, groups=G_, progress=bar("L(N, S) bootstrap"))
    envelope = fit_envelope(n_sweep, n_bootstrap, seed, bar("envelope bootstrap"))
    return KaplanAnalysis(
        tables=tables,
        transformers=both,
        n_sweep=n_sweep,
        d_sweep=d_sweep,
        L_N=L_N,
        L_D=L_D,
        L_ND=L_ND,
        L_ND_boot=L_ND_boot,
        L_NS=L_NS,
        L_NS_boot=L_NS_boot,
        L_NS_points=(N_, S_, L_),
        envelope=envelope,
        aspect=aspect,
        lstm=lstm,
        n_bootstrap=n_bootstrap,
        seed=seed,
        seeds=tables.get("seeds"),
    )


def load_union(a: RunTable, b: RunTable, ids: list[str]) -> RunTable:
    """The rows of two tables (from the same run cache) with the given ids, each once."""
    recs = {r["run_id"][:16]: r for r in [*a.records, *b.records]}
    cols = {}
    for k in a.columns:
        vals = {rid: v for t in (a, b) for rid, v in zip(t["run_id"], t[k], strict=True)}
        cols[k] = np.asarray([vals[i] for i in ids], dtype=a.columns[k].dtype)
    return RunTable(cols, [recs[i] for i in ids], [*a.failed, *b.failed])


def load(tier: str = "cpu", n_bootstrap: int = 1000, seed: int = 0, out_dir=None, log=print) -> KaplanAnalysis:
    """The analysis of a tier from its committed run records (no training, no data): what the notebook shows."""
    from harness.replication import RESULTS_DIR

    ctx = TierContext(
        tier=tier,
        out_dir=out_dir or RESULTS_DIR / "kaplan" / tier,
        n_bootstrap=n_bootstrap,
        seed=seed,
        log=log,
        train=False,
        sweeps=tier_specs(tier),
        replication="kaplan",
    )
    return analyse(tables_by_role(ctx.sweeps, run_tier_sweeps(ctx)), n_bootstrap, seed, log)


def measure(ctx: TierContext) -> TierResult:
    """Train the tier's missing runs (unless ``ctx.train`` is false), fit, measure, draw."""
    from . import figures  # here, not at the top: matplotlib is needed only to draw

    tables = run_tier_sweeps(ctx)
    an = analyse(tables_by_role(ctx.sweeps, tables), ctx.n_bootstrap, ctx.seed, ctx.log, ctx.progress)
    runs = {name: sorted(t["run_id"].tolist()) for name, t in tables.items()}
    failed = {name: t.failed for name, t in tables.items() if t.failed}
    return TierResult(
        measurements=an.measurements(),
        figures=figures.all_figures(an),
        artifacts={
            "constants_for_information": an.constants(),
            "seed_noise": an.seed_noise(),
            "convergence_of_L_N": an.convergence(),
            "largest_model_measured_gain_per_doubling": an.measured_doubling_gain(),
            "context_bin_se": an.context_bin_se() if len(an.lstm) else {},
            "fits": {
                "L_N": dict(an.L_N.law.params_),
                "L_D": dict(an.L_D.law.params_),
                "L_ND": dict(an.L_ND.params_),
                "L_NS": dict(an.L_NS.params_),
                "L_C": {"alpha_C": an.envelope.alpha_C, "C_c": an.envelope.C_c},
                "N_opt": {"exponent": an.envelope.n_opt_exponent},
            },
            "failed_runs": failed,
            "n_bootstrap": ctx.n_bootstrap,
            "seed": ctx.seed,
        },
        inputs={"run_records": runs, "run_cache": str(ctx.out_dir)},
    )
