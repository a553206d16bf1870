"""Key files on disk: JSON with base64 values, written atomically with mode 0600.

Envelope encryption under a master key comes with the key-lifecycle work; the
file format carries a ``format`` tag so that step can read these files.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from renkei.files import atomic_write


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str, *, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{where}: not base64") from None


def write_secret_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"), 0o600)


def read_json(path: Path, expected_format: str) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    if data.get("format") != expected_format:
        raise ValueError(f"{path}: format is {data.get('format')!r}, expected {expected_format!r}")
    return data
