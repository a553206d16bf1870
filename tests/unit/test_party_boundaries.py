"""No party imports another (docs/architecture.md): they meet in the kernel, ``renkei``.

Checked for the registry's binding party and the register's mock, which share
``renkei.residents`` and are wired by the ``renkei.resident_sources`` entry
point instead of an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Benchmarks are tooling that lives beside the party for now (moving to ops/).
TOOLING = {"bench.py", "bench_binding.py"}


def _imports(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        if path.name in TOOLING:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        (
            "registry_binding",
            ("legacy_stubs", "numbering", "id_issuer", "hub_server", "comm_server"),
        ),
        ("legacy_stubs/registry", ("registry_binding", "numbering", "id_issuer", "hub_server")),
    ],
)
def test_a_party_imports_only_the_kernel(folder: str, forbidden: tuple[str, ...]) -> None:
    bad = {
        path: sorted(n for n in names if n.split(".")[0] in forbidden)
        for path, names in _imports(ROOT / folder).items()
    }
    assert {path: names for path, names in bad.items() if names} == {}
