"""The four legacy stubs as real processes, each behind a communication server with its mapper.

141003 横浜市長 -> fixed_tax, nenkin -> soap_pension, kyoukai-kenpo 全国健康保険協会 ->
csv_insurer, 131130 渋谷区長 -> json_http; mhlw keeps the JSON-lines system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.legacy import StubProcess, start_stub

INSURER, MODERN = "kyoukai-kenpo", "131130"


def start_four_stubs(tmp: Path, poll_interval: float = 0.05) -> dict[str, StubProcess]:
    folder = tmp / "insurer-drop"
    return {
        "141003": start_stub("fixed_tax", tmp),
        "nenkin": start_stub("soap_pension", tmp),
        INSURER: start_stub(
            "csv_insurer", tmp, "--poll-interval", str(poll_interval), folder=folder
        ),
        MODERN: start_stub("json_http", tmp),
    }


def legacy_tables(
    stubs: dict[str, StubProcess], poll_interval: float = 0.05
) -> dict[str, dict[str, Any]]:
    """Each agency's ``[legacy]`` table for its stub."""
    tax, pension, insurer, modern = (stubs[a] for a in ("141003", "nenkin", INSURER, MODERN))
    return {
        "141003": {"kind": "fixed_tax", "format": "fixed_tax", "port": tax.port},
        "nenkin": {
            "kind": "soap",
            "format": "soap_pension",
            "url": f"http://127.0.0.1:{pension.port}/soap",
        },
        INSURER: {
            "kind": "csv_dropbox",
            "format": "csv_insurer",
            "folder": str(insurer.folder),
            "poll_interval_seconds": poll_interval,
        },
        MODERN: {
            "kind": "json_http",
            "format": "json_http",
            "url": f"http://127.0.0.1:{modern.port}",
        },
    }
