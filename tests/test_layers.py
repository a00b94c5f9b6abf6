"""The import drawing of the data layer (registry, synth, manifest, splits, prepare, load, shards, export, the
templates): no cycle, no import that points up a layer, and one owner for the default crop.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a cycle hidden in a function is still
one the reader must hold in mind. The drawing is read from the source (``ast``), so nothing is imported here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import polypbench

PACKAGE = Path(polypbench.__file__).resolve().parent
DATA_LAYER = ("polypbench.datasets", "polypbench.synth", "polypbench.manifest", "polypbench.splits",
              "polypbench.prepare", "polypbench.load", "polypbench.shards", "polypbench.export",
              "polypbench.templating", "polypbench.schema", "polypbench.sizes", "polypbench.fileio",
              "polypbench.catalog", "polypbench.verify")
NEVER = {
    "polypbench.templating": ("polypbench",),  # a base utility: any layer renders with it
    "polypbench.manifest": ("polypbench.splits", "polypbench.prepare", "polypbench.load", "polypbench.shards"),
    "polypbench.splits": ("polypbench.prepare", "polypbench.load", "polypbench.shards"),
    "polypbench.prepare": ("polypbench.load", "polypbench.shards", "polypbench.export"),
    "polypbench.load": ("polypbench.shards", "polypbench.export", "polypbench.train", "polypbench.evaluate"),
    "polypbench.synth": ("polypbench.prepare", "polypbench.load", "polypbench.manifest"),
}
"""Importer (a module or package) -> what it must never import: the layers above it."""
CROP_OWNER = "polypbench.load.common"
CROP_USERS = ("polypbench.load", "polypbench.shards", "polypbench.export", "polypbench.prepare", "polypbench.synth",
              "polypbench.datasets")


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@cache
def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("polypbench", *path.relative_to(PACKAGE).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(module: str) -> Iterator[str]:
    """Every polypbench module ``module`` imports (a name inside a module resolves to the module)."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            while name and name not in _modules():
                name = name.rpartition(".")[0]
            if name.startswith("polypbench") and name != module:
                yield name


@cache
def _graph() -> dict[str, frozenset[str]]:
    return {m: frozenset(_imports(m)) for m in _modules()}


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


def test_no_import_cycle_touches_the_data_layer() -> None:
    assert [c for c in _cycles(_graph()) if any(_under(m, DATA_LAYER) for m in c)] == []


def test_no_data_layer_module_imports_a_layer_above_it() -> None:
    upward = sorted((importer, imported) for importer, imports in _graph().items() for imported in imports
                    for owner, above in NEVER.items() if _under(importer, (owner,)) and _under(imported, above))
    assert upward == []


def test_the_default_crop_margin_and_size_have_one_owner() -> None:
    """A ``margin`` default is :data:`~polypbench.load.common.DEFAULT_MARGIN` and an int ``size`` default
    :data:`~polypbench.load.common.DEFAULT_SIZE` in every data-layer function: never a literal 0.5 or 384."""
    literals = []
    for module, path in _modules().items():
        if not _under(module, CROP_USERS) or module == CROP_OWNER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            args = [*node.args.posonlyargs, *node.args.args]
            pairs = [*zip(args[len(args) - len(node.args.defaults):], node.args.defaults, strict=True),
                     *((a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d)]
            for arg, default in pairs:
                if arg.arg in ("margin", "size", "img_size") and isinstance(default, ast.Constant) and isinstance(
                        default.value, (int, float)) and not isinstance(default.value, bool):
                    literals.append(f"{module}.{node.name}({arg.arg}={default.value})")
    assert literals == []


def _crop_literal(name: str, value: ast.expr | None) -> bool:
    return (name.lstrip("-").replace("-", "_") in ("margin", "size", "img_size") and isinstance(value, ast.Constant)
            and isinstance(value.value, (int, float)) and not isinstance(value.value, bool))


def test_no_module_writes_the_default_crop_as_a_literal() -> None:
    """Beyond the data layer too (the training config's fields, the models, the CLI's options, inference): a
    ``margin``/``img_size``/``size`` default is never a literal number but read from
    :mod:`polypbench.load.common`."""
    found = []
    for module, path in _modules().items():
        if module == CROP_OWNER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [*node.args.posonlyargs, *node.args.args]
                pairs = [*zip(args[len(args) - len(node.args.defaults):], node.args.defaults, strict=True),
                         *zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)]
                found += [f"{module}.{node.name}({a.arg})" for a, d in pairs if _crop_literal(a.arg, d)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):  # a dataclass field
                found += [f"{module}: {node.target.id}"] if _crop_literal(node.target.id, node.value) else []
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):  # click.option
                option = str(node.args[0].value)
                found += [f"{module}: option {option}" for k in node.keywords
                          if k.arg == "default" and _crop_literal(option, k.value)]
    assert found == []
