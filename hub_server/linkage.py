"""The hub's domain: approve, translate, relay, issue link codes (R1, R9, R16, R18, R21, R22).

Plain Python with its ports passed in: the directory, the legal-basis policy,
the link-code codec, the log, and a gateway to providers' communication
servers. Link codes live in local variables for one exchange and are never
stored; the log keeps a keyed hash of the ID code only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from hub_server.directory import Agency, Directory
from hub_server.exchange import (
    CollectCall,
    FetchResult,
    ItemError,
    ProvideCall,
    Provided,
    ProvideItem,
    RelayRequest,
    RelayResult,
)
from hub_server.id_issuer_client import IdKeyState
from hub_server.log_store import (
    ANSWER_PENDING,
    DENIED,
    OK,
    PENDING,
    WRITE_CEILING_SECONDS,
    LogEntry,
)
from hub_server.policy import Decision, LegalBasisPolicy
from hub_server.ports import HubLog, IdIssuerPort, KeyAdmin, ProviderGateway
from hub_server.relay_modes import BulkRelay, RelayMode, SingleRelay
from renkei import codes, deadline, id_code_batch, id_code_signing, limits, sealing, validate
from renkei.errors import (
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
from renkei.tlog.entry import Receipt

_log = logging.getLogger("hub_server.linkage")

# Persons translated between yields to the event loop (single relays wait meanwhile).
BULK_YIELD_EVERY = 500
# A person the provider's answer left out.
_MISSING = ItemError(
    "UNAVAILABLE", "PROVIDER_RESULT_MISSING", "the provider's answer left this person out"
)
_NOTHING = Provided({}, b"")
# Kept back from the caller's deadline to send the answer once the last log write is done.
ANSWER_SECONDS = 0.005


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


class _Admitted:
    """Each person of a relay as the hub found them, in request order."""

    __slots__ = ("accepted", "errors", "id_codes", "refusal", "relay_at", "rows")

    def __init__(self) -> None:
        self.rows: list[tuple[LogEntry, str, str]] = []
        self.errors: list[ItemError | None] = []
        # The persons the provider may be asked about: their indexes and ID codes.
        self.relay_at: list[int] = []
        self.id_codes: list[bytes] = []
        self.accepted: dict[int, bool] = {}  # ID key version -> still accepted
        self.refusal: RenkeiError | None = None  # the last person refused here


def _ticket_ok(ticket: str) -> bool:
    return len(ticket) <= limits.MAX_TICKET and ticket.isascii() and ticket.isprintable()


async def _log_failure(
    err: BaseException, finish: Callable[[str, str], Awaitable[object]], tags: dict[str, str]
) -> None:
    """Complete the rows of an exchange whose provider call failed, however it failed.

    A refusal keeps its own code and reason, and gains ``tags`` (the serials)
    in its metadata; a cancelled or broken call is still logged, shielded.
    When the outcome cannot be written, HUB_LOG_UNAVAILABLE (with ``tags``)
    is raised instead: the hub never answers without its outcome row.
    """
    try:
        if isinstance(err, RenkeiError):
            await finish(err.code.name, err.reason)
            err.metadata.update(tags)
        elif isinstance(err, asyncio.CancelledError):
            await asyncio.shield(finish("CANCELLED", "CALLER_CANCELLED"))
        elif isinstance(err, Exception):
            await asyncio.shield(finish("INTERNAL", "HUB_FAILURE"))
    except RenkeiError as log_err:
        if isinstance(err, asyncio.CancelledError):
            return  # nobody to tell; the log keeps the outcome and writes it when it can
        log_err.metadata.update(tags)
        raise log_err from err


class Hub:
    def __init__(
        self,
        *,
        directory: Directory,
        policy: LegalBasisPolicy,
        codec: codes.LinkCodec,
        log: HubLog,
        gateway: ProviderGateway,
        key_admin: KeyAdmin | None = None,
        id_issuer: IdIssuerPort | None = None,
        log_index_key: bytes,
        sealing_key: x25519.X25519PrivateKey,
        id_issuer_key: ed25519.Ed25519PublicKey,
        relay_ceiling: float = 10.0,
        bulk_relay_ceiling: float = 60.0,
        log_margin: float = deadline.HUB_LOG_MARGIN_SECONDS,
        log_ceiling: float = WRITE_CEILING_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timer: Callable[[], float] = time.monotonic,
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
        self._id_issuer_key = id_issuer_key
        self._single = SingleRelay(relay_ceiling)
        self._bulk = BulkRelay(bulk_relay_ceiling)
        self._log_margin = log_margin
        self._log_ceiling = log_ceiling
        self._clock = clock
        self._timer = timer

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
        limits.check_kind(info_kind, item)
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

    def id_code_of(self, agency_id: str, link_code: str) -> bytes:
        """The ID code behind ``agency_id``'s link code (the usual LINK_CODE_* refusals)."""
        validate.required("link_code", link_code)
        return self._decode(agency_id, link_code)[0]

    def person_key(self, id_code: bytes) -> str:
        mac = hmac.HMAC(self._log_index_key, hashes.SHA256())
        mac.update(id_code)
        return mac.finalize().hex()

    # -- relay ------------------------------------------------------------

    async def relay(
        self,
        requester: Agency,
        req: RelayRequest,
        time_remaining: float | None,
        announce: Callable[[dict[str, str]], Awaitable[None]] | None = None,
    ) -> RelayResult:
        """Relay for one person or many: one approval, one provider call, one log row each.

        Every person's row is durable (PENDING, or complete for a person
        refused here) before the provider is asked, and every row is complete
        before the answer. An unlawful request is refused whole, each person
        logged DENIED. A single relay answers any refusal as its status; a bulk
        one refuses a person in that person's result (relay_modes.py).

        ``announce`` is told the rows' serials once they are durable and before
        the provider is asked, so a caller whose own deadline ends the call
        still knows under which serials the hub logged it (R24: shares joinable).
        """
        mode: RelayMode = self._single if req.single else self._bulk
        entered = self._timer()
        provider = self.directory.get(req.provider_agency_id, field="provider_agency_id")
        limits.check_kind(req.info_kind, req.legal_basis_item)
        mode.check(req)
        started = self._clock()
        decision = self.policy.decide(
            requester, provider, req.info_kind, req.legal_basis_item, started
        )
        link_codes = req.link_codes
        decoded = self.codec.decode_many(requester.agency_id, link_codes)
        admitted = _Admitted()
        exchange = (
            started,
            req.legal_basis_item,
            requester.agency_id,
            provider.agency_id,
            req.info_kind,
            decision.policy_version,
        )
        for start in range(0, len(link_codes), BULK_YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            self._admit(exchange, decision, mode, decoded, link_codes, start, admitted)
        del decoded
        provider_codes: list[str] = []
        if decision.approved and admitted.id_codes:
            # Before any row: a provider the hub cannot translate for fails with nothing begun.
            provider_codes = self.codec.encode_many(provider.agency_id, admitted.id_codes)
        admitted.id_codes.clear()
        # Raises HUB_LOG_UNAVAILABLE when the rows are not durable in time; then
        # nothing is relayed, and the log closes any row that lands later.
        begun = await self._log.begin_many(
            admitted.rows, self._log_timeout(time_remaining, entered)
        )
        serials = [receipt.serial for receipt in begun]
        if admitted.refusal is not None and mode.refuses_as_status:
            admitted.refusal.metadata.update(mode.tags(serials, begun))
            raise admitted.refusal
        if not decision.approved:
            mode.denied(serials, decision.reason)
            raise PermissionDenied(
                decision.reason,
                decision.message,
                {
                    **mode.tags(serials, begun),
                    "legal_basis_item": decision.item,
                    "policy_version": decision.policy_version,
                },
            )
        items = [
            ProvideItem(serials[i], i, code, begun[i])
            for i, code in zip(admitted.relay_at, provider_codes, strict=True)
        ]
        del provider_codes
        provided = _NOTHING
        if items:
            try:
                if announce is not None:
                    await announce(mode.tags(serials))
                timeout = self._provider_timeout(
                    mode.ceiling, self._left(time_remaining, entered), len(items)
                )
                provided = await self._gateway.provide(
                    provider,
                    ProvideCall(
                        started,
                        requester.agency_id,
                        req.info_kind,
                        req.legal_basis_item,
                        len(link_codes),
                        items,
                        req.sealed_queries,
                        requester.sealing_public_key,
                        req.single,
                        requester.exchange_certificate,
                        req.query_signature,
                    ),
                    timeout,
                )
                if provided.ticket and not _ticket_ok(provided.ticket):
                    raise Unavailable(
                        "PROVIDER_TICKET_INVALID",
                        "the provider answered with a ticket that is not a short printable string",
                    )
            except (Exception, asyncio.CancelledError) as err:
                await _log_failure(
                    err,
                    lambda outcome, reason: self._log.finish_many(
                        [(item.serial, outcome, reason) for item in items],
                        self._log_timeout(time_remaining, entered),
                    ),
                    mode.tags(serials),
                )
                raise
        answered = ANSWER_PENDING if provided.ticket else OK
        errors, outcomes = admitted.errors, provided.errors
        finished: list[tuple[int, str, str]] = []
        for item in items:
            outcome = outcomes.get(item.serial, _MISSING)
            errors[item.index] = outcome
            finished.append(
                (item.serial, answered, "")
                if outcome is None
                else (item.serial, outcome.code, outcome.reason)
            )
        outcome_receipts: list[Receipt] = []
        if finished:
            try:
                outcome_receipts = await self._log.finish_many(
                    finished, self._log_timeout(time_remaining, entered)
                )
            except RenkeiError as err:  # HUB_LOG_UNAVAILABLE: never OK without the outcome row
                err.metadata.update(mode.tags(serials))
                raise
        mode.relayed(serials, len(items))
        receipts: dict[int, list[Receipt]] = {r.serial: [r] for r in begun if r.entry}
        for r in outcome_receipts:
            if r.entry:
                receipts.setdefault(r.serial, []).append(r)
        return RelayResult(
            started,
            decision,
            list(zip(serials, errors, strict=True)),
            provided.sealed_answers,
            provided.ticket,
            provided.answer_signature,
            receipts,
        )

    def _left(self, time_remaining: float | None, entered: float) -> float | None:
        """The caller's time still left, ``time_remaining`` having been read at ``entered``."""
        return None if time_remaining is None else time_remaining - (self._timer() - entered)

    def _log_timeout(self, time_remaining: float | None, entered: float) -> float:
        """How long a log write may take: up to the caller's deadline less the time to answer.

        A write is always tried, however little time is left; when it fails to
        be durable in time the caller hears HUB_LOG_UNAVAILABLE before its deadline.
        """
        left = self._left(time_remaining, entered)
        if left is None:
            return self._log_ceiling
        return min(self._log_ceiling, max(left - ANSWER_SECONDS, ANSWER_SECONDS))

    def _provider_timeout(self, ceiling: float, time_remaining: float | None, count: int) -> float:
        """The provider's share of the caller's time: what is left less the hub's way back."""
        return deadline.budget(
            ceiling,
            time_remaining,
            deadline.margin(time_remaining, self._log_margin, count),
            for_what="to ask the provider",
        )

    def _admit(
        self,
        exchange: tuple[datetime, str, str, str, str, str],
        decision: Decision,
        mode: RelayMode,
        decoded: list[tuple[bytes, int] | RenkeiError],
        link_codes: Sequence[str],
        start: int,
        out: _Admitted,
    ) -> None:
        """Persons ``start`` to ``start + BULK_YIELD_EVERY``: their ID codes, errors and rows.

        ID key versions are checked once per version. A foreign or damaged
        code is logged for its person, without a person key; in a denied bulk
        request (refused whole) that person's row is DENIED like the others.
        """
        rows, errors, relay_at, id_codes = out.rows, out.errors, out.relay_at, out.id_codes
        at, item, agency, provider_id, kind, version = exchange  # a row's fields but the person
        nobody: LogEntry | None = None  # the row of a person the hub could not identify
        approved, denial = decision.approved, decision.reason
        own_error = approved or mode.refuses_as_status
        person_key, accepted, accepted_at = self.person_key, out.accepted, self.id_state.accepted
        error: RenkeiError
        for i in range(start, min(start + BULK_YIELD_EVERY, len(link_codes))):
            got = decoded[i]
            if not link_codes[i]:
                error = invalid_field("link_codes", f"item {i} is empty")
            elif isinstance(got, RenkeiError):
                error = got
            else:
                id_code = got[0]
                ok = accepted.get(id_code[0])
                if ok is None:
                    ok = accepted[id_code[0]] = accepted_at(id_code[0], self._clock())
                if ok:
                    person = LogEntry(
                        at, item, agency, provider_id, kind, version, person_key(id_code)
                    )
                    rows.append((person, PENDING, "") if approved else (person, DENIED, denial))
                    errors.append(None)
                    relay_at.append(i)
                    id_codes.append(id_code)
                    continue
                error = self._id_key_retired(id_code[0], "link_code")
            if nobody is None:
                nobody = LogEntry(at, item, agency, provider_id, kind, version, None)
            rows.append(
                (nobody, error.code.name, error.reason) if own_error else (nobody, DENIED, denial)
            )
            errors.append(ItemError.of(error))
            out.refusal = error

    async def fetch_answer(
        self, requester: Agency, serial: int, ticket: str, time_remaining: float | None
    ) -> FetchResult:
        """The answer to the caller's pending exchange, through its provider (answer-later).

        Approval is not done again: the exchange was approved when it was relayed,
        and only its own requester may fetch, only while it is pending. The
        ticket is opaque here; the provider checks it and honours it once.
        """
        validate.text("ticket", ticket, max_chars=limits.MAX_TICKET)
        entered = self._timer()

        def log_timeout() -> float:
            return self._log_timeout(time_remaining, entered)

        tags = {"serial": str(serial)}
        try:
            row = await self._log.row(serial, log_timeout()) if serial > 0 else None
        except RenkeiError as err:
            err.metadata.update(tags)
            raise
        if row is None:
            raise NotFound(
                "EXCHANGE_UNKNOWN", f"no exchange with serial {serial}", {"field": "serial"}
            )
        if row.entry.requester_agency_id != requester.agency_id:
            # Logged: someone fishing for another agency's answer is a security event.
            await self._log.record_fetch(
                serial, "PERMISSION_DENIED", "NOT_EXCHANGE_REQUESTER", log_timeout()
            )
            raise PermissionDenied(
                "NOT_EXCHANGE_REQUESTER",
                f"exchange {serial} was asked by another agency",
                {"field": "serial", **tags},
            )
        if row.outcome != ANSWER_PENDING:
            raise FailedPrecondition(
                "EXCHANGE_NOT_PENDING",
                f"exchange {serial} has no answer to fetch (outcome {row.outcome})",
                {"field": "serial", **tags},
            )
        try:
            fetched = await self._log.fetches(serial, log_timeout())
        except RenkeiError as err:
            err.metadata.update(tags)
            raise
        if any(outcome == OK for _, outcome, _ in fetched):
            raise FailedPrecondition(
                "ANSWER_ALREADY_FETCHED",
                f"the answer to exchange {serial} was fetched already; tickets are single-use",
                {"field": "ticket", **tags},
            )
        provider = self.directory.get(row.entry.provider_agency_id)
        try:
            sealed_answer, answer_signature = await self._gateway.collect(
                provider,
                CollectCall(
                    serial=serial,
                    ticket=ticket,
                    requester_agency_id=requester.agency_id,
                    info_kind=row.entry.info_kind,
                    legal_basis_item=row.entry.legal_basis_item,
                    requester_sealing_public_key=requester.sealing_public_key,
                    requester_exchange_certificate=requester.exchange_certificate,
                ),
                self._provider_timeout(
                    self._single.ceiling, self._left(time_remaining, entered), 1
                ),
            )
        except (Exception, asyncio.CancelledError) as err:
            await _log_failure(
                err,
                lambda outcome, reason: self._log.record_fetch(
                    serial, outcome, reason, log_timeout()
                ),
                tags,
            )
            raise
        # The provider honoured its single-use ticket: the answer is passed on even
        # when this write is late (the exchange's row is durable; the fetch is kept
        # and logged when the database is back), else it would be lost for good.
        receipt = await self._log.record_fetch(serial, OK, "", log_timeout(), keep=True)
        event(_log, "pending answer fetched", serial=serial)
        return FetchResult(
            serial,
            row.entry.legal_basis_item,
            row.entry.policy_version,
            sealed_answer,
            answer_signature,
            receipt if receipt is not None and receipt.entry else None,
        )

    # -- binding ----------------------------------------------------------

    def issue_link_code(self, requester: Agency, sealed_id_code: bytes) -> tuple[str, int, int]:
        """(link code, its key version, the ID key version it is made from)."""
        validate.blob("sealed_id_code", sealed_id_code, max_bytes=1024, required=True)
        info = sealing.id_code_sealing_info(requester.agency_id)
        opened = sealing.open_sealed(
            sealed_id_code, self._sealing_key, info, field="sealed_id_code"
        )
        id_code = self._issuer_signed(requester, info, opened, "sealed_id_code")
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
        try:
            batch_id, id_codes = id_code_batch.open_batch(
                sealed_batch,
                self._sealing_key,
                requester.agency_id,
                issuer_key=self._id_issuer_key,
                field="sealed_batch",
            )
        except PermissionDenied as err:
            self._forged(requester, err)
            raise
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

    def _issuer_signed(self, requester: Agency, info: bytes, opened: bytes, field: str) -> bytes:
        try:
            return id_code_signing.verified(self._id_issuer_key, info, opened, field=field)
        except PermissionDenied as err:
            self._forged(requester, err)
            raise

    def _forged(self, requester: Agency, err: PermissionDenied) -> None:
        # A security event: an agency presented an ID code the ID issuer did not make.
        event(
            _log,
            "sealed ID code not signed by the ID issuer",
            logging.WARNING,
            agency_id=requester.agency_id,
            reason=err.reason,
        )

    # -- keys ----------------------------------------------------------------

    def _decode(self, agency_id: str, link_code: str) -> tuple[bytes, int]:
        id_code, version = self.codec.decode(agency_id, link_code)
        self._check_id_version(id_code, "link_code")
        return id_code, version

    def _check_id_version(self, id_code: bytes, field: str) -> None:
        if not self.id_state.accepted(id_code[0], self._clock()):
            raise self._id_key_retired(id_code[0], field)

    def _id_key_retired(self, version: int, field: str) -> FailedPrecondition:
        return FailedPrecondition(
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
        if len(link_codes) > limits.MAX_REKEY_BATCH:
            raise invalid_field(
                "link_codes", f"{len(link_codes)} codes; at most {limits.MAX_REKEY_BATCH} per call"
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
