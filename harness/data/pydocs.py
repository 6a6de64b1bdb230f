"""``pydocs-v1``: the small default corpus's pinned sources (documentation of eight Python projects).

Used as it is by the default corpus (:mod:`harness.data.corpus`) and, as its prose core, by the large one
(:mod:`harness.data.pystack`). Licences of the documentation (all permit redistribution with notice; see
each project's LICENSE): Django BSD-3-Clause, SQLAlchemy MIT, NumPy BSD-3-Clause, Sphinx BSD-2-Clause, SymPy
BSD-3-Clause, Twisted MIT, Celery BSD-3-Clause, Docutils (documentation in the public domain / BSD-2-Clause).
"""

from __future__ import annotations

from .sources import PYPI as _PY
from .sources import CorpusSource

SOURCES: tuple[CorpusSource, ...] = (
    CorpusSource(
        "Django",
        "5.1.4",
        f"{_PY}/d3/e8/536555596dbb79f6e77418aeb40bdc1758c26725aba31919ba449e6d5e6a/Django-5.1.4.tar.gz",
        "de450c09e91879fa5a307f696e57c851955c910a438a35e6b4c895e86bedc82a",
        r"^[^/]+/docs/.+\.txt$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "SQLAlchemy",
        "2.0.36",
        f"{_PY}/50/65/9cbc9c4c3287bed2499e05033e207473504dc4df999ce49385fb1f8b058a/sqlalchemy-2.0.36.tar.gz",
        "7f2767680b6d2398aea7082e45a774b2b0767b5c8d8ffb9c8b683088ea9b29c5",
        r"^[^/]+/doc/build/.+\.rst$",
        "MIT",
    ),
    CorpusSource(
        "numpy",
        "2.1.3",
        f"{_PY}/25/ca/1166b75c21abd1da445b97bf1fa2f14f423c6cfb4fc7c4ef31dccf9f6a94/numpy-2.1.3.tar.gz",
        "aa08e04e08aaf974d4458def539dece0d28146d866a39da5639596f4921fd761",
        r"^[^/]+/doc/.+\.rst$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "Sphinx",
        "8.1.3",
        f"{_PY}/6f/6d/be0b61178fe2cdcb67e2a92fc9ebb488e3c51c4f74a36a7824c0adf23425/sphinx-8.1.3.tar.gz",
        "43c1911eecb0d3e161ad78611bc905d1ad0e523e4ddc202a58a821773dc4c927",
        r"^[^/]+/doc/.+\.rst$",
        "BSD-2-Clause",
    ),
    CorpusSource(
        "SymPy",
        "1.13.3",
        f"{_PY}/11/8a/5a7fd6284fa8caac23a26c9ddf9c30485a48169344b4bd3b0f02fef1890f/sympy-1.13.3.tar.gz",
        "b27fd2c6530e0ab39e275fc9b683895367e51d5da91baa8d3d64db2565fec4d9",
        r"^[^/]+/doc/src/.+\.(rst|md)$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "Twisted",
        "24.11.0",
        f"{_PY}/77/1c/e07af0df31229250ab58a943077e4adbd5e227d9f2ac826920416b3e5fa2/twisted-24.11.0.tar.gz",
        "695d0556d5ec579dcc464d2856b634880ed1319f45b10d19043f2b57eb0115b5",
        r"^[^/]+/(docs/.+\.rst|NEWS\.rst)$",
        "MIT",
    ),
    CorpusSource(
        "Celery",
        "5.4.0",
        f"{_PY}/8a/9c/cf0bce2cc1c8971bf56629d8f180e4ca35612c7e79e6e432e785261a8be4/celery-5.4.0.tar.gz",
        "504a19140e8d3029d5acad88330c541d4c3f64c789d85f94756762d8bca7e706",
        r"^[^/]+/docs/.+\.rst$",
        "BSD-3-Clause",
    ),
    CorpusSource(
        "docutils",
        "0.21.2",
        f"{_PY}/ae/ed/aefcc8cd0ba62a0560c3c18c33925362d46c6075480bfa4df87b28e169a9/docutils-0.21.2.tar.gz",
        "3a6b18732edf182daa3cd12775bbb338cf5691468f91eeeb109deff6ebfa986f",
        r"^[^/]+/docs/.+\.(txt|rst)$",
        "public domain / BSD-2-Clause",
    ),
)

# sha256 of corpus.jsonl as built from SOURCES; a build that gives anything else is rejected.
TEXT_SHA256 = "16687a55657a32081c336014f42a1de151f7caf4fb0051d20121b2124af03851"
CORPUS_NAME = "pydocs-v1"
