"""A fake legacy system that answers by file, later: a ``BatchLegacyClient`` in memory.

``submit`` files a request and returns the system's own ticket; ``collect``
returns the answer once the test has ``release``d it (or at once with
``answer_at_once``), ``None`` before. Answers are the records' canonical JSON,
as every legacy client gives them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from comm_server.legacy.jsonl_client import canonical_json
from renkei.errors import NotFound, Unavailable


@dataclass
class FakeBatchLegacy:
    records: dict[str, dict[str, dict[str, Any]]]  # local id -> info kind -> record
    answer_at_once: bool = False
    submitted: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    collected: list[str] = field(default_factory=list)
    closed: bool = False
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def submit(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> str:
        if self.closed:
            raise Unavailable("LEGACY_UNAVAILABLE", "the legacy client is closed")
        ticket = f"REQ-{next(self._numbers):05d}.csv"
        self.submitted[ticket] = (local_person_id, info_kind, query)
        return ticket

    async def collect(self, ticket: str, *, timeout: float) -> bytes | None:
        local_id, info_kind, _ = self.submitted[ticket]
        if not (self.answer_at_once or ticket in self.released):
            return None
        self.collected.append(ticket)
        record = self.records.get(local_id, {}).get(info_kind)
        if record is None:
            raise NotFound("RECORD_NOT_FOUND", "the legacy system has no such record")
        return canonical_json(record)

    def release(self, ticket: str | None = None) -> None:
        """The answer file for ``ticket`` (default: every request so far) has come."""
        self.released |= {ticket} if ticket else set(self.submitted)

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        raise AssertionError("a batch system is never asked inline")

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        return []

    async def aclose(self) -> None:
        self.closed = True
