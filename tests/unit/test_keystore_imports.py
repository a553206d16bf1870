"""The key store's modules import one another in one direction only (no import loop)."""

from __future__ import annotations

import ast
from pathlib import Path

import renkei.keystore

PACKAGE = Path(renkei.keystore.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every renkei.keystore module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("renkei.keystore.")}


def test_no_module_of_the_key_store_imports_one_that_imports_it_back() -> None:
    graph = {
        f"renkei.keystore.{path.stem}": _imports(path)
        for path in PACKAGE.glob("*.py")
        if path.stem != "__init__"
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in graph.get(start, set()):
            if name == goal or (name not in seen and reaches(name, goal, seen | {name})):
                return True
        return False

    loops = sorted(name for name in graph if reaches(name, name, set()))
    assert loops == []
    assert "renkei.keystore.master" not in graph["renkei.keystore.pkcs11"]
