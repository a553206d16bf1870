"""The hub's domain: approve, translate, relay, issue link codes (R1, R9, R16, R18, R21, R22).

Plain Python with its ports passed in: the directory, the legal-basis policy,
the link-code codec, the log, and a gateway to providers' communication
servers. Link codes live in local variables for one exchange and are never
stored; the log keeps a keyed hash of the ID code only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import x25519

from hub_server.directory import Agency, Directory
from hub_server.log_store import DENIED, OK, AsyncHubLog, LogEntry
from hub_server.policy import Decision, LegalBasisPolicy
from renkei import codes, sealing, validate
from renkei.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    RenkeiError,
    Unauthenticated,
)
from renkei.id_issuer import id_code_sealing_info
from renkei.logs import event

_log = logging.getLogger("hub_server.linkage")

MAX_INFO_KIND = 200
MAX_ITEM = 32
MAX_SEALED_BYTES = 256 * 1024
MAX_REKEY_BATCH = 1000


@dataclass(frozen=True)
class RelayRequest:
    provider_agency_id: str
    info_kind: str
    legal_basis_item: str
    link_code: str
    sealed_query: bytes


@dataclass(frozen=True)
class ProvideCall:
    serial: int
    time: datetime
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    link_code: str
    sealed_query: bytes
    requester_sealing_public_key: bytes


@dataclass(frozen=True)
class RelayResult:
    serial: int
    time: datetime
    decision: Decision
    sealed_answer: bytes


@dataclass(frozen=True)
class Translation:
    link_code_key_version: int
    current_key_version: int
    provider_agency_id: str


@dataclass(frozen=True)
class Rekeyed:
    link_code: str
    error_reason: str


class KeyAdmin(Protocol):
    """Changes to the hub's keys, made durable before they take effect."""

    async def make_current(self, agency_id: str, version: int) -> datetime | None:
        """Make ``version`` current; the old one's acceptance limit (None: already current)."""
        ...

    async def codec(self) -> codes.LinkCodec:
        """A codec reflecting the key store as it is now."""
        ...


class ProviderGateway(Protocol):
    async def provide(self, provider: Agency, call: ProvideCall, timeout: float) -> bytes:
        """The provider's sealed answer; raises RenkeiError on refusal or failure."""
        ...


class Hub:
    def __init__(
        self,
        *,
        directory: Directory,
        policy: LegalBasisPolicy,
        codec: codes.LinkCodec,
        log: AsyncHubLog,
        gateway: ProviderGateway,
        key_admin: KeyAdmin | None = None,
        log_index_key: bytes,
        sealing_key: x25519.X25519PrivateKey,
        relay_ceiling: float = 10.0,
        log_margin: float = 0.05,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.policy = policy
        self.codec = codec
        self._key_admin = key_admin
        self._log = log
        self._gateway = gateway
        self._log_index_key = log_index_key
        self._sealing_key = sealing_key
        self._relay_ceiling = relay_ceiling
        self._log_margin = log_margin
        self._clock = clock

    # -- identity ---------------------------------------------------------

    def caller(self, agency_id: str | None) -> Agency:
        """The calling agency, from its verified certificate."""
        if agency_id is None:
            raise Unauthenticated(
                "CLIENT_CERT_REQUIRED", "the hub knows callers only by an agency client certificate"
            )
        if agency_id not in self.directory:
            raise PermissionDenied(
                "CALLER_NOT_REGISTERED",
                f"certificate names agency {agency_id!r}, which is not in the hub's directory",
                {"agency_id": agency_id},
            )
        return self.directory.get(agency_id)

    # -- approve ----------------------------------------------------------

    def approve(self, requester: Agency, provider_id: str, info_kind: str, item: str) -> Decision:
        provider = self.directory.get(provider_id, field="provider_agency_id")
        validate.text("info_kind", info_kind, max_chars=MAX_INFO_KIND)
        validate.text("legal_basis_item", item, max_chars=MAX_ITEM)
        return self.policy.decide(requester, provider, info_kind, item)

    # -- translate --------------------------------------------------------

    def translate(self, requester: Agency, provider_id: str, link_code: str) -> Translation:
        provider = self.directory.get(provider_id, field="provider_agency_id")
        validate.required("link_code", link_code)
        id_code, version = self.codec.decode(requester.agency_id, link_code)
        self.codec.encode(provider.agency_id, id_code)  # proves the provider side translates
        return Translation(
            version, self.codec.current_version(requester.agency_id), provider.agency_id
        )

    def person_key(self, id_code: bytes) -> str:
        mac = hmac.HMAC(self._log_index_key, hashes.SHA256())
        mac.update(id_code)
        return mac.finalize().hex()

    # -- relay ------------------------------------------------------------

    async def relay(
        self, requester: Agency, req: RelayRequest, time_remaining: float | None
    ) -> RelayResult:
        provider = self.directory.get(req.provider_agency_id, field="provider_agency_id")
        validate.text("info_kind", req.info_kind, max_chars=MAX_INFO_KIND)
        validate.text("legal_basis_item", req.legal_basis_item, max_chars=MAX_ITEM)
        validate.required("link_code", req.link_code)
        validate.blob("sealed_query", req.sealed_query, max_bytes=MAX_SEALED_BYTES)
        started = self._clock()
        entry = LogEntry(
            logged_at=started,
            legal_basis_item=req.legal_basis_item,
            requester_agency_id=requester.agency_id,
            provider_agency_id=provider.agency_id,
            info_kind=req.info_kind,
            policy_version=self.policy.version,
            person_key=None,
        )
        try:
            id_code, _ = self.codec.decode(requester.agency_id, req.link_code)
        except RenkeiError as err:
            # A foreign or damaged link code is a security event: it is logged, without a person.
            err.metadata["serial"] = str(await self._log.record(entry, err.code.name, err.reason))
            raise
        entry = replace(entry, person_key=self.person_key(id_code))
        decision = self.policy.decide(requester, provider, req.info_kind, req.legal_basis_item)
        if not decision.approved:
            serial = await self._log.record(entry, DENIED, decision.reason)
            event(_log, "relay denied", serial=serial, reason=decision.reason)
            raise PermissionDenied(
                decision.reason,
                decision.message,
                {
                    "serial": str(serial),
                    "legal_basis_item": decision.item,
                    "policy_version": decision.policy_version,
                },
            )
        provider_link_code = self.codec.encode(provider.agency_id, id_code)
        serial = await self._log.begin(entry)
        try:
            # The provider gets the caller's deadline less the time kept to log the outcome.
            timeout = self._relay_ceiling
            if time_remaining is not None:
                timeout = min(timeout, time_remaining - self._log_margin)
            if timeout <= 0:
                raise DeadlineExceeded("DEADLINE_TOO_SHORT", "no time left to ask the provider")
            sealed_answer = await self._gateway.provide(
                provider,
                ProvideCall(
                    serial=serial,
                    time=started,
                    requester_agency_id=requester.agency_id,
                    info_kind=req.info_kind,
                    legal_basis_item=req.legal_basis_item,
                    link_code=provider_link_code,
                    sealed_query=req.sealed_query,
                    requester_sealing_public_key=requester.sealing_public_key,
                ),
                timeout,
            )
        except RenkeiError as err:
            await self._log.finish(serial, err.code.name, err.reason)
            err.metadata["serial"] = str(serial)
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self._log.finish(serial, "CANCELLED", "CALLER_CANCELLED"))
            raise
        except Exception:
            await asyncio.shield(self._log.finish(serial, "INTERNAL", "HUB_FAILURE"))
            raise
        await self._log.finish(serial, OK, "")
        return RelayResult(serial, started, decision, sealed_answer)

    # -- binding ----------------------------------------------------------

    def issue_link_code(self, requester: Agency, sealed_id_code: bytes) -> tuple[str, int]:
        validate.blob("sealed_id_code", sealed_id_code, max_bytes=1024, required=True)
        id_code = sealing.open_sealed(
            sealed_id_code,
            self._sealing_key,
            id_code_sealing_info(requester.agency_id),
            field="sealed_id_code",
        )
        if len(id_code) != codes.ID_CODE_BYTES:
            raise InvalidArgument(
                "ID_CODE_MALFORMED",
                f"sealed_id_code holds {len(id_code)} bytes; an ID code has {codes.ID_CODE_BYTES}",
                {"field": "sealed_id_code"},
            )
        link_code = self.codec.encode(requester.agency_id, id_code)
        return link_code, self.codec.current_version(requester.agency_id)

    # -- re-keying (R11) ---------------------------------------------------

    def rekey_link_codes(
        self, requester: Agency, link_codes: list[str]
    ) -> tuple[list[Rekeyed], int, int]:
        """(results, newest version, current version) for a batch of the caller's codes."""
        if len(link_codes) > MAX_REKEY_BATCH:
            raise InvalidArgument(
                "INVALID_FIELD",
                f"link_codes: {len(link_codes)} codes; at most {MAX_REKEY_BATCH} per call",
                {"field": "link_codes"},
            )
        codec = self.codec
        results = []
        for code in link_codes:
            try:
                new_code, _ = codec.rekey(requester.agency_id, code)
                results.append(Rekeyed(new_code, ""))
            except RenkeiError as err:
                results.append(Rekeyed("", err.reason))
        return (
            results,
            codec.newest_version(requester.agency_id),
            codec.current_version(requester.agency_id),
        )

    async def complete_rekey(self, requester: Agency, version: int) -> tuple[int, datetime | None]:
        """Make ``version`` the caller's current link-code key version."""
        newest = self.codec.newest_version(requester.agency_id)
        if version != newest:
            raise FailedPrecondition(
                "REKEY_VERSION_NOT_NEWEST",
                f"key_version {version} is not the newest version ({newest}) of the caller's key",
                {"field": "key_version", "newest_key_version": str(newest)},
            )
        if self._key_admin is None:
            raise FailedPrecondition("KEYS_READ_ONLY", "this hub cannot change its keys")
        until = await self._key_admin.make_current(requester.agency_id, version)
        self.codec = await self._key_admin.codec()
        event(_log, "re-key completed", agency_id=requester.agency_id, key_version=version)
        return version, until
