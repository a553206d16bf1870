"""A person's details of one exchange (R26), sealed by the agency that holds them to the portal.

The agency answers an application for (11) content and (12) purpose from its
own share of the log; the hub relays the sealed bytes and cannot read them.
The plaintext is canonical JSON (sorted keys, no spaces, UTF-8), so the
agency and the portal agree on it byte for byte. ``details_info`` binds the
payload to the application, the exchange and the agency: details cut from one
application, or from another agency's answer, do not open as another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519

from renkei import sealing
from renkei.errors import InvalidArgument

ROLES = ("requester", "provider")
FIELD = "sealed_details"
_PURPOSE = "disclosure-details"


@dataclass(frozen=True)
class Details:
    """One row of an agency's share of the log, as the person may see it."""

    serial: int
    agency_id: str  # the agency whose share this is
    role: str  # "requester" | "provider": the agency's part in the exchange
    logged_at: datetime
    info_kind: str
    legal_basis_item: str
    counterpart_agency_id: str
    content: str  # (11)
    purpose: str | None  # (12), requester side only
    outcome: str
    answered_at: datetime  # when the agency answered the application


def details_info(application_id: str, serial: int, agency_id: str) -> bytes:
    """The HPKE info of the details of ``serial`` at ``agency_id`` for one application."""
    return sealing.exchange_info(_PURPOSE, application_id, serial, agency_id)


def _encode(details: Details) -> bytes:
    values: dict[str, Any] = asdict(details)
    for key in ("logged_at", "answered_at"):
        values[key] = _aware(getattr(details, key), key).isoformat()
    return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _aware(value: datetime, key: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"Details.{key} must carry a time zone")
    return value


def seal_details(
    details: Details, *, recipient: x25519.X25519PublicKey, application_id: str
) -> bytes:
    """The details as canonical JSON, sealed to ``recipient`` for this application."""
    if details.role not in ROLES:
        raise ValueError(f"Details.role must be one of {ROLES}, not {details.role!r}")
    info = details_info(application_id, details.serial, details.agency_id)
    return sealing.seal(_encode(details), recipient, info)


def _unreadable(problem: str) -> InvalidArgument:
    return InvalidArgument("SEALED_PAYLOAD_INVALID", f"{FIELD} {problem}", {"field": FIELD})


def open_details(
    sealed: bytes,
    *,
    private_key: x25519.X25519PrivateKey,
    application_id: str,
    serial: int,
    agency_id: str,
) -> Details:
    """The details sealed for this application, exchange and agency; INVALID_ARGUMENT
    ``SEALED_PAYLOAD_INVALID`` when they do not open, do not parse, or name another."""
    plain = sealing.open_sealed(
        sealed, private_key, details_info(application_id, serial, agency_id), field=FIELD
    )
    try:
        details = _decode(plain)
    except (ValueError, TypeError, KeyError) as err:
        raise _unreadable(f"opens but is not well-formed details ({err})") from None
    if details.serial != serial or details.agency_id != agency_id:
        raise _unreadable(
            f"holds the details of exchange {details.serial} at {details.agency_id!r},"
            f" not of {serial} at {agency_id!r}"
        )
    return details


def _decode(plain: bytes) -> Details:
    values = json.loads(plain.decode("utf-8"))
    if not isinstance(values, dict):
        raise ValueError("not a JSON object")
    expected = {f for f in Details.__dataclass_fields__}
    if set(values) != expected:
        raise ValueError(f"keys {sorted(values)} are not {sorted(expected)}")
    serial = values["serial"]
    if not isinstance(serial, int) or isinstance(serial, bool):
        raise ValueError("serial is not an integer")
    for key in (
        "agency_id",
        "role",
        "info_kind",
        "legal_basis_item",
        "counterpart_agency_id",
        "content",
        "outcome",
    ):
        if not isinstance(values[key], str):
            raise ValueError(f"{key} is not a string")
    if values["role"] not in ROLES:
        raise ValueError(f"role {values['role']!r} is not one of {ROLES}")
    purpose = values["purpose"]
    if purpose is not None and not isinstance(purpose, str):
        raise ValueError("purpose is neither a string nor null")
    times = {key: _time(values[key], key) for key in ("logged_at", "answered_at")}
    return Details(**{**values, **times})


def _time(value: object, key: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{key} has no time zone")
    return parsed
