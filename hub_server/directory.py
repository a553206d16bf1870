"""The hub's agency directory: who the agencies are, where they answer, their sealing keys."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from renkei import exchange_cert
from renkei.config_util import ConfigError, load_toml, text, text_list
from renkei.errors import NotFound, invalid_field

AGENCY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Agency:
    agency_id: str
    display_name: str
    classes: frozenset[str]
    endpoint: str
    sealing_public_key: bytes
    # Its exchange certificate (DER), issued by the agencies' CA; the hub only hands it
    # out (GetAgency, ProvideRequest): agencies verify it (renkei.exchange_cert).
    exchange_certificate: bytes = b""


def check_agency_id(value: str, field: str) -> str:
    if not value:
        raise invalid_field(field, "is required")
    if not AGENCY_ID_RE.match(value):
        raise invalid_field(field, "must be 1-64 letters, digits, '.', '_' or '-'")
    return value


class Directory:
    def __init__(self, agencies: Iterable[Agency]) -> None:
        self._by_id: Mapping[str, Agency] = {a.agency_id: a for a in agencies}

    def __contains__(self, agency_id: object) -> bool:
        return agency_id in self._by_id

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._by_id.values())

    def get(self, agency_id: str, *, field: str = "agency_id") -> Agency:
        check_agency_id(agency_id, field)
        agency = self._by_id.get(agency_id)
        if agency is None:
            raise NotFound(
                "AGENCY_UNKNOWN",
                f"{field}: no agency {agency_id!r} in the hub's directory",
                {"field": field, "agency_id": agency_id},
            )
        return agency

    @classmethod
    def load(cls, path: Path) -> Directory:
        """Read ``[[agency]]`` tables: id, name, classes, endpoint, sealing_public_key (base64),
        exchange_certificate (PEM text)."""
        data = load_toml(path)
        entries = data.get("agency", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{path}: agency must be an array of tables ([[agency]])")
        agencies = []
        for i, entry in enumerate(entries):
            where = f"{path}: agency[{i}]"
            agency_id = text(entry, "id", where)
            if not AGENCY_ID_RE.match(agency_id):
                raise ConfigError(f"{where} id: must be 1-64 letters, digits, '.', '_' or '-'")
            encoded = text(entry, "sealing_public_key", where)
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:  # binascii.Error
                raise ConfigError(f"{where} sealing_public_key: is not base64") from None
            if len(key) != 32:
                raise ConfigError(f"{where} sealing_public_key: is {len(key)} bytes; X25519 is 32")
            pem = text(entry, "exchange_certificate", where, "")
            try:
                cert = exchange_cert.certificate_der(pem.encode("ascii")) if pem else b""
            except ValueError:
                raise ConfigError(
                    f"{where} exchange_certificate: is not a PEM certificate"
                ) from None
            agencies.append(
                Agency(
                    agency_id=agency_id,
                    display_name=text(entry, "name", where, agency_id),
                    classes=frozenset(text_list(entry, "classes", where)),
                    endpoint=text(entry, "endpoint", where),
                    sealing_public_key=key,
                    exchange_certificate=cert,
                )
            )
        return cls(agencies)
