"""The core linkage path through real servers: lawful exchanges and every refusal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from support.aio import LoopThread
from support.refusals import Refusal, refused
from support.topology import CITY, MINISTER, PENSION, Topology, query

from ops.demo_data import legacy_records
from renkei.hub.v1 import hub_pb2

PENSION_INFO = "年金給付関係情報"
TAX_INFO = "地方税関係情報"


def hub_rows(topo: Topology) -> int:
    return len(topo.hub_log().rows())


async def _query(topo: Topology, requester: str, request: object, timeout: float = 10) -> object:
    async with topo.channel(requester, requester) as ch:
        return await topo.requester_stub(ch).Query(request, timeout=timeout)


def test_lawful_query_returns_the_providers_record_and_logs_three_shares(
    loop: LoopThread, topo: Topology
) -> None:
    person = topo.people[0]
    request = query(
        CITY,
        person,
        PENSION,
        PENSION_INFO,
        "二十七",
        purpose="賦課",
        staff_id="Y-1203",
        terminal_id="YOK-TAX-07",
    )
    response = loop.run(_query(topo, CITY, request))
    expected = legacy_records(topo.people)[PENSION][person.local_ids[PENSION]][PENSION_INFO]
    assert json.loads(response.answer) == expected  # type: ignore[attr-defined]
    serial = response.serial  # type: ignore[attr-defined]
    assert serial > 0
    assert response.legal_basis_item == "二十七"  # type: ignore[attr-defined]
    assert response.policy_version.startswith("sha256:")  # type: ignore[attr-defined]

    hub_row = next(r for r in topo.hub_log().rows() if r.serial == serial)
    assert (hub_row.outcome, hub_row.entry.requester_agency_id) == ("OK", CITY)
    assert (hub_row.entry.provider_agency_id, hub_row.entry.info_kind) == (PENSION, PENSION_INFO)
    assert hub_row.entry.legal_basis_item == "二十七"
    assert hub_row.entry.person_key is not None
    assert len(hub_row.entry.person_key) == 64

    asked = [r for r in topo.store(CITY).log_rows() if r.serial == serial]
    assert [(r.role, r.staff_id, r.purpose, r.outcome) for r in asked] == [
        ("requester", "Y-1203", "賦課", "OK")
    ]
    assert json.loads(asked[0].content) == expected
    answered = [r for r in topo.store(PENSION).log_rows() if r.serial == serial]
    assert [(r.role, r.local_person_id, r.outcome) for r in answered] == [
        ("provider", person.local_ids[PENSION], "OK")
    ]
    assert answered[0].staff_id == "auto-responder"


def test_the_same_person_gets_one_person_key_at_the_hub_across_agencies(
    loop: LoopThread, topo: Topology
) -> None:
    person = topo.people[1]
    a = loop.run(_query(topo, CITY, query(CITY, person, PENSION, PENSION_INFO, "二十七")))
    b = loop.run(_query(topo, MINISTER, query(MINISTER, person, CITY, TAX_INFO, "四十八")))
    rows = {r.serial: r for r in topo.hub_log().rows()}
    key = rows[a.serial].entry.person_key  # type: ignore[attr-defined]
    assert key == rows[b.serial].entry.person_key  # type: ignore[attr-defined]
    assert {r.serial for r in topo.hub_log().rows_for_person(key or "")} >= {
        a.serial,  # type: ignore[attr-defined]
        b.serial,  # type: ignore[attr-defined]
    }


def test_link_codes_differ_per_agency_and_never_reach_another_agency(
    loop: LoopThread, topo: Topology
) -> None:
    codes = {a: topo.link_code(a, 0) for a in (CITY, PENSION, MINISTER)}
    assert len(set(codes.values())) == 3
    response = loop.run(
        _query(topo, CITY, query(CITY, topo.people[0], PENSION, PENSION_INFO, "二十七"))
    )
    wire = response.SerializeToString()  # type: ignore[attr-defined]
    for code in codes.values():
        assert code.encode() not in wire


@pytest.mark.parametrize(
    ("requester", "provider", "info_kind", "item", "reason"),
    [
        (CITY, PENSION, TAX_INFO, "二十七", "INFO_KIND_NOT_LISTED"),
        (PENSION, CITY, TAX_INFO, "四十八", "NO_ITEM_FOR_REQUESTER"),
        (CITY, MINISTER, TAX_INFO, "四十八", "REQUESTER_NOT_IN_ITEM"),
        (MINISTER, MINISTER, TAX_INFO, "四十八", "PROVIDER_NOT_IN_ITEM"),
        (CITY, PENSION, PENSION_INFO, "九百九十九", "LEGAL_BASIS_ITEM_UNKNOWN"),
    ],
)
def test_unlisted_exchanges_are_denied_and_logged_without_asking_the_provider(
    loop: LoopThread,
    topo: Topology,
    requester: str,
    provider: str,
    info_kind: str,
    item: str,
    reason: str,
) -> None:
    person = topo.people[0]
    refusal = loop.run(
        refused(_query(topo, requester, query(requester, person, provider, info_kind, item)))
    )
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, reason)
    serial = int(refusal.metadata["serial"])
    hub_row = next(r for r in topo.hub_log().rows() if r.serial == serial)
    assert (hub_row.outcome, hub_row.reason) == ("DENIED", reason)
    mine = [r for r in topo.store(requester).log_rows() if r.serial == serial]
    assert [(r.outcome, r.reason) for r in mine] == [("PERMISSION_DENIED", reason)]
    provided = [r for r in topo.store(provider).log_rows() if r.serial == serial]
    assert not [r for r in provided if r.role == "provider"]


def test_approve_cites_the_item_or_names_the_denial(loop: LoopThread, topo: Topology) -> None:
    async def approve(as_agency: str, provider: str, info: str, item: str) -> object:
        async with topo.channel("hub", as_agency) as ch:
            return await topo.hub_stub(ch).Approve(
                hub_pb2.ApproveRequest(
                    provider_agency_id=provider, info_kind=info, legal_basis_item=item
                ),
                timeout=5,
            )

    ok = loop.run(approve(CITY, PENSION, PENSION_INFO, "二十七"))
    assert ok.decision == hub_pb2.DECISION_APPROVED  # type: ignore[attr-defined]
    assert ok.citation.item == "二十七"  # type: ignore[attr-defined]
    assert "地方税" in ok.citation.affair  # type: ignore[attr-defined]
    denied = loop.run(approve(PENSION, CITY, TAX_INFO, "四十八"))
    assert denied.decision == hub_pb2.DECISION_DENIED  # type: ignore[attr-defined]
    assert denied.reason == "NO_ITEM_FOR_REQUESTER"  # type: ignore[attr-defined]


async def _relay(topo: Topology, as_agency: str, **fields: object) -> object:
    request = hub_pb2.RelayRequest(
        **{  # type: ignore[arg-type]
            "provider_agency_id": PENSION,
            "info_kind": PENSION_INFO,
            "legal_basis_item": "二十七",
            **fields,
        }
    )
    async with topo.channel("hub", as_agency) as ch:
        return await topo.hub_stub(ch).Relay(request, timeout=5)


@pytest.mark.dishonest
def test_another_agencys_link_code_is_refused_as_foreign(loop: LoopThread, topo: Topology) -> None:
    before = hub_rows(topo)
    foreign = topo.link_code(MINISTER, 0)
    refusal = loop.run(refused(_relay(topo, CITY, link_code=foreign)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "LINK_CODE_FOREIGN",
    )
    assert refusal.metadata["field"] == "link_code"
    assert hub_rows(topo) == before + 1  # a security event is logged, with no person


def test_an_altered_link_code_is_refused_never_mistranslated(
    loop: LoopThread, topo: Topology
) -> None:
    code = topo.link_code(CITY, 0)
    i = len(code) // 2
    altered = code[:i] + ("A" if code[i] != "A" else "B") + code[i + 1 :]
    refusal = loop.run(refused(_relay(topo, CITY, link_code=altered)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "LINK_CODE_CORRUPT")


def test_a_link_code_under_an_unknown_key_is_refused(loop: LoopThread, topo: Topology) -> None:
    code = topo.link_code(CITY, 0)
    refusal = loop.run(refused(_relay(topo, CITY, link_code="7" + code[1:])))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "LINK_CODE_KEY_UNKNOWN",
    )


def test_an_unknown_provider_agency_is_not_found(loop: LoopThread, topo: Topology) -> None:
    before = hub_rows(topo)
    refusal = loop.run(
        refused(_relay(topo, CITY, provider_agency_id="999999", link_code=topo.link_code(CITY, 0)))
    )
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "AGENCY_UNKNOWN")
    assert refusal.metadata["field"] == "provider_agency_id"
    assert hub_rows(topo) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"provider_agency_id": ""}, "provider_agency_id"),
        ({"provider_agency_id": "../etc"}, "provider_agency_id"),
        ({"info_kind": ""}, "info_kind"),
        ({"info_kind": "x" * 201}, "info_kind"),
        ({"legal_basis_item": "一\n"}, "legal_basis_item"),
        ({"link_code": ""}, "link_code"),
        ({"sealed_query": b"\0" * (256 * 1024 + 1)}, "sealed_query"),
    ],
)
def test_malformed_relay_requests_are_invalid_and_write_nothing(
    loop: LoopThread, topo: Topology, fields: dict[str, object], field: str
) -> None:
    before = hub_rows(topo)
    request = {"link_code": topo.link_code(CITY, 0), **fields}
    refusal = loop.run(refused(_relay(topo, CITY, **request)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert refusal.metadata["field"] == field
    assert field in refusal.message
    assert hub_rows(topo) == before


def test_malformed_link_code_is_invalid(loop: LoopThread, topo: Topology) -> None:
    for bad in ("1.!!!!", "abc", "0." + "A" * 58, "1." + "A" * 200):
        refusal = loop.run(refused(_relay(topo, CITY, link_code=bad)))
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert refusal.reason == "LINK_CODE_MALFORMED", bad


def test_translate_answers_versions_and_never_a_code(loop: LoopThread, topo: Topology) -> None:
    async def translate(link_code: str) -> object:
        async with topo.channel("hub", CITY) as ch:
            return await topo.hub_stub(ch).Translate(
                hub_pb2.TranslateRequest(provider_agency_id=PENSION, link_code=link_code),
                timeout=5,
            )

    response = loop.run(translate(topo.link_code(CITY, 0)))
    assert response.link_code_key_version == 1  # type: ignore[attr-defined]
    assert response.current_key_version == 1  # type: ignore[attr-defined]
    assert set(response.DESCRIPTOR.fields_by_name) == {  # type: ignore[attr-defined]
        "provider_agency_id",
        "link_code_key_version",
        "current_key_version",
    }
    refusal = loop.run(refused(translate(topo.link_code(PENSION, 0))))
    assert refusal.reason == "LINK_CODE_FOREIGN"


def test_slow_legacy_system_gives_deadline_exceeded_logged_on_every_side(
    loop: LoopThread, topo: Topology
) -> None:
    stub = topo.stubs[PENSION]
    stub.faults.delay_ms = 2000
    try:
        refusal = loop.run(
            refused(
                _query(topo, CITY, query(CITY, topo.people[1], PENSION, PENSION_INFO, "二十七"))
            )
        )
    finally:
        stub.faults.delay_ms = 0
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "LEGACY_TIMEOUT")
    serial = int(refusal.metadata["serial"])
    hub_row = next(r for r in topo.hub_log().rows() if r.serial == serial)
    assert (hub_row.outcome, hub_row.reason) == ("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT")
    for agency, role in ((CITY, "requester"), (PENSION, "provider")):
        rows = [r for r in topo.store(agency).log_rows() if r.serial == serial]
        assert [(r.role, r.outcome, r.reason) for r in rows] == [
            (role, "DEADLINE_EXCEEDED", "LEGACY_TIMEOUT")
        ]


@pytest.mark.parametrize(
    ("fault", "reason"), [("garbage", "LEGACY_GARBAGE"), ("drop", "LEGACY_UNAVAILABLE")]
)
def test_a_broken_legacy_system_is_unavailable_with_a_reason(
    loop: LoopThread, topo: Topology, fault: str, reason: str
) -> None:
    stub = topo.stubs[PENSION]
    setattr(stub.faults, fault, True)
    try:
        refusal = loop.run(
            refused(
                _query(topo, CITY, query(CITY, topo.people[0], PENSION, PENSION_INFO, "二十七"))
            )
        )
    finally:
        setattr(stub.faults, fault, False)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, reason)


def test_a_person_unknown_to_the_provider_is_not_found(loop: LoopThread, topo: Topology) -> None:
    suzuki = topo.people[2]  # bound at the city only
    refusal = loop.run(
        refused(_query(topo, CITY, query(CITY, suzuki, PENSION, PENSION_INFO, "二十七")))
    )
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "PERSON_NOT_BOUND")


def test_an_unbound_local_person_is_not_found_locally(loop: LoopThread, topo: Topology) -> None:
    request = query(CITY, topo.people[0], PENSION, PENSION_INFO, "二十七", local_person_id="ZZZ")
    refusal = loop.run(refused(_query(topo, CITY, request)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "LOCAL_PERSON_NOT_BOUND")
    assert refusal.metadata["field"] == "local_person_id"


def test_only_the_hub_may_ask_a_provider(loop: LoopThread, topo: Topology) -> None:
    from renkei.comm.v1 import comm_pb2

    async def provide() -> object:
        async with topo.channel(PENSION, CITY) as ch:
            return await topo.provider_stub(ch).Provide(
                comm_pb2.ProvideRequest(serial=1, link_code=topo.link_code(PENSION, 0)), timeout=5
            )

    refusal = loop.run(refused(provide()))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB")


def test_only_the_agency_itself_may_query_through_its_server(
    loop: LoopThread, topo: Topology
) -> None:
    async def as_minister() -> object:
        async with topo.channel(CITY, MINISTER) as ch:
            return await topo.requester_stub(ch).Query(
                query(CITY, topo.people[0], PENSION, PENSION_INFO, "二十七"), timeout=5
            )

    refusal = loop.run(refused(as_minister()))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_OWN_AGENCY",
    )


def test_the_callers_deadline_travels_to_the_provider(loop: LoopThread, topo: Topology) -> None:
    stub = topo.stubs[PENSION]
    stub.faults.delay_ms = 2000
    before = {r.serial for r in topo.store(PENSION).log_rows()}
    try:
        request = query(CITY, topo.people[0], PENSION, PENSION_INFO, "二十七")
        refusal = loop.run(refused(_query(topo, CITY, request, timeout=0.4)))
    finally:
        stub.faults.delay_ms = 0
    assert refusal.code == grpc.StatusCode.DEADLINE_EXCEEDED
    provided = [r for r in topo.store(PENSION).log_rows() if r.serial not in before]
    assert [(r.role, r.outcome) for r in provided] == [("provider", "DEADLINE_EXCEEDED")]


def test_hub_store_holds_no_link_code_resident_code_local_number_or_payload(
    topo: Topology,
) -> None:
    """Runs last in this module, after every exchange above."""
    from ops.audit import scan

    link_codes = [
        topo.store(agency).link_code_for(local)
        for person in topo.people
        for agency, local in person.local_ids.items()
        if agency in topo.comms
    ]
    payloads = [r.content for a in (CITY, PENSION, MINISTER) for r in topo.store(a).log_rows()]
    forbidden = {
        "link code": [c for c in link_codes if c],
        "resident code": [p.resident_code for p in topo.people],
        "local number": [lid for p in topo.people for lid in p.local_ids.values()],
        "name": [p.name for p in topo.people],
        "payload": [c for c in payloads if c],
    }
    assert len(forbidden["link code"]) == 7
    assert forbidden["payload"]
    assert scan(topo.hub_log().engine, forbidden) == []
    # The scanner does find what is there: the agencies' own stores hold their link codes.
    city_store = topo.store(CITY).engine
    assert scan(city_store, {"link code": forbidden["link code"]})


def test_a_provide_time_out_of_range_is_invalid_field_on_every_provide_rpc(
    loop: LoopThread, topo: Topology
) -> None:
    """Unary, bulk and stream alike: ``time`` past 9999 or with negative nanos is the
    caller's error, not the provider's (ToDatetime's ValueError was INTERNAL)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from renkei.comm.v1 import comm_pb2

    link_code = topo.link_code(PENSION, 0)
    bad = [Timestamp(seconds=253402300800), Timestamp(seconds=0, nanos=-1)]

    async def go() -> list[Refusal]:
        refusals: list[Refusal] = []
        async with topo.channel(PENSION, "hub") as ch:
            stub = topo.provider_stub(ch)
            for when in bad:
                provide = comm_pb2.ProvideRequest(serial=1, time=when, link_code=link_code)
                refusals.append(await refused(stub.Provide(provide, timeout=5)))
                bulk = comm_pb2.BulkProvideRequest(
                    time=when,
                    item_count=1,
                    items=[comm_pb2.BulkProvideItem(serial=1, link_code=link_code)],
                )
                refusals.append(await refused(stub.BulkProvide(bulk, timeout=5)))

                async def one(
                    provide: comm_pb2.ProvideRequest = provide,
                ) -> AsyncIterator[comm_pb2.ProvideStreamRequest]:
                    yield comm_pb2.ProvideStreamRequest(call_id=7, provide=provide)

                [answer] = [a async for a in stub.ProvideStream(one(), timeout=5)]
                assert answer.call_id == 7
                assert answer.WhichOneof("result") == "error"
                assert answer.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
                assert answer.error.reason == "INVALID_FIELD"
                assert answer.error.metadata["field"] == "time"
        return refusals

    for refusal in loop.run(go(), timeout=30):
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
        assert refusal.reason == "INVALID_FIELD"
        assert refusal.metadata["field"] == "time"
