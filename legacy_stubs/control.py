"""Setting a running legacy stub's faults over its own control interface (tests, demo, bench).

fixed-width: the ``FT`` message over TCP; SOAP and JSON: ``POST /_control/faults``;
the CSV drop folder: ``control/faults.json``; JSON lines: its ``set_faults`` op.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any

from legacy_stubs.fixed_tax.server import fault_request


def set_faults(
    legacy: dict[str, Any],
    *,
    delay_ms: int = 0,
    drop: bool = False,
    garbage: bool = False,
    config_dir: Path | None = None,
) -> None:
    """``legacy``: the agency's ``[legacy]`` table (kind, host/port, url or folder)."""
    kind = legacy.get("kind", "jsonl")
    faults = {"delay_ms": delay_ms, "drop": drop, "garbage": garbage}
    if kind in ("soap", "json_http"):
        base = str(legacy["url"])
        root = base.split("/soap")[0] if kind == "soap" else base.rstrip("/")
        request = urllib.request.Request(
            f"{root}/_control/faults",
            data=json.dumps(faults).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
        return
    if kind == "csv_dropbox":
        folder = Path(str(legacy["folder"]))
        if not folder.is_absolute() and config_dir is not None:
            folder = config_dir / folder
        control = folder / "control"
        control.mkdir(parents=True, exist_ok=True)
        tmp = control / "faults.json.tmp"
        tmp.write_text(json.dumps(faults), encoding="utf-8")
        os.replace(tmp, control / "faults.json")
        return
    address = (str(legacy.get("host", "127.0.0.1")), int(legacy["port"]))
    with socket.create_connection(address, timeout=5) as sock:
        if kind == "fixed_tax":
            sock.sendall(fault_request(1, delay_ms, drop, garbage))
            reader = sock.makefile("rb")
            length = int(reader.read(6))
            reader.read(length)
        else:
            message = {"op": "set_faults", "id": "control", **faults}
            sock.sendall(json.dumps(message).encode() + b"\n")
            sock.makefile("rb").readline()
