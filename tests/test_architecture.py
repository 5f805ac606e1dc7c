"""The package shows its architecture: layers that only import downward, no import circle, a
short top level, and a module map in `aidepy/__init__.py` that names every subpackage.

The layers: `cli` over `jobs` over the subsystems (`config`, `db`, `scan`, `report`, `vault`,
`explain`) over the core modules directly under `aidepy/`. A subsystem may use another (the
vault reads databases), never a layer above it. Imports inside functions count too: a lazy
import hides a circle, it does not break it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import aidepy

PACKAGE = Path(aidepy.__file__).parent
SUBSYSTEMS = {"config", "db", "scan", "report", "vault", "explain"}
# Programs started by name, never imported by the package: `python -m aidepy`, and the vault's
# bootstrap, which runs before aidepy can be imported.
ENTRY_POINTS = {"aidepy.__main__", "aidepy.vault.bootstrap"}
MAX_TOP_LEVEL = 15


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> Iterator[str]:
    """The aidepy modules that `path` imports, anywhere in it (`from a import b` names a.b when
    a.b is a module)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *filter(None, [base])])
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}"
                elif base in known:
                    yield base


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: set(imported(path, set(found))) - {name, "aidepy"} for name, path in found.items()}


def layer(name: str) -> int:
    """0: the core modules; 1: a subsystem; 2: jobs; 3: the command line."""
    parts = name.split(".")
    if len(parts) < 3 and not (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return 0
    return {"jobs": 2, "cli": 3}.get(parts[1], 1)


def test_nothing_imports_upward() -> None:
    upward = [f"{name} ({layer(name)}) imports {other} ({layer(other)})"
              for name, others in graph().items() if name not in ENTRY_POINTS
              for other in sorted(others) if layer(other) > layer(name)]
    assert upward == []


def test_the_layers_are_the_ones_named() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == SUBSYSTEMS | {"jobs", "cli"}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    edges = {name: others - ENTRY_POINTS for name, others in graph().items() if name not in ENTRY_POINTS}
    assert cycles(edges) == []


def test_cycles_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_top_level_stays_short() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL, top


def test_the_package_docstring_maps_every_subpackage() -> None:
    doc = aidepy.__doc__ or ""
    missing = [name for name in sorted(SUBSYSTEMS | {"jobs", "cli"}) if f"{name}/" not in doc]
    assert missing == []
