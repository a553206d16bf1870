"""What the exchange pipelines need from outside: the store, the hub, the staff, the clock.

The pipelines (``requester.pipeline``, ``provider.pipeline``) take these as
protocols, so their tests run on in-memory fakes; ``store.AsyncCommStore``
and ``hub_client.HubClient`` are the real ones. The legacy system's port is
``legacy.LegacyClient``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from comm_server.hub_client import BulkRelayAnswer, RelayAnswer
from comm_server.log_receipts import ShareReceipt
from comm_server.staff_register import StaffRegister
from comm_server.store import LogRecord, Ticket

Clock = Callable[[], datetime]


class Staff(Protocol):
    """The staff register in force (``staff_register.RegisterFile`` re-reads its file)."""

    @property
    def register(self) -> StaffRegister: ...


class ExchangeStore(Protocol):
    async def append_log(self, record: LogRecord, receipts: Sequence[ShareReceipt] = ()) -> None:
        """One row, durable when this returns (group-committed with others), and the hub's
        log receipts of its exchange in the same transaction."""
        ...

    async def append_logs(
        self, records: list[LogRecord], receipts: Sequence[ShareReceipt] = ()
    ) -> None:
        """A bulk exchange's rows, one per person, and their receipts."""
        ...

    async def link_code_for(self, local_person_id: str) -> str | None: ...

    async def link_codes_for(self, local_person_ids: list[str]) -> dict[str, str]:
        """Local number -> this agency's link code, for those that are bound."""
        ...

    async def local_person_for(self, link_code: str) -> str | None: ...

    async def local_persons_for(self, link_codes: list[str]) -> dict[str, str]:
        """Link code (current, next or previous) -> local number, for those that are bound."""
        ...

    async def add_ticket(self, ticket: Ticket) -> None: ...

    async def ticket(self, role: str, ticket: str) -> Ticket | None: ...

    async def take_ticket(self, role: str, ticket: str) -> bool:
        """Delete a ticket; False if it was not there (used, or never issued)."""
        ...


class Hub(Protocol):
    """The hub as the requester's side calls it."""

    async def exchange_certificate(self, agency_id: str, *, timeout: float) -> bytes:
        """The agency's exchange certificate (DER) from the hub's directory, unverified."""
        ...

    def forget_certificate(self, agency_id: str) -> None: ...

    async def relay(
        self,
        *,
        provider_agency_id: str,
        info_kind: str,
        legal_basis_item: str,
        link_code: str,
        sealed_query: bytes,
        query_signature: bytes,
        timeout: float,
    ) -> RelayAnswer: ...

    async def bulk_relay(
        self,
        *,
        provider_agency_id: str,
        info_kind: str,
        legal_basis_item: str,
        link_codes: list[str],
        sealed_queries: bytes,
        query_signature: bytes,
        timeout: float,
    ) -> BulkRelayAnswer: ...

    async def fetch_answer(self, serial: int, ticket: str, *, timeout: float) -> RelayAnswer: ...
