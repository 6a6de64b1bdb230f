"""``scaling data``: published data sets (list, fetch into the cache).

The data sets are those the replications declare (``Replication.datasets``), found through
:func:`harness.replication.registered_datasets`: adding a paper's folder adds its data here.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("data", help="data: list and fetch published data sets, build the training corpus")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    ls = dsub.add_parser("list", help="list published data sets, their origin and whether they are cached")
    ls.set_defaults(func=_list)
    fe = dsub.add_parser("fetch", help="download a data set into the cache (verifying its sha256)")
    fe.add_argument("name", help="data set name (see 'scaling data list')")
    fe.set_defaults(func=_fetch)
    bu = dsub.add_parser(
        "build",
        help="build a training corpus: the default (also built on first use) or a large one such as pystack-v1",
    )
    bu.add_argument("name", nargs="?", default="default", help="default | pydocs-v1 | pystack-v1")
    bu.add_argument("--tokenizer", choices=("bpe", "byte"), default="bpe", help="tokenizer to prepare (bpe)")
    bu.add_argument("--force", action="store_true", help="rebuild the default corpus even if present")
    bu.set_defaults(func=_build)
    inf = dsub.add_parser("info", help="a training corpus: sources, licences, composition (prose / code), shards")
    inf.add_argument("name", nargs="?", default="default", help="default | pydocs-v1 | pystack-v1 (default)")
    inf.set_defaults(func=_info)


def _large_corpus(name: str):
    """The sharded corpus called ``name``, or None for the default corpus; an unknown name is an error."""
    from ..data.corpus import CORPUS_NAME, sharded_corpora, sharded_corpus_spec
    from ..errors import UserError

    if name in ("default", CORPUS_NAME):
        return None
    named = sharded_corpus_spec(name)
    if named is None:
        known = ", ".join(["default", CORPUS_NAME, *sharded_corpora()])
        raise UserError(f"no training corpus named {name!r}; known: {known}")
    return named[0]


def _build(args) -> int:
    import sys

    from .train import _corpus_build

    corpus = _large_corpus(args.name)
    if corpus is None:
        return _corpus_build(args)
    from ..data.shards import build_tokens

    print(f"building {corpus.name} in {corpus.root} (resumable: run again to continue)", file=sys.stderr)
    data = build_tokens(corpus, args.tokenizer, log=lambda s: print(s, file=sys.stderr))
    _print_sharded(corpus, data.meta)
    return 0


def _print_sharded(corpus, meta: dict | None) -> None:
    print(f"{corpus.name}: {corpus.description}")
    print(f"    location: {corpus.root} ({'built' if meta else 'not built: scaling data build ' + corpus.name})")
    from ..data.shards import composition, pinned_infos

    pinned = pinned_infos(corpus)
    if not meta and pinned is None:
        print(f"    {len(corpus.sources)} sources; composition is reported once built")
        return
    comp = meta["composition"] if meta else composition(pinned)
    total = comp["text_bytes"]
    kinds = ", ".join(f"{k} {v / 1e6:.1f} MB ({v / total:.0%})" for k, v in sorted(comp["by_kind"].items()))
    print(f"    text {total / 1e6:.1f} MB: {kinds}")
    if meta:
        train, val = meta["train"], meta["val"]
        print(
            f"    tokens: train {train['tokens']:,} in {len(train['shards'])} shards, val {val['tokens']:,} "
            f"(vocab {meta['tokenizer']['vocab_size']}, tokenizer sha256 {meta['tokenizer']['hash'][:16]})"
        )
    print("    source                                   kind     documents    MB  licence")
    for s in comp["by_source"]:
        print(
            f"    {s['project'] + ' ' + s['version']:40s} {s['kind']:6s} {s['documents']:>11,} "
            f"{s['text_bytes'] / 1e6:5.1f}  {s['licence']}"
        )


def _info(args) -> int:
    import json

    from .train import _corpus_info

    corpus = _large_corpus(args.name)
    if corpus is None:
        return _corpus_info(args)
    meta_path = corpus.tokens_dir() / "meta.json"
    _print_sharded(corpus, json.loads(meta_path.read_text()) if meta_path.exists() else None)
    for s in corpus.sources:
        print(f"    {s.part}: {s.url}\n        sha256 {s.sha256}  members {s.members}")
    return 0


def _list(args) -> int:
    from ..data import data_dir
    from ..replication import registered_datasets

    print(f"published data: {data_dir()}  (set SCALING_DATA_DIR to move it)")
    for ds in registered_datasets().values():
        state = "cached" if ds.path.exists() else "not cached"
        print(f"{ds.name}: {ds.description}")
        print(f"    {state}; origin {ds.url}\n    licence: {ds.licence}\n    cite: {ds.citation}")
    import json

    from ..data.corpus import CORPUS_NAME, corpus_dir, sharded_corpora

    print("\ntraining corpora (scaling data info NAME for sources and licences):")
    built = (corpus_dir() / "manifest.json").exists()
    print(f'{CORPUS_NAME} (data = "default"): documentation of 8 Python projects, about 6.7 M BPE tokens')
    print(f"    location: {corpus_dir()} ({'built' if built else 'built on first use'})")
    for corpus in sharded_corpora().values():
        meta_path = corpus.tokens_dir() / "meta.json"
        _print_sharded(corpus, json.loads(meta_path.read_text()) if meta_path.exists() else None)
    return 0


def _fetch(args) -> int:
    from ..data import fetch
    from ..replication import find_dataset

    print(fetch(find_dataset(args.name)))
    return 0
