"""The package's import graph, read from the source (module-level and function-level imports):
no import cycles outside ``tensormol.so3`` (whose lazy imports between irreps, harmonics and
Wigner matrices are fine), and no module imported only for its side effects."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tensormol"
ALLOWED_CYCLE_PACKAGES = ("tensormol.so3",)


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Modules of the package that ``node`` (in ``module``) imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in MODULES:
                yield alias.name
        return
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if _is_package(module) else 0)
        base = ".".join(parts[:keep] + ([base] if base else []))
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in MODULES:  # ``from pkg import submodule``
            yield sub
        elif base in MODULES:
            yield base


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(t for t in _imported(module, node) if t != module)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components with more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
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
    return sorted(out)


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module (for the message)."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return component


def test_no_import_cycles_outside_so3() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "tensormol.models._base" in graph  # the walk found the package
    cycles = [
        " -> ".join(_cycle_path(graph, comp)) for comp in strongly_connected(graph)
        if not all(m.startswith(ALLOWED_CYCLE_PACKAGES) for m in comp)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert _cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def _names_used(tree: ast.Module) -> set[str]:
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.value.id for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    for node in ast.walk(tree):  # names listed in __all__ are re-exports, not side effects
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            used |= {e.value for e in ast.walk(node.value)
                     if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return used


def side_effects_in(module: str, text: str, where: str) -> list[str]:
    """Imports of package modules made only to run them: ``import x  # noqa: F401`` whose names
    are never used, and discarded ``importlib.import_module("tensormol...")`` calls. (Probes of
    optional third-party packages, ``try: import ninja`` and the like, are not side effects on
    tensormol.)"""
    found = []
    lines = text.splitlines()
    tree = ast.parse(text)
    used = _names_used(tree)
    for node in ast.walk(tree):
        at = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            span = lines[node.lineno - 1: (node.end_lineno or node.lineno)]
            if not any("noqa" in ln and "F401" in ln for ln in span):
                continue
            if not any(True for _ in _imported(module, node)):
                continue
            bound = [(a.asname or a.name).split(".")[0] for a in node.names]
            if not any(b in used for b in bound):
                found.append(f"{at}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
              and ast.unparse(node.value.func) in ("importlib.import_module", "import_module",
                                                   "__import__")
              and node.value.args and isinstance(node.value.args[0], ast.Constant)
              and str(node.value.args[0].value).startswith("tensormol")):
            found.append(f"{at}: {ast.unparse(node)}")
    return found


def test_no_module_is_imported_only_for_its_side_effects() -> None:
    found = [hit for module, path in MODULES.items()
             for hit in side_effects_in(module, path.read_text(encoding="utf-8"),
                                        str(path.relative_to(PACKAGE.parent)))]
    assert not found, "imports made only for their side effects:\n" + "\n".join(found)


def test_the_side_effect_finder_finds_them() -> None:
    source = (
        "import importlib\n"
        "from tensormol.registry import MODELS\n"
        "def check():\n"
        "    from tensormol import models as _models  # noqa: F401  (registers the builders)\n"
        "    importlib.import_module('tensormol.models')\n"
        "    try:\n"
        "        import ninja  # noqa: F401\n"
        "    except ImportError:\n"
        "        pass\n"
        "    return MODELS\n"
    )
    found = side_effects_in("tensormol.config._io", source, "x.py")
    assert found == ["x.py:4: from tensormol import models as _models",
                     "x.py:5: importlib.import_module('tensormol.models')"]
