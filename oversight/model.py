"""What the oversight body reads, as plain values: the hub's entries, agency rows, consent rows.

Each mirrors one party's record of an exchange (R23, R24) with nothing added:
the hub's entry as its leaf commits to it (renkei.tlog.entry.Entry), an
agency's row as ReadAgencyLog streams it (renkei.oversight.v1.AgencyLogRow),
the registry's consent attempt as ReadConsentLog streams it. Slotted, for a
million of each fit in memory and are read field by field in tight loops.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renkei.tlog.entry import Entry

REQUESTER = "requester"
PROVIDER = "provider"
ROLES = (REQUESTER, PROVIDER)


@dataclass(frozen=True, slots=True)
class HubEntry:
    """One leaf of the hub's log, verified against a witnessed checkpoint."""

    leaf_index: int
    kind: str  # renkei.tlog.entry.KINDS: exchange, outcome, fetch, purge
    serial: int
    logged_at: datetime
    requester: str
    provider: str
    legal_basis_item: str = ""
    info_kind: str = ""
    policy_version: str = ""
    person: str = ""  # the hub's person key, "" when unknown
    outcome: str = ""
    reason: str = ""

    @classmethod
    def of(cls, leaf_index: int, entry: Entry) -> HubEntry:
        return cls(
            leaf_index,
            entry.kind,
            entry.serial,
            entry.logged_at,
            entry.requester,
            entry.provider,
            entry.legal_basis_item,
            entry.info_kind,
            entry.policy_version,
            entry.person,
            entry.outcome,
            entry.reason,
        )


@dataclass(frozen=True, slots=True)
class AgencyRow:
    """One row of an agency's share: one person of one exchange, one side."""

    id: int
    serial: int  # 0: refused before the hub gave a serial
    role: str  # REQUESTER or PROVIDER
    logged_at: datetime
    agency_id: str
    counterpart_agency_id: str
    info_kind: str
    legal_basis_item: str
    person: str = ""  # the agency's own oversight pseudonym of the person
    staff_id: str = ""
    terminal_id: str = ""
    content_sha256: bytes = b""
    purpose: str = ""
    outcome: str = ""
    reason: str = ""
    person_municipality: str = ""

    @property
    def requester(self) -> str:
        return self.agency_id if self.role == REQUESTER else self.counterpart_agency_id

    @property
    def provider(self) -> str:
        return self.agency_id if self.role == PROVIDER else self.counterpart_agency_id

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "serial": self.serial,
            "role": self.role,
            "logged_at": _time(self.logged_at),
            "agency_id": self.agency_id,
            "counterpart_agency_id": self.counterpart_agency_id,
            "info_kind": self.info_kind,
            "legal_basis_item": self.legal_basis_item,
            "person": self.person,
            "staff_id": self.staff_id,
            "terminal_id": self.terminal_id,
            "content_sha256": self.content_sha256.hex(),
            "purpose": self.purpose,
            "outcome": self.outcome,
            "reason": self.reason,
            "person_municipality": self.person_municipality,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AgencyRow:
        """The row ``to_json`` wrote; KeyError, TypeError or ValueError for anything else."""
        role = str(doc["role"])
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {ROLES}")
        return cls(
            int(doc["id"]),
            int(doc["serial"]),
            role,
            _parse_time(doc["logged_at"]),
            str(doc["agency_id"]),
            str(doc["counterpart_agency_id"]),
            str(doc["info_kind"]),
            str(doc["legal_basis_item"]),
            str(doc["person"]),
            str(doc["staff_id"]),
            str(doc["terminal_id"]),
            bytes.fromhex(str(doc["content_sha256"])),
            str(doc["purpose"]),
            str(doc["outcome"]),
            str(doc["reason"]),
            str(doc["person_municipality"]),
        )


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """One MatchWithConsent attempt as the registry's binding party recorded it."""

    id: int
    attempt_id: str
    caller: str
    attempted_at: datetime
    consent_id: str
    giver: str
    purpose: str
    outcome: str
    answered: str
    reason: str
    matched: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "attempt_id": self.attempt_id,
            "caller": self.caller,
            "attempted_at": _time(self.attempted_at),
            "consent_id": self.consent_id,
            "giver": self.giver,
            "purpose": self.purpose,
            "outcome": self.outcome,
            "answered": self.answered,
            "reason": self.reason,
            "matched": self.matched,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ConsentRow:
        return cls(
            int(doc["id"]),
            str(doc["attempt_id"]),
            str(doc["caller"]),
            _parse_time(doc["attempted_at"]),
            str(doc["consent_id"]),
            str(doc["giver"]),
            str(doc["purpose"]),
            str(doc["outcome"]),
            str(doc["answered"]),
            str(doc["reason"]),
            bool(doc["matched"]),
        )


def encode_entry(leaf_index: int, entry: bytes) -> dict[str, Any]:
    """A hub entry for a JSONL file: its leaf index and its exact bytes, to verify again."""
    return {"leaf_index": leaf_index, "entry": base64.b64encode(entry).decode("ascii")}


def decode_entry(doc: dict[str, Any]) -> tuple[int, bytes]:
    return int(doc["leaf_index"]), base64.b64decode(str(doc["entry"]), validate=True)


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _parse_time(text: object) -> datetime:
    at = datetime.fromisoformat(str(text))
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone")
    return at
