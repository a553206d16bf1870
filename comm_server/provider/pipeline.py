"""The provider's pipeline: a call from the hub, answered from the legacy system (R28).

One path for a single call and a bulk one (a single call is a batch of one):
the deadline budget, each person's local number from the correspondence
table, the queries opened, the legacy lookups within the deadline (late
answers logged and discarded), the mapper, the answers sealed to the
requester, and one log row per person, tied to the hub's serial, before it
answers, whatever the outcome. ``envelope`` holds what differs: how queries
and answers are sealed, and whether a refusal is one person's or the call's.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import NamedTuple

from comm_server import answer_later, standard
from comm_server.answer_later import ANSWER_PENDING
from comm_server.exchange_log import OK, PROVIDER, failed, row
from comm_server.keys import OwnKeys
from comm_server.legacy import BatchLegacyClient, LegacyClient
from comm_server.log_receipts import ShareReceipt, accept
from comm_server.mapping.mapper import Mapper
from comm_server.ports import Clock, ExchangeStore
from comm_server.provider.envelope import (
    Envelope,
    Errors,
    OneMessage,
    PerPerson,
    Sealed,
    seal_single,
)
from comm_server.provider.lookup import Lookups, Results, Unfinished
from comm_server.provider.types import CollectCall, ProvideCall, Provided, ProvideItem
from comm_server.standard import BadLegacyRecord
from comm_server.store import LogRecord, Ticket
from renkei import bulk, deadline, exchange_cert, limits, validate
from renkei.errors import DeadlineExceeded, NotFound, RenkeiError
from renkei.exchange_cert import ExchangeVerifier
from renkei.limits import MAX_TICKET

# How often a batch system's answer file is looked for while the answer time lasts.
BATCH_POLL_SECONDS = 0.2

# A call cancelled before it was answered: the hub cancelled it (its deadline, or a unary
# call whose connection was lost) or its ProvideStream dropped. The reason travels as the
# cancellation's message (``Task.cancel(msg)``); a cancellation without one is the hub's.
INTERRUPTED = "INTERRUPTED"
HUB_CANCELLED = "HUB_CANCELLED"
HUB_STREAM_DROPPED = "HUB_STREAM_DROPPED"
_INTERRUPTIONS = {
    HUB_CANCELLED: "the hub cancelled the call before it was answered; nothing was sent",
    HUB_STREAM_DROPPED: "the hub's ProvideStream ended before the answer; nothing was sent",
}


def _check_shape(requester_agency_id: str, info_kind: str, legal_basis_item: str) -> None:
    """The fields every row of the call carries, within the exchange's limits."""
    validate.text("requester_agency_id", requester_agency_id, max_chars=limits.MAX_ID)
    limits.check_kind(info_kind, legal_basis_item)


class Answer(NamedTuple):
    """A provider's answer for one person: the bytes to seal and its log content."""

    payload: bytes
    content: str


class Provider:
    def __init__(
        self,
        *,
        agency_id: str,
        store: ExchangeStore,
        legacy: LegacyClient,
        keys: OwnKeys,
        peers: ExchangeVerifier,
        answer_timeout: float,
        bulk_answer_timeout: float,
        responder_staff_id: str,
        responder_terminal_id: str,
        mapper: Mapper | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.agency_id = agency_id
        self._store = store
        self._legacy = legacy
        # Protocol isinstance checks are slow: once here, not once per call.
        self._batch = isinstance(legacy, BatchLegacyClient)
        self._lookups = Lookups(legacy, store, clock)
        self._keys = keys
        # Checks the requesters' exchange certificates against the agencies' CA.
        self._peers = peers
        self._answer_timeout = answer_timeout
        self._single: Envelope = PerPerson(answer_timeout)
        self._bulk: Envelope = OneMessage(bulk_answer_timeout)
        self._responder = (responder_staff_id, responder_terminal_id)
        # None: the legacy system's answers travel as they are (the JSON-lines system).
        self.mapper = mapper
        self._clock = clock
        self.ticket_ttl = answer_later.TICKET_TTL
        # Rows of interrupted calls still being written (their callers are gone).
        self._interrupted: set[asyncio.Future[None]] = set()

    async def aclose(self) -> None:
        """Stop waiting for late legacy answers; finish writing interrupted calls' rows."""
        await self._lookups.aclose()
        await asyncio.gather(*self._interrupted, return_exceptions=True)

    def _record(self, requester: str, info_kind: str, item: str, serial: int | None) -> LogRecord:
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

    def payload_of(self, info_kind: str, raw: bytes) -> Answer:
        """What to seal for a legacy answer (the standard record through the mapper, or the
        answer as it came) and how the provider's log shows it, from the record in hand.

        ``BadLegacyRecord`` if the mapper refuses the legacy record.
        """
        if self.mapper is None:
            return Answer(raw, raw.decode("utf-8", errors="replace"))
        record = standard.to_standard(self.mapper, info_kind, raw)
        return Answer(standard.sealed_payload(record), standard.render(record))

    async def provide(self, call: ProvideCall, time_remaining: float | None) -> Provided:
        """The sealed answers; a single call raises its refusal, a bulk one only if
        refused whole, each person's error otherwise in ``Provided.results``."""
        how = self._bulk if call.bulk else self._single
        items = call.items
        n = len(items)
        # Refused for its shape before any row: otherwise one request (never the hub's)
        # writes a row per item, 100,000 of them, or 1,000 rows of a 300,000-character
        # agency id each, and the call hangs.
        _check_shape(call.requester_agency_id, call.info_kind, call.legal_basis_item)
        if call.bulk:
            bulk.check_count("items", n)
        base = self._record(call.requester_agency_id, call.info_kind, call.legal_basis_item, None)
        receipts = self._receipts(call)
        local_ids: dict[str, str] = {}
        ticket = ""
        try:
            # The requester's keys from its exchange certificate, never from the hub.
            peer = self._peers.peer(call.requester_exchange_certificate, call.requester_agency_id)
            exchange_cert.check_signature(
                peer,
                call.query_signature,
                exchange_cert.query_context(
                    call.requester_agency_id,
                    self.agency_id,
                    call.info_kind,
                    call.legal_basis_item,
                    call.sealed_queries,
                ),
                reason="QUERY_SIGNATURE_INVALID",
                field="query_signature",
            )
            timeout = deadline.budget(
                how.ceiling,
                time_remaining,
                deadline.margin(time_remaining, deadline.PROVIDER_MARGIN_SECONDS, n),
            )
            how.check(call)
            local_ids = await self._local_ids(call)
            errors: Errors = [None] * n
            wanted = self._bound(how, call, local_ids, errors)
            nonce, queries = how.open_queries(call, self.agency_id, self._keys.sealing)
            results: Results = {}
            unfinished: Unfinished = {}
            started = asyncio.get_running_loop().time()
            if wanted:
                requests = [
                    (local_ids[items[k].link_code], call.info_kind, queries[items[k].index])
                    for k in wanted
                ]
                # Only a single call may be answered later with a ticket; a bulk one uses a
                # client's lookup_many (one call for all persons) where it has one.
                if not call.bulk and self._batch:
                    raw, ticket = await self._ask_batch(call, requests[0], timeout)
                    if raw is not None:
                        results[0] = raw
                elif call.bulk and (many := self._lookups.many) is not None:
                    await self._lookups.all_in_one(
                        many, requests, wanted, timeout, results, unfinished
                    )
                else:
                    await self._lookups.each(requests, wanted, timeout, results, unfinished)
            if unfinished:
                self._too_late(how, call, base, local_ids, unfinished, started, timeout, errors)
            if not ticket:
                payloads, contents, details = self._answers(how, call, results, errors)
                sealed = how.seal(
                    call,
                    self.agency_id,
                    nonce,
                    payloads,
                    errors,
                    peer.sealing_key,
                    self._keys.signing,
                )
        except RenkeiError as err:
            how.refused(call, err)
            await self._log(
                [failed(base, i.serial, local_ids.get(i.link_code), err) for i in items], receipts
            )
            raise
        except asyncio.CancelledError as cancel:
            # Before any row: one per person still, or this share of the log would lack
            # serials the hub's has. The rows written at the end are past this point.
            await self._log_interrupted(base, items, local_ids, cancel, receipts)
            raise
        if ticket:
            return await self._pending(base, call, local_ids[items[0].link_code], ticket, receipts)
        await self._log(
            [
                row(
                    base,
                    item.serial,
                    local_ids.get(item.link_code),
                    contents.get(k, ""),
                    errors[k],
                    details.get(k),
                )
                for k, item in enumerate(items)
            ],
            receipts,
        )
        return how.provided(call, sealed, errors, len(unfinished))

    def _bound(
        self, how: Envelope, call: ProvideCall, local_ids: dict[str, str], errors: Errors
    ) -> list[int]:
        """The positions of the persons bound here; the others are refused."""
        wanted: list[int] = []
        for k, item in enumerate(call.items):
            if item.link_code in local_ids:
                wanted.append(k)
            else:
                how.refuse(
                    k,
                    NotFound(
                        "PERSON_NOT_BOUND",
                        "the provider has no record bound to this person",
                        {"provider_agency_id": self.agency_id},
                    ),
                    errors,
                )
        return wanted

    def _too_late(
        self,
        how: Envelope,
        call: ProvideCall,
        base: LogRecord,
        local_ids: dict[str, str],
        unfinished: Unfinished,
        started: float,
        timeout: float,
        errors: Errors,
    ) -> None:
        """Lookups still running at the deadline: refused now, their answers awaited to be
        logged and discarded."""
        too_late = DeadlineExceeded(
            "LEGACY_TIMEOUT", f"the legacy system did not answer within {timeout:g}s"
        )
        for k, task in unfinished.items():
            item = call.items[k]
            record = replace(base, serial=item.serial, local_person_id=local_ids[item.link_code])
            self._lookups.watch_late(task, record, started, timeout)
            how.refuse(k, too_late, errors)

    def _answers(
        self, how: Envelope, call: ProvideCall, results: Results, errors: Errors
    ) -> tuple[list[bytes], dict[int, str], dict[int, str]]:
        """Per person: the payload to seal; by position, the log content and, for a bad
        legacy record, the detail that stays in this agency's log."""
        payloads: list[bytes] = [b""] * len(call.items)
        contents: dict[int, str] = {}
        details: dict[int, str] = {}
        payload_of, info_kind = self.payload_of, call.info_kind
        for k, result in results.items():
            if isinstance(result, bytes):
                try:
                    payloads[k], contents[k] = payload_of(info_kind, result)
                except BadLegacyRecord as bad:
                    details[k] = bad.log_detail  # the requester gets only the reason
                    how.refuse(k, bad, errors)
            elif isinstance(result, RenkeiError):
                how.refuse(k, result, errors)
            else:
                how.failed(k, call.items[k].serial, result, errors)
        return payloads, contents, details

    async def _local_ids(self, call: ProvideCall) -> dict[str, str]:
        if len(call.items) == 1:  # the single-code lookup: no IN list, one query
            link_code = call.items[0].link_code
            local_id = await self._store.local_person_for(link_code)
            return {} if local_id is None else {link_code: local_id}
        return await self._store.local_persons_for([i.link_code for i in call.items])

    async def _log(self, records: list[LogRecord], receipts: list[ShareReceipt]) -> None:
        if len(records) == 1:
            await self._store.append_log(records[0], receipts)
        else:
            await self._store.append_logs(records, receipts)

    def _receipts(self, call: ProvideCall) -> list[ShareReceipt]:
        """The hub's receipts of the call's exchanges worth keeping, each checked."""
        given = [i for i in call.items if i.log_receipt is not None]
        if not given:
            return []
        now = self._clock()
        return [
            kept
            for i in given
            if i.log_receipt is not None
            for kept in accept(
                (i.log_receipt,),
                serial=i.serial,
                agency_id=self.agency_id,
                role=PROVIDER,
                received_at=now,
            )
        ]

    async def _log_interrupted(
        self,
        base: LogRecord,
        items: list[ProvideItem],
        local_ids: dict[str, str],
        cancel: asyncio.CancelledError,
        receipts: list[ShareReceipt],
    ) -> None:
        """One INTERRUPTED row per person, written even though the call is cancelled."""
        given = cancel.args[0] if cancel.args else None
        reason = given if given in _INTERRUPTIONS else HUB_CANCELLED
        interrupted = replace(
            base, outcome=INTERRUPTED, reason=reason, detail=_INTERRUPTIONS[reason]
        )
        write = asyncio.ensure_future(
            self._log(
                [row(interrupted, i.serial, local_ids.get(i.link_code), "") for i in items],
                receipts,
            )
        )
        self._interrupted.add(write)
        write.add_done_callback(self._interrupted.discard)
        # Shielded: a second cancellation ends this wait, not the write (aclose awaits it).
        await asyncio.shield(write)

    # -- answer-later (single calls to a batch legacy system) ------------------

    async def _ask_batch(
        self, call: ProvideCall, request: tuple[str, str, bytes], timeout: float
    ) -> tuple[bytes | None, str]:
        """Submit to a batch legacy system; its answer if it comes in time, else a ticket.

        The answer is looked for (every ``poll_interval`` of the client) until the
        answer time is up, so a quick batch answers inline like any other system.
        """
        assert isinstance(self._legacy, BatchLegacyClient)
        local_id, info_kind, query = request
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        legacy_ticket = await self._legacy.submit(local_id, info_kind, query, timeout=timeout)
        # Within the answer time the answer file may well come: look for it until then.
        poll = float(getattr(self._legacy, "poll_interval", BATCH_POLL_SECONDS))
        while (remaining := until - loop.time()) > 0:
            payload = await self._legacy.collect(legacy_ticket, timeout=remaining)
            if payload is not None:
                return payload, ""
            await asyncio.sleep(min(poll, max(0.0, until - loop.time())))
        ticket = answer_later.new_ticket()
        await self._store.add_ticket(
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
            )
        )
        return None, ticket

    async def _pending(
        self,
        base: LogRecord,
        call: ProvideCall,
        local_id: str,
        ticket: str,
        receipts: list[ShareReceipt],
    ) -> Provided:
        await self._store.append_log(
            replace(
                base,
                serial=call.serial,
                local_person_id=local_id,
                outcome=ANSWER_PENDING,
                detail="request submitted to the batch legacy system; ticket issued",
            ),
            receipts,
        )
        return Provided(b"", ticket)

    async def collect(self, call: CollectCall, time_remaining: float | None) -> Sealed:
        """The answer behind a ticket this server issued, sealed and signed as Provide
        seals and signs (single-use)."""
        _check_shape(call.requester_agency_id, call.info_kind, call.legal_basis_item)
        record = self._record(
            call.requester_agency_id, call.info_kind, call.legal_basis_item, call.serial
        )
        try:
            validate.text("ticket", call.ticket, max_chars=MAX_TICKET)
            peer = self._peers.peer(call.requester_exchange_certificate, call.requester_agency_id)
            timeout = deadline.budget(
                self._answer_timeout, time_remaining, deadline.PROVIDER_MARGIN_SECONDS
            )
            held = await self._store.ticket(PROVIDER, call.ticket)
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
                await self._store.take_ticket(PROVIDER, call.ticket)
                raise answer_later.expired(call.serial, self.ticket_ttl)
            raw = await self._legacy.collect(held.legacy_ticket, timeout=timeout)
            if raw is None:
                raise answer_later.not_ready(call.serial)
            try:
                answer = self.payload_of(call.info_kind, raw)
            except BadLegacyRecord:
                # The legacy answer is gone (collected): the ticket can never be honoured.
                await self._store.take_ticket(PROVIDER, call.ticket)
                raise
            sealed = seal_single(
                answer.payload,
                call.serial,
                call.requester_agency_id,
                self.agency_id,
                call.info_kind,
                call.legal_basis_item,
                peer.sealing_key,
                self._keys.signing,
            )
            if not await self._store.take_ticket(PROVIDER, call.ticket):
                raise answer_later.unknown_ticket()  # a concurrent collect took it
        except RenkeiError as err:
            err.metadata.setdefault("serial", str(call.serial))
            await self._store.append_log(failed(record, record.serial, record.local_person_id, err))
            raise
        await self._store.append_log(
            replace(record, content=answer.content, detail="answer collected with its ticket")
        )
        return sealed
