"""The Kaplan replication's analysis on synthetic run records drawn from known laws: it must recover them.

Records are written to disk and read back with ``load_runs``, as the real ones are. Final losses follow eq. 1.5
(alpha_N 0.076, alpha_D 0.103), learning curves follow eq. 1.6 (alpha_S 0.76), so each fit has a known answer.
"""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from harness import records
from harness.claims import judge_all
from harness.errors import UserError
from harness.runs import load_runs
from replications.kaplan import REPLICATION
from replications.kaplan.analysis import analyse, tables_by_role
from replications.kaplan.constants import ROLES, role_of, tier_specs

TRUE = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.103, "S_c": 2.1e3, "alpha_S": 0.76}
N_CTX = 64


def loss_nd(n, d):
    return ((TRUE["N_c"] / n) ** (TRUE["alpha_N"] / TRUE["alpha_D"]) + TRUE["D_c"] / d) ** TRUE["alpha_D"]


def loss_ns(n, s):
    return (TRUE["N_c"] / n) ** TRUE["alpha_N"] + (TRUE["S_c"] / s) ** TRUE["alpha_S"]


def record(i, model, n_layer, d_model, n, d, final, curve_fn, by_position):
    steps = np.unique(np.geomspace(1, d / 1000, 14).astype(int))
    ident = records.identity({"seed": i}, {"synthetic": True})  # a stand-in identity, one per record
    rec = {
        "schema": records.SCHEMA,
        "run_id": records.run_id_of(ident),
        "identity": ident,
        "status": "finished",
        "seed": 0,
        "model": {"name": model, "n_layer": n_layer, "d_model": d_model, "n_ctx": N_CTX, "vocab_size": 256},
        "scale": {
            "N_kaplan": n,
            "N_total": n,
            "N_non_embedding": n,
            "D": d,
            "C_kaplan": 6 * n * d,
            "C_hoffmann": 6 * n * d,
        },
        "loss": {"val_final": final, "train_final": final, "val_by_position": list(by_position)},
        "timing": {"wall_s": 1.0, "tokens_per_s": 1.0},
        "curve": {
            "step": steps.tolist(),
            "tokens": (steps * 1000).tolist(),
            "val_loss": [float(curve_fn(s)) for s in steps],
        },
    }
    return records.seal(rec)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("kaplan")
    ns, ds = [3e3, 1e4, 3e4, 1e5, 3e5, 1e6], [2e5, 6e5, 2e6, 6.5e6]
    pos = np.arange(1, N_CTX + 1)
    flat = np.full(N_CTX, 5.0)
    tf_pos = 5.0 + 0.3 * pos**-0.5  # still improving at the end of the context
    lstm_pos = np.where(pos < 24, 5.0 + 0.3 * pos**-0.5, 5.0 + 0.3 * 24**-0.5)  # flat after 24 tokens
    recs, i = {"nd": [], "data": [], "aspect": [], "lstm": []}, 0
    for n in ns:
        for d in ds:
            final = loss_nd(n, d)
            recs["nd"].append(record(i, "gpt", 2, 32, n, d, final, lambda s, n=n: loss_ns(n, s), tf_pos))
            i += 1
    for d in (1e5, 4e6):
        recs["data"].append(record(i, "gpt", 2, 32, 1e6, d, loss_nd(1e6, d), lambda s: loss_ns(1e6, s), flat))
        i += 1
    # aspect: 2% spread in the loss by position (the final_eval_tokens windows), none in the curve's last eval
    for nl, dm, f in ((2, 64, 1.00), (4, 48, 1.01), (8, 32, 1.02)):
        recs["aspect"].append(record(i, "gpt", nl, dm, 1e5, 2e6, 4.5, lambda s: 5.0, f * tf_pos))
        i += 1
    for n in (1e4, 3e4, 1e5):  # LSTM: 0.1 nats worse per decade of N on top of the Transformer law at D_max
        final = loss_nd(n, ds[-1]) + 0.1 * np.log10(n / 3e3)
        recs["lstm"].append(record(i, "lstm", 2, 32, n, ds[-1], final, lambda s: 5.0, lstm_pos))
        i += 1
    tables = {}
    for name, rs in recs.items():
        folder = out / name
        folder.mkdir()
        for r in rs:
            (folder / f"{r['run_id'][:16]}.json").write_text(json.dumps(r))
        tables[name] = load_runs(folder)
    return analyse(tables, n_bootstrap=20, seed=0, log=lambda s: None)


def test_joint_fits_recover_the_generating_laws(synthetic):
    an = synthetic
    for k in ("alpha_N", "alpha_D"):  # final losses: eq. 1.5 exactly
        assert an.L_ND.params_[k] == pytest.approx(TRUE[k], abs=1e-3)
    for k in ("alpha_N", "alpha_S"):  # learning curves: eq. 1.6 exactly
        assert an.L_NS.params_[k] == pytest.approx(TRUE[k], abs=1e-3)
    # at a finite D, eq. 1.5 bends L(N) away from a power law: the fitted slope is flatter than alpha_N
    assert 0 < an.L_N.alpha < TRUE["alpha_N"]
    m = an.measurements()
    assert m["L_N.alpha_N"].ci[0] <= m["L_N.alpha_N"].value <= m["L_N.alpha_N"].ci[1]


def test_convergence_is_measured_against_the_generating_law(synthetic):
    # the L(N) column is at D = 6.5e6: the joint fit must give eq. 1.5's own distance to the D -> inf limit
    rows = synthetic.convergence()
    assert [r["N"] for r in rows] == sorted(r["N"] for r in rows) and len(rows) == 6
    for r in rows:
        n, d = r["N"], r["D"]
        assert d == 6.5e6 and r["tokens_per_param"] == pytest.approx(d / n)
        assert r["fit"] == pytest.approx(loss_nd(n, d), rel=1e-4)
        assert r["doubling_gain"] == pytest.approx(loss_nd(n, d) - loss_nd(n, 2 * d), rel=1e-2)
        assert r["gap_to_limit"] == pytest.approx(loss_nd(n, d) - (TRUE["N_c"] / n) ** TRUE["alpha_N"], rel=1e-2)
    # the largest model's measured gain per doubling between its two largest budgets (4e6 and 6.5e6)
    gain = (loss_nd(1e6, 4e6) - loss_nd(1e6, 6.5e6)) / np.log2(6.5e6 / 4e6)
    assert synthetic.measured_doubling_gain() == pytest.approx(gain, rel=1e-9)
    se = synthetic.context_bin_se()  # the synthetic records carry no per-position errors: said, not invented
    assert se["lstm"]["early_bin"] is None and se["transformer"]["single_position"] is None


def test_comparisons_have_the_signs_built_into_the_data(synthetic):
    m = synthetic.measurements()
    spread = m["aspect.relative_spread"]  # estimate and interval from the same tokens: the loss by position
    assert spread.value == pytest.approx(0.02, rel=1e-9)
    assert spread.ci == pytest.approx((0.02, 0.02), rel=1e-9)
    assert m["lstm.gap_at_largest"].value > 0 and m["lstm.gap_slope"].value > 0
    assert m["context.lstm_late_gain"].value == pytest.approx(0.0, abs=1e-12)  # flat after 24 of 64 positions
    assert m["context.gain_difference"].value > 0  # the Transformer still improves between the bins
    lo, hi = m["context.gain_difference"].ci
    assert 0 < lo <= hi


def test_every_claim_gets_a_verdict_with_an_interval(synthetic):
    verdicts = judge_all(REPLICATION.claims(), synthetic.measurements())
    assert len(verdicts) == len(REPLICATION.claims().claims) >= 15
    assert all(v.measurement.value is not None for v in verdicts)  # every measurement exists ...
    assert all(v.measurement.ci is not None for v in verdicts)  # ... and carries a bootstrap interval
    assert all(v.verdict != "INCONCLUSIVE" or "straddles" in v.reason for v in verdicts)


@pytest.mark.parametrize("tier", ["cpu-kaplan-recipe", "cpu"])
def test_audit_rederives_the_committed_verdicts(capsys, tier):
    # results/kaplan/<tier> holds committed run records: the audit reads them back (no data, no training) and
    # --strict checks every verdict against the one recorded for that tier in claims.toml. Point values, and so
    # verdicts not decided by an interval, do not depend on the number of bootstrap resamples.
    from harness.cli import main

    argv = ["audit", "kaplan", "--tier", tier, "--bootstrap", "200", "--strict", "--format", "json"]
    assert main(argv) == 0
    claims = json.loads(capsys.readouterr().out)["claims"]
    assert len(claims) == len(REPLICATION.claims().claims)


@pytest.mark.parametrize("tier", ["smoke", "cpu-kaplan-recipe", "cpu", "gpu"])
def test_tier_plans_meet_the_replication_design(tier):
    from harness.models import model_counts
    from harness.sweep import expand, load_spec

    t = REPLICATION.tier(tier)
    runs = {role_of(p): [c for c, _ in expand(load_spec(p))[0]] for p in t.sweeps}
    assert set(runs) == set(ROLES) == {"nd", "data", "aspect", "lstm", "seeds"}
    assert len({c.seed for c in runs["seeds"]}) == 3
    gpts = [c for role in ("nd", "data", "aspect") for c in runs[role]]
    assert all(c.model.name == "gpt" and c.model.args.n_layer >= 2 for c in gpts)  # no one-layer models (Sec. 3.1)
    assert {c.model.name for c in runs["lstm"]} == {"lstm"}
    assert len({(c.model.args.n_layer, c.model.args.d_model) for c in runs["aspect"]}) >= 2
    if tier != "smoke":
        n = [model_counts(c.model).n_kaplan for c in runs["nd"]]
        assert np.log10(max(n) / min(n)) >= 2.5  # Transformers spanning at least 2.5 decades of N ...
        assert len({(c.model.args.n_layer, c.model.args.d_model) for c in runs["aspect"]}) == 3  # ... three shapes ...
        assert len(runs["lstm"]) >= 4  # ... and four LSTM sizes


def test_sweeps_are_found_by_role_not_by_name(synthetic):
    specs = tier_specs("cpu-kaplan-recipe")
    assert REPLICATION.tier("cpu-kaplan-recipe").sweeps == specs and [role_of(p) for p in specs] == list(ROLES)
    # run_tier_sweeps keys tables by sweep name, in the order of the specs; the name says nothing about the role
    tables = {f"sweep-{i}": synthetic.tables.get(role) for i, role in enumerate(ROLES)}
    by_role = tables_by_role(specs, tables)
    assert list(by_role) == list(ROLES) and by_role["nd"] is synthetic.tables["nd"]
    with pytest.raises(ValueError, match="one run table per sweep spec"):
        tables_by_role(specs, dict(list(tables.items())[:-1]))
    with pytest.raises(ValueError, match="has no Kaplan role"):
        role_of(Path("sweeps/cpu/extra.toml"))
    with pytest.raises(ValueError, match=r"no run table for the role.* lstm"):
        analyse({k: v for k, v in synthetic.tables.items() if k != "lstm"}, n_bootstrap=2, log=lambda s: None)
    with pytest.raises(UserError, match="no sweeps for tier 'nope'"):
        tier_specs("nope")


def test_load_gives_the_notebook_the_audits_analysis():
    from replications.kaplan.analysis import load

    an = load("cpu-kaplan-recipe", n_bootstrap=20, log=lambda s: None)  # committed records, read back by role
    assert set(an.tables) == set(ROLES) and an.seeds is an.tables["seeds"]
    assert an.L_N.alpha == pytest.approx(0.049848, abs=1e-6)  # the audit's L_N.alpha_N (a point value)


def _runtime_imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` (``"__init__"`` for the package itself) that the file imports at run time,
    lazy imports in functions included; imports under ``if TYPE_CHECKING:`` are for annotations and never run."""
    siblings = {p.stem for p in path.parent.glob("*.py")}
    out: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node):
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for n in node.orelse:
                    self.visit(n)
            else:
                self.generic_visit(node)

        def visit_ImportFrom(self, node):
            if node.level == 1:
                mod = node.module or ""
            elif node.level == 0 and (node.module == package or node.module.startswith(f"{package}.")):
                mod = node.module[len(package) + 1 :]
            else:
                return
            if mod:
                out.add(mod.split(".")[0])
            else:  # from . import x: a module of the package, or a name its __init__ defines
                out.update(a.name if a.name in siblings else "__init__" for a in node.names)

    Visitor().visit(ast.parse(path.read_text()))
    return out


@pytest.mark.parametrize("name", ["kaplan", "chinchilla"])
def test_replication_modules_import_no_circle(name):
    folder = Path(__file__).resolve().parents[2] / "replications" / name
    graph = {p.stem: _runtime_imports(p, f"replications.{name}") for p in folder.glob("*.py")}
    assert "analysis" not in graph["figures"]  # figures take the analysis's results as arguments

    def visit(mod, path):
        assert mod not in path, f"import circle in replications.{name}: {' -> '.join([*path, mod])}"
        for dep in graph.get(mod, ()):
            visit(dep, [*path, mod])

    for mod in graph:
        visit(mod, [])
