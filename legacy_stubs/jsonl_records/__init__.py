"""A mocked legacy agency records system speaking JSON lines over TCP.

``protocol`` documents the wire format; ``store`` holds the records;
``server`` serves them (with injectable faults); ``python -m
legacy_stubs.jsonl_records`` runs one as its own process.
"""

from __future__ import annotations

from .protocol import MAX_LINE
from .server import Faults, StubServer, serve
from .store import RecordStore, write_records

__all__ = ["MAX_LINE", "Faults", "RecordStore", "StubServer", "serve", "write_records"]
