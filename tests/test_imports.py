"""The import drawing: no cycle through evaluate/, leaderboard/, train/ or inference/, the web server's routes
import their app state, never the app, and the leaderboard knows training only through inference's torch-free
modules.

Every import counts, at module level or in a function, ``TYPE_CHECKING`` ones too, and ``from package import
name`` counts as importing the package (its ``__init__`` runs first): a submodule that imports its own package's
re-exports closes a cycle through the ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import polypbench

ROOT = Path(polypbench.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _graph() -> dict[str, set[str]]:
    """Module -> the polypbench modules it imports (each name resolved to the longest module that exists)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parent = package.split(".")
                    base = ".".join([*parent[:len(parent) - node.level + 1], *filter(None, [base])])
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            found |= {m for t in targets if t.startswith("polypbench") and (m := resolve(t)) not in (None, name)}
        graph[name] = found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_drawing_is_read_as_python_imports_it() -> None:
    graph = _graph()
    assert "polypbench.evaluate.policy" in graph["polypbench.evaluate.bootstrap"]
    assert "polypbench.leaderboard.api" in graph["polypbench.leaderboard.app"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", ["polypbench.evaluate", "polypbench.leaderboard", "polypbench.train",
                                     "polypbench.inference"])
def test_no_import_cycle_runs_through_the_package(package: str) -> None:
    found = [c for c in _cycles(_graph()) if any(m == package or m.startswith(package + ".") for m in c)]
    assert not found, f"import cycles through {package}: {found}"


def test_the_server_routes_import_the_server_state_not_the_app() -> None:
    graph = _graph()
    for routes in ("polypbench.leaderboard.api", "polypbench.leaderboard.site"):
        assert "polypbench.leaderboard.app" not in graph[routes], routes
    assert "polypbench.leaderboard.server" in graph["polypbench.leaderboard.api"]


TORCH_FREE_INFERENCE = ("polypbench.inference", "polypbench.inference.spec", "polypbench.inference.sandbox")
"""The inference modules the leaderboard may import: the config, the job spec, the limited child's runner."""


def _reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    return seen


def test_the_leaderboard_imports_neither_training_nor_models() -> None:
    """Every import of leaderboard/ (in a function too), and everything those reach: no train/ or models/ module,
    and of inference/ only its torch-free modules (the model is built in the sandboxed child)."""
    graph = _graph()
    board = [m for m in graph if m.startswith("polypbench.leaderboard")]
    reached = set().union(*(_reached(graph, m) for m in board))
    bad = sorted(m for m in reached if m.startswith(("polypbench.train", "polypbench.models"))
                 or (m.startswith("polypbench.inference") and m not in TORCH_FREE_INFERENCE))
    assert bad == []
