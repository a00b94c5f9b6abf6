"""The import drawing, checked against docs/architecture.md: no cycle anywhere, every import points to its own
layer or one below (the docs' table, parsed here: the table is the rule), the leaderboard reaches training only
through inference's torch-free modules, the routes import the server's state, and the default crop has one owner.

Every import counts, at module level or in a function, ``TYPE_CHECKING`` ones too, and ``from package import
name`` counts as importing the package (its ``__init__`` runs first): a submodule that imports its own package's
re-exports closes a cycle through the ``__init__``. The drawing is read from the source (``ast``); nothing is
imported.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

import polypbench

PACKAGE = Path(polypbench.__file__).resolve().parent
DOCS = PACKAGE.parent / "docs" / "architecture.md"
CROP_OWNER = "polypbench.load.common"
TORCH_FREE_INFERENCE = ("polypbench.inference", "polypbench.inference.spec", "polypbench.inference.sandbox")
"""The inference modules the leaderboard may import: the config, the job spec, the limited child's runner."""


@cache
def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("polypbench", *path.relative_to(PACKAGE).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _resolve(name: str) -> str | None:
    """The longest module of the package that ``name`` (a module or a name in one) lies in."""
    while name and name not in _modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def _graph() -> dict[str, frozenset[str]]:
    """Module -> the polypbench modules it imports."""
    graph = {}
    for module, path in _modules().items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join([*parts[:len(parts) - node.level + 1], *filter(None, [node.module])])
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            found |= {m for t in targets if t.startswith("polypbench") and (m := _resolve(t)) not in (None, module)}
        graph[module] = frozenset(found)
    return graph


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
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
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                out.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@cache
def _layers() -> dict[str, int]:
    """docs/architecture.md's table: each part (``polypbench`` or a top-level module or package) -> its layer."""
    section = DOCS.read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for row in re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", section, re.M):
        for part in re.findall(r"`([\w.]+)`", row[1]):
            layers[part] = int(row[0])
    return layers


def _part(module: str) -> str:
    return "polypbench" if module == "polypbench" else module.split(".")[1]


def test_the_drawing_is_read_as_python_imports_it() -> None:
    graph = _graph()
    assert "polypbench.evaluate.policy" in graph["polypbench.evaluate.bootstrap"]
    assert "polypbench.leaderboard.api" in graph["polypbench.leaderboard.app"]
    assert _cycles({"a": frozenset("b"), "b": frozenset("c"), "c": frozenset("a"), "d": frozenset("a")}) == [
        ["a", "b", "c"]]
    assert _layers()["polypbench"] == 0 and _layers()["cli"] > _layers()["leaderboard"] > _layers()["evaluate"]


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_every_part_has_a_layer_in_the_docs() -> None:
    parts = {_part(m) for m in _modules()}
    assert sorted(parts - set(_layers())) == [] and sorted(set(_layers()) - parts) == []


def test_every_import_points_to_its_own_layer_or_below() -> None:
    layers = _layers()
    upward = sorted(f"{importer} -> {imported}" for importer, imports in _graph().items() for imported in imports
                    if layers[_part(imported)] > layers[_part(importer)])
    assert upward == []


def test_the_server_routes_import_the_server_state_not_the_app() -> None:
    graph = _graph()
    for routes in ("polypbench.leaderboard.api", "polypbench.leaderboard.site"):
        assert "polypbench.leaderboard.app" not in graph[routes], routes
    assert "polypbench.leaderboard.server" in graph["polypbench.leaderboard.api"]


def _reached(graph: dict[str, frozenset[str]], start: str) -> set[str]:
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


def _crop_literal(name: str, value: ast.expr | None) -> bool:
    return (name.lstrip("-").replace("-", "_") in ("margin", "size", "img_size") and isinstance(value, ast.Constant)
            and isinstance(value.value, (int, float)) and not isinstance(value.value, bool))


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m != CROP_OWNER))
def test_no_module_writes_the_default_crop_as_a_literal(module: str) -> None:
    """A ``margin``/``img_size``/``size`` default (a function's, a dataclass field's, a CLI option's) is never a
    literal number but read from :mod:`polypbench.load.common` or a model's ``default_cfg``."""
    found = []
    for node in ast.walk(ast.parse(_modules()[module].read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = [*node.args.posonlyargs, *node.args.args]
            pairs = [*zip(args[len(args) - len(node.args.defaults):], node.args.defaults, strict=True),
                     *zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)]
            found += [f"{node.name}({a.arg})" for a, d in pairs if _crop_literal(a.arg, d)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):  # a dataclass field
            found += [node.target.id] if _crop_literal(node.target.id, node.value) else []
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):  # click.option
            option = str(node.args[0].value)
            found += [f"option {option}" for k in node.keywords
                      if k.arg == "default" and _crop_literal(option, k.value)]
    assert found == []
