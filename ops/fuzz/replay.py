"""Kept corpus files run again: each gives None (keeps the contract now) or its problem."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ops.fuzz import mapper_fuzz


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def replay_paths(paths: list[Path]) -> dict[Path, str | None]:
    """Every file's outcome; gRPC cases share one world of servers."""
    cases = {path: load(path) for path in paths}
    found: dict[Path, str | None] = {}
    for path, case in cases.items():
        if case["kind"] in ("mapper", "legacy"):
            found[path] = mapper_fuzz.replay(case)
    served = {p: c for p, c in cases.items() if c["kind"] == "grpc"}
    if served:
        from ops.fuzz.grpc_fuzz import replay
        from ops.fuzz.world import start_world

        with tempfile.TemporaryDirectory(prefix="renkei-fuzz-replay-") as root:
            world = start_world(Path(root))
            try:
                for path, case in served.items():
                    found[path] = replay(world, case)
            finally:
                world.stop()
    return found
