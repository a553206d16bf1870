"""Answer-later through the hub, with a provider whose legacy system answers by file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import grpc
import pytest
from support.aio import LoopThread
from support.batch_legacy import FakeBatchLegacy
from support.exchange_certs import FakeAgenciesCa
from support.refusals import refused
from support.topology import CITY, MINISTER, PENSION, Topology, query, start_topology

from comm_server.answer_later import TICKET_TTL
from comm_server.seal_info import answer_info
from hub_server.directory import Agency, Directory
from hub_server.exchange import CollectCall
from ops.demo_data import legacy_records, residents
from ops.deploy import Settings
from renkei import sealing
from renkei.comm.v1 import comm_pb2
from renkei.hub.v1 import hub_pb2

PENSION_INFO = "年金給付関係情報"
ITEM = "二十七"


@dataclass
class World:
    topo: Topology
    batch: FakeBatchLegacy


@pytest.fixture(scope="module")
def world(
    loop: LoopThread,
    database: tuple[str | None, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    url, prefix = database
    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        database_url=url,
        schema_prefix=prefix,
    )
    batch = FakeBatchLegacy(legacy_records(residents())[PENSION])
    topo = loop.run(
        start_topology(tmp_path_factory.mktemp("batch"), settings, legacy={PENSION: batch})
    )
    yield World(topo, batch)
    loop.run(topo.stop())


async def _query(topo: Topology, request: comm_pb2.QueryRequest) -> comm_pb2.QueryResponse:
    async with topo.channel(CITY, CITY) as ch:
        return await topo.requester_stub(ch).Query(request, timeout=10)


async def _fetch(
    topo: Topology, ticket: str, staff_id: str = "S-1", terminal_id: str = "T-1"
) -> comm_pb2.FetchAnswerResponse:
    async with topo.channel(CITY, CITY) as ch:
        return await topo.requester_stub(ch).FetchAnswer(
            comm_pb2.FetchAnswerRequest(ticket=ticket, staff_id=staff_id, terminal_id=terminal_id),
            timeout=10,
        )


async def _hub_fetch(topo: Topology, as_agency: str, serial: int, ticket: str) -> object:
    async with topo.channel("hub", as_agency) as ch:
        return await topo.hub_stub(ch).FetchAnswer(
            hub_pb2.FetchAnswerRequest(serial=serial, ticket=ticket), timeout=10
        )


def _pending(loop: LoopThread, w: World, person: int = 0) -> comm_pb2.QueryResponse:
    request = query(CITY, w.topo.people[person], PENSION, PENSION_INFO, ITEM, purpose="賦課")
    response = loop.run(_query(w.topo, request))
    assert response.state == comm_pb2.ANSWER_STATE_PENDING
    assert response.ticket
    assert response.answer == b""
    return response


def test_a_batch_answer_is_fetched_later_and_every_log_shows_both_halves(
    loop: LoopThread, world: World
) -> None:
    topo, person = world.topo, world.topo.people[0]
    pending = _pending(loop, world)
    serial = pending.serial
    # The legacy system's own ticket (a file name) never leaves the provider.
    assert pending.ticket not in world.batch.submitted
    assert not any(t in pending.ticket for t in world.batch.submitted)

    not_yet = loop.run(refused(_fetch(topo, pending.ticket)))
    assert (not_yet.code, not_yet.reason) == (grpc.StatusCode.UNAVAILABLE, "ANSWER_NOT_READY")
    assert not_yet.metadata["retry_after_seconds"] == "5"
    assert not_yet.metadata["serial"] == str(serial)

    world.batch.release()
    fetched = loop.run(_fetch(topo, pending.ticket, staff_id="Y-1203", terminal_id="YOK-TAX-07"))
    expected = legacy_records(topo.people)[PENSION][person.local_ids[PENSION]][PENSION_INFO]
    assert json.loads(fetched.answer) == expected
    assert (fetched.serial, fetched.legal_basis_item) == (serial, ITEM)

    hub_row = next(r for r in topo.hub_log().rows() if r.serial == serial)
    assert (hub_row.outcome, hub_row.reason) == ("ANSWER_PENDING", "")
    assert [(o, r) for _, o, r in topo.hub_log().fetches(serial)] == [
        ("UNAVAILABLE", "ANSWER_NOT_READY"),
        ("OK", ""),
    ]
    asked = [r for r in topo.store(CITY).log_rows() if r.serial == serial]
    assert [(r.outcome, r.reason, r.staff_id, r.purpose) for r in asked] == [
        ("ANSWER_PENDING", "", "S-1", "賦課"),
        ("UNAVAILABLE", "ANSWER_NOT_READY", "S-1", "賦課"),
        ("OK", "", "Y-1203", "賦課"),
    ]
    assert asked[0].content == ""
    assert json.loads(asked[2].content) == expected
    answered = [r for r in topo.store(PENSION).log_rows() if r.serial == serial]
    assert [(r.outcome, r.reason, r.local_person_id) for r in answered] == [
        ("ANSWER_PENDING", "", person.local_ids[PENSION]),
        ("UNAVAILABLE", "ANSWER_NOT_READY", person.local_ids[PENSION]),
        ("OK", "", person.local_ids[PENSION]),
    ]
    assert json.loads(answered[2].content) == expected

    # Single-use: the ticket is gone at the requester, and the hub refuses a second fetch.
    again = loop.run(refused(_fetch(topo, pending.ticket)))
    assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "TICKET_UNKNOWN")
    twice = loop.run(refused(_hub_fetch(topo, CITY, serial, pending.ticket)))
    assert (twice.code, twice.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ANSWER_ALREADY_FETCHED",
    )


def test_only_the_exchanges_requester_may_fetch_and_the_attempt_is_logged(
    loop: LoopThread, world: World
) -> None:
    pending = _pending(loop, world, person=1)
    refusal = loop.run(refused(_hub_fetch(world.topo, MINISTER, pending.serial, pending.ticket)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_EXCHANGE_REQUESTER",
    )
    assert [(o, r) for _, o, r in world.topo.hub_log().fetches(pending.serial)] == [
        ("PERMISSION_DENIED", "NOT_EXCHANGE_REQUESTER")
    ]
    # The rightful requester still can, once the file is there.
    world.batch.release()
    assert loop.run(_fetch(world.topo, pending.ticket)).serial == pending.serial


def test_a_wrong_ticket_or_serial_is_refused(loop: LoopThread, world: World) -> None:
    pending = _pending(loop, world)
    wrong = loop.run(refused(_hub_fetch(world.topo, CITY, pending.serial, "x" * 32)))
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.NOT_FOUND, "TICKET_UNKNOWN")
    unknown = loop.run(refused(_hub_fetch(world.topo, CITY, 10**9, pending.ticket)))
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "EXCHANGE_UNKNOWN")
    assert unknown.metadata["field"] == "serial"
    missing = loop.run(refused(_fetch(world.topo, "no-such-ticket")))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "TICKET_UNKNOWN")


def test_a_fetch_is_checked_against_the_staff_register(loop: LoopThread, world: World) -> None:
    pending = _pending(loop, world)
    world.batch.release()
    refusal = loop.run(refused(_fetch(world.topo, pending.ticket, staff_id="NOBODY")))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "STAFF_NOT_REGISTERED",
    )
    assert world.topo.hub_log().fetches(pending.serial) == []  # the hub was not asked
    assert loop.run(_fetch(world.topo, pending.ticket)).serial == pending.serial


def test_a_batch_system_that_answers_in_time_answers_inline(loop: LoopThread, world: World) -> None:
    world.batch.answer_at_once = True
    try:
        response = loop.run(
            _query(world.topo, query(CITY, world.topo.people[0], PENSION, PENSION_INFO, ITEM))
        )
    finally:
        world.batch.answer_at_once = False
    assert response.state == comm_pb2.ANSWER_STATE_ANSWERED
    assert (response.ticket, json.loads(response.answer)["年金種別"]) == ("", "老齢基礎年金")
    hub_row = next(r for r in world.topo.hub_log().rows() if r.serial == response.serial)
    assert hub_row.outcome == "OK"
    refusal = loop.run(refused(_hub_fetch(world.topo, CITY, response.serial, "x" * 32)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "EXCHANGE_NOT_PENDING",
    )


def test_only_the_hub_may_collect_and_only_the_agency_may_fetch(
    loop: LoopThread, world: World
) -> None:
    pending = _pending(loop, world)

    async def collect_as_city() -> object:
        async with world.topo.channel(PENSION, CITY) as ch:
            return await world.topo.provider_stub(ch).Collect(
                comm_pb2.CollectRequest(serial=pending.serial, ticket=pending.ticket), timeout=5
            )

    async def fetch_as_minister() -> object:
        async with world.topo.channel(CITY, MINISTER) as ch:
            return await world.topo.requester_stub(ch).FetchAnswer(
                comm_pb2.FetchAnswerRequest(ticket=pending.ticket, staff_id="S-1"), timeout=5
            )

    refusal = loop.run(refused(collect_as_city()))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB")
    refusal = loop.run(refused(fetch_as_minister()))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_OWN_AGENCY",
    )


def test_a_ticket_the_batch_system_never_answers_expires(loop: LoopThread, world: World) -> None:
    pending = _pending(loop, world)
    exchange = world.topo.comms[PENSION].provider
    exchange.ticket_ttl = timedelta(0)
    try:
        refusal = loop.run(refused(_fetch(world.topo, pending.ticket)))
    finally:
        exchange.ticket_ttl = TICKET_TTL
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ANSWER_EXPIRED")
    assert refusal.metadata["serial"] == str(pending.serial)
    # Void on both sides: the requester no longer knows the ticket.
    again = loop.run(refused(_fetch(world.topo, pending.ticket)))
    assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "TICKET_UNKNOWN")
    answered = [r for r in world.topo.store(PENSION).log_rows() if r.serial == pending.serial]
    assert [(r.outcome, r.reason) for r in answered] == [
        ("ANSWER_PENDING", ""),
        ("FAILED_PRECONDITION", "ANSWER_EXPIRED"),
    ]


def test_the_hub_stores_no_payload_and_no_ticket(loop: LoopThread, world: World) -> None:
    """Runs last in this module, after every exchange above."""
    from ops.audit import scan

    topo = world.topo
    pending = _pending(loop, world)
    payloads = [r.content for a in (CITY, PENSION) for r in topo.store(a).log_rows() if r.content]
    assert payloads
    forbidden = {
        "payload": payloads,
        "ticket": [pending.ticket, *world.batch.submitted],
        "local number": [lid for p in topo.people for lid in p.local_ids.values()],
    }
    assert scan(topo.hub_log().engine, forbidden) == []


class ForgingCollect:
    """The hub's gateway, answering FetchAnswer with an answer of the hub's own, sealed to
    the requester's genuine key and bound to the serial as the provider's would be."""

    def __init__(self, inner: Any, requester_key: bytes) -> None:
        self.inner = inner
        self.requester_key = requester_key

    async def collect(
        self, provider: Agency, call: CollectCall, timeout: float
    ) -> tuple[bytes, bytes]:
        _, signature = await self.inner.collect(provider, call, timeout)
        forged = sealing.seal(
            json.dumps({"annual_amount_yen": 1}).encode(),
            sealing.load_public_key(self.requester_key),
            answer_info(
                call.serial, call.requester_agency_id, provider.agency_id, PENSION_INFO, ITEM
            ),
        )
        return forged, signature  # the provider's signature, of its real answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.dishonest
def test_a_fetched_answer_the_provider_did_not_sign_is_refused_and_logged(
    loop: LoopThread, world: World
) -> None:
    topo = world.topo
    pending = _pending(loop, world, person=1)
    world.batch.release()
    linkage = topo.hub.hub
    honest = linkage._gateway
    linkage._gateway = ForgingCollect(honest, linkage.directory.get(CITY).sealing_public_key)
    try:
        refusal = loop.run(refused(_fetch(topo, pending.ticket)))
    finally:
        linkage._gateway = honest
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ANSWER_SIGNATURE_INVALID",
    )
    assert refusal.metadata["serial"] == str(pending.serial)
    asked = [r for r in topo.store(CITY).log_rows() if r.serial == pending.serial]
    assert [(r.outcome, r.reason, r.content) for r in asked][-1] == (
        "PERMISSION_DENIED",
        "ANSWER_SIGNATURE_INVALID",
        "",
    )


@pytest.mark.dishonest
def test_a_collect_naming_a_substitute_requester_certificate_is_refused_by_the_provider(
    loop: LoopThread, world: World
) -> None:
    topo = world.topo
    pending = _pending(loop, world, person=0)
    world.batch.release()
    linkage = topo.hub.hub
    honest = linkage.directory
    _, cert = FakeAgenciesCa.new("the hub operator's CA").agency(CITY)
    linkage.directory = Directory(
        replace(a, exchange_certificate=cert) if a.agency_id == CITY else a for a in honest
    )
    try:
        refusal = loop.run(refused(_fetch(topo, pending.ticket)))
    finally:
        linkage.directory = honest
    assert refusal.reason == "PEER_CERTIFICATE_INVALID"
    answered = [r for r in topo.store(PENSION).log_rows() if r.serial == pending.serial]
    assert (answered[-1].outcome, answered[-1].reason) == (
        "PERMISSION_DENIED",
        "PEER_CERTIFICATE_INVALID",
    )
    asked = [r for r in topo.store(CITY).log_rows() if r.serial == pending.serial]
    assert asked[-1].reason == "PEER_CERTIFICATE_INVALID"
