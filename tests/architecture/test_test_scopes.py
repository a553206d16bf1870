"""Unit tests stay fast: no database, no server, no socket, no real sleep.

What needs a real store or a server on loopback belongs in tests/integration
(or tests/e2e); a unit test drives domain code with in-memory fakes and, for
time, the virtual clock (support/virtual_time.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "unit"
# Calls that open a database, a server, a channel or a socket, or wait in real time.
FORBIDDEN_CALLS = {
    "create_engine",
    "start_server",
    "insecure_channel",
    "secure_channel",
    "open_connection",
    "create_connection",
}
# Names whose import brings real time in: support.polling's wait_for sleeps in the thread
# (unit tests wait with until() on the virtual clock).
FORBIDDEN_NAMES = {("support.polling", "wait_for")}
FORBIDDEN_MODULES = {"support.databases", "support.topology", "sqlalchemy", "socket"}
# Fixtures of tests/conftest.py that bring real databases or servers.
FORBIDDEN_FIXTURES = {"database", "loop", "topo"}


def _called_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _called_name(node)
            is_time_sleep = (
                name == "sleep"
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "time"
            )
            if name in FORBIDDEN_CALLS or is_time_sleep:
                found.append(f"{path.name}:{node.lineno} calls {name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in FORBIDDEN_MODULES or node.module.split(".")[0] == "sqlalchemy":
                found.append(f"{path.name}:{node.lineno} imports {node.module}")
            found.extend(
                f"{path.name}:{node.lineno} imports {node.module}.{alias.name}"
                for alias in node.names
                if (node.module, alias.name) in FORBIDDEN_NAMES
            )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in FORBIDDEN_MODULES or alias.name.split(".")[0] == "sqlalchemy":
                    found.append(f"{path.name}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            for arg in node.args.args:
                if arg.arg in FORBIDDEN_FIXTURES:
                    found.append(f"{path.name}:{node.lineno} uses the {arg.arg} fixture")
    return found


@pytest.mark.parametrize("path", sorted(UNIT.glob("test_*.py")), ids=lambda p: p.name)
def test_a_unit_test_opens_no_database_server_or_socket(path: Path) -> None:
    assert _problems(path) == []
