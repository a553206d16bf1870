"""The requester's pipeline: a query from the agency's legacy side, to the hub and back (R28).

One path for a single query and a bulk one (a single query is a batch of
one): the field limits and the deadline budget, the staff check (R19), each
person's link code from the correspondence table, the hub, the answers opened
and turned into the agency's own format, and one log row per person, tied to
the hub's serial, whatever the outcome. ``envelope`` holds how the batch is
sealed and relayed, the only part that differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

from comm_server import answer_later, standard
from comm_server.answer_later import ANSWER_PENDING
from comm_server.exchange_log import OK, REQUESTER, row
from comm_server.keys import OwnKeys
from comm_server.log_receipts import ShareReceipt, accept
from comm_server.mapping.mapper import Mapper
from comm_server.ports import Clock, ExchangeStore, Hub, Staff
from comm_server.requester.envelope import Envelope, OneMessage, Outcomes, PerPerson, Relayed
from comm_server.requester.types import Answered, FetchRequest, LocalQuery, PersonAnswer
from comm_server.seal_info import answer_info
from comm_server.store import LogRecord, Ticket
from renkei import deadline, exchange_cert, sealing, validate
from renkei.bulk import ItemError
from renkei.errors import DeadlineExceeded, PermissionDenied, RenkeiError, Unavailable
from renkei.exchange_cert import ExchangeVerifier, VerifiedPeer
from renkei.layout.v1 import layout_pb2
from renkei.limits import MAX_ID, MAX_TICKET

T = TypeVar("T")
# Staff registers give validity in Japanese calendar days.
JST = timezone(timedelta(hours=9), "JST")


@dataclass(frozen=True, slots=True)
class Opened:
    """An answer as this agency takes it: its own format, the standard record, log text."""

    answer: bytes
    record: layout_pb2.StandardRecord | None
    content: str
    problem: str | None


class Requester:
    def __init__(
        self,
        *,
        agency_id: str,
        store: ExchangeStore,
        hub: Hub,
        keys: OwnKeys,
        peers: ExchangeVerifier,
        query_timeout: float,
        bulk_query_timeout: float,
        staff: Staff | None = None,
        mapper: Mapper | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.agency_id = agency_id
        self._store = store
        self._hub = hub
        self._keys = keys
        # Checks the providers' exchange certificates against the agencies' CA.
        self._peers = peers
        self._query_timeout = query_timeout
        self._single: Envelope = PerPerson(query_timeout)
        self._bulk: Envelope = OneMessage(bulk_query_timeout)
        self.staff = staff
        # None: answers are handed on as the provider sealed them.
        self.mapper = mapper
        self._clock = clock

    def check_staff(self, staff_id: str, terminal_id: str, info_kind: str, item: str) -> None:
        """R19: only registered staff, at their terminals, for their affairs."""
        if self.staff is None:
            raise PermissionDenied(
                "STAFF_REGISTER_NOT_CONFIGURED",
                "this communication server has no staff register, so no one may query",
            )
        day = self._clock().astimezone(JST).date()
        self.staff.register.check(staff_id, terminal_id, info_kind, item, day)

    async def query(self, q: LocalQuery, time_remaining: float | None) -> Answered:
        """Every person's answer or error, in order.

        A single query raises its refusal; a bulk one raises only if refused whole
        (staff register, the hub's policy, a deadline), and still leaves one log
        row per person, with the hub's serial where it gave one.
        """
        how = self._bulk if q.bulk else self._single
        how.check(q)
        persons = q.persons
        n = len(persons)
        timeout = deadline.budget(
            how.ceiling,
            time_remaining,
            deadline.margin(time_remaining, deadline.REQUESTER_MARGIN_SECONDS, n),
        )
        now = self._clock()
        # The log rows below must be durable before the caller's deadline, less the time
        # to answer: a share of the log that stalls is a refusal, not a silent caller.
        answer_by = (
            None
            if time_remaining is None
            else asyncio.get_running_loop().time()
            + time_remaining
            - deadline.REQUESTER_ANSWER_SECONDS
        )
        base = LogRecord(
            serial=None,
            role=REQUESTER,
            logged_at=now,
            counterpart_agency_id=q.provider_agency_id,
            info_kind=q.info_kind,
            legal_basis_item=q.legal_basis_item,
            local_person_id=None,
            staff_id=q.staff_id,
            terminal_id=q.terminal_id,
            content="",
            purpose=q.purpose,
            outcome=OK,
            reason="",
        )
        out = Outcomes([0] * n, [b""] * n, [None] * n)
        sent: list[int] = []  # request positions of the persons sent to the hub, in hub order
        relayed = None
        try:
            self.check_staff(q.staff_id, q.terminal_id, q.info_kind, q.legal_basis_item)
            codes = await self._in_time(answer_by, self._link_codes(q))
            for i, person in enumerate(persons):
                if person.local_person_id in codes:
                    sent.append(i)
                else:
                    how.unbound(i, person.local_person_id, out)
            if sent:
                # The hub gets what is left of one deadline, so its own (serial-carrying)
                # refusal arrives before this server's safety net fires.
                until = asyncio.get_running_loop().time() + timeout
                async with asyncio.timeout_at(until + deadline.SAFETY_NET_SECONDS):
                    peer = await self.peer(q.provider_agency_id, timeout)
                    relayed = await how.relay(
                        self._hub, self.agency_id, q, sent, codes, peer, until, self._keys, out
                    )
            del codes
        except TimeoutError:
            err = DeadlineExceeded("QUERY_TIMEOUT", f"no answer within {timeout:.3f} s")
            await self._refused(q, base, how, sent, out, err, answer_by)
            raise err from None
        except RenkeiError as err:
            how.serials_of(err, sent, out)
            await self._refused(q, base, how, sent, out, err, answer_by)
            raise
        if relayed is not None and relayed.ticket:
            return await self._pending(q, base, out.serials[0], relayed, self._receipts(out))
        errors = out.errors
        try:
            opened = self._open_all(q, out)
        except RenkeiError as err:  # a single query's answer the agency cannot take
            err.metadata.setdefault("serial", str(out.serials[0]))
            await self._refused(q, base, how, sent, out, err, answer_by)
            raise
        serials = out.serials
        await self._log(
            answer_by,
            [
                row(
                    base,
                    serials[i] or None,
                    person.local_person_id,
                    "" if o is None else o.content,
                    errors[i],
                    None if o is None else o.problem,
                )
                for i, (person, o) in enumerate(zip(persons, opened, strict=True))
            ],
            out.serials[0] if n == 1 else 0,
            self._receipts(out),
        )
        return Answered(
            now,
            q.legal_basis_item if relayed is None else relayed.legal_basis_item,
            "" if relayed is None else relayed.policy_version,
            [
                PersonAnswer(
                    person.local_person_id,
                    serials[i],
                    b"" if o is None else o.answer,
                    errors[i],
                    None if o is None else o.record,
                )
                for i, (person, o) in enumerate(zip(persons, opened, strict=True))
            ],
        )

    async def peer(self, agency_id: str, timeout: float) -> VerifiedPeer:
        """The provider's keys, from its exchange certificate (the hub's directory hands it
        out, the agencies' CA vouches for it); PEER_CERTIFICATE_INVALID when it does not."""
        cert = await self._hub.exchange_certificate(agency_id, timeout=timeout)
        try:
            return self._peers.peer(cert, agency_id)
        except RenkeiError:
            self._hub.forget_certificate(agency_id)  # ask the directory again next time
            raise

    def _open_all(self, q: LocalQuery, out: Outcomes) -> list[Opened | None]:
        """Each answer as this agency takes it; one it cannot take (ANSWER_INVALID) is that
        person's error in a bulk query, raised for a single one."""
        errors, answers = out.errors, out.answers
        opened: list[Opened | None] = []
        for i, person in enumerate(q.persons):
            if errors[i] is not None:
                opened.append(None)
                continue
            try:
                opened.append(self.opened(answers[i], q.info_kind, person.local_person_id))
            except RenkeiError as err:
                if not q.bulk:
                    raise
                errors[i] = ItemError.of(err)
                opened.append(None)
        return opened

    async def _link_codes(self, q: LocalQuery) -> dict[str, str]:
        if len(q.persons) == 1:  # the single-person lookup: a plain equality, no IN list
            local_id = q.persons[0].local_person_id
            code = await self._store.link_code_for(local_id)
            return {} if code is None else {local_id: code}
        return await self._store.link_codes_for([p.local_person_id for p in q.persons])

    async def _log(
        self,
        answer_by: float | None,
        records: list[LogRecord],
        serial: int = 0,
        receipts: list[ShareReceipt] | None = None,
    ) -> None:
        """The rows durable by ``answer_by`` (loop time), else REQUESTER_LOG_UNAVAILABLE;
        the hub's log receipts in the same transaction.

        A row let go of here is still written when the database takes it (the store
        keeps a queued row whose caller left), with the outcome it had.
        """
        kept = receipts or []
        if len(records) == 1:
            await self._in_time(answer_by, self._store.append_log(records[0], kept), serial)
        else:
            await self._in_time(answer_by, self._store.append_logs(records, kept), serial)

    def _receipts(self, out: Outcomes) -> list[ShareReceipt]:
        """The hub's receipts worth keeping, each checked against its person's serial."""
        if not out.receipts:
            return []
        now = self._clock()
        return [
            kept
            for i, given in out.receipts.items()
            for kept in accept(
                given,
                serial=out.serials[i],
                agency_id=self.agency_id,
                role=REQUESTER,
                received_at=now,
            )
        ]

    @staticmethod
    async def _in_time(answer_by: float | None, work: Awaitable[T], serial: int = 0) -> T:
        """``work`` done by ``answer_by``, else REQUESTER_LOG_UNAVAILABLE: this agency's
        store (its share of the log, and on SQLite the one thread that also reads the
        correspondence table) is stalled, so the caller hears why before its deadline.
        A refusal names the hub's ``serial`` when there is one, so it can be joined."""
        try:
            if answer_by is None:
                return await work
            async with asyncio.timeout_at(answer_by):
                return await work
        except Unavailable as err:  # the store refused the row (full, unreachable)
            if serial:
                err.metadata.setdefault("serial", str(serial))
            raise
        except TimeoutError:
            raise Unavailable(
                "REQUESTER_LOG_UNAVAILABLE",
                "this agency's share of the log did not take the exchange's row in time",
                {"serial": str(serial)} if serial else None,
            ) from None

    async def _refused(
        self,
        q: LocalQuery,
        base: LogRecord,
        how: Envelope,
        sent: list[int],
        out: Outcomes,
        err: RenkeiError,
        answer_by: float | None,
    ) -> None:
        """The request failed whole: one row per person (its own reason if it never left)."""
        whole = ItemError.of(err)
        went = set(sent)
        errors, serials = out.errors, out.serials
        await self._log(
            answer_by,
            [
                row(
                    base,
                    serials[i] or None,
                    person.local_person_id,
                    "",
                    errors[i] if sent and i not in went and errors[i] else whole,
                )
                for i, person in enumerate(q.persons)
            ],
            serials[0] if len(q.persons) == 1 else 0,
            self._receipts(out),
        )
        how.mark(err, out)

    async def _pending(
        self,
        q: LocalQuery,
        base: LogRecord,
        serial: int,
        relayed: Relayed,
        receipts: list[ShareReceipt],
    ) -> Answered:
        """A single query's answer comes later: keep the ticket, log the first half."""
        local_id = q.persons[0].local_person_id
        await self._store.add_ticket(
            Ticket(
                ticket=relayed.ticket,
                role=REQUESTER,
                serial=serial,
                counterpart_agency_id=q.provider_agency_id,
                info_kind=q.info_kind,
                legal_basis_item=q.legal_basis_item,
                local_person_id=local_id,
                purpose=q.purpose,
                legacy_ticket=None,
                created_at=base.logged_at,
            )
        )
        await self._store.append_log(
            replace(
                base,
                serial=serial,
                local_person_id=local_id,
                outcome=ANSWER_PENDING,
                detail="answer to be fetched later with a ticket",
            ),
            receipts,
        )
        return Answered(
            base.logged_at,
            relayed.legal_basis_item,
            relayed.policy_version,
            [PersonAnswer(local_id, serial, b"")],
            relayed.ticket,
        )

    def opened(self, plaintext: bytes, info_kind: str, local_person_id: str) -> Opened:
        """An opened answer as this agency takes it: the record, and in its own format."""
        record = standard.open_payload(plaintext, info_kind)
        if record is None:
            return Opened(plaintext, None, plaintext.decode("utf-8", errors="replace"), None)
        # (11) as the provider logged it, before this agency's own number goes in: the
        # oversight body compares the two sides' content by hash (oversight/reconcile.py).
        content = standard.render(record)
        record.local_person_id = local_person_id
        own, problem = standard.to_own_format(self.mapper, info_kind, record)
        return Opened(own, record, content, problem or None)

    # -- answer-later ----------------------------------------------------------

    async def fetch(self, f: FetchRequest, time_remaining: float | None) -> Answered:
        """The answer to one of this agency's pending queries, logged as its second half."""
        validate.text("ticket", f.ticket, max_chars=MAX_TICKET)
        validate.text("staff_id", f.staff_id, max_chars=MAX_ID)
        validate.text("terminal_id", f.terminal_id, max_chars=MAX_ID)
        held = await self._store.ticket(REQUESTER, f.ticket)
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
        timeout = deadline.budget(
            self._query_timeout, time_remaining, deadline.REQUESTER_MARGIN_SECONDS
        )
        receipts: list[ShareReceipt] = []  # the fetch's own entry in the hub's log
        try:
            self.check_staff(f.staff_id, f.terminal_id, held.info_kind, held.legal_basis_item)
            try:
                async with asyncio.timeout(timeout + deadline.SAFETY_NET_SECONDS):
                    answer = await self._hub.fetch_answer(held.serial, f.ticket, timeout=timeout)
            except TimeoutError:
                raise DeadlineExceeded(
                    "QUERY_TIMEOUT", f"no answer within {timeout:.3f} s"
                ) from None
            receipts = accept(
                answer.log_receipts,
                serial=held.serial,
                agency_id=self.agency_id,
                role=REQUESTER,
                received_at=record.logged_at,
            )
            peer = await self.peer(held.counterpart_agency_id, timeout)
            exchange_cert.check_signature(
                peer,
                answer.answer_signature,
                exchange_cert.answer_context(
                    held.serial,
                    self.agency_id,
                    held.counterpart_agency_id,
                    held.info_kind,
                    held.legal_basis_item,
                    answer.sealed_answer,
                ),
                reason="ANSWER_SIGNATURE_INVALID",
                field="answer_signature",
            )
            plaintext = sealing.open_sealed(
                answer.sealed_answer,
                self._keys.sealing,
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
                await self._store.take_ticket(REQUESTER, f.ticket)
            await self._store.append_log(
                replace(record, outcome=err.code.name, reason=err.reason), receipts
            )
            raise
        await self._store.take_ticket(REQUESTER, f.ticket)
        await self._store.append_log(
            replace(
                record,
                content=opened.content,
                detail=(
                    "answer fetched with its ticket"
                    + (f"; {opened.problem}" if opened.problem else "")
                )[: standard.DETAIL_CHARS],
            ),
            receipts,
        )
        local_id = held.local_person_id or ""
        return Answered(
            record.logged_at,
            held.legal_basis_item,
            answer.policy_version,
            [PersonAnswer(local_id, held.serial, opened.answer, record=opened.record)],
        )
