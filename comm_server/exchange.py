"""The communication server's domain: asking as requester, answering as provider (R28).

Requester: a legacy request with a local number -> own link code from the
correspondence table -> hub -> the answer, opened, back to the legacy side.
Provider: hub -> own link code -> local number -> legacy system -> answer
sealed to the requester. Each side writes its share of the log, tied to the
hub's serial, before it answers, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric import x25519

from comm_server import answer_later, standard
from comm_server.answer_later import ANSWER_PENDING
from comm_server.hub_client import HubClient
from comm_server.legacy import BatchLegacyClient, LegacyClient, ManyLegacyClient
from comm_server.mapping.mapper import Mapper
from comm_server.staff_register import RegisterFile
from comm_server.store import AsyncCommStore, LogRecord, Ticket
from renkei import sealing, validate
from renkei.errors import DeadlineExceeded, NotFound, PermissionDenied, RenkeiError
from renkei.layout.v1 import layout_pb2
from renkei.logs import event

_log = logging.getLogger("comm_server.exchange")

REQUESTER = "requester"
PROVIDER = "provider"
OK = "OK"
MAX_QUERY_BYTES = 64 * 1024
MAX_ID = 64
SAFETY_NET_SECONDS = 0.05
LATE = "LATE_ANSWER"
LATE_ANSWER_DISCARDED = "LATE_ANSWER_DISCARDED"
# How long past its deadline a legacy answer is still awaited, to be logged and discarded.
LATE_WINDOW_MIN_SECONDS = 5.0
# How often a batch system's answer file is looked for while the answer time lasts.
BATCH_POLL_SECONDS = 0.2
# Staff registers give validity in Japanese calendar days.
JST = timezone(timedelta(hours=9), "JST")


def query_info(requester: str, provider: str, info_kind: str, item: str) -> bytes:
    return sealing.exchange_info("query", requester, provider, info_kind, item)


def answer_info(serial: int, requester: str, provider: str, info_kind: str, item: str) -> bytes:
    return sealing.exchange_info("answer", serial, requester, provider, info_kind, item)


@dataclass(frozen=True)
class LocalQuery:
    local_person_id: str
    provider_agency_id: str
    info_kind: str
    legal_basis_item: str
    purpose: str
    staff_id: str
    terminal_id: str
    query: bytes


@dataclass(frozen=True)
class QueryResult:
    serial: int
    time: datetime
    legal_basis_item: str
    policy_version: str
    answer: bytes
    ticket: str = ""  # set: the answer comes later (answer is empty)
    # The answer in the standard layout (None: the provider has no mapper; answer is raw).
    record: layout_pb2.StandardRecord | None = None


@dataclass(frozen=True)
class Provided:
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
class FetchRequest:
    ticket: str
    staff_id: str
    terminal_id: str


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


def _content(payload: bytes) -> str:
    return payload.decode("utf-8", errors="replace")


class Answer(NamedTuple):
    """A provider's answer for one person: the bytes to seal and its log content."""

    payload: bytes
    content: str


def _failed(record: LogRecord, err: RenkeiError) -> LogRecord:
    """The log line of a refused exchange; a bad legacy record's detail stays in this log."""
    detail = err.log_detail if isinstance(err, standard.BadLegacyRecord) else record.detail
    return replace(record, outcome=err.code.name, reason=err.reason, detail=detail)


@dataclass(frozen=True)
class Opened:
    """An answer as this agency takes it: its own format, the standard record, log text."""

    answer: bytes
    record: layout_pb2.StandardRecord | None
    content: str
    problem: str | None


class Exchange:
    def __init__(
        self,
        *,
        agency_id: str,
        store: AsyncCommStore,
        hub: HubClient,
        legacy: LegacyClient,
        sealing_key: x25519.X25519PrivateKey,
        answer_timeout: float,
        query_timeout: float,
        responder_staff_id: str,
        responder_terminal_id: str,
        staff: RegisterFile | None = None,
        mapper: Mapper | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.agency_id = agency_id
        self._store = store
        self._hub = hub
        self._legacy = legacy
        self._sealing_key = sealing_key
        self._answer_timeout = answer_timeout
        self._query_timeout = query_timeout
        self._responder = (responder_staff_id, responder_terminal_id)
        self.staff = staff
        # None: the legacy system's answers travel as they are (the JSON-lines system).
        self.mapper = mapper
        self._clock = clock
        self._late: set[asyncio.Task[None]] = set()
        self.ticket_ttl = answer_later.TICKET_TTL

    async def aclose(self) -> None:
        """Stop waiting for late legacy answers."""
        tasks, self._late = list(self._late), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def check_staff(self, staff_id: str, terminal_id: str, info_kind: str, item: str) -> None:
        """R19: only registered staff, at their terminals, for their affairs."""
        if self.staff is None:
            raise PermissionDenied(
                "STAFF_REGISTER_NOT_CONFIGURED",
                "this communication server has no staff register, so no one may query",
            )
        day = self._clock().astimezone(JST).date()
        self.staff.register.check(staff_id, terminal_id, info_kind, item, day)

    def _timeout(self, ceiling: float, time_remaining: float | None, margin: float) -> float:
        timeout = ceiling if time_remaining is None else min(ceiling, time_remaining - margin)
        if timeout <= 0:
            raise DeadlineExceeded("DEADLINE_TOO_SHORT", "no time left for this exchange")
        return timeout

    # -- requester side ------------------------------------------------------

    async def query(self, q: LocalQuery, time_remaining: float | None) -> QueryResult:
        validate.text("local_person_id", q.local_person_id, max_chars=MAX_ID)
        validate.text("provider_agency_id", q.provider_agency_id, max_chars=MAX_ID)
        validate.text("info_kind", q.info_kind, max_chars=200)
        validate.text("legal_basis_item", q.legal_basis_item, max_chars=32)
        validate.text("purpose", q.purpose, max_chars=400)
        validate.text("staff_id", q.staff_id, max_chars=MAX_ID)
        validate.text("terminal_id", q.terminal_id, max_chars=MAX_ID)
        validate.blob("query", q.query, max_bytes=MAX_QUERY_BYTES)
        timeout = self._timeout(self._query_timeout, time_remaining, margin=0.05)
        record = LogRecord(
            serial=None,
            role=REQUESTER,
            logged_at=self._clock(),
            counterpart_agency_id=q.provider_agency_id,
            info_kind=q.info_kind,
            legal_basis_item=q.legal_basis_item,
            local_person_id=q.local_person_id,
            staff_id=q.staff_id,
            terminal_id=q.terminal_id,
            content="",
            purpose=q.purpose,
            outcome=OK,
            reason="",
        )
        try:
            self.check_staff(q.staff_id, q.terminal_id, q.info_kind, q.legal_basis_item)
            link_code = await self._store.run(self._store.store.link_code_for, q.local_person_id)
            if link_code is None:
                raise NotFound(
                    "LOCAL_PERSON_NOT_BOUND",
                    f"local_person_id {q.local_person_id!r} has no link code in the "
                    "correspondence table",
                    {"field": "local_person_id"},
                )
            # The hub gets what is left of one deadline, so its own (serial-carrying)
            # refusal arrives before this server's safety net fires.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            async with asyncio.timeout_at(deadline + SAFETY_NET_SECONDS):
                provider_key = await self._hub.sealing_key(q.provider_agency_id, timeout=timeout)
                sealed_query = sealing.seal(
                    q.query,
                    sealing.load_public_key(provider_key, field="provider sealing key"),
                    query_info(
                        self.agency_id, q.provider_agency_id, q.info_kind, q.legal_basis_item
                    ),
                )
                answer = await self._hub.relay(
                    provider_agency_id=q.provider_agency_id,
                    info_kind=q.info_kind,
                    legal_basis_item=q.legal_basis_item,
                    link_code=link_code,
                    sealed_query=sealed_query,
                    timeout=max(0.001, deadline - loop.time()),
                )
            del link_code
            if answer.ticket:
                await self._store.run(
                    self._store.store.add_ticket,
                    Ticket(
                        ticket=answer.ticket,
                        role=REQUESTER,
                        serial=answer.serial,
                        counterpart_agency_id=q.provider_agency_id,
                        info_kind=q.info_kind,
                        legal_basis_item=q.legal_basis_item,
                        local_person_id=q.local_person_id,
                        purpose=q.purpose,
                        legacy_ticket=None,
                        created_at=record.logged_at,
                    ),
                )
                await self._store.append_log(
                    replace(
                        record,
                        serial=answer.serial,
                        outcome=ANSWER_PENDING,
                        detail="answer to be fetched later with a ticket",
                    ),
                )
                return QueryResult(
                    answer.serial,
                    record.logged_at,
                    answer.legal_basis_item,
                    answer.policy_version,
                    b"",
                    answer.ticket,
                )
            plaintext = sealing.open_sealed(
                answer.sealed_answer,
                self._sealing_key,
                answer_info(
                    answer.serial,
                    self.agency_id,
                    q.provider_agency_id,
                    q.info_kind,
                    q.legal_basis_item,
                ),
                field="sealed_answer",
            )
            opened = self.opened(plaintext, q.info_kind, q.local_person_id)
        except TimeoutError:
            err = DeadlineExceeded("QUERY_TIMEOUT", f"no answer within {timeout:.3f} s")
            await self._store.append_log(
                replace(record, outcome=err.code.name, reason=err.reason),
            )
            raise err from None
        except RenkeiError as err:
            serial = err.metadata.get("serial")
            await self._store.append_log(
                replace(
                    record,
                    serial=int(serial) if serial else None,
                    outcome=err.code.name,
                    reason=err.reason,
                ),
            )
            raise
        await self._store.append_log(
            replace(record, serial=answer.serial, content=opened.content, detail=opened.problem),
        )
        return QueryResult(
            answer.serial,
            record.logged_at,
            answer.legal_basis_item,
            answer.policy_version,
            opened.answer,
            record=opened.record,
        )

    def opened(self, plaintext: bytes, info_kind: str, local_person_id: str) -> Opened:
        """An opened answer as this agency takes it: the record, and in its own format."""
        record = standard.open_payload(plaintext, info_kind)
        if record is None:
            return Opened(plaintext, None, _content(plaintext), None)
        record.local_person_id = local_person_id
        own, problem = standard.to_own_format(self.mapper, info_kind, record)
        return Opened(own, record, standard.render(record), problem or None)

    # -- provider side -------------------------------------------------------

    def _provider_record(self, serial: int, requester: str, info_kind: str, item: str) -> LogRecord:
        return LogRecord(
            serial=serial,
            role=PROVIDER,
            logged_at=self._clock(),
            counterpart_agency_id=requester,
            info_kind=info_kind,
            legal_basis_item=item,
            local_person_id=None,
            staff_id=self._responder[0],
            terminal_id=self._responder[1],
            content="",
            purpose=None,
            outcome=OK,
            reason="",
        )

    async def provide(self, call: ProvideCall, time_remaining: float | None) -> Provided:
        record = self._provider_record(
            call.serial, call.requester_agency_id, call.info_kind, call.legal_basis_item
        )
        try:
            recipient = sealing.load_public_key(
                call.requester_sealing_public_key, field="requester_sealing_public_key"
            )
            timeout = self._timeout(self._answer_timeout, time_remaining, margin=0.02)
            local_id = await self._store.run(self._store.store.local_person_for, call.link_code)
            if local_id is None:
                raise NotFound(
                    "PERSON_NOT_BOUND",
                    "the provider has no record bound to this person",
                    {"provider_agency_id": self.agency_id},
                )
            record = replace(record, local_person_id=local_id)
            query = (
                sealing.open_sealed(
                    call.sealed_query,
                    self._sealing_key,
                    query_info(
                        call.requester_agency_id,
                        self.agency_id,
                        call.info_kind,
                        call.legal_basis_item,
                    ),
                    field="sealed_query",
                )
                if call.sealed_query
                else b""
            )
            if isinstance(self._legacy, BatchLegacyClient):
                raw, ticket = await self._ask_batch(call, local_id, query, timeout)
                if raw is None:
                    await self._store.append_log(
                        replace(
                            record,
                            outcome=ANSWER_PENDING,
                            detail="request submitted to the batch legacy system; ticket issued",
                        ),
                    )
                    return Provided(b"", ticket)
                answer = self.payload_of(call.info_kind, raw)
            else:
                answer = await self._fetch_standard(
                    local_id, call.info_kind, query, timeout, record=record
                )
            sealed = sealing.seal(
                answer.payload,
                recipient,
                answer_info(
                    call.serial,
                    call.requester_agency_id,
                    self.agency_id,
                    call.info_kind,
                    call.legal_basis_item,
                ),
            )
        except RenkeiError as err:
            err.metadata.setdefault("serial", str(call.serial))
            await self._store.append_log(_failed(record, err))
            raise
        await self._store.append_log(replace(record, content=answer.content))
        return Provided(sealed)

    async def _fetch_standard(
        self,
        local_id: str,
        info_kind: str,
        query: bytes,
        timeout: float,
        *,
        record: LogRecord | None = None,
    ) -> Answer:
        """The answer to seal for one person: legacy lookup within ``timeout``, then the mapper.

        With a mapper: ``standard.ANSWER_TAG`` + the serialized ``StandardRecord``
        (``BadLegacyRecord`` if the mapper refuses the legacy record); without:
        the legacy record as it came. ``record`` is the exchange's log line, under
        which a late legacy answer is logged and discarded (Provide, BulkProvide).
        """
        raw = await self._lookup_in_time(record, local_id, info_kind, query, timeout)
        return self.payload_of(info_kind, raw)

    def payload_of(self, info_kind: str, raw: bytes) -> Answer:
        """What to seal for a legacy answer (the standard record through the mapper, or the
        answer as it came) and how the provider's log shows it, from the record in hand."""
        if self.mapper is None:
            return Answer(raw, _content(raw))
        record = standard.to_standard(self.mapper, info_kind, raw)
        return Answer(standard.sealed_payload(record), standard.render(record))

    async def _lookup_in_time(
        self, record: LogRecord | None, local_id: str, info_kind: str, query: bytes, timeout: float
    ) -> bytes:
        """The legacy answer within ``timeout``; a later one is logged and discarded (R28).

        The lookup itself may run a while past the deadline, so that an answer
        that does come late is seen, logged under the exchange's serial and
        dropped, never relayed.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        window = self.late_window(timeout)
        task = asyncio.ensure_future(
            self.legacy_answer(local_id, info_kind, query, timeout=timeout + window)
        )
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            self.watch_late(task, record, started, timeout)
            raise DeadlineExceeded(
                "LEGACY_TIMEOUT", f"the legacy system did not answer within {timeout:g}s"
            ) from None
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def legacy_answer(
        self, local_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        """One person's answer from the legacy system: the call Provide and BulkProvide share."""
        return await self._legacy.lookup(local_id, info_kind, query, timeout=timeout)

    def many_lookups(self) -> ManyLegacyClient | None:
        """The legacy client, if it looks many persons up in one call (bulk queries)."""
        return self._legacy if isinstance(self._legacy, ManyLegacyClient) else None

    def late_window(self, timeout: float) -> float:
        """How long past ``timeout`` a lookup is left running, to log a late answer."""
        return max(LATE_WINDOW_MIN_SECONDS, 3 * timeout)

    def watch_late(
        self, task: asyncio.Future[bytes], record: LogRecord | None, started: float, timeout: float
    ) -> None:
        """Await a lookup past its deadline: a late answer is logged and discarded."""
        watcher = asyncio.ensure_future(self._discard_late(task, record, started, timeout))
        self._late.add(watcher)
        watcher.add_done_callback(self._late.discard)

    async def _discard_late(
        self, task: asyncio.Future[bytes], record: LogRecord | None, started: float, timeout: float
    ) -> None:
        try:
            await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        except Exception as err:  # the lookup failed late too: nothing to discard
            event(
                _log,
                "late legacy lookup ended without an answer",
                serial=record.serial if record else None,
                error=repr(err),
                level=logging.DEBUG,
            )
            return
        delay = asyncio.get_running_loop().time() - started
        detail = (
            f"answered after {delay:.3f} s, {delay - timeout:.3f} s past the {timeout:g} s"
            " limit; discarded, never relayed"
        )
        event(
            _log,
            "late legacy answer discarded",
            serial=record.serial if record else None,
            delay_s=round(delay, 3),
            level=logging.WARNING,
        )
        if record is None:
            return
        await self._store.append_log(
            replace(
                record,
                logged_at=self._clock(),
                outcome=LATE,
                reason=LATE_ANSWER_DISCARDED,
                detail=detail,
            ),
        )

    async def _ask_batch(
        self, call: ProvideCall, local_id: str, query: bytes, timeout: float
    ) -> tuple[bytes | None, str]:
        """Submit to a batch legacy system; its answer if it comes in time, else a ticket.

        The answer is looked for (every ``poll_interval`` of the client) until the
        answer time is up, so a quick batch answers inline like any other system.
        """
        assert isinstance(self._legacy, BatchLegacyClient)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        legacy_ticket = await self._legacy.submit(local_id, call.info_kind, query, timeout=timeout)
        # Within the answer time the answer file may well come: look for it until then.
        poll = float(getattr(self._legacy, "poll_interval", BATCH_POLL_SECONDS))
        while (remaining := deadline - loop.time()) > 0:
            payload = await self._legacy.collect(legacy_ticket, timeout=remaining)
            if payload is not None:
                return payload, ""
            await asyncio.sleep(min(poll, max(0.0, deadline - loop.time())))
        ticket = answer_later.new_ticket()
        await self._store.run(
            self._store.store.add_ticket,
            Ticket(
                ticket=ticket,
                role=PROVIDER,
                serial=call.serial,
                counterpart_agency_id=call.requester_agency_id,
                info_kind=call.info_kind,
                legal_basis_item=call.legal_basis_item,
                local_person_id=local_id,
                purpose=None,
                legacy_ticket=legacy_ticket,
                created_at=self._clock(),
            ),
        )
        return None, ticket

    async def collect(self, call: CollectCall, time_remaining: float | None) -> bytes:
        """The answer behind a ticket this server issued, sealed as Provide seals (single-use)."""
        record = self._provider_record(
            call.serial, call.requester_agency_id, call.info_kind, call.legal_basis_item
        )
        try:
            validate.text("ticket", call.ticket, max_chars=MAX_ID)
            recipient = sealing.load_public_key(
                call.requester_sealing_public_key, field="requester_sealing_public_key"
            )
            timeout = self._timeout(self._answer_timeout, time_remaining, margin=0.02)
            held = await self._store.run(self._store.store.ticket, PROVIDER, call.ticket)
            if (
                held is None
                or held.serial != call.serial
                or held.counterpart_agency_id != call.requester_agency_id
                or held.info_kind != call.info_kind
                or held.legal_basis_item != call.legal_basis_item
            ):
                raise answer_later.unknown_ticket()
            record = replace(record, local_person_id=held.local_person_id)
            if not isinstance(self._legacy, BatchLegacyClient) or held.legacy_ticket is None:
                raise answer_later.unknown_ticket()
            if self._clock() - held.created_at >= self.ticket_ttl:
                await self._store.run(self._store.store.take_ticket, PROVIDER, call.ticket)
                raise answer_later.expired(call.serial, self.ticket_ttl)
            raw = await self._legacy.collect(held.legacy_ticket, timeout=timeout)
            if raw is None:
                raise answer_later.not_ready(call.serial)
            try:
                answer = self.payload_of(call.info_kind, raw)
            except standard.BadLegacyRecord:
                # The legacy answer is gone (collected): the ticket can never be honoured.
                await self._store.run(self._store.store.take_ticket, PROVIDER, call.ticket)
                raise
            sealed = sealing.seal(
                answer.payload,
                recipient,
                answer_info(
                    call.serial,
                    call.requester_agency_id,
                    self.agency_id,
                    call.info_kind,
                    call.legal_basis_item,
                ),
            )
            if not await self._store.run(self._store.store.take_ticket, PROVIDER, call.ticket):
                raise answer_later.unknown_ticket()  # a concurrent collect took it
        except RenkeiError as err:
            err.metadata.setdefault("serial", str(call.serial))
            await self._store.append_log(_failed(record, err))
            raise
        await self._store.append_log(
            replace(
                record,
                content=answer.content,
                detail="answer collected with its ticket",
            ),
        )
        return sealed

    # -- requester side, answer-later ---------------------------------------

    async def fetch(self, f: FetchRequest, time_remaining: float | None) -> QueryResult:
        """The answer to one of this agency's pending queries, logged as its second half."""
        validate.text("ticket", f.ticket, max_chars=MAX_ID)
        validate.text("staff_id", f.staff_id, max_chars=MAX_ID)
        validate.text("terminal_id", f.terminal_id, max_chars=MAX_ID)
        held = await self._store.run(self._store.store.ticket, REQUESTER, f.ticket)
        if held is None:
            raise answer_later.unknown_ticket()
        record = LogRecord(
            serial=held.serial,
            role=REQUESTER,
            logged_at=self._clock(),
            counterpart_agency_id=held.counterpart_agency_id,
            info_kind=held.info_kind,
            legal_basis_item=held.legal_basis_item,
            local_person_id=held.local_person_id,
            staff_id=f.staff_id,
            terminal_id=f.terminal_id,
            content="",
            purpose=held.purpose,
            outcome=OK,
            reason="",
        )
        timeout = self._timeout(self._query_timeout, time_remaining, margin=0.05)
        try:
            self.check_staff(f.staff_id, f.terminal_id, held.info_kind, held.legal_basis_item)
            try:
                async with asyncio.timeout(timeout + SAFETY_NET_SECONDS):
                    answer = await self._hub.fetch_answer(held.serial, f.ticket, timeout=timeout)
            except TimeoutError:
                raise DeadlineExceeded(
                    "QUERY_TIMEOUT", f"no answer within {timeout:.3f} s"
                ) from None
            plaintext = sealing.open_sealed(
                answer.sealed_answer,
                self._sealing_key,
                answer_info(
                    held.serial,
                    self.agency_id,
                    held.counterpart_agency_id,
                    held.info_kind,
                    held.legal_basis_item,
                ),
                field="sealed_answer",
            )
            opened = self.opened(plaintext, held.info_kind, held.local_person_id or "")
        except RenkeiError as err:
            err.metadata.setdefault("serial", str(held.serial))
            if err.reason == "ANSWER_EXPIRED":
                await self._store.run(self._store.store.take_ticket, REQUESTER, f.ticket)
            await self._store.append_log(
                replace(record, outcome=err.code.name, reason=err.reason),
            )
            raise
        await self._store.run(self._store.store.take_ticket, REQUESTER, f.ticket)
        await self._store.append_log(
            replace(
                record,
                content=opened.content,
                detail=(
                    "answer fetched with its ticket"
                    + (f"; {opened.problem}" if opened.problem else "")
                )[: standard.DETAIL_CHARS],
            ),
        )
        return QueryResult(
            held.serial,
            record.logged_at,
            held.legal_basis_item,
            answer.policy_version,
            opened.answer,
            record=opened.record,
        )
