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
    fe.add_argument("name")
    fe.set_defaults(func=_fetch)
    from .train import _corpus_build

    bu = dsub.add_parser(
        "build", help="build the default training corpus (same as 'scaling corpus build'; also done on first use)"
    )
    bu.add_argument("--tokenizer", choices=("bpe", "byte"), default="bpe")
    bu.add_argument("--force", action="store_true", help="rebuild even if present")
    bu.set_defaults(func=_corpus_build)


def _list(args) -> int:
    from ..data import data_dir
    from ..replication import registered_datasets

    print(f"published data: {data_dir()}  (set SCALING_DATA_DIR to move it)")
    for ds in registered_datasets().values():
        state = "cached" if ds.path.exists() else "not cached"
        print(f"{ds.name}: {ds.description}")
        print(f"    {state}; origin {ds.url}\n    licence: {ds.licence}\n    cite: {ds.citation}")
    return 0


def _fetch(args) -> int:
    from ..data import fetch
    from ..replication import find_dataset

    print(fetch(find_dataset(args.name)))
    return 0
