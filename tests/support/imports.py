"""The project's import graph, read from the source (nothing is imported to build it).

Every ``import`` and ``from ... import`` counts, at module level or inside a
function, except those under ``if TYPE_CHECKING:`` (types only, never run).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "renkei"
TOOLING = "ops"
NOT_PACKAGES = {"tests", "docs", "protos"}


def top_level_packages() -> list[str]:
    return sorted(
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").is_file() and p.name not in NOT_PACKAGES
    )


def parties() -> list[str]:
    """Every top-level package that is neither the kernel nor the tooling: one per party."""
    return [p for p in top_level_packages() if p not in (KERNEL, TOOLING)]


def _generated(path: Path) -> bool:
    return path.name.endswith(("_pb2.py", "_pb2_grpc.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module (or the package, for ``from pkg import name``) imported
    names: tuple[str, ...]
    line: int
    path: Path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def imports_of(path: Path) -> Iterator[Import]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, alias.name, (), node.lineno, path)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield Import(source, target, tuple(a.name for a in node.names), node.lineno, path)


@functools.cache  # the tree does not change during a test run; read it once
def project_imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for package in top_level_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            if not _generated(path):
                found.extend(imports_of(path))
    return tuple(found)


def modules() -> set[str]:
    return {
        module_name(path)
        for package in top_level_packages()
        for path in (ROOT / package).rglob("*.py")
    }


def module_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports.

    ``from pkg import mod`` is an import of ``pkg.mod`` alone when ``mod`` is a
    module, as import-linter and pydeps count it: the package's ``__init__``
    runs first whatever one imports from it, so that edge would make a loop of
    every package that re-exports its modules.
    """
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in project_imports():
        submodules = {f"{imp.target}.{n}" for n in imp.names} & known
        targets = (
            submodules
            if submodules and len(submodules) == len(imp.names)
            else (submodules | {imp.target})
        )
        for target in targets:
            if target in known and target != imp.source:
                graph[imp.source].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_edges() -> dict[str, set[str]]:
    """Top-level package -> the other top-level packages it imports."""
    edges: dict[str, set[str]] = {p: set() for p in top_level_packages()}
    for imp in project_imports():
        source, target = imp.source.split(".")[0], imp.target.split(".")[0]
        if target in edges and target != source:
            edges[source].add(target)
    return edges


def mermaid() -> str:
    """The package graph as the Mermaid flowchart that docs/import-graph.md shows."""
    lines = ["flowchart TD"]
    for source, targets in sorted(package_edges().items()):
        lines.extend(f"    {source} --> {target}" for target in sorted(targets))
    return "\n".join(lines) + "\n"


def document() -> str:
    return (
        "# Import graph\n\n"
        "Which top-level package imports which, read from the source by\n"
        "`tests/support/imports.py` (`make import-graph` writes this file;\n"
        "`tests/architecture` fails when it is stale). Arrows point from the importer.\n"
        "The kernel (`renkei`) points at nothing; each party points only at the\n"
        "kernel; only the tooling (`ops`) points at parties, and nothing points at it.\n\n"
        "```mermaid\n" + mermaid() + "```\n"
    )


if __name__ == "__main__":
    print(document(), end="")
