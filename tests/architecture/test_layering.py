"""The house's floors: the kernel imports no party, parties import no party, tooling is on top.

``renkei`` is the shared kernel; each other top-level package but ``ops`` is a
party (found by looking, so a new party is held to the rules the day it
lands); ``ops`` is the tooling, which may import anything and which nothing
imports. And no package imports itself in a loop. The graph is read from the
source (support/imports.py), so the rules hold for imports inside functions too.
"""

from __future__ import annotations

import pytest
from support import imports
from support.imports import KERNEL, TOOLING

ALL = imports.project_imports()


def _top(module: str) -> str:
    return module.split(".")[0]


def _where(imp: imports.Import) -> str:
    return f"{imp.path.relative_to(imports.ROOT)}:{imp.line} imports {imp.target}"


def _project(name: str) -> bool:
    return _top(name) in imports.top_level_packages()


def test_there_are_parties_a_kernel_and_tooling() -> None:
    found = imports.parties()
    assert {
        "hub_server",
        "comm_server",
        "numbering",
        "id_issuer",
        "registry_binding",
        "legacy_stubs",
        "witness",
    } <= set(found)
    assert KERNEL in imports.top_level_packages()
    assert TOOLING in imports.top_level_packages()


def test_the_kernel_imports_no_party_and_no_tooling() -> None:
    bad = [
        _where(i)
        for i in ALL
        if _top(i.source) == KERNEL and _project(i.target) and _top(i.target) != KERNEL
    ]
    assert bad == []


@pytest.mark.parametrize("party", imports.parties())
def test_a_party_imports_only_itself_and_the_kernel(party: str) -> None:
    bad = [
        _where(i)
        for i in ALL
        if _top(i.source) == party and _project(i.target) and _top(i.target) not in (party, KERNEL)
    ]
    assert bad == []


def test_nothing_imports_the_tooling() -> None:
    bad = [_where(i) for i in ALL if _top(i.target) == TOOLING and _top(i.source) != TOOLING]
    assert bad == []


@pytest.mark.parametrize("package", imports.top_level_packages())
def test_no_import_loops(package: str) -> None:
    graph = {
        source: {t for t in targets if _top(t) == package}
        for source, targets in imports.module_graph().items()
        if _top(source) == package
    }
    assert imports.cycles(graph) == []


def test_the_graph_sees_relative_and_function_level_imports() -> None:
    # A guard on the reader itself: if it missed these, every rule above would pass vacuously.
    graph = imports.module_graph()
    assert "renkei.errors" in graph["renkei.validate"]  # absolute, module level
    # relative: `from . import resident_code`
    assert "legacy_stubs.registry.resident_code" in graph["legacy_stubs.registry.cli"]
    cli_targets = graph["ops.cli"]
    assert any(t.startswith("hub_server") for t in cli_targets)  # inside functions
    assert any(t.startswith("legacy_stubs.registry") for t in cli_targets)


def test_the_import_graph_document_is_current() -> None:
    shown = (imports.ROOT / "docs" / "import-graph.md").read_text(encoding="utf-8")
    assert shown == imports.document(), "stale: run `make import-graph`"
