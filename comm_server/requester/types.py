"""The requester's side's requests and answers, for one person or a batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from renkei.bulk import ItemError
from renkei.layout.v1 import layout_pb2


@dataclass(frozen=True, slots=True)
class Person:
    """One person of a query: the agency's own number and what it asks about them."""

    local_person_id: str
    query: bytes


@dataclass(frozen=True)
class LocalQuery:
    """A query from the agency's legacy side: one provider, kind and item, 1 to 5,000 persons.

    ``bulk``: asked as a BulkQuery (one sealed message each way, per-person errors);
    otherwise a Query of the one person (sealed per person, refusals as a status).
    """

    provider_agency_id: str
    info_kind: str
    legal_basis_item: str
    purpose: str
    staff_id: str
    terminal_id: str
    persons: list[Person]
    bulk: bool = False


@dataclass(frozen=True, slots=True)
class PersonAnswer:
    local_person_id: str
    serial: int  # 0: the person never reached the hub
    answer: bytes  # in this agency's own format (or raw, without a mapper)
    error: ItemError | None = None
    # The answer in the standard layout (None: the provider has no mapper; answer is raw).
    record: layout_pb2.StandardRecord | None = None


@dataclass(frozen=True)
class Answered:
    """Every person's answer or error, in the order asked."""

    time: datetime
    legal_basis_item: str
    policy_version: str
    persons: list[PersonAnswer]
    ticket: str = ""  # set: the answer comes later (a single query to a batch system)


@dataclass(frozen=True)
class FetchRequest:
    ticket: str
    staff_id: str
    terminal_id: str
