"""What the hub's one relay path takes, hands a provider and answers (docs/architecture.md).

A single relay is a batch of one: the same types carry one person
(HubService.Relay) or up to MAX_BULK_ITEMS (BulkRelay). ``single`` says which
RPC asked, because that is what still differs: a single relay answers a
refusal as its status, reaches the provider with Provide and may get a
ticket to fetch the answer later; a bulk relay refuses per person and
reaches the provider with one BulkProvide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from hub_server.policy import Decision
from renkei.bulk import ItemError
from renkei.tlog.entry import Receipt

__all__ = [
    "CollectCall",
    "FetchResult",
    "ItemError",
    "ProvideCall",
    "ProvideItem",
    "Provided",
    "RelayRequest",
    "RelayResult",
]


@dataclass(frozen=True, slots=True)
class RelayRequest:
    provider_agency_id: str
    info_kind: str
    legal_basis_item: str
    link_codes: Sequence[str]
    # Single: the one person's sealed query; bulk: every person's, sealed as one message.
    sealed_queries: bytes
    single: bool = False
    # The requester's signature over sealed_queries: relayed, never checked here.
    query_signature: bytes = b""


@dataclass(slots=True)  # not frozen: built once per person, and a frozen init costs 3x
class ProvideItem:
    serial: int
    index: int
    link_code: str
    # The exchange's entry in the hub's log, told to the provider.
    receipt: Receipt | None = None


@dataclass(frozen=True, slots=True)
class ProvideCall:
    time: datetime
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    item_count: int
    items: Sequence[ProvideItem]
    sealed_queries: bytes
    requester_sealing_public_key: bytes
    single: bool = False
    # From the directory and the request, handed on as they are (renkei.exchange_cert).
    requester_exchange_certificate: bytes = b""
    query_signature: bytes = b""


@dataclass(frozen=True, slots=True)
class Provided:
    """Per item (by serial): None when answered, else its error; the sealed answers; a ticket.

    Only a single relay's provider may answer with a ticket (answer later),
    and it refuses as an error of the whole call rather than per item.
    """

    errors: Mapping[int, ItemError | None]
    sealed_answers: bytes
    ticket: str = ""
    answer_signature: bytes = b""


@dataclass(frozen=True, slots=True)
class RelayResult:
    time: datetime
    decision: Decision
    # (serial, error or None), one per link code in order.
    results: list[tuple[int, ItemError | None]]
    sealed_answers: bytes
    ticket: str = ""
    answer_signature: bytes = b""
    # Per serial, its entries in the hub's log: the exchange's, then its outcome's.
    receipts: Mapping[int, Sequence[Receipt]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CollectCall:
    serial: int
    ticket: str
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    requester_sealing_public_key: bytes
    requester_exchange_certificate: bytes = b""


@dataclass(frozen=True, slots=True)
class FetchResult:
    serial: int
    legal_basis_item: str
    policy_version: str
    sealed_answer: bytes
    answer_signature: bytes = b""
    # The fetch's entry in the hub's log.
    receipt: Receipt | None = None
