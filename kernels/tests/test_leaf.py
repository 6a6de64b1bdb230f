"""kernels/ is a leaf: no module in it (tests included) imports the harness, directly, relatively or by
name through importlib, so the kernels can be used, tested and packaged without it."""

from __future__ import annotations

import ast
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[1]
FORBIDDEN = "harness"
IMPORT_CALLS = {"import_module", "__import__", "find_spec", "import_fresh_module"}


def _forbidden(name: str | None) -> bool:
    return name is not None and (name == FORBIDDEN or name.startswith(FORBIDDEN + "."))


def _harness_imports(path: Path, root: Path = KERNELS) -> list[str]:
    """``file:line`` of every import of the harness in ``path``, a file under the package folder ``root``."""
    rel = path.relative_to(root.parent)
    package = list(rel.parent.parts)  # e.g. ["kernels", "tests"]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package; it must stay inside kernels/
                base = package[: len(package) - node.level + 1]
                if not base:
                    names = [f"<relative import above kernels/: level {node.level}>"]
                    found.append(f"{rel}:{node.lineno} {names[0]}")
                    continue
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
                names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if fname in IMPORT_CALLS and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names = [arg.value]
        found += [f"{rel}:{node.lineno} {n}" for n in names if _forbidden(n)]
    return found


def test_no_module_in_kernels_imports_the_harness():
    files = sorted(KERNELS.rglob("*.py"))
    assert KERNELS / "ops.py" in files and KERNELS / "tests" / "test_leaf.py" in files
    offenders = [hit for f in files for hit in _harness_imports(f)]
    assert not offenders, "kernels/ must not import harness/:\n" + "\n".join(offenders)


def test_the_check_sees_every_form_of_import(tmp_path):
    """The detector itself: each way of importing the harness is caught, and look-alikes are not."""
    pkg = tmp_path / "kernels"
    (pkg / "tests").mkdir(parents=True)
    sample = pkg / "tests" / "sample.py"
    bad = [
        "import harness",
        "import harness.models as hm",
        "from harness.provenance import git_commit",
        "from harness import models",
        "import importlib; importlib.import_module('harness.models')",
        "from importlib import import_module; import_module('harness')",
        "__import__('harness.train')",
        "def f():\n    from harness.errors import UserError",
        "from ...harness import train",  # above kernels/
    ]
    for code in bad:
        sample.write_text(code + "\n")
        assert _harness_imports(sample, pkg), code
    good = ["import harnessing", "from .. import ops", "from ..reference import IGNORE_INDEX", "x = 'harness'"]
    for code in good:
        sample.write_text(code + "\n")
        assert not _harness_imports(sample, pkg), code
