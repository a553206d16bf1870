"""The requester's and provider's pipelines on in-memory fakes (no database, socket or sleep).

A real ``Requester`` asks a real ``Provider`` through ``FakeHub``; the stores,
the legacy system and the clock are fakes, and the loop runs on virtual time,
so a legacy system that answers late costs nothing. Every test checks the
rows both sides leave, tied by the hub's serial.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from support.exchange_fakes import (
    CITY,
    ITEM,
    PENSION,
    PENSION_INFO,
    STAFF,
    TERMINAL,
    Agencies,
    FakeBatchLegacy,
    FakeHub,
    FakeLegacy,
    FakeStore,
    PensionMapper,
)
from support.polling import until
from support.virtual_time import run_virtual

from comm_server.hub_client import RelayAnswer
from comm_server.log_receipts import ShareReceipt
from comm_server.provider.stream import serve_provide_stream
from comm_server.provider.types import ProvideCall, ProvideItem
from comm_server.requester.types import LocalQuery, Person
from comm_server.seal_info import query_info
from comm_server.standard import ANSWER_TAG
from comm_server.store import LogRecord
from renkei import deadline, sealing
from renkei.comm.v1 import comm_pb2
from renkei.errors import DeadlineExceeded, NotFound, PermissionDenied, RenkeiError, Unavailable

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return run_virtual(coro, start=1000.0)


def ask(
    persons: list[str], *, bulk: bool = False, staff_id: str = STAFF, query: bytes = b"y=2025"
) -> LocalQuery:
    return LocalQuery(
        provider_agency_id="pension",
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        purpose="benefit review",
        staff_id=staff_id,
        terminal_id=TERMINAL,
        persons=[Person(p, query) for p in persons],
        bulk=bulk,
    )


def rows(logs: list[LogRecord]) -> list[tuple[int | None, str | None, str, str]]:
    return [(r.serial, r.local_person_id, r.outcome, r.reason) for r in logs]


async def refusal(coro: Coroutine[Any, Any, object]) -> RenkeiError:
    with pytest.raises(RenkeiError) as caught:
        await coro
    return caught.value


def test_a_single_query_is_answered_and_logged_on_both_sides() -> None:
    world = Agencies()
    answered = run(world.requester.query(ask(["P-1"]), 3.0))
    [person] = answered.persons
    assert (person.serial, person.answer, person.error) == (101, b"2000|y=2025", None)
    assert (answered.legal_basis_item, answered.policy_version, answered.ticket) == (ITEM, "v1", "")
    assert rows(world.city_store.logs) == [(101, "P-1", "OK", "")]
    assert rows(world.pension_store.logs) == [(101, "L-1", "OK", "")]
    assert world.city_store.logs[0].content == world.pension_store.logs[0].content == "2000|y=2025"
    assert world.legacy.asked == ["L-1"]


def test_a_bulk_query_is_answered_person_by_person() -> None:
    world = Agencies()
    answered = run(world.requester.query(ask(["P-0", "P-1", "P-2"], bulk=True), 30.0))
    assert [(p.local_person_id, p.serial, p.answer) for p in answered.persons] == [
        ("P-0", 101, b"1000|y=2025"),
        ("P-1", 102, b"2000|y=2025"),
        ("P-2", 103, b"3000|y=2025"),
    ]
    assert rows(world.city_store.logs) == [(101 + n, f"P-{n}", "OK", "") for n in range(3)]
    assert rows(world.pension_store.logs) == [(101 + n, f"L-{n}", "OK", "") for n in range(3)]
    assert world.hub.calls == 1


def test_answers_through_a_mapper_carry_the_standard_record() -> None:
    world = Agencies(mapper=PensionMapper())
    answered = run(world.requester.query(ask(["P-2"]), 3.0))
    [person] = answered.persons
    assert person.record is not None
    assert person.record.pension_benefit.annual_amount_yen == 3000
    assert person.record.local_person_id == "P-2"  # the requester's own number, set on its side
    assert person.answer == b"3000"  # in the city's own format
    assert '"annual_amount_yen":"3000"' in world.pension_store.logs[0].content


@pytest.mark.parametrize("bulk", [False, True])
def test_a_staff_refusal_is_logged_and_never_reaches_the_hub(bulk: bool) -> None:
    world = Agencies()
    err = run(
        refusal(
            world.requester.query(
                ask(["P-0", "P-1"][: 1 + bulk], bulk=bulk, staff_id="NOBODY"), 3.0
            )
        )
    )
    assert isinstance(err, PermissionDenied)
    assert err.reason == "STAFF_NOT_REGISTERED"
    assert world.hub.calls == 0
    assert world.pension_store.logs == []
    expected = [
        (None, f"P-{n}", "PERMISSION_DENIED", "STAFF_NOT_REGISTERED") for n in range(1 + bulk)
    ]
    assert rows(world.city_store.logs) == expected
    assert ("serials" in err.metadata) is bulk


def test_a_single_person_unbound_at_the_requester_is_refused_before_the_hub() -> None:
    world = Agencies()
    err = run(refusal(world.requester.query(ask(["P-9"]), 3.0)))
    assert isinstance(err, NotFound)
    assert err.reason == "LOCAL_PERSON_NOT_BOUND"
    assert err.metadata["field"] == "local_person_id"
    assert world.hub.calls == 0
    assert rows(world.city_store.logs) == [(None, "P-9", "NOT_FOUND", "LOCAL_PERSON_NOT_BOUND")]


def test_a_single_person_unbound_at_the_provider_is_refused_with_its_serial() -> None:
    world = Agencies()
    world.unbind_at_provider(1)
    err = run(refusal(world.requester.query(ask(["P-1"]), 3.0)))
    assert isinstance(err, NotFound)
    assert err.reason == "PERSON_NOT_BOUND"
    assert err.metadata["serial"] == "101"
    assert rows(world.pension_store.logs) == [(101, None, "NOT_FOUND", "PERSON_NOT_BOUND")]
    assert rows(world.city_store.logs) == [(101, "P-1", "NOT_FOUND", "PERSON_NOT_BOUND")]
    assert world.legacy.asked == []


def test_bulk_errors_are_per_person_and_the_others_are_answered() -> None:
    legacy = FakeLegacy({"L-0": b"1000", "L-2": b"3000", "L-3": b"4000"})
    legacy.failing["L-3"] = RuntimeError("a bug in the legacy client")
    world = Agencies(persons=5, legacy=legacy)
    world.unbind_at_provider(4)
    answered = run(
        world.requester.query(ask(["P-0", "P-1", "P-2", "P-3", "P-4", "P-9"], bulk=True), 30.0)
    )
    got = [
        (p.local_person_id, p.serial, p.answer, p.error and (p.error.code, p.error.reason))
        for p in answered.persons
    ]
    assert got == [
        ("P-0", 101, b"1000|y=2025", None),
        ("P-1", 102, b"", ("NOT_FOUND", "RECORD_NOT_FOUND")),
        ("P-2", 103, b"3000|y=2025", None),
        ("P-3", 104, b"", ("UNAVAILABLE", "LEGACY_UNAVAILABLE")),
        ("P-4", 105, b"", ("NOT_FOUND", "PERSON_NOT_BOUND")),
        ("P-9", 0, b"", ("NOT_FOUND", "LOCAL_PERSON_NOT_BOUND")),
    ]
    assert answered.persons[5].error is not None
    assert answered.persons[5].error.message.startswith("items[5].local_person_id")
    assert rows(world.pension_store.logs) == [
        (101, "L-0", "OK", ""),
        (102, "L-1", "NOT_FOUND", "RECORD_NOT_FOUND"),
        (103, "L-2", "OK", ""),
        (104, "L-3", "UNAVAILABLE", "LEGACY_UNAVAILABLE"),
        (105, None, "NOT_FOUND", "PERSON_NOT_BOUND"),
    ]
    assert [r[:3] for r in rows(world.city_store.logs)] == [
        (101, "P-0", "OK"),
        (102, "P-1", "NOT_FOUND"),
        (103, "P-2", "OK"),
        (104, "P-3", "UNAVAILABLE"),
        (105, "P-4", "NOT_FOUND"),
        (None, "P-9", "NOT_FOUND"),
    ]


def test_a_single_legacy_timeout_then_the_late_answer_is_logged_and_discarded() -> None:
    world = Agencies()
    world.legacy.slow["L-1"] = 3.5  # the answer time is 2 s

    async def scenario() -> RenkeiError:
        err = await refusal(world.requester.query(ask(["P-1"]), 5.0))
        await asyncio.sleep(5)  # virtual: the lookup left running answers meanwhile
        return err

    err = run(scenario())
    assert isinstance(err, DeadlineExceeded)
    assert err.reason == "LEGACY_TIMEOUT"
    assert rows(world.pension_store.logs) == [
        (101, "L-1", "DEADLINE_EXCEEDED", "LEGACY_TIMEOUT"),
        (101, "L-1", "LATE_ANSWER", "LATE_ANSWER_DISCARDED"),
    ]
    late = world.pension_store.logs[1]
    assert late.detail is not None
    assert "answered after 3.500 s" in late.detail
    assert late.content == ""  # never relayed, never logged
    assert rows(world.city_store.logs) == [(101, "P-1", "DEADLINE_EXCEEDED", "LEGACY_TIMEOUT")]


def test_a_late_person_in_bulk_fails_alone_and_its_late_answer_is_discarded() -> None:
    world = Agencies()
    world.legacy.slow["L-1"] = 40.0  # the bulk answer time is 30 s

    async def scenario() -> list[tuple[int, str | None]]:
        answered = await world.requester.query(ask(["P-0", "P-1", "P-2"], bulk=True), 60.0)
        await asyncio.sleep(20)
        return [(p.serial, p.error and p.error.reason) for p in answered.persons]

    assert run(scenario()) == [(101, None), (102, "LEGACY_TIMEOUT"), (103, None)]
    assert rows(world.pension_store.logs) == [
        (101, "L-0", "OK", ""),
        (102, "L-1", "DEADLINE_EXCEEDED", "LEGACY_TIMEOUT"),
        (103, "L-2", "OK", ""),
        (102, "L-1", "LATE_ANSWER", "LATE_ANSWER_DISCARDED"),
    ]


def test_a_bad_legacy_record_keeps_its_bytes_in_the_providers_log_only() -> None:
    legacy = FakeLegacy({"L-0": b"1000", "L-1": b"garbage"})
    world = Agencies(persons=2, legacy=legacy, mapper=PensionMapper())
    err = run(refusal(world.requester.query(ask(["P-1"]), 3.0)))
    assert isinstance(err, Unavailable)
    assert err.reason == "LEGACY_RECORD_INVALID"
    [provider_row] = world.pension_store.logs
    assert (provider_row.serial, provider_row.outcome) == (101, "UNAVAILABLE")
    assert provider_row.detail is not None
    assert "garbage" in provider_row.detail
    [requester_row] = world.city_store.logs
    assert requester_row.reason == "LEGACY_RECORD_INVALID"
    assert requester_row.detail is None
    assert "garbage" not in err.message

    answered = run(world.requester.query(ask(["P-0", "P-1"], bulk=True), 30.0))
    assert [p.error and p.error.reason for p in answered.persons] == [
        None,
        "LEGACY_RECORD_INVALID",
    ]
    bulk_rows = world.pension_store.logs[1:]
    assert bulk_rows[0].detail is None
    assert bulk_rows[1].detail is not None
    assert "garbage" in bulk_rows[1].detail


def test_a_batch_system_answers_a_single_query_later_with_a_ticket() -> None:
    world = Agencies(legacy=FakeBatchLegacy({}))
    answered = run(world.requester.query(ask(["P-1"]), 5.0))
    assert answered.ticket
    assert answered.persons[0].serial == 101
    assert rows(world.pension_store.logs) == [(101, "L-1", "ANSWER_PENDING", "")]
    assert rows(world.city_store.logs) == [(101, "P-1", "ANSWER_PENDING", "")]
    assert ("requester", answered.ticket) in world.city_store.tickets
    assert [t.role for t in world.pension_store.tickets.values()] == ["provider"]


def test_a_bulk_call_refused_whole_leaves_a_row_per_person() -> None:
    world = Agencies()
    call = ProvideCall(
        time=world.clock(),
        requester_agency_id=CITY,
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        items=[ProvideItem(201, 0, "pension-code-0"), ProvideItem(202, 1, "pension-code-9")],
        sealed_queries=b"not sealed to the pension service",
        requester_sealing_public_key=world.hub.requester_key,
        item_count=2,
        bulk=True,
        requester_exchange_certificate=world.city_cert,
        query_signature=world.query_signature(b"not sealed to the pension service"),
    )
    err = run(refusal(world.provider.provide(call, 10.0)))
    assert (err.reason, err.metadata["field"]) == ("SEALED_PAYLOAD_INVALID", "sealed_queries")
    assert "serial" not in err.metadata  # the hub knows each person's serial
    assert rows(world.pension_store.logs) == [
        (201, "L-0", "INVALID_ARGUMENT", "SEALED_PAYLOAD_INVALID"),
        (202, None, "INVALID_ARGUMENT", "SEALED_PAYLOAD_INVALID"),
    ]
    assert world.legacy.asked == []


def test_a_bulk_call_of_no_persons_is_refused_before_any_lookup() -> None:
    world = Agencies()
    call = ProvideCall(
        time=world.clock(),
        requester_agency_id=CITY,
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        items=[],
        sealed_queries=b"",
        requester_sealing_public_key=world.hub.requester_key,
        bulk=True,
    )
    err = run(refusal(world.provider.provide(call, 10.0)))
    assert (err.reason, err.metadata["field"]) == ("INVALID_FIELD", "items")
    assert world.pension_store.logs == []


# -- calls cancelled before they are answered: the provider's row all the same --------


def _sealed_query(world: Agencies) -> bytes:
    return sealing.seal(
        b"y=2025",
        sealing.load_public_key(world.hub.provider_key, field="provider key"),
        query_info(CITY, PENSION, PENSION_INFO, ITEM),
    )


def _stream_request(world: Agencies, serial: int, n: int) -> comm_pb2.ProvideStreamRequest:
    return comm_pb2.ProvideStreamRequest(
        call_id=serial,
        timeout_ms=10_000,
        provide=comm_pb2.ProvideRequest(
            serial=serial,
            requester_agency_id=CITY,
            info_kind=PENSION_INFO,
            legal_basis_item=ITEM,
            link_code=f"pension-code-{n}",
            sealed_query=(sealed := _sealed_query(world)),
            requester_sealing_public_key=world.hub.requester_key,
            requester_exchange_certificate=world.city_cert,
            query_signature=world.query_signature(sealed),
        ),
    )


class StreamDropped(Exception):
    """What reading the hub's requests raises when its connection is gone."""


def test_a_stream_dropped_with_calls_in_flight_leaves_an_interrupted_row_per_serial() -> None:
    world = Agencies()
    for n in range(3):
        world.legacy.slow[f"L-{n}"] = 100.0  # still looking up when the stream drops

    async def requests() -> AsyncIterator[comm_pb2.ProvideStreamRequest]:
        for n in range(3):
            yield _stream_request(world, 301 + n, n)
        await until(lambda: len(world.legacy.asked) == 3, what="three lookups to start")
        yield comm_pb2.ProvideStreamRequest(call_id=302, cancel=True)  # the hub gives up on one
        await until(lambda: world.pension_store.logs, what="the cancelled call's row")
        raise StreamDropped

    got: list[comm_pb2.ProvideStreamResponse] = []

    async def serve() -> None:
        async for response in serve_provide_stream(world.provider, requests(), lambda: None):
            got.append(response)

    async def scenario() -> list[comm_pb2.ProvideStreamResponse]:
        with pytest.raises(StreamDropped):
            await serve()
        return got

    assert run(scenario()) == []  # nothing answered: every call was cut short
    assert sorted(rows(world.pension_store.logs)) == [
        (301, "L-0", "INTERRUPTED", "HUB_STREAM_DROPPED"),
        (302, "L-1", "INTERRUPTED", "HUB_CANCELLED"),
        (303, "L-2", "INTERRUPTED", "HUB_STREAM_DROPPED"),
    ]
    assert all(r.detail and "nothing was sent" in r.detail for r in world.pension_store.logs)


@pytest.mark.parametrize("bulk", [False, True])
def test_a_cancelled_unary_call_leaves_an_interrupted_row_per_person(bulk: bool) -> None:
    world = Agencies()
    world.legacy.slow["L-0"] = 100.0

    async def scenario() -> None:
        task = asyncio.create_task(
            world.requester.query(ask(["P-0", "P-1"][: 1 + bulk], bulk=bulk), 60.0)
        )
        await until(lambda: "L-0" in world.legacy.asked, what="the lookup to start")
        task.cancel()  # as grpc cancels a unary handler whose caller went away
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    expected = [(101 + n, f"L-{n}", "INTERRUPTED", "HUB_CANCELLED") for n in range(1 + bulk)]
    assert rows(world.pension_store.logs) == expected


# -- the requester's row has the serial whenever the hub gave one ---------------------


class AlteringHub(FakeHub):
    """A hub whose answers arrive altered: no longer the provider's signed bytes."""

    async def relay(self, **kwargs: Any) -> RelayAnswer:
        answer = await super().relay(**kwargs)
        return replace(answer, sealed_answer=answer.sealed_answer[:-1] + b"\0")


def test_an_altered_answer_is_logged_under_the_serial_the_hub_gave() -> None:
    world = Agencies()
    hub = AlteringHub(
        world.provider,
        world.hub.provider_key,
        world.hub.requester_key,
        world.hub.provider_cert,
        world.hub.requester_cert,
    )
    hub.codes = world.hub.codes
    world.requester._hub = hub
    err = run(refusal(world.requester.query(ask(["P-1"]), 3.0)))
    assert (err.reason, err.metadata["field"]) == ("ANSWER_SIGNATURE_INVALID", "answer_signature")
    assert err.metadata["serial"] == "101"
    assert rows(world.city_store.logs) == [
        (101, "P-1", "PERMISSION_DENIED", "ANSWER_SIGNATURE_INVALID")
    ]
    assert rows(world.pension_store.logs) == [(101, "L-1", "OK", "")]  # the three shares join


class DeadlineHub(FakeHub):
    """A hub that numbers the exchange, then runs out of time waiting for the provider."""

    async def relay(self, **kwargs: Any) -> RelayAnswer:
        raise DeadlineExceeded(
            "PROVIDER_DEADLINE_EXCEEDED", "late", {"serial": str(self._serial())}
        )


def test_a_hub_deadline_refusal_is_logged_under_its_serial() -> None:
    world = Agencies()
    world.requester._hub = DeadlineHub(
        world.provider, world.hub.provider_key, b"", world.hub.provider_cert
    )
    err = run(refusal(world.requester.query(ask(["P-1"]), 3.0)))
    assert (err.reason, err.metadata["serial"]) == ("PROVIDER_DEADLINE_EXCEEDED", "101")
    assert rows(world.city_store.logs) == [
        (101, "P-1", "DEADLINE_EXCEEDED", "PROVIDER_DEADLINE_EXCEEDED")
    ]


@pytest.mark.parametrize("bulk", [False, True])
def test_an_answer_the_requester_cannot_read_is_logged_under_its_serial(bulk: bool) -> None:
    """Opened, but claiming a standard record it is not: ANSWER_INVALID, with its serial."""
    legacy = FakeLegacy({f"L-{n}": ANSWER_TAG + b"\xff\xff" for n in range(2)})
    world = Agencies(persons=2, legacy=legacy)

    async def scenario() -> RenkeiError | list[str | None]:
        try:
            answered = await world.requester.query(ask(["P-0", "P-1"][: 1 + bulk], bulk=bulk), 30.0)
        except RenkeiError as err:
            return err
        return [p.error and p.error.reason for p in answered.persons]

    got = run(scenario())
    if bulk:
        assert got == ["ANSWER_INVALID", "ANSWER_INVALID"]
    else:
        assert isinstance(got, RenkeiError)
        assert (got.reason, got.metadata["serial"]) == ("ANSWER_INVALID", "101")
    expected = [(101 + n, f"P-{n}", "UNAVAILABLE", "ANSWER_INVALID") for n in range(1 + bulk)]
    assert rows(world.city_store.logs) == expected


class StalledLog(FakeStore):
    """A share of the log whose database never takes a row (locked, full, unreachable)."""

    async def append_log(self, record: LogRecord, receipts: Sequence[ShareReceipt] = ()) -> None:
        await asyncio.Event().wait()


def test_a_requester_log_that_stalls_is_refused_before_the_callers_deadline() -> None:
    world = Agencies()
    world.requester._store = StalledLog(dict(world.city_store.codes))

    async def timed() -> tuple[RenkeiError, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        err = await refusal(world.requester.query(ask(["P-1"]), 1.0))
        return err, loop.time() - start

    err, took = run(timed())
    assert (err.code.name, err.reason) == ("UNAVAILABLE", "REQUESTER_LOG_UNAVAILABLE")
    assert err.metadata["serial"] == "101"  # the hub numbered it: the shares can be joined
    assert took == pytest.approx(1.0 - deadline.REQUESTER_ANSWER_SECONDS)
