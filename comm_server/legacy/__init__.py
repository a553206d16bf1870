"""Clients for the agencies' legacy systems, behind one interface.

A communication server holds one ``LegacyClient`` per legacy system. Each
legacy format (JSON lines over TCP today) gets its own implementation; they
all turn failures into ``renkei.errors`` with these reasons:

* ``LEGACY_QUERY_INVALID`` (InvalidArgument): the query cannot be sent;
* ``LEGACY_TIMEOUT`` (DeadlineExceeded): no answer within the timeout;
* ``LEGACY_UNAVAILABLE`` (Unavailable): cannot connect, or the connection dropped;
* ``LEGACY_GARBAGE`` (Unavailable): an answer out of protocol;
* ``LEGACY_ERROR`` (Unavailable): the legacy system refused the request;
* ``RECORD_NOT_FOUND`` (NotFound): no such person or no record of that kind.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class LegacyClient(Protocol):
    async def lookup(
        self,
        local_person_id: str,
        info_kind: str,
        query: bytes,
        *,
        timeout: float,
    ) -> bytes:
        """The record as canonical JSON bytes (sorted keys, compact, UTF-8)."""
        ...

    async def aclose(self) -> None:
        """Release connections; later lookups fail with LEGACY_UNAVAILABLE."""
        ...


@runtime_checkable
class BatchLegacyClient(LegacyClient, Protocol):
    async def submit(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> str: ...  # ticket
    async def collect(
        self, ticket: str, *, timeout: float
    ) -> bytes | None: ...  # None = not ready yet


from .jsonl_client import JsonlLegacyClient  # noqa: E402

__all__ = ["BatchLegacyClient", "JsonlLegacyClient", "LegacyClient"]
