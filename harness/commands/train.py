"""``scaling train``, ``scaling sweep``, ``scaling runs`` and ``scaling corpus``: the training harness."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train one model and write its run record",
        description="Train one model. Settings come from --config (TOML with TrainConfig fields), then flags. "
        "Example: scaling train --N 1e5 --tokens 1e6 --out runs",
    )
    p.add_argument("--config", type=Path, help="TOML file of TrainConfig fields ([model] for the model)")
    p.add_argument("--model", help="registered model name (gpt, lstm) or an import path 'package.module:Class'")
    p.add_argument("--N", type=float, help="target Kaplan non-embedding parameters (shape chosen for you)")
    p.add_argument("--n-layer", type=int, help="number of layers (an explicit shape instead of --N)")
    p.add_argument("--d-model", type=int, help="model width: embedding and residual channels (a multiple of --n-head)")
    p.add_argument("--n-head", type=int, help="attention heads (GPT); each gets d_model / n_head channels")
    p.add_argument("--n-ctx", type=int, help="context length in tokens (default 128)")
    p.add_argument("--pos", choices=("learned", "rotary"), help="GPT positions: learned absolute or rotary (RoPE)")
    p.add_argument(
        "--tie-weights", action="store_true", default=None, help="output projection shares the token embedding"
    )
    p.add_argument(
        "--kernels",
        choices=("auto", "triton", "torch"),
        help="implementation of the fused ops: auto (Triton on CUDA when available), triton or torch",
    )
    p.add_argument("--tokens", type=float, help="token budget D (rounded down to whole steps; default 1e6)")
    p.add_argument("--batch-tokens", type=float, help="tokens per optimiser step, a multiple of n_ctx (default 8192)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: Kaplan et al. eq. D.1 of N)")
    p.add_argument(
        "--schedule",
        choices=("hoffmann", "kaplan"),
        help="learning-rate schedule: warmup then cosine to 10 %% (hoffmann, default) or to 0 (kaplan)",
    )
    p.add_argument("--seed", type=int, help="seed of the initialisation and the batch order (default 0)")
    p.add_argument(
        "--data",
        help="'default', a prepared data folder, a .bin / nanoGPT folder, a text folder, or a datasets.save_to_disk "
        "folder (PATH#COLUMN for a column other than 'text')",
    )
    p.add_argument("--tokenizer", choices=("bpe", "byte"), help="tokenizer of the default corpus and text folders")
    p.add_argument(
        "--max-epochs",
        type=float,
        help="refuse a budget that repeats the training split more than this many times (default 1)",
    )
    p.add_argument("--precision", choices=("fp32", "bf16"), help="fp32 (default) or bf16 autocast")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto (default): CUDA when available")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model's training step")
    p.add_argument("--out", type=Path, default=Path("runs"), help="record folder (default ./runs)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.set_defaults(func=_train)

    s = sub.add_parser(
        "sweep",
        help="run a sweep spec (grid / IsoFLOP) with a run cache",
        description="Expand a TOML sweep spec into runs and run those not already finished in --out.",
    )
    s.add_argument("spec", type=Path, help="sweep spec (TOML with [base] and [grid] / [isoflop])")
    s.add_argument("--out", type=Path, default=Path("runs"), help="record folder shared by sweeps (default ./runs)")
    s.add_argument("--workers", type=int, default=None, help="worker processes (default 2, in-process if 1)")
    s.add_argument("--threads", type=int, default=None, help="torch threads per worker (default cores / workers)")
    s.add_argument("--dry-run", action="store_true", help="print the planned runs and exit")
    s.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: this machine (--workers/--threads); slurm: one SLURM job per pending run through submitit "
        "(optional extra: pip install 'scaling-harness[slurm]')",
    )
    g = s.add_argument_group("SLURM executor (--executor slurm)")
    g.add_argument("--slurm-partition", help="partition to submit to (default: the cluster's default)")
    g.add_argument("--slurm-time", type=int, default=60, metavar="MIN", help="time limit per job in minutes (60)")
    g.add_argument("--slurm-cpus", type=int, default=None, help="cpus per job, also its torch threads (--threads or 1)")
    g.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per job in GB")
    g.add_argument("--slurm-array-parallelism", type=int, default=None, help="most jobs of the array running at once")
    g.add_argument(
        "--slurm-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other submitit SLURM parameter, e.g. account=abc, qos=low, constraint=avx2 (repeatable)",
    )
    g.add_argument(
        "--slurm-cluster",
        choices=("slurm", "local"),
        default="slurm",
        help="submitit backend: slurm, or local to try the same submission as local processes",
    )
    s.set_defaults(func=_sweep)

    mg = sub.add_parser(
        "migrate",
        help="upgrade a folder of run records and sweep manifests to the current schema",
        description="Rewrite the run records under FOLDER/runs and the manifests under FOLDER/sweeps in the current "
        "schema (run ids from canonical configs, content hashes). Measurements are kept as they are. Give the "
        "sweep specs the manifests came from (--spec) so that a replication tier can be audited afterwards.",
    )
    mg.add_argument("folder", type=Path, help="a run cache: the folder holding runs/ (and sweeps/)")
    mg.add_argument("--spec", type=Path, nargs="*", default=[], help="sweep specs (TOML) of the folder's manifests")
    mg.set_defaults(func=_migrate)

    r = sub.add_parser("runs", help="list run records in a folder")
    r.add_argument("path", type=Path, help="a run record file, or a folder searched for records (e.g. a run cache)")
    r.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (table)")
    r.set_defaults(func=_runs)

    c = sub.add_parser("corpus", help="the embedded training corpus: build it, show it, prepare your own text")
    csub = c.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    b = csub.add_parser("build", help="the default corpus: same as 'scaling data build' (kept for old scripts)")
    b.add_argument("--tokenizer", choices=("bpe", "byte"), default="bpe", help="tokenizer to prepare (bpe)")
    b.add_argument("--force", action="store_true", help="rebuild even if present")
    b.set_defaults(func=_corpus_build)
    i = csub.add_parser("info", help="the default corpus's sources: same as 'scaling data info' (kept for old scripts)")
    i.set_defaults(func=_corpus_info)
    pr = csub.add_parser("prepare", help="tokenise a folder of text files into a prepared data folder")
    pr.add_argument("folder", type=Path, help="folder of text files (one document each)")
    pr.add_argument("--out", type=Path, required=True, help="prepared data folder to write (use it as --data)")
    pr.add_argument("--tokenizer", choices=("bpe", "byte"), default="bpe", help="bpe (trained here) or byte")
    pr.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size (default 4096)")
    pr.add_argument(
        "--val-fraction", type=float, default=0.02, help="fraction of the documents held out for validation (0.02)"
    )
    pr.set_defaults(func=_corpus_prepare)


_FLAG_FIELDS = {
    "tokens": "tokens",
    "batch_tokens": "batch_tokens",
    "lr": "lr",
    "schedule": "schedule",
    "seed": "seed",
    "data": "data",
    "tokenizer": "tokenizer",
    "max_epochs": "max_epochs",
    "precision": "precision",
    "device": "device",
    "compile": "compile",
}
_MODEL_FLAGS = {
    "model": "name",
    "N": "N",
    "n_layer": "n_layer",
    "d_model": "d_model",
    "n_head": "n_head",
    "n_ctx": "n_ctx",
    "pos": "pos",
    "tie_weights": "tie_weights",
    "kernels": "kernels",
}


def _config_from_args(args):
    from ..train import TrainConfig

    d: dict = {}
    if args.config:
        from ..records import read_toml

        d = read_toml(args.config, f"--config {args.config}")
    model = d.pop("model", {})
    if not isinstance(model, dict):
        raise UserError(f"--config {args.config}: model must be a [model] table, got {model!r}")
    model = dict(model)
    for flag, key in _FLAG_FIELDS.items():
        v = getattr(args, flag)
        if v is not None:
            d[key] = v
    for flag, key in _MODEL_FLAGS.items():
        v = getattr(args, flag)
        if v is not None:
            model[key] = v
    if "N" in model and {"n_layer", "d_model", "n_head"} & set(model):
        raise UserError("give either --N or an explicit shape (--n-layer/--d-model/--n-head), not both")
    d["model"] = model
    return TrainConfig.from_dict(d)


def _positive_int(flag: str, v) -> None:
    if v is not None and v < 1:
        raise UserError(f"{flag} must be a positive whole number, got {v}")


def _train(args) -> int:
    from ..progress import ProgressLine
    from ..train import train

    _positive_int("--threads", args.threads)
    cfg = _config_from_args(args)
    cfg.check_memory()  # before any allocation: a model or batch that cannot fit is refused with the estimate

    with ProgressLine("step") as bar:

        def progress(ev):
            bar(ev["step"], ev["steps"], f"loss {ev['loss']:.4f}")

        rec = train(cfg, args.out, threads=args.threads, progress=progress, log=lambda s: print(s, file=sys.stderr))
    s, t = rec["scale"], rec["timing"]
    print(f"run {rec['run_id'][:16]}: {rec['status']}" + (f" ({rec['reason']})" if rec["reason"] else ""))
    print(f"  model {_shape(rec['config']['model'])}  N_kaplan={s['N_kaplan']:,} N_total={s['N_total']:,}")
    print(f"  D={s['D']:,} tokens  C_kaplan={s['C_kaplan']:.3g}  C_hoffmann={s['C_hoffmann']:.3g} FLOPs")
    if rec["status"] == "finished":
        print(f"  final val loss {rec['loss']['val_final']:.4f}  train loss {rec['loss']['train_final']:.4f}")
    print(
        f"  {t['wall_s']:.1f} s wall, {t['tokens_per_s']:.0f} tokens/s, "
        f"{t['flops_per_s_hoffmann'] / 1e9:.1f} GFLOP/s (Hoffmann count)"
    )
    print(f"  record: {args.out / 'runs' / (rec['run_id'][:16] + '.json')}")
    return 0 if rec["status"] == "finished" else 1


def _sweep(args) -> int:
    from ..runs import format_table, load_runs
    from ..sweep import DEFAULT_WORKERS, SlurmExecutor, load_spec, plan, run_sweep

    for flag, v in (
        ("--workers", args.workers),
        ("--threads", args.threads),
        ("--slurm-time", args.slurm_time),
        ("--slurm-cpus", args.slurm_cpus),
        ("--slurm-array-parallelism", args.slurm_array_parallelism),
    ):
        _positive_int(flag, v)
    if args.slurm_mem_gb is not None and not (math.isfinite(args.slurm_mem_gb) and args.slurm_mem_gb > 0):
        raise UserError(f"--slurm-mem-gb must be a positive number, got {args.slurm_mem_gb}")
    spec = load_spec(args.spec)
    executor = None
    if args.executor == "slurm":
        params = {}
        for kv in args.slurm_param:
            key, sep, value = kv.partition("=")
            if not sep or not key:
                raise UserError(f"--slurm-param {kv!r}: expected KEY=VALUE")
            params[key.strip().replace("-", "_")] = value
        executor = SlurmExecutor(
            partition=args.slurm_partition,
            time_min=args.slurm_time,
            cpus_per_task=args.slurm_cpus or args.threads or 1,
            mem_gb=args.slurm_mem_gb,
            array_parallelism=args.slurm_array_parallelism,
            params=params,
            cluster=args.slurm_cluster,
        )
    sp = plan(spec, log=lambda s: print(s, file=sys.stderr))
    if args.dry_run:
        for r in sp.runs:
            d = r.config.steps * r.config.batch_tokens
            print(f"{r.run_id[:16]}  {r.origin}  {_shape(r.config.model.to_dict())} D={d:,}")
        for d in sp.dropped:
            print(f"dropped: {d}")
        return 0
    results = run_sweep(sp, args.out, workers=args.workers or DEFAULT_WORKERS, threads=args.threads, executor=executor)
    sub = load_runs(args.out / "runs", include_failed=False).subset(r["run_id"] for r in results)
    print(format_table(sub))
    n_failed = sum(r["status"] != "finished" for r in results)
    print(f"{len(results) - n_failed} finished, {n_failed} failed; records in {args.out / 'runs'}")
    return 0 if n_failed == 0 else 1


_SHAPE_ABBREV = {"n_layer": "L", "d_model": "d", "n_head": "H"}


def _shape(model: dict) -> str:
    """A model's name and its architecture's shape fields, e.g. ``gpt L=2 d=64 H=2``."""
    from ..models.config import COMMON_FIELDS

    shape = {k: v for k, v in model.items() if k != "name" and k not in COMMON_FIELDS}
    keys = [k for k in _SHAPE_ABBREV if k in shape] or list(shape)[:3]
    return " ".join([model["name"], *(f"{_SHAPE_ABBREV.get(k, k)}={shape[k]}" for k in keys)])


def _migrate(args) -> int:
    from ..migrate import migrate_folder

    migrate_folder(args.folder, args.spec, log=lambda s: print(s, file=sys.stderr))
    return 0


def _runs(args) -> int:
    from ..runs import NUMERIC, format_table, load_runs

    table = load_runs(args.path)
    if args.format == "table":
        print(format_table(table))
    elif args.format == "json":
        print(
            json.dumps(
                [
                    {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in table.columns.items()}
                    for i in range(len(table))
                ],
                indent=2,
            )
        )
    else:
        cols = list(table.columns)
        print(",".join(cols))
        for i in range(len(table)):
            print(",".join(repr(float(table[c][i])) if c in NUMERIC else str(table[c][i]) for c in cols))
    return 0


def _corpus_build(args) -> int:
    from ..data.corpus import build_corpus, corpus_dir, prepared_default

    print(f"building the default corpus in {corpus_dir()}", file=sys.stderr)
    path = build_corpus(force=args.force, log=lambda s: print(s, file=sys.stderr))
    manifest = json.loads((path.parent / "manifest.json").read_text())
    print(
        f"text: {path} ({manifest['documents']} documents, {manifest['bytes'] / 1e6:.1f} MB, "
        f"sha256 {manifest['text_sha256']})"
    )
    data = prepared_default(args.tokenizer, log=lambda s: print(s, file=sys.stderr))
    d = data.describe()
    print(
        f"tokens: {data.path}  train {d['train_tokens']:,}  val {d['val_tokens']:,}  vocab {d['vocab_size']}"
        f"  tokenizer sha256 {d['tokenizer']['hash'][:16]}"
    )
    return 0


def _corpus_info(args) -> int:
    from ..data.corpus import CORPUS_NAME, SOURCES, TEXT_SHA256, corpus_dir

    print(f"{CORPUS_NAME}: documentation text from PyPI source distributions; text sha256 {TEXT_SHA256}")
    print(f"location: {corpus_dir()} ({'built' if (corpus_dir() / 'manifest.json').exists() else 'not built'})")
    for s in SOURCES:
        print(f"  {s.project} {s.version} ({s.licence})  {s.url}\n      sha256 {s.sha256}  members {s.members}")
    return 0


def _corpus_prepare(args) -> int:
    from ..data.stream import prepare_documents, read_text_folder

    docs = read_text_folder(args.folder)
    data = prepare_documents(
        docs,
        args.out,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        val_fraction=args.val_fraction,
        source={"folder": str(args.folder.resolve())},
    )
    d = data.describe()
    print(
        f"{args.out}: {len(docs)} documents, train {d['train_tokens']:,} / val {d['val_tokens']:,} tokens, "
        f"vocab {d['vocab_size']}"
    )
    return 0
