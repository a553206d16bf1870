"""The ID issuer's operations, over its key store (plain Python; the servicer calls these)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from id_issuer.issuer import ID_KEY, IdIssuer
from renkei import id_code_batch, limits, validate
from renkei.errors import FailedPrecondition, RenkeiError, invalid_field
from renkei.keystore import KeyStore

MAX_BATCH = id_code_batch.MAX_CODES  # one sealed batch holds at most this many


@dataclass(frozen=True)
class Item:
    value: bytes
    error_reason: str


@dataclass(frozen=True)
class KeyStatus:
    current: int
    newest: int
    accept_until: dict[int, datetime | None]


def _check_batch(field: str, n: int) -> None:
    if n > MAX_BATCH:
        raise invalid_field(field, f"{n} items; at most {MAX_BATCH}")


class IdIssuerService:
    def __init__(
        self,
        store: KeyStore,
        hub_public_key: bytes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._hub_public_key = hub_public_key
        self._clock = clock
        self._issuer = IdIssuer.from_store(store, hub_public_key)

    @property
    def store(self) -> KeyStore:
        return self._store

    async def reload(self) -> None:
        self._issuer = await asyncio.to_thread(
            IdIssuer.from_store, self._store, self._hub_public_key
        )

    def seal(self, agency_id: str, resident_codes: list[str]) -> list[Item]:
        validate.text("agency_id", agency_id, max_chars=limits.MAX_ID)
        _check_batch("resident_codes", len(resident_codes))
        out = []
        for code in resident_codes:
            try:
                out.append(Item(self._issuer.sealed_id_code(code, agency_id), ""))
            except RenkeiError as err:
                out.append(Item(b"", err.reason))
        return out

    def seal_batch(self, agency_id: str, resident_codes: list[str]) -> tuple[bytes, list[str]]:
        """(the ID codes sealed together, b"" if none; an error reason per code, "" if in)."""
        validate.text("agency_id", agency_id, max_chars=limits.MAX_ID)
        _check_batch("resident_codes", len(resident_codes))
        issuer = self._issuer
        id_codes: list[bytes] = []
        reasons: list[str] = []
        for code in resident_codes:
            try:
                id_codes.append(issuer.issuer.issue(code))
                reasons.append("")
            except RenkeiError as err:
                reasons.append(err.reason)
        return (issuer.sealed_batch(id_codes, agency_id) if id_codes else b""), reasons

    def reissue(self, id_codes: list[bytes]) -> tuple[list[Item], int]:
        _check_batch("id_codes", len(id_codes))
        issuer = self._issuer.issuer
        newest = issuer.newest
        out = []
        for code in id_codes:
            try:
                out.append(Item(issuer.reissue(code, newest), ""))
            except RenkeiError as err:
                out.append(Item(b"", err.reason))
        return out, newest

    def status(self) -> KeyStatus:
        versions = self._store.versions(ID_KEY)
        return KeyStatus(
            current=next(v.version for v in versions if v.current),
            newest=max(v.version for v in versions),
            accept_until={v.version: v.accept_until for v in versions if not v.current},
        )

    async def complete_rotation(self, version: int) -> datetime | None:
        newest = self._issuer.issuer.newest
        if version != newest:
            raise FailedPrecondition(
                "ROTATION_VERSION_NOT_NEWEST",
                f"version {version} is not the newest ID key version ({newest})",
                {"field": "version"},
            )
        until = await asyncio.to_thread(
            self._store.make_current, ID_KEY, version, now=self._clock()
        )
        await self.reload()
        return until
