"""The hub log's entries: what a leaf of the verifiable log commits to.

An entry is canonical JSON (RFC 8785 for what it holds: string and integer
values, keys sorted, no whitespace, UTF-8), always with every key, so that the
same event has exactly one encoding and anybody can rebuild a leaf from what
they were shown. ``salt`` (16 random bytes, base64) makes the published leaf
hash reveal nothing: without the entry nobody can test a guess of who was
looked up.

Kinds: ``exchange`` (fields (1)-(6) of an exchange as it began, its policy
version and, for one refused at once, its outcome), ``outcome`` (the outcome
of the exchange ``serial`` names), ``fetch`` (an answer-later fetch of that
exchange's answer) and ``purge`` (entries removed under retention).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from renkei.tlog import merkle

VERSION = 1
SALT_BYTES = 16
EXCHANGE = "exchange"
OUTCOME = "outcome"
FETCH = "fetch"
PURGE = "purge"
KINDS = frozenset({EXCHANGE, OUTCOME, FETCH, PURGE})
# An entry far larger than any the hub writes is refused before it is parsed.
MAX_ENTRY_BYTES = 4096

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_KEYS = (
    "info_kind",
    "kind",
    "legal_basis_item",
    "logged_at",
    "outcome",
    "person",
    "policy_version",
    "provider",
    "reason",
    "requester",
    "salt",
    "serial",
    "v",
)


class EntryError(ValueError):
    """Bytes that are not an entry in its one canonical encoding."""


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str
    serial: int
    logged_at: datetime
    requester: str
    provider: str
    salt: bytes
    legal_basis_item: str = ""
    info_kind: str = ""
    policy_version: str = ""
    person: str = ""  # the person key (hub_server.linkage.person_key), "" when unknown
    outcome: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EntryError(f"kind: {self.kind!r} is not one of {sorted(KINDS)}")
        if type(self.serial) is not int or self.serial < 0:
            raise EntryError(f"serial: {self.serial!r} is not a non-negative integer")
        if len(self.salt) != SALT_BYTES:
            raise EntryError(f"salt: {len(self.salt)} bytes, not {SALT_BYTES}")
        if self.logged_at.tzinfo is None:
            raise EntryError("logged_at: a time without a zone")

    def encode(self) -> bytes:
        # The keys in sorted order and every value escaped as json.dumps escapes it
        # (ensure_ascii off): json.dumps(document(), sort_keys=True) in a fifth of the time,
        # for the hub writes one entry per row (test_log_entry checks they agree).
        q = _string
        return (
            f'{{"info_kind":{q(self.info_kind)},"kind":{q(self.kind)},'
            f'"legal_basis_item":{q(self.legal_basis_item)},'
            f'"logged_at":"{_time(self.logged_at)}","outcome":{q(self.outcome)},'
            f'"person":{q(self.person)},"policy_version":{q(self.policy_version)},'
            f'"provider":{q(self.provider)},"reason":{q(self.reason)},'
            f'"requester":{q(self.requester)},'
            f'"salt":"{base64.b64encode(self.salt).decode("ascii")}",'
            f'"serial":{int(self.serial)},"v":{VERSION}}}'
        ).encode()

    def document(self) -> dict[str, object]:
        """The entry as the JSON object its encoding holds."""
        return {
            "info_kind": self.info_kind,
            "kind": self.kind,
            "legal_basis_item": self.legal_basis_item,
            "logged_at": _time(self.logged_at),
            "outcome": self.outcome,
            "person": self.person,
            "policy_version": self.policy_version,
            "provider": self.provider,
            "reason": self.reason,
            "requester": self.requester,
            "salt": base64.b64encode(self.salt).decode("ascii"),
            "serial": self.serial,
            "v": VERSION,
        }

    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """The entry ``data`` encodes; EntryError naming what is wrong otherwise."""
        if len(data) > MAX_ENTRY_BYTES:
            raise EntryError(f"{len(data)} bytes, more than {MAX_ENTRY_BYTES}")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise EntryError(f"not JSON: {err}") from None
        if not isinstance(doc, dict):
            raise EntryError("not a JSON object")
        if tuple(sorted(doc)) != _KEYS:
            missing = sorted(set(_KEYS) - set(doc))
            extra = sorted(set(doc) - set(_KEYS))
            raise EntryError(f"keys: missing {missing}, unknown {extra}")
        if doc["v"] != VERSION:
            raise EntryError(f"v: version {doc['v']!r}, not {VERSION}")
        for key in _KEYS:
            if key not in ("serial", "v") and not isinstance(doc[key], str):
                raise EntryError(f"{key}: not a string")
        try:
            logged_at = datetime.strptime(doc["logged_at"], _TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise EntryError(f"logged_at: {doc['logged_at']!r} is not {_TIME_FORMAT}") from None
        try:
            salt = base64.b64decode(doc["salt"], validate=True)
        except (binascii.Error, ValueError):
            raise EntryError("salt: not base64") from None
        entry = cls(
            kind=doc["kind"],
            serial=doc["serial"],
            logged_at=logged_at,
            requester=doc["requester"],
            provider=doc["provider"],
            salt=salt,
            legal_basis_item=doc["legal_basis_item"],
            info_kind=doc["info_kind"],
            policy_version=doc["policy_version"],
            person=doc["person"],
            outcome=doc["outcome"],
            reason=doc["reason"],
        )
        if entry.encode() != data:
            raise EntryError("not in its canonical encoding")
        return entry

    def entitled(self, agency_id: str) -> bool:
        """May this agency see the entry? Only its requester and its provider may."""
        return agency_id in (self.requester, self.provider)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where the hub's log holds a write's entry (proto renkei.log.v1.LogReceipt).

    ``leaf_index`` is None and ``entry`` empty when the hub runs without the
    tree, or for an outcome that changed nothing (its exchange was complete).
    """

    serial: int
    leaf_index: int | None = None
    entry: bytes = b""


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def differences(ours: Entry, theirs: Entry) -> list[str]:
    """The names of the fields in which two entries differ, in the entry's order."""
    return [f.name for f in fields(Entry) if getattr(ours, f.name) != getattr(theirs, f.name)]


_string = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses


def _time(at: datetime) -> str:
    """``at`` as an entry writes it (``_TIME_FORMAT``), by isoformat, which is C-fast."""
    utc = at if at.tzinfo is UTC else at.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"  # less its "+00:00"
