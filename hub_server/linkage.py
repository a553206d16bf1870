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

from hub_server.bulk import (
    BulkProvideCall,
    BulkProvided,
    BulkProvideItem,
    BulkRelayRequest,
    BulkRelayResult,
    ItemError,
)
from hub_server.directory import Agency, Directory
from hub_server.id_issuer_client import IdKeyState
from hub_server.log_store import ANSWER_PENDING, DENIED, OK, PENDING, AsyncHubLog, LogEntry
from hub_server.policy import Decision, LegalBasisPolicy
from renkei import bulk, codes, id_code_batch, sealing, validate
from renkei.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RenkeiError,
    Unauthenticated,
    Unavailable,
    invalid_field,
)
from renkei.logs import event

_log = logging.getLogger("hub_server.linkage")

MAX_INFO_KIND = 200
MAX_ITEM = 32
MAX_SEALED_BYTES = 256 * 1024
MAX_REKEY_BATCH = 1000
MAX_TICKET = 64
# Bulk relay: time kept back per person to complete its log row, and how many
# persons are translated between yields to the event loop (single relays wait meanwhile).
BULK_LOG_SECONDS_PER_ITEM = 20e-6
BULK_YIELD_EVERY = 500


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
class Provided:
    """A provider's reply: the sealed answer, or a ticket to fetch it later."""

    sealed_answer: bytes
    ticket: str = ""


@dataclass(frozen=True)
class CollectCall:
    serial: int
    ticket: str
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    requester_sealing_public_key: bytes


@dataclass(frozen=True)
class RelayResult:
    serial: int
    time: datetime
    decision: Decision
    sealed_answer: bytes
    ticket: str = ""


@dataclass(frozen=True)
class FetchResult:
    serial: int
    legal_basis_item: str
    policy_version: str
    sealed_answer: bytes


@dataclass(frozen=True)
class IssuedBatch:
    """The caller's link codes for a sealed batch, in the batch's order."""

    batch_id: bytes
    link_codes: list[str]
    key_version: int
    id_key_versions: list[int]


@dataclass(frozen=True)
class Translation:
    link_code_key_version: int
    current_key_version: int
    provider_agency_id: str


@dataclass(frozen=True)
class Rekeyed:
    link_code: str
    error_reason: str


@dataclass(frozen=True)
class RekeyAnswer:
    results: list[Rekeyed]
    newest_key_version: int
    current_key_version: int
    newest_id_key_version: int


def _ticket_ok(ticket: str) -> bool:
    return len(ticket) <= MAX_TICKET and ticket.isascii() and ticket.isprintable()


class IdIssuerPort(Protocol):
    async def status(self) -> IdKeyState: ...

    async def reissue(self, id_codes: list[bytes]) -> tuple[list[tuple[bytes, str]], int]: ...

    async def complete(self, version: int) -> None: ...


class KeyAdmin(Protocol):
    """Changes to the hub's keys, made durable before they take effect."""

    async def make_current(self, agency_id: str, version: int) -> datetime | None:
        """Make ``version`` current; the old one's acceptance limit (None: already current)."""
        ...

    async def codec(self) -> codes.LinkCodec:
        """A codec reflecting the key store as it is now."""
        ...

    async def record_completion(self, agency_id: str, id_key_version: int) -> set[str]:
        """Note that an agency re-keyed to an ID key version; every agency that has."""
        ...


class ProviderGateway(Protocol):
    async def provide(self, provider: Agency, call: ProvideCall, timeout: float) -> Provided:
        """The provider's sealed answer or ticket; raises RenkeiError on refusal or failure."""
        ...

    async def collect(self, provider: Agency, call: CollectCall, timeout: float) -> bytes:
        """The sealed answer behind a ticket; raises RenkeiError (ANSWER_NOT_READY, ...)."""
        ...

    async def bulk_provide(
        self, provider: Agency, call: BulkProvideCall, timeout: float
    ) -> BulkProvided:
        """Per-item outcomes and the sealed answers; raises RenkeiError if the call fails whole."""
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
        id_issuer: IdIssuerPort | None = None,
        log_index_key: bytes,
        sealing_key: x25519.X25519PrivateKey,
        relay_ceiling: float = 10.0,
        bulk_relay_ceiling: float = 60.0,
        log_margin: float = 0.05,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.policy: LegalBasisPolicy = policy
        self.codec = codec
        self._key_admin = key_admin
        self._id_issuer = id_issuer
        self.id_state = IdKeyState()
        self._log = log
        self._gateway = gateway
        self._log_index_key = log_index_key
        self._sealing_key = sealing_key
        self._relay_ceiling = relay_ceiling
        self._bulk_relay_ceiling = bulk_relay_ceiling
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
        return self.policy.decide(requester, provider, info_kind, item, self._clock())

    # -- translate --------------------------------------------------------

    def translate(self, requester: Agency, provider_id: str, link_code: str) -> Translation:
        provider = self.directory.get(provider_id, field="provider_agency_id")
        validate.required("link_code", link_code)
        id_code, version = self._decode(requester.agency_id, link_code)
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
            id_code, _ = self._decode(requester.agency_id, req.link_code)
        except RenkeiError as err:
            # A foreign or damaged link code is a security event: it is logged, without a person.
            err.metadata["serial"] = str(await self._log.record(entry, err.code.name, err.reason))
            raise
        entry = replace(entry, person_key=self.person_key(id_code))
        decision = self.policy.decide(
            requester, provider, req.info_kind, req.legal_basis_item, started
        )
        entry = replace(entry, policy_version=decision.policy_version)
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
            provided = await self._gateway.provide(
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
            if provided.ticket and not _ticket_ok(provided.ticket):
                raise Unavailable(
                    "PROVIDER_TICKET_INVALID",
                    "the provider answered with a ticket that is not a short printable string",
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
        if provided.ticket:
            await self._log.finish(serial, ANSWER_PENDING, "")
        else:
            await self._log.finish(serial, OK, "")
        return RelayResult(serial, started, decision, provided.sealed_answer, provided.ticket)

    async def bulk_relay(
        self, requester: Agency, req: BulkRelayRequest, time_remaining: float | None
    ) -> BulkRelayResult:
        """Relay for many persons: one approval, one provider call, one log row per person.

        Every person's row is durable (PENDING, or complete for a person refused
        here) before the provider is asked, and every row is complete before the
        answer. An unlawful request is refused whole, each person logged DENIED.
        """
        provider = self.directory.get(req.provider_agency_id, field="provider_agency_id")
        validate.text("info_kind", req.info_kind, max_chars=MAX_INFO_KIND)
        validate.text("legal_basis_item", req.legal_basis_item, max_chars=MAX_ITEM)
        bulk.check_count("link_codes", len(req.link_codes))
        validate.blob(
            "sealed_queries",
            req.sealed_queries,
            max_bytes=bulk.MAX_BULK_SEALED_QUERIES,
            required=True,
        )
        started = self._clock()
        agency = requester.agency_id
        decision = self.policy.decide(
            requester, provider, req.info_kind, req.legal_basis_item, started
        )
        rows: list[tuple[LogEntry, str, str]] = []
        errors: list[ItemError | None] = []
        id_codes: list[bytes | None] = []
        decoded = self.codec.decode_many(agency, req.link_codes)
        accepted: dict[int, bool] = {}  # ID key version -> still accepted
        for i, (link_code, got) in enumerate(zip(req.link_codes, decoded, strict=True)):
            if i % BULK_YIELD_EVERY == BULK_YIELD_EVERY - 1:
                await asyncio.sleep(0)
            id_code: bytes | None = None
            error: RenkeiError | None = None
            if not link_code:
                error = invalid_field("link_codes", f"item {i} is empty")
            elif isinstance(got, RenkeiError):
                error = got
            else:
                version = got[0][0]
                ok = accepted.get(version)
                if ok is None:
                    ok = accepted[version] = self.id_state.accepted(version, self._clock())
                if ok:
                    id_code = got[0]
                else:
                    try:
                        self._check_id_version(got[0], "link_code")
                        id_code = got[0]
                    except RenkeiError as err:
                        error = err
            entry = LogEntry(
                started,
                req.legal_basis_item,
                agency,
                provider.agency_id,
                req.info_kind,
                decision.policy_version,
                None if id_code is None else self.person_key(id_code),
            )
            id_codes.append(id_code)
            if not decision.approved:
                rows.append((entry, DENIED, decision.reason))
            elif error is not None:
                # A foreign or damaged code is logged for its item, without a person.
                rows.append((entry, error.code.name, error.reason))
            else:
                rows.append((entry, PENDING, ""))
            errors.append(None if error is None else ItemError.of(error))
        del decoded
        serials = await self._log.begin_many(rows)
        if not decision.approved:
            event(_log, "bulk relay denied", persons=len(serials), reason=decision.reason)
            raise PermissionDenied(
                decision.reason,
                decision.message,
                {
                    "serials": bulk.format_serials(serials),
                    "legal_basis_item": decision.item,
                    "policy_version": decision.policy_version,
                },
            )
        relay_at = [i for i, id_code in enumerate(id_codes) if id_code is not None]
        provider_codes = self.codec.encode_many(
            provider.agency_id, [id_code for id_code in id_codes if id_code is not None]
        )
        items = [
            BulkProvideItem(serials[i], i, code)
            for i, code in zip(relay_at, provider_codes, strict=True)
        ]
        del id_codes
        relayed = [item.serial for item in items]
        provided = BulkProvided({}, b"")
        if items:
            try:
                timeout = self._bulk_relay_ceiling
                if time_remaining is not None:
                    floor = self._log_margin + BULK_LOG_SECONDS_PER_ITEM * len(items)
                    timeout = min(timeout, time_remaining - bulk.margin(time_remaining, floor))
                if timeout <= 0:
                    raise DeadlineExceeded("DEADLINE_TOO_SHORT", "no time left to ask the provider")
                provided = await self._gateway.bulk_provide(
                    provider,
                    BulkProvideCall(
                        time=started,
                        requester_agency_id=agency,
                        info_kind=req.info_kind,
                        legal_basis_item=req.legal_basis_item,
                        item_count=len(req.link_codes),
                        items=items,
                        sealed_queries=req.sealed_queries,
                        requester_sealing_public_key=requester.sealing_public_key,
                    ),
                    timeout,
                )
            except RenkeiError as err:
                await self._log.finish_many([(s, err.code.name, err.reason) for s in relayed])
                err.metadata["serials"] = bulk.format_serials(serials)
                raise
            except asyncio.CancelledError:
                await asyncio.shield(
                    self._log.finish_many([(s, "CANCELLED", "CALLER_CANCELLED") for s in relayed])
                )
                raise
            except Exception:
                await asyncio.shield(
                    self._log.finish_many([(s, "INTERNAL", "HUB_FAILURE") for s in relayed])
                )
                raise
        missing = ItemError(
            "UNAVAILABLE", "PROVIDER_RESULT_MISSING", "the provider's answer left this person out"
        )
        finished: list[tuple[int, str, str]] = []
        for item in items:
            outcome = provided.errors.get(item.serial, missing)
            errors[item.index] = outcome
            finished.append(
                (item.serial, OK, "")
                if outcome is None
                else (item.serial, outcome.code, outcome.reason)
            )
        await self._log.finish_many(finished)
        event(_log, "bulk relayed", persons=len(serials), relayed=len(items))
        return BulkRelayResult(
            started, decision, list(zip(serials, errors, strict=True)), provided.sealed_answers
        )

    async def fetch_answer(
        self, requester: Agency, serial: int, ticket: str, time_remaining: float | None
    ) -> FetchResult:
        """The answer to the caller's pending exchange, through its provider (answer-later).

        Approval is not done again: the exchange was approved when it was relayed,
        and only its own requester may fetch, only while it is pending. The
        ticket is opaque here; the provider checks it and honours it once.
        """
        validate.text("ticket", ticket, max_chars=MAX_TICKET)
        row = await self._log.row(serial) if serial > 0 else None
        if row is None:
            raise NotFound(
                "EXCHANGE_UNKNOWN", f"no exchange with serial {serial}", {"field": "serial"}
            )
        if row.entry.requester_agency_id != requester.agency_id:
            # Logged: someone fishing for another agency's answer is a security event.
            await self._log.record_fetch(serial, "PERMISSION_DENIED", "NOT_EXCHANGE_REQUESTER")
            raise PermissionDenied(
                "NOT_EXCHANGE_REQUESTER",
                f"exchange {serial} was asked by another agency",
                {"field": "serial", "serial": str(serial)},
            )
        if row.outcome != ANSWER_PENDING:
            raise FailedPrecondition(
                "EXCHANGE_NOT_PENDING",
                f"exchange {serial} has no answer to fetch (outcome {row.outcome})",
                {"field": "serial", "serial": str(serial)},
            )
        if any(outcome == OK for _, outcome, _ in await self._log.fetches(serial)):
            raise FailedPrecondition(
                "ANSWER_ALREADY_FETCHED",
                f"the answer to exchange {serial} was fetched already; tickets are single-use",
                {"field": "ticket", "serial": str(serial)},
            )
        provider = self.directory.get(row.entry.provider_agency_id)
        try:
            timeout = self._relay_ceiling
            if time_remaining is not None:
                timeout = min(timeout, time_remaining - self._log_margin)
            if timeout <= 0:
                raise DeadlineExceeded("DEADLINE_TOO_SHORT", "no time left to ask the provider")
            sealed_answer = await self._gateway.collect(
                provider,
                CollectCall(
                    serial=serial,
                    ticket=ticket,
                    requester_agency_id=requester.agency_id,
                    info_kind=row.entry.info_kind,
                    legal_basis_item=row.entry.legal_basis_item,
                    requester_sealing_public_key=requester.sealing_public_key,
                ),
                timeout,
            )
        except RenkeiError as err:
            await self._log.record_fetch(serial, err.code.name, err.reason)
            err.metadata["serial"] = str(serial)
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self._log.record_fetch(serial, "CANCELLED", "CALLER_CANCELLED"))
            raise
        await self._log.record_fetch(serial, OK, "")
        event(_log, "pending answer fetched", serial=serial)
        return FetchResult(
            serial, row.entry.legal_basis_item, row.entry.policy_version, sealed_answer
        )

    # -- binding ----------------------------------------------------------

    def issue_link_code(self, requester: Agency, sealed_id_code: bytes) -> tuple[str, int, int]:
        """(link code, its key version, the ID key version it is made from)."""
        validate.blob("sealed_id_code", sealed_id_code, max_bytes=1024, required=True)
        id_code = sealing.open_sealed(
            sealed_id_code,
            self._sealing_key,
            sealing.id_code_sealing_info(requester.agency_id),
            field="sealed_id_code",
        )
        if len(id_code) != codes.ID_CODE_BYTES:
            raise InvalidArgument(
                "ID_CODE_MALFORMED",
                f"sealed_id_code holds {len(id_code)} bytes; an ID code has {codes.ID_CODE_BYTES}",
                {"field": "sealed_id_code"},
            )
        self._check_id_version(id_code, "sealed_id_code")
        link_code = self.codec.encode(requester.agency_id, id_code)
        return link_code, self.codec.current_version(requester.agency_id), id_code[0]

    def issue_link_codes(self, requester: Agency, sealed_batch: bytes) -> IssuedBatch:
        """The caller's link codes for a batch sealed for it; refuses the batch as a whole."""
        validate.blob(
            "sealed_batch", sealed_batch, max_bytes=id_code_batch.MAX_SEALED_BYTES, required=True
        )
        batch_id, id_codes = id_code_batch.open_batch(
            sealed_batch, self._sealing_key, requester.agency_id, field="sealed_batch"
        )
        for i, id_code in enumerate(id_codes):
            try:
                self._check_id_version(id_code, "sealed_batch")
            except RenkeiError as err:
                err.metadata["index"] = str(i)
                raise
        agency = requester.agency_id
        return IssuedBatch(
            batch_id,
            self.codec.encode_many(agency, id_codes),
            self.codec.current_version(agency),
            [c[0] for c in id_codes],
        )

    # -- keys ----------------------------------------------------------------

    def _decode(self, agency_id: str, link_code: str) -> tuple[bytes, int]:
        id_code, version = self.codec.decode(agency_id, link_code)
        self._check_id_version(id_code, "link_code")
        return id_code, version

    def _check_id_version(self, id_code: bytes, field: str) -> None:
        version = id_code[0]
        if not self.id_state.accepted(version, self._clock()):
            raise FailedPrecondition(
                "ID_CODE_KEY_RETIRED",
                f"{field} is made from ID key version {version}, no longer accepted;"
                f" re-key to ID key version {self.id_state.current}",
                {"field": field, "id_key_version": str(version)},
            )

    async def refresh_id_state(self) -> None:
        if self._id_issuer is not None:
            self.id_state = await self._id_issuer.status()

    # -- re-keying (R11) ---------------------------------------------------

    async def rekey_link_codes(self, requester: Agency, link_codes: list[str]) -> RekeyAnswer:
        """The caller's codes under its newest link-code key and the newest ID key."""
        if len(link_codes) > MAX_REKEY_BATCH:
            raise invalid_field(
                "link_codes", f"{len(link_codes)} codes; at most {MAX_REKEY_BATCH} per call"
            )
        agency = requester.agency_id
        codec, id_newest = self.codec, self.id_state.newest
        id_codes: list[bytes | None] = []
        reasons: list[str] = []
        for code in link_codes:
            try:
                id_codes.append(self._decode(agency, code)[0])
                reasons.append("")
            except RenkeiError as err:
                id_codes.append(None)
                reasons.append(err.reason)
        stale = [i for i, c in enumerate(id_codes) if c is not None and c[0] < id_newest]
        if stale:
            if self._id_issuer is None:
                raise FailedPrecondition(
                    "ID_ISSUER_NOT_CONFIGURED", "this hub cannot reach the ID issuer to re-key"
                )
            reissued, _ = await self._id_issuer.reissue([id_codes[i] or b"" for i in stale])
            aliases = []
            for i, (new, reason) in zip(stale, reissued, strict=True):
                old = id_codes[i]
                if old is not None and not reason:
                    aliases.append((self.person_key(old), self.person_key(new)))
                id_codes[i], reasons[i] = (new, "") if not reason else (None, reason)
            # Durable before the new codes exist anywhere: the person's rows stay findable.
            await self._log.add_aliases(aliases)
        newest = codec.newest_version(agency)
        results = [
            Rekeyed(codec.encode(agency, c, newest), "") if c is not None else Rekeyed("", r)
            for c, r in zip(id_codes, reasons, strict=True)
        ]
        return RekeyAnswer(results, newest, codec.current_version(agency), id_newest)

    async def complete_rekey(
        self, requester: Agency, version: int, id_version: int
    ) -> tuple[int, datetime | None, bool]:
        """The caller has re-keyed: (current version, old version's limit, may promote)."""
        agency = requester.agency_id
        newest = self.codec.newest_version(agency)
        if version != newest:
            raise FailedPrecondition(
                "REKEY_VERSION_NOT_NEWEST",
                f"key_version {version} is not the newest version ({newest}) of the caller's key",
                {"field": "key_version", "newest_key_version": str(newest)},
            )
        state = self.id_state
        if id_version != state.newest:
            raise FailedPrecondition(
                "REKEY_VERSION_NOT_NEWEST",
                f"id_key_version {id_version} is not the newest ID key version ({state.newest})",
                {"field": "id_key_version", "newest_id_key_version": str(state.newest)},
            )
        if self._key_admin is None:
            raise FailedPrecondition("KEYS_READ_ONLY", "this hub cannot change its keys")
        until = None
        if version != self.codec.current_version(agency):
            until = await self._key_admin.make_current(agency, version)
            self.codec = await self._key_admin.codec()
        if state.newest != state.current:
            # An ID-key rotation: new codes may be presented only once every
            # agency can find them, i.e. every agency has re-keyed.
            done = await self._key_admin.record_completion(agency, id_version)
            if {a.agency_id for a in self.directory} <= done and self._id_issuer is not None:
                await self._id_issuer.complete(id_version)
                await self.refresh_id_state()
        event(_log, "re-key completed", agency_id=agency, key_version=version, id=id_version)
        return version, until, self.id_state.current == id_version
