"""What the hub's domain (linkage.Hub) needs from the world, as protocols.

The servers plug in the real ones (bootstrap.py); the unit tests plug in
in-memory fakes (tests/support/hub_fakes.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from hub_server.directory import Agency
from hub_server.exchange import CollectCall, ProvideCall, Provided
from hub_server.id_issuer_client import IdKeyState
from hub_server.log_store import LogEntry, LogRow
from renkei import codes
from renkei.tlog.entry import Receipt


class HubLog(Protocol):
    """The hub's log rows; each call returns once what it wrote is durable.

    A call that fails, or is not durable within its ``timeout``, raises
    UNAVAILABLE ``HUB_LOG_UNAVAILABLE`` (a database error is logged once per
    outage, not per call). No row is ever left PENDING by a call that did not
    return its serials: it is not written, or it is closed once written
    (``CANCELLED``/``NOT_RELAYED`` when the caller was cancelled,
    ``UNAVAILABLE``/``HUB_LOG_UNAVAILABLE`` after the timeout).
    """

    async def begin_many(
        self, rows: list[tuple[LogEntry, str, str]], timeout: float = ...
    ) -> list[Receipt]:
        """(entry, outcome, reason) rows, their receipts (serials) in order; PENDING rows are
        completed later."""
        ...

    async def finish_many(
        self, outcomes: list[tuple[int, str, str]], timeout: float = ...
    ) -> list[Receipt]:
        """Complete PENDING rows: (serial, outcome, reason); the outcome entries' receipts.

        The outcomes are written even when the caller is cancelled, and, when
        the database refuses them or is too slow, kept and written when it is back.
        """
        ...

    async def add_aliases(self, pairs: list[tuple[str, str]]) -> None: ...

    async def row(self, serial: int, timeout: float = ...) -> LogRow | None: ...

    async def fetches(
        self, serial: int, timeout: float = ...
    ) -> list[tuple[datetime, str, str]]: ...

    async def record_fetch(
        self, serial: int, outcome: str, reason: str, timeout: float = ..., *, keep: bool = False
    ) -> Receipt | None:
        """Log one fetch of an exchange's answer. ``keep``: the answer was passed on
        already (its ticket is single-use), so a write that fails is kept and
        written when the database is back rather than raised."""
        ...


class ProviderGateway(Protocol):
    async def provide(self, provider: Agency, call: ProvideCall, timeout: float) -> Provided:
        """The provider's answer: per item for a bulk call, the sealed answer or a ticket
        for a single one; raises RenkeiError when the call fails whole (for a single
        call, also when the provider refuses the person)."""
        ...

    async def collect(
        self, provider: Agency, call: CollectCall, timeout: float
    ) -> tuple[bytes, bytes]:
        """The sealed answer behind a ticket; raises RenkeiError (ANSWER_NOT_READY, ...)."""
        ...


class IdIssuerPort(Protocol):
    async def status(self) -> IdKeyState: ...

    async def reissue(self, id_codes: list[bytes]) -> tuple[list[tuple[bytes, str]], int]: ...

    async def complete(self, version: int) -> None: ...


class KeyAdmin(Protocol):
    """Changes to the hub's keys, made durable before they take effect."""

    async def make_current(self, agency_id: str, version: int) -> datetime | None:
        """Make ``version`` current; the old one's acceptance limit (None: already current)."""
        ...

    async def codec(self) -> codes.LinkCodec:
        """A codec reflecting the key store as it is now."""
        ...

    async def record_completion(self, agency_id: str, id_key_version: int) -> set[str]:
        """Note that an agency re-keyed to an ID key version; every agency that has."""
        ...
