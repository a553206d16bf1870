"""The ErrorInfo reasons renkei's code can refuse with, read from the source."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from support import imports

ERRORS = {
    "RenkeiError",
    "InvalidArgument",
    "PermissionDenied",
    "Unauthenticated",
    "NotFound",
    "FailedPrecondition",
    "DeadlineExceeded",
    "Unavailable",
    "ResourceExhausted",
}
REASON = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,}")
# The tooling and the mocked legacy systems answer their own callers, not renkei's.
NOT_SERVED = {imports.TOOLING, "legacy_stubs"}


def _constants(tree: ast.Module) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def _value(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _sources() -> list[Path]:
    return [
        path
        for package in imports.top_level_packages()
        if package not in NOT_SERVED
        for path in sorted((imports.ROOT / package).rglob("*.py"))
        if not path.name.endswith(("_pb2.py", "_pb2_grpc.py"))
    ]


@functools.cache  # read once per run; callers only read the result
def in_code() -> dict[str, set[str]]:
    """Reason -> the places (``path:line``) that refuse with it."""
    found: dict[str, set[str]] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            values: list[str | None] = []
            if name in ERRORS and node.args:
                values.append(_value(node.args[0], constants))
            elif (  # functools.partial(InvalidArgument, "REASON", ...)
                name == "partial"
                and len(node.args) > 1
                and getattr(node.args[0], "id", "") in ERRORS
            ):
                values.append(_value(node.args[1], constants))
            values.extend(
                _value(k.value, constants)
                for k in node.keywords
                if k.arg in ("fallback_reason", "reason")
            )
            for value in values:
                if value and REASON.fullmatch(value):
                    where = f"{path.relative_to(imports.ROOT)}:{node.lineno}"
                    found.setdefault(value, set()).add(where)
    return found


def named_anywhere() -> set[str]:
    """Every upper-case string literal in the kernel's and parties' source (comments and
    docstrings do not count), for the page's other way: a reason the code names only
    through a constant or a table still counts, a reason only talked about does not."""
    words: set[str] = set()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and REASON.fullmatch(node.value)
            ):
                words.add(node.value)
    return words
