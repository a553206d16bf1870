"""Bulk queries through real servers: many persons in one request, items failing alone."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from support.aio import LoopThread
from support.polling import wait_for
from support.refusals import refused
from support.topology import CITY, MINISTER, PENSION, Topology, query

from comm_server.store import correspondence
from ops.demo_data import legacy_records
from renkei import bulk, limits
from renkei.comm.v1 import comm_pb2

PENSION_INFO = "年金給付関係情報"
TAX_INFO = "地方税関係情報"
ITEM = "二十七"


def bulk_request(local_ids: list[str], **overrides: Any) -> comm_pb2.BulkQueryRequest:
    fields: dict[str, Any] = {
        "provider_agency_id": PENSION,
        "info_kind": PENSION_INFO,
        "legal_basis_item": ITEM,
        "purpose": "annual check",
        "staff_id": "S-1",
        "terminal_id": "T-1",
        "items": [comm_pb2.BulkQueryItem(local_person_id=lid) for lid in local_ids],
        **overrides,
    }
    return comm_pb2.BulkQueryRequest(**fields)


async def _bulk(
    topo: Topology, request: comm_pb2.BulkQueryRequest, timeout: float = 10
) -> comm_pb2.BulkQueryResponse:
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.BulkQueryResponse = await topo.requester_stub(ch).BulkQuery(
            request, timeout=timeout
        )
        return response


async def _single(topo: Topology, request: comm_pb2.QueryRequest) -> comm_pb2.QueryResponse:
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.QueryResponse = await topo.requester_stub(ch).Query(request, timeout=10)
        return response


def ids(topo: Topology, agency: str, *people: int) -> list[str]:
    return [topo.people[p].local_ids[agency] for p in people]


def rows_by_serial(topo: Topology, agency: str, role: str) -> dict[int | None, list[Any]]:
    out: dict[int | None, list[Any]] = {}
    for row in topo.store(agency).log_rows(limit=100_000):
        if row.role == role:
            out.setdefault(row.serial, []).append(row)
    return out


def test_bulk_answers_match_single_queries_and_every_person_has_three_joined_shares(
    loop: LoopThread, topo: Topology
) -> None:
    local = ids(topo, CITY, 0, 1, 0)  # a person may appear twice: two exchanges
    response = loop.run(_bulk(topo, bulk_request(local)))
    assert [r.local_person_id for r in response.results] == local
    assert response.legal_basis_item == ITEM
    assert response.policy_version.startswith("sha256:")
    records = legacy_records(topo.people)[PENSION]
    for result, person in zip(response.results, (0, 1, 0), strict=True):
        assert not result.HasField("error"), result.error
        expected = records[topo.people[person].local_ids[PENSION]][PENSION_INFO]
        assert json.loads(result.answer) == expected
        single = loop.run(
            _single(topo, query(CITY, topo.people[person], PENSION, PENSION_INFO, ITEM))
        )
        assert result.answer == single.answer
    serials = [r.serial for r in response.results]
    assert len(set(serials)) == 3
    assert all(s > 0 for s in serials)

    hub = {r.serial: r for r in topo.hub_log().rows(limit=100_000)}
    asked = rows_by_serial(topo, CITY, "requester")
    answered = rows_by_serial(topo, PENSION, "provider")
    for serial, person in zip(serials, (0, 1, 0), strict=True):
        row = hub[serial]
        assert (row.outcome, row.entry.requester_agency_id, row.entry.provider_agency_id) == (
            "OK",
            CITY,
            PENSION,
        )
        assert row.entry.person_key is not None
        assert [(r.local_person_id, r.outcome, r.purpose) for r in asked[serial]] == [
            (topo.people[person].local_ids[CITY], "OK", "annual check")
        ]
        assert [(r.local_person_id, r.outcome) for r in answered[serial]] == [
            (topo.people[person].local_ids[PENSION], "OK")
        ]
        assert json.loads(asked[serial][0].content) == json.loads(answered[serial][0].content)
    assert hub[serials[0]].entry.person_key == hub[serials[2]].entry.person_key


def test_failing_items_fail_alone_and_are_logged_per_person(
    loop: LoopThread, topo: Topology
) -> None:
    city = topo.store(CITY)
    sato_city = topo.people[1].local_ids[CITY]
    # The city's table holding another agency's code for one person: the hub refuses that
    # item as foreign and answers the others.
    foreign = topo.link_code(MINISTER, 1)
    own = topo.link_code(CITY, 1)
    c = correspondence.c

    def set_code(code: str) -> None:
        with city.engine.begin() as conn:
            conn.execute(
                correspondence.update().where(c.local_person_id == sato_city).values(link_code=code)
            )

    suzuki = topo.people[2]  # bound at the city only: the provider has no such person
    yamada_pension = topo.people[0].local_ids[PENSION]
    local = [
        topo.people[0].local_ids[CITY],
        "NOBODY-9",
        sato_city,
        suzuki.local_ids[CITY],
        topo.people[0].local_ids[CITY],
    ]
    set_code(foreign)
    try:
        response = loop.run(_bulk(topo, bulk_request(local)))
    finally:
        set_code(own)
    got = [
        (r.error.code, r.error.reason) if r.HasField("error") else "OK" for r in response.results
    ]
    assert got == [
        "OK",
        ("NOT_FOUND", "LOCAL_PERSON_NOT_BOUND"),
        ("PERMISSION_DENIED", "LINK_CODE_FOREIGN"),
        ("NOT_FOUND", "PERSON_NOT_BOUND"),
        "OK",
    ]
    assert response.results[1].serial == 0  # never reached the hub
    assert "items[1].local_person_id" in response.results[1].error.message
    hub = {r.serial: r for r in topo.hub_log().rows(limit=100_000)}
    foreign_row = hub[response.results[2].serial]
    assert (foreign_row.outcome, foreign_row.reason) == ("PERMISSION_DENIED", "LINK_CODE_FOREIGN")
    assert foreign_row.entry.person_key is None
    unbound_row = hub[response.results[3].serial]
    assert (unbound_row.outcome, unbound_row.reason) == ("NOT_FOUND", "PERSON_NOT_BOUND")
    asked = [r for r in topo.store(CITY).log_rows(limit=100_000) if r.local_person_id == "NOBODY-9"]
    assert [(r.serial, r.outcome, r.reason) for r in asked] == [
        (None, "NOT_FOUND", "LOCAL_PERSON_NOT_BOUND")
    ]
    provided = rows_by_serial(topo, PENSION, "provider")
    assert response.results[2].serial not in provided  # the provider never saw it
    assert [(r.outcome, r.reason) for r in provided[response.results[3].serial]] == [
        ("NOT_FOUND", "PERSON_NOT_BOUND")
    ]
    assert [r.local_person_id for r in provided[response.results[0].serial]] == [yamada_pension]


def test_a_record_the_legacy_system_lacks_and_a_slow_one_fail_alone_within_the_deadline(
    loop: LoopThread, topo: Topology
) -> None:
    stub = topo.stubs[PENSION]
    yamada, sato = topo.people[0], topo.people[1]
    stub.person_faults[sato.local_ids[PENSION]] = "missing"
    try:
        response = loop.run(_bulk(topo, bulk_request(ids(topo, CITY, 0, 1))))
    finally:
        stub.person_faults.clear()
    assert not response.results[0].HasField("error")
    assert (response.results[1].error.code, response.results[1].error.reason) == (
        "NOT_FOUND",
        "RECORD_NOT_FOUND",
    )

    # The caller's deadline reaches the provider: a slow person times out alone.
    stub.person_faults[sato.local_ids[PENSION]] = "slow"
    try:
        # 1.2 s: each hop keeps back a tenth for its way back; the slow one takes 1.5 s.
        response = loop.run(_bulk(topo, bulk_request(ids(topo, CITY, 0, 1)), timeout=1.2))
    finally:
        stub.person_faults.clear()
    assert not response.results[0].HasField("error")
    assert json.loads(response.results[0].answer)
    assert (response.results[1].error.code, response.results[1].error.reason) == (
        "DEADLINE_EXCEEDED",
        "LEGACY_TIMEOUT",
    )
    serial = response.results[1].serial
    hub = {r.serial: r for r in topo.hub_log().rows(limit=100_000)}
    assert (hub[serial].outcome, hub[serial].reason) == ("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT")
    assert yamada.local_ids[CITY] == response.results[0].local_person_id

    def late_row() -> list[tuple[str, str]]:
        rows = rows_by_serial(topo, PENSION, "provider").get(serial, [])
        return [(r.outcome, r.reason) for r in rows]

    # The slow answer still comes: logged under the person's serial and discarded.
    wait_for(
        lambda: len(late_row()) == 2,
        timeout=10,
        every=0.05,
        what="the provider to log the slow person's late answer",
    )
    assert late_row() == [
        ("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT"),
        ("LATE_ANSWER", "LATE_ANSWER_DISCARDED"),
    ]


def test_an_unlawful_bulk_request_is_refused_whole_and_every_person_logged(
    loop: LoopThread, topo: Topology
) -> None:
    before = {r.serial for r in topo.store(PENSION).log_rows(limit=100_000)}
    local = ids(topo, CITY, 0, 1)
    refusal = loop.run(refused(_bulk(topo, bulk_request(local, info_kind=TAX_INFO))))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "INFO_KIND_NOT_LISTED",
    )
    serials = bulk.parse_serials(refusal.metadata["serials"])
    assert len(serials) == 2
    assert all(s > 0 for s in serials)
    hub = {r.serial: r for r in topo.hub_log().rows(limit=100_000)}
    assert [(hub[s].outcome, hub[s].reason) for s in serials] == [
        ("DENIED", "INFO_KIND_NOT_LISTED")
    ] * 2
    assert all(hub[s].entry.person_key for s in serials)
    asked = rows_by_serial(topo, CITY, "requester")
    for serial, lid in zip(serials, local, strict=True):
        assert [(r.local_person_id, r.outcome, r.reason) for r in asked[serial]] == [
            (lid, "PERMISSION_DENIED", "INFO_KIND_NOT_LISTED")
        ]
    assert {r.serial for r in topo.store(PENSION).log_rows(limit=100_000)} == before


def test_a_staff_refusal_refuses_the_request_whole_without_asking_the_hub(
    loop: LoopThread, topo: Topology
) -> None:
    hub_before = len(topo.hub_log().rows(limit=100_000))
    local = ids(topo, CITY, 0, 1)
    refusal = loop.run(refused(_bulk(topo, bulk_request(local, staff_id="NOBODY"))))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "STAFF_NOT_REGISTERED",
    )
    assert len(topo.hub_log().rows(limit=100_000)) == hub_before
    mine = [r for r in topo.store(CITY).log_rows(limit=100_000) if r.staff_id == "NOBODY"]
    assert sorted((r.local_person_id, r.serial, r.reason) for r in mine) == sorted(
        (lid, None, "STAFF_NOT_REGISTERED") for lid in local
    )


@pytest.mark.parametrize(
    ("items", "field"),
    [
        (limits.MAX_BULK_ITEMS + 1, "items"),
        (0, "items"),
    ],
)
def test_a_request_over_the_size_limit_is_invalid_and_writes_nothing(
    loop: LoopThread, topo: Topology, items: int, field: str
) -> None:
    hub_before = len(topo.hub_log().rows(limit=100_000))
    city_before = len(topo.store(CITY).log_rows(limit=100_000))
    request = bulk_request([f"L-{i}" for i in range(items)])
    refusal = loop.run(refused(_bulk(topo, request)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert refusal.metadata["field"] == field
    assert field in refusal.message
    assert len(topo.hub_log().rows(limit=100_000)) == hub_before
    assert len(topo.store(CITY).log_rows(limit=100_000)) == city_before


def test_a_bad_item_field_is_named_with_its_index(loop: LoopThread, topo: Topology) -> None:
    request = bulk_request(["A0001001", "x" * 65])
    refusal = loop.run(refused(_bulk(topo, request)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert refusal.metadata["field"] == "items[1].local_person_id"


def test_only_the_hub_may_ask_for_bulk_answers(loop: LoopThread, topo: Topology) -> None:
    async def provide() -> object:
        async with topo.channel(PENSION, CITY) as ch:
            return await topo.provider_stub(ch).BulkProvide(
                comm_pb2.BulkProvideRequest(item_count=1), timeout=5
            )

    refusal = loop.run(refused(provide()))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB")


def test_hub_store_holds_no_payload_or_identifier_after_bulk_queries(topo: Topology) -> None:
    """Runs last in this module, after every bulk exchange above."""
    from ops.audit import scan

    payloads = [r.content for a in (CITY, PENSION) for r in topo.store(a).log_rows(100_000)]
    forbidden = {
        "payload": [c for c in payloads if c],
        "local number": [lid for p in topo.people for lid in p.local_ids.values()],
        "link code": [
            code for a in (CITY, PENSION, MINISTER) for code in topo.store(a).all_link_codes()
        ],
    }
    assert forbidden["payload"]
    assert scan(topo.hub_log().engine, forbidden) == []
    with topo.hub_log().engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from hub_log")).scalar()
