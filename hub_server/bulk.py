"""Bulk relay's data: what the hub takes, hands the provider and answers (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub_server.policy import Decision
from renkei.bulk import ItemError

__all__ = [
    "BulkProvideCall",
    "BulkProvideItem",
    "BulkProvided",
    "BulkRelayRequest",
    "BulkRelayResult",
    "ItemError",
]


@dataclass(frozen=True)
class BulkRelayRequest:
    provider_agency_id: str
    info_kind: str
    legal_basis_item: str
    link_codes: list[str]
    sealed_queries: bytes


@dataclass(frozen=True, slots=True)
class BulkProvideItem:
    serial: int
    index: int
    link_code: str


@dataclass(frozen=True)
class BulkProvideCall:
    time: datetime
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    item_count: int
    items: list[BulkProvideItem]
    sealed_queries: bytes
    requester_sealing_public_key: bytes


@dataclass(frozen=True)
class BulkProvided:
    """Per item (by serial): None when answered, else its error; and the sealed answers."""

    errors: dict[int, ItemError | None]
    sealed_answers: bytes


@dataclass(frozen=True)
class BulkRelayResult:
    time: datetime
    decision: Decision
    # (serial, error or None), one per link code in order.
    results: list[tuple[int, ItemError | None]]
    sealed_answers: bytes
