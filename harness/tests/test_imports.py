"""The import structure: no circles anywhere in the project (lazy, function-level imports included), and
``kernels/`` a leaf that imports nothing from ``harness/``."""

import ast
from pathlib import Path

from harness.provenance import REPO_ROOT

PACKAGES = ("harness", "kernels", "replications")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (REPO_ROOT / pkg).rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its body, functions included: ``import``, ``from ... import``
    (a name that is a submodule counts as that submodule) and ``importlib.import_module("...")`` with a literal.
    Imports under ``if TYPE_CHECKING:`` are left out: they never run."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # drop type-checking-only blocks
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for a in node.names:  # a submodule imported from its package is an edge to the submodule only
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
        elif (
            isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_detector_sees_a_circle_through_a_lazy_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_anywhere():
    graph = import_graph()
    assert len(graph) > 50 and "harness.train" in graph["harness.sweep"]  # the graph is really built
    assert cycles(graph) == []


def test_kernels_import_nothing_from_harness():
    graph = import_graph()
    upward = sorted(
        (m, d) for m, deps in graph.items() if m.startswith("kernels") for d in deps if d.startswith("harness")
    )
    assert upward == []


def test_harness_names_no_replication():
    """Library code never imports a paper's folder (replications are discovered by name, see
    harness.replication.available); tests and benchmarks may use a paper's data as their workload."""
    graph = import_graph()
    named = sorted(
        (m, d)
        for m, deps in graph.items()
        if m.startswith("harness") and not m.startswith(("harness.tests", "harness.benchmarks"))
        for d in deps
        if d.startswith("replications.")
    )
    assert named == []
