"""Bulk queries at a communication server: many persons, one provider, one kind, one item.

Requester: one staff check, one sealed message of queries, one ``BulkRelay``,
one sealed message of answers, one log row per person. Provider: one legacy
lookup per person through ``Exchange.legacy_answer`` (the call ``Provide``
makes), all at once within one deadline, one log row per person, the answers
sealed as one message. Items fail alone; see ``renkei.bulk`` for the sealing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import x25519

from comm_server.exchange import (
    MAX_ID,
    MAX_QUERY_BYTES,
    OK,
    PROVIDER,
    REQUESTER,
    SAFETY_NET_SECONDS,
    Exchange,
    Opened,
)
from comm_server.hub_client import HubClient
from comm_server.legacy import ManyLegacyClient
from comm_server.standard import BadLegacyRecord
from comm_server.store import AsyncCommStore, LogRecord
from renkei import bulk, sealing, validate
from renkei.bulk import ItemError
from renkei.comm.v1 import comm_pb2
from renkei.errors import (
    DeadlineExceeded,
    InvalidArgument,
    RenkeiError,
    ResourceExhausted,
    Unavailable,
    invalid_field,
)
from renkei.layout.v1 import layout_pb2
from renkei.logs import event

_log = logging.getLogger("comm_server.bulk")

# Time kept back per person to write its log row before the deadline.
LOG_SECONDS_PER_ITEM = 20e-6


@dataclass(frozen=True)
class BulkItem:
    local_person_id: str
    query: bytes


@dataclass(frozen=True)
class BulkLocalQuery:
    provider_agency_id: str
    info_kind: str
    legal_basis_item: str
    purpose: str
    staff_id: str
    terminal_id: str
    items: list[BulkItem]


@dataclass(frozen=True, slots=True)
class BulkItemResult:
    local_person_id: str
    serial: int  # 0: the item never reached the hub
    answer: bytes  # in this agency's own format (or raw, without a mapper)
    error: ItemError | None
    record: layout_pb2.StandardRecord | None = None


@dataclass(frozen=True)
class BulkQueryResult:
    time: datetime
    legal_basis_item: str
    policy_version: str
    results: list[BulkItemResult]


@dataclass(frozen=True, slots=True)
class BulkProvideItem:
    serial: int
    index: int
    link_code: str


@dataclass(frozen=True)
class BulkProvideCall:
    time: datetime
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    item_count: int
    items: list[BulkProvideItem]
    sealed_queries: bytes
    requester_sealing_public_key: bytes


def _row(
    base: LogRecord,
    serial: int | None,
    local_person_id: str | None,
    content: str,
    error: ItemError | None,
    detail: str = "",
) -> LogRecord:
    """One person's log row: the content on success, the code and reason otherwise.

    ``detail`` (a bad legacy record's field and bytes) stays in this agency's log.
    """
    # Built directly: dataclasses.replace costs several times more, once per person.
    ok = error is None
    return LogRecord(
        serial,
        base.role,
        base.logged_at,
        base.counterpart_agency_id,
        base.info_kind,
        base.legal_basis_item,
        local_person_id,
        base.staff_id,
        base.terminal_id,
        content if ok else base.content,
        base.purpose,
        base.outcome if error is None else error.code,
        base.reason if error is None else error.reason,
        base.detail if ok or not detail else detail,
    )


async def _lookup_many(
    many: ManyLegacyClient,
    requests: list[tuple[str, str, bytes]],
    wanted: list[int],
    timeout: float,
    window: float,
    results: dict[int, bytes | BaseException],
    unfinished: dict[int, asyncio.Future[bytes]],
) -> None:
    """All persons in one ``lookup_many`` call: no task per person.

    Past ``timeout`` every person is late: each gets a future settled when the
    call ends (within ``window`` more), so a late answer is still logged and
    discarded person by person, as with one lookup each.
    """
    batch = asyncio.ensure_future(many.lookup_many(requests, timeout=timeout + window))
    try:
        done, _ = await asyncio.wait([batch], timeout=timeout)
    except asyncio.CancelledError:
        batch.cancel()
        raise
    if not done:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bytes]] = [loop.create_future() for _ in wanted]
        batch.add_done_callback(lambda finished: _settle(finished, futures))
        unfinished.update(zip(wanted, futures, strict=True))
        return
    for k, outcome in zip(wanted, _outcomes(batch, len(wanted)), strict=True):
        results[k] = outcome


def _outcomes(
    batch: asyncio.Future[list[bytes | Exception]], n: int
) -> list[bytes | BaseException]:
    """Per person: the answer or the error; the call's own failure is everyone's."""
    failure = batch.exception()
    if failure is not None:
        return [failure] * n
    answers = batch.result()
    if len(answers) != n:
        wrong = RuntimeError(f"lookup_many answered {len(answers)} results for {n} persons")
        return [wrong] * n
    return list(answers)


def _settle(
    batch: asyncio.Future[list[bytes | Exception]], futures: list[asyncio.Future[bytes]]
) -> None:
    outcomes: list[bytes | BaseException] | None = (
        None if batch.cancelled() else _outcomes(batch, len(futures))
    )
    for k, future in enumerate(futures):
        if future.done():  # its watcher was cancelled (shutdown)
            continue
        if outcomes is None:
            future.cancel()
            continue
        outcome = outcomes[k]
        if isinstance(outcome, bytes):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)


class BulkExchange:
    def __init__(
        self,
        *,
        exchange: Exchange,
        store: AsyncCommStore,
        hub: HubClient,
        sealing_key: x25519.X25519PrivateKey,
        answer_timeout: float,
        query_timeout: float,
        responder_staff_id: str,
        responder_terminal_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._exchange = exchange
        self._store = store
        self._hub = hub
        self._sealing_key = sealing_key
        self._answer_timeout = answer_timeout
        self._query_timeout = query_timeout
        self._responder = (responder_staff_id, responder_terminal_id)
        self._clock = clock

    @property
    def agency_id(self) -> str:
        return self._exchange.agency_id

    def _timeout(self, ceiling: float, time_remaining: float | None, margin: float) -> float:
        timeout = ceiling if time_remaining is None else min(ceiling, time_remaining - margin)
        if timeout <= 0:
            raise DeadlineExceeded("DEADLINE_TOO_SHORT", "no time left for this exchange")
        return timeout

    async def _log_rows(self, records: list[LogRecord]) -> None:
        await self._store.run(self._store.store.append_logs, records)

    # -- requester side ------------------------------------------------------

    def _validate(self, q: BulkLocalQuery) -> None:
        validate.text("provider_agency_id", q.provider_agency_id, max_chars=MAX_ID)
        validate.text("info_kind", q.info_kind, max_chars=200)
        validate.text("legal_basis_item", q.legal_basis_item, max_chars=32)
        validate.text("purpose", q.purpose, max_chars=400)
        validate.text("staff_id", q.staff_id, max_chars=MAX_ID)
        validate.text("terminal_id", q.terminal_id, max_chars=MAX_ID)
        bulk.check_count("items", len(q.items))
        total = 0
        for i, item in enumerate(q.items):
            validate.text(f"items[{i}].local_person_id", item.local_person_id, max_chars=MAX_ID)
            validate.blob(f"items[{i}].query", item.query, max_bytes=MAX_QUERY_BYTES)
            total += len(item.query) + 8
        if total > bulk.MAX_BULK_SEALED_QUERIES - 1024:
            raise invalid_field(
                "items",
                f"queries total {total} bytes; at most {bulk.MAX_BULK_SEALED_QUERIES - 1024}",
            )

    async def query(self, q: BulkLocalQuery, time_remaining: float | None) -> BulkQueryResult:
        """Every person's answer or error, in order; raises only if the request fails whole.

        A request refused whole (staff register, the hub's policy, a deadline)
        still leaves one log row per person, with the hub's serial where it
        gave one.
        """
        self._validate(q)
        floor = 0.05 + LOG_SECONDS_PER_ITEM * len(q.items)
        timeout = self._timeout(
            self._query_timeout, time_remaining, margin=bulk.margin(time_remaining, floor)
        )
        now = self._clock()
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
        n = len(q.items)
        serials = [0] * n
        answers: list[bytes] = [b""] * n
        errors: list[ItemError | None] = [None] * n
        sent: list[int] = []  # request positions of the persons sent to the hub, in hub order
        legal_basis_item, policy_version = q.legal_basis_item, ""
        try:
            self._exchange.check_staff(q.staff_id, q.terminal_id, q.info_kind, q.legal_basis_item)
            codes = await self._store.run(
                self._store.store.link_codes_for, [i.local_person_id for i in q.items]
            )
            for i, item in enumerate(q.items):
                if item.local_person_id in codes:
                    sent.append(i)
                else:
                    errors[i] = ItemError(
                        "NOT_FOUND",
                        "LOCAL_PERSON_NOT_BOUND",
                        f"items[{i}].local_person_id has no link code in the correspondence table",
                    )
            if sent:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                nonce = os.urandom(bulk.NONCE_BYTES)
                async with asyncio.timeout_at(deadline + SAFETY_NET_SECONDS):
                    provider_key = await self._hub.sealing_key(
                        q.provider_agency_id, timeout=timeout
                    )
                    payload = comm_pb2.BulkQueryPayload(
                        nonce=nonce, queries=[q.items[i].query for i in sent]
                    )
                    sealed = sealing.seal(
                        payload.SerializeToString(),
                        sealing.load_public_key(provider_key, field="provider sealing key"),
                        bulk.query_info(
                            self.agency_id,
                            q.provider_agency_id,
                            q.info_kind,
                            q.legal_basis_item,
                            len(sent),
                        ),
                    )
                    answer = await self._hub.bulk_relay(
                        provider_agency_id=q.provider_agency_id,
                        info_kind=q.info_kind,
                        legal_basis_item=q.legal_basis_item,
                        link_codes=[codes[q.items[i].local_person_id] for i in sent],
                        sealed_queries=sealed,
                        timeout=max(0.001, deadline - loop.time()),
                    )
                del codes
                legal_basis_item, policy_version = answer.legal_basis_item, answer.policy_version
                if len(answer.results) != len(sent):
                    raise Unavailable(
                        "BULK_RESULTS_MISMATCH",
                        f"the hub answered {len(answer.results)} results for {len(sent)} persons",
                    )
                for i, (serial, error) in zip(sent, answer.results, strict=True):
                    serials[i], errors[i] = serial, error
                self._open_answers(q, sent, nonce, answer.sealed_answers, serials, answers, errors)
        except TimeoutError:
            err = DeadlineExceeded("QUERY_TIMEOUT", f"no answer within {timeout:.3f} s")
            await self._fail_all(q, base, sent, errors, serials, err)
            raise err from None
        except RenkeiError as err:
            try:
                hub_serials = bulk.parse_serials(err.metadata.get("serials", ""))
            except RenkeiError:  # a hub bug: log the persons without serials rather than not at all
                hub_serials = []
            if len(hub_serials) == len(sent):
                for i, serial in zip(sent, hub_serials, strict=True):
                    serials[i] = serial
            await self._fail_all(q, base, sent, errors, serials, err)
            raise
        opened: list[Opened | None] = [
            None
            if errors[i] is not None
            else self._exchange.opened(answers[i], q.info_kind, item.local_person_id)
            for i, item in enumerate(q.items)
        ]
        records = [
            _row(
                base,
                serials[i] or None,
                item.local_person_id,
                "" if o is None else o.content,
                errors[i],
            )
            for i, (item, o) in enumerate(zip(q.items, opened, strict=True))
        ]
        await self._log_rows(records)
        return BulkQueryResult(
            now,
            legal_basis_item,
            policy_version,
            [
                BulkItemResult(
                    item.local_person_id,
                    serials[i],
                    b"" if o is None else o.answer,
                    errors[i],
                    None if o is None else o.record,
                )
                for i, (item, o) in enumerate(zip(q.items, opened, strict=True))
            ],
        )

    def _open_answers(
        self,
        q: BulkLocalQuery,
        sent: list[int],
        nonce: bytes,
        sealed_answers: bytes,
        serials: list[int],
        answers: list[bytes],
        errors: list[ItemError | None],
    ) -> None:
        """Fill in the answers the hub says were given, each checked against its serial."""
        answered = [(h, serials[i]) for h, i in enumerate(sent) if errors[i] is None]
        if not answered:
            return
        try:
            plaintext = sealing.open_sealed(
                sealed_answers,
                self._sealing_key,
                bulk.answer_info(
                    self.agency_id,
                    q.provider_agency_id,
                    q.info_kind,
                    q.legal_basis_item,
                    nonce,
                    answered,
                ),
                field="sealed_answers",
            )
            payload = comm_pb2.BulkAnswerPayload.FromString(plaintext)
        except RenkeiError as err:
            for h, _ in answered:
                errors[sent[h]] = ItemError.of(err)
            return
        by_index = {a.index: a for a in payload.answers}
        for h, serial in answered:
            i = sent[h]
            got = by_index.get(h)
            if got is None or got.serial != serial:
                errors[i] = ItemError(
                    "INVALID_ARGUMENT",
                    "SEALED_PAYLOAD_INVALID",
                    f"the sealed answers hold no answer for items[{i}] under serial {serial}",
                )
            else:
                answers[i] = got.answer

    async def _fail_all(
        self,
        q: BulkLocalQuery,
        base: LogRecord,
        sent: list[int],
        errors: list[ItemError | None],
        serials: list[int],
        err: RenkeiError,
    ) -> None:
        """The request failed whole: one row per person (its own reason if it never left)."""
        whole = ItemError.of(err)
        went = set(sent)
        records = [
            _row(
                base,
                serials[i] or None,
                item.local_person_id,
                "",
                errors[i] if sent and i not in went and errors[i] else whole,
            )
            for i, item in enumerate(q.items)
        ]
        err.metadata["serials"] = bulk.format_serials(serials)
        await self._log_rows(records)

    # -- provider side -------------------------------------------------------

    def _provider_record(self, call: BulkProvideCall) -> LogRecord:
        return LogRecord(
            serial=None,
            role=PROVIDER,
            logged_at=self._clock(),
            counterpart_agency_id=call.requester_agency_id,
            info_kind=call.info_kind,
            legal_basis_item=call.legal_basis_item,
            local_person_id=None,
            staff_id=self._responder[0],
            terminal_id=self._responder[1],
            content="",
            purpose=None,
            outcome=OK,
            reason="",
        )

    def _open_queries(self, call: BulkProvideCall) -> tuple[bytes, list[bytes]]:
        if not 0 < call.item_count <= bulk.MAX_BULK_ITEMS:
            raise invalid_field("item_count", f"is {call.item_count}; 1 to {bulk.MAX_BULK_ITEMS}")
        bulk.check_count("items", len(call.items))
        seen: set[int] = set()
        for item in call.items:
            if item.index >= call.item_count or item.index in seen:
                raise invalid_field("items", f"index {item.index} is out of range or repeated")
            seen.add(item.index)
        plaintext = sealing.open_sealed(
            call.sealed_queries,
            self._sealing_key,
            bulk.query_info(
                call.requester_agency_id,
                self.agency_id,
                call.info_kind,
                call.legal_basis_item,
                call.item_count,
            ),
            field="sealed_queries",
        )
        try:
            payload = comm_pb2.BulkQueryPayload.FromString(plaintext)
        except Exception:  # the requester sealed something that is not a BulkQueryPayload
            payload = None
        if (
            payload is None
            or len(payload.queries) != call.item_count
            or len(payload.nonce) != bulk.NONCE_BYTES
        ):
            raise InvalidArgument(
                "SEALED_PAYLOAD_INVALID",
                f"sealed_queries does not hold a nonce and {call.item_count} queries",
                {"field": "sealed_queries"},
            )
        return payload.nonce, [bytes(query) for query in payload.queries]

    async def _lookup_each(
        self,
        requests: list[tuple[str, str, bytes]],
        wanted: list[int],
        timeout: float,
        window: float,
        results: dict[int, bytes | BaseException],
        unfinished: dict[int, asyncio.Future[bytes]],
    ) -> None:
        """One lookup per person, all at once; those still running at ``timeout`` go to
        ``unfinished`` (left running for ``window`` more, to log a late answer)."""
        tasks = [
            asyncio.ensure_future(
                self._exchange.legacy_answer(local_id, kind, query, timeout=timeout + window)
            )
            for local_id, kind, query in requests
        ]
        try:
            await asyncio.wait(tasks, timeout=timeout)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        for k, task in zip(wanted, tasks, strict=True):
            if not task.done():
                unfinished[k] = task
            else:
                failure = task.exception()
                results[k] = task.result() if failure is None else failure

    async def provide(
        self, call: BulkProvideCall, time_remaining: float | None
    ) -> tuple[list[tuple[int, ItemError | None]], bytes]:
        """(serial, error or None) per item in order, and the answers sealed to the requester."""
        base = self._provider_record(call)
        n = len(call.items)
        local_ids: dict[str, str] = {}
        try:
            recipient = sealing.load_public_key(
                call.requester_sealing_public_key, field="requester_sealing_public_key"
            )
            timeout = self._timeout(
                self._answer_timeout,
                time_remaining,
                margin=bulk.margin(time_remaining, 0.02 + LOG_SECONDS_PER_ITEM * n),
            )
            nonce, queries = self._open_queries(call)
            local_ids = await self._store.run(
                self._store.store.local_persons_for, [i.link_code for i in call.items]
            )
        except RenkeiError as err:
            await self._log_rows(
                [
                    replace(
                        base,
                        serial=item.serial,
                        local_person_id=local_ids.get(item.link_code),
                        outcome=err.code.name,
                        reason=err.reason,
                    )
                    for item in call.items
                ]
            )
            raise
        errors: list[ItemError | None] = [None] * n
        payloads: list[bytes] = [b""] * n
        details: dict[int, str] = {}
        contents: dict[int, str] = {}
        loop = asyncio.get_running_loop()
        started = loop.time()
        window = self._exchange.late_window(timeout)
        wanted: list[int] = []
        for k, item in enumerate(call.items):
            if item.link_code in local_ids:
                wanted.append(k)
            else:
                errors[k] = ItemError(
                    "NOT_FOUND",
                    "PERSON_NOT_BOUND",
                    "the provider has no record bound to this person",
                )
        results: dict[int, bytes | BaseException] = {}
        unfinished: dict[int, asyncio.Future[bytes]] = {}
        if wanted:
            requests = [
                (local_ids[call.items[k].link_code], call.info_kind, queries[call.items[k].index])
                for k in wanted
            ]
            many = self._exchange.many_lookups()
            if many is None:
                await self._lookup_each(requests, wanted, timeout, window, results, unfinished)
            else:
                await _lookup_many(many, requests, wanted, timeout, window, results, unfinished)
        for k, task in unfinished.items():
            item = call.items[k]
            self._exchange.watch_late(
                task,
                replace(base, serial=item.serial, local_person_id=local_ids[item.link_code]),
                started,
                timeout,
            )
            errors[k] = ItemError(
                "DEADLINE_EXCEEDED",
                "LEGACY_TIMEOUT",
                f"the legacy system did not answer within {timeout:g}s",
            )
        late = len(unfinished)
        payload_of = self._exchange.payload_of
        for k, result in results.items():
            if isinstance(result, bytes):
                try:
                    payloads[k], contents[k] = payload_of(call.info_kind, result)
                except BadLegacyRecord as bad:
                    # The record's bytes stay in this agency's log; the requester gets the reason.
                    errors[k] = ItemError.of(bad)
                    details[k] = bad.log_detail
            elif isinstance(result, RenkeiError):
                errors[k] = ItemError.of(result)
            else:
                event(_log, "bulk lookup failed", serial=call.items[k].serial, error=repr(result))
                errors[k] = ItemError(
                    "UNAVAILABLE", "LEGACY_UNAVAILABLE", "the legacy lookup failed"
                )
        answers = comm_pb2.BulkAnswerPayload()
        size = 0
        full = ResourceExhausted(
            "BULK_ANSWER_TOO_LARGE",
            f"the answers passed {bulk.MAX_BULK_ANSWER_BYTES} bytes; ask for this person again",
        )
        answered: list[tuple[int, int]] = []
        for k, item in sorted(enumerate(call.items), key=lambda pair: pair[1].index):
            if errors[k] is not None:
                continue
            size += len(payloads[k]) + 16
            if size > bulk.MAX_BULK_ANSWER_BYTES:
                errors[k] = ItemError.of(full)
                continue
            answers.answers.add(index=item.index, serial=item.serial, answer=payloads[k])
            answered.append((item.index, item.serial))
        sealed = (
            sealing.seal(
                answers.SerializeToString(),
                recipient,
                bulk.answer_info(
                    call.requester_agency_id,
                    self.agency_id,
                    call.info_kind,
                    call.legal_basis_item,
                    nonce,
                    answered,
                ),
            )
            if answered
            else b""
        )
        await self._log_rows(
            [
                _row(
                    base,
                    item.serial,
                    local_ids.get(item.link_code),
                    contents.get(k, "") if errors[k] is None else "",
                    errors[k],
                    details.get(k, ""),
                )
                for k, item in enumerate(call.items)
            ]
        )
        if late:
            event(_log, "bulk lookups past the deadline", late=late, persons=n)
        return [(item.serial, errors[k]) for k, item in enumerate(call.items)], sealed
