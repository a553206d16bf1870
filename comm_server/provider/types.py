"""The provider's side's calls from the hub and its answers, for one person or a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from comm_server.log_receipts import LogReceipt
from renkei.bulk import ItemError


@dataclass(frozen=True, slots=True)
class ProvideItem:
    """One person of a call: the hub's serial, the query it answers (index), the link code,
    and where the hub's log holds the exchange (None from a hub without its tree)."""

    serial: int
    index: int
    link_code: str
    log_receipt: LogReceipt | None = None


@dataclass(frozen=True)
class ProvideCall:
    """A call from the hub: one person (Provide) or up to 5,000 (``bulk``: BulkProvide).

    ``sealed_queries``: a single call's one sealed query (may be empty: no query),
    or a bulk call's one message holding ``item_count`` queries.
    """

    time: datetime
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    items: list[ProvideItem]
    sealed_queries: bytes
    requester_sealing_public_key: bytes
    item_count: int = 1
    bulk: bool = False
    # The requester's exchange certificate (DER) and its signature over sealed_queries.
    requester_exchange_certificate: bytes = b""
    query_signature: bytes = b""

    @classmethod
    def single(
        cls,
        *,
        serial: int,
        time: datetime,
        requester_agency_id: str,
        info_kind: str,
        legal_basis_item: str,
        link_code: str,
        sealed_query: bytes,
        requester_sealing_public_key: bytes,
        requester_exchange_certificate: bytes = b"",
        query_signature: bytes = b"",
        log_receipt: LogReceipt | None = None,
    ) -> ProvideCall:
        return cls(
            time,
            requester_agency_id,
            info_kind,
            legal_basis_item,
            [ProvideItem(serial, 0, link_code, log_receipt)],
            sealed_query,
            requester_sealing_public_key,
            requester_exchange_certificate=requester_exchange_certificate,
            query_signature=query_signature,
        )

    @property
    def serial(self) -> int:
        """The serial of the first person: a single call's only one."""
        return self.items[0].serial

    @property
    def link_code(self) -> str:
        return self.items[0].link_code


@dataclass(frozen=True)
class Provided:
    """A single call's sealed answer (or its ticket), or a bulk call's one sealed message
    and each person's (serial, error or None) in order."""

    sealed_answer: bytes
    ticket: str = ""
    results: list[tuple[int, ItemError | None]] = field(default_factory=list)
    # This provider's signature over sealed_answer (renkei.exchange_cert).
    answer_signature: bytes = b""


@dataclass(frozen=True)
class CollectCall:
    serial: int
    ticket: str
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    requester_sealing_public_key: bytes
    requester_exchange_certificate: bytes = b""
