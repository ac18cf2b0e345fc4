"""The package's import graph: arrows point one way, no circles, no private names.

Layers, highest first; a module may import its own layer and those below:

    cli -> session -> engines / ktrace / tools -> consume -> probes -> symbols -> lang

(session is session.py and __init__.py; __main__.py, `python -m pydtrace`,
is the command line; pydtrace/options.py, the option table, and
pydtrace/outfiles.py, how the tools open what they write, import nothing of
the package and sit with lang, the lowest layer; pydtrace/events.py, the
Python API's typed records and snapshots, sits with consume.)  Every
import counts, also those inside functions and `from . import x`.  Besides
the direction, the test refuses an import circle among modules and a module
reaching for another module's private name (`from M import _name`, or
`M._name` on an imported module M).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "pydtrace"

# rank of each layer: a module may import only modules of equal or lower rank
LAYERS: dict[str, int] = {
    "cli": 6,
    "session": 5,
    "engines": 4,
    "ktrace": 4,
    "tools": 4,
    "consume": 3,
    "probes": 2,
    "symbols": 1,
    "lang": 0,
}
# the modules at the package's root, by layer
ROOT_MODULES = {
    "pydtrace": "session",
    "pydtrace.session": "session",
    "pydtrace.__main__": "cli",
    "pydtrace.options": "lang",  # the option table: names, defaults, validation, sizes
    "pydtrace.outfiles": "lang",  # opening the files the tools write; write errors
    "pydtrace.events": "consume",  # the Python API's records and aggregation snapshots
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    names: tuple[str, ...]  # names taken by `from target import ...`
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def layer(module: str) -> str:
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    top = module.split(".")[1]
    if top not in LAYERS:
        raise AssertionError(f"{module}: no layer; add it to LAYERS in {__file__}")
    return top


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    # a package's __init__ is its own base; a module's base is its package
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node)
            if target.split(".")[0] != PACKAGE:
                continue
            plain = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # `from package import module`
                    yield Import(module, sub, (), node.lineno)
                else:
                    plain.append(alias.name)
            if plain:
                yield Import(module, target, tuple(plain), node.lineno)


def private_attributes(path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, str, int]]:
    """`M._name` where M is bound to a pydtrace module by an import."""
    tree = ast.parse(path.read_text(), str(path))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in modules:
                    bound[alias.asname or alias.name] = sub
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and _private(node.attr)
        ):
            yield bound[node.value.id], node.attr, node.lineno


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def graph() -> tuple[dict[str, Path], list[Import]]:
    modules = all_modules()
    edges = [i for m, p in modules.items() for i in imports_of(m, p, modules)]
    return modules, edges


def cycles(edges: list[Import]) -> list[tuple[list[str], list[str]]]:
    """Each strongly connected component of more than one module: its modules
    (sorted) and a closed path through its first (Tarjan's algorithm, then a
    breadth-first walk inside the component)."""
    succ: dict[str, set[str]] = {}
    for e in edges:
        if e.source != e.target:
            succ.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return [(sorted(comp), _closed_path(comp, succ)) for comp in components]


def _closed_path(comp: set[str], succ: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth first)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(succ.get(v, set()) & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in component {sorted(comp)}")


def violations() -> dict[str, str]:
    """key -> message, one per violation."""
    modules, edges = graph()
    found: dict[str, str] = {}
    for e in edges:
        src, dst = layer(e.source), layer(e.target)
        if LAYERS[dst] > LAYERS[src]:
            key = f"upward: {e.source} -> {e.target}"
            found[key] = f"{key} (line {e.line}; {src} may not import {dst})"
        for name in e.names:
            if _private(name) and e.target != e.source:
                key = f"private: {e.source} imports {e.target}.{name}"
                found[key] = f"{key} (line {e.line})"
    for module, path in modules.items():
        for target, name, line in private_attributes(path, modules):
            if target != module:
                key = f"private: {module} imports {target}.{name}"
                found[key] = f"{key} (line {line})"
    for members, path in cycles(edges):
        key = "cycle: " + ", ".join(members)
        found[key] = f"import circle: {' -> '.join(path)} (the circle joins {key[7:]})"
    return found


def test_every_module_has_a_layer() -> None:
    for module in all_modules():
        layer(module)


def test_imports_point_down_without_circles_or_private_names() -> None:
    found = violations()
    assert not found, "import violations:\n  " + "\n  ".join(sorted(found.values()))


def test_the_checker_sees_what_it_must() -> None:
    """The graph walker itself: relative imports, imports inside functions."""
    modules, edges = graph()
    pairs = {(e.source, e.target) for e in edges}
    # `from .printf import ...` inside a function of consume/aggprint.py
    assert ("pydtrace.consume.aggprint", "pydtrace.consume.printf") in pairs
    # `from pydtrace import session` inside pydtrace.__getattr__
    assert ("pydtrace", "pydtrace.session") in pairs
    abc = [Import("a", "b", (), 1), Import("b", "c", (), 1), Import("c", "a", (), 1)]
    assert cycles(abc) == [(["a", "b", "c"], ["a", "b", "c", "a"])]
    assert cycles([*abc, Import("c", "d", (), 1), Import("d", "c", (), 1)]) == [
        (["a", "b", "c", "d"], ["a", "b", "c", "a"])
    ]


if __name__ == "__main__":
    for msg in violations().values():
        print(msg)
