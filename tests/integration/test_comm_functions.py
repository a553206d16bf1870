"""Communication server functions (R19, R28): staff access control, late answers, isolation."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from support.aio import LoopThread
from support.polling import wait_for
from support.refusals import Refusal, refusal_of, refused
from support.topology import CITY, PENSION, TEST_STAFF, Topology, query

from comm_server.bootstrap import load_register
from comm_server.staff_register import Grant, render
from ops.demo_data import legacy_records
from renkei.config_util import ConfigError

PENSION_INFO = "年金給付関係情報"
TAX_INFO = "地方税関係情報"


async def _query(topo: Topology, requester: str, request: object, timeout: float = 10) -> object:
    async with topo.channel(requester, requester) as ch:
        return await topo.requester_stub(ch).Query(request, timeout=timeout)


async def _outcome(topo: Topology, requester: str, request: object) -> object:
    try:
        return await _query(topo, requester, request)
    except grpc.aio.AioRpcError as err:
        return refusal_of(err)


# -- R19: the staff register ------------------------------------------------


@pytest.mark.parametrize(
    ("staff_id", "terminal_id", "info_kind", "reason"),
    [
        ("NOBODY", "YOK-TAX-07", PENSION_INFO, "STAFF_NOT_REGISTERED"),
        ("Y-1203", "HOME-PC", PENSION_INFO, "TERMINAL_NOT_PERMITTED"),
        ("Y-1203", "YOK-TAX-07", TAX_INFO, "AFFAIR_NOT_PERMITTED"),
    ],
)
def test_staff_outside_the_register_are_refused_and_logged_without_asking_the_hub(
    loop: LoopThread, topo: Topology, staff_id: str, terminal_id: str, info_kind: str, reason: str
) -> None:
    hub_before = len(topo.hub_log().rows())
    pension_before = len(topo.store(PENSION).log_rows())
    request = query(
        CITY,
        topo.people[0],
        PENSION,
        info_kind,
        "二十七",
        staff_id=staff_id,
        terminal_id=terminal_id,
    )
    refusal = loop.run(refused(_query(topo, CITY, request)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, reason)
    assert refusal.metadata["staff_id"] == staff_id
    assert "serial" not in refusal.metadata
    assert len(topo.hub_log().rows()) == hub_before
    assert len(topo.store(PENSION).log_rows()) == pension_before
    mine = topo.store(CITY).log_rows()[-1]
    assert (mine.serial, mine.role, mine.staff_id, mine.terminal_id) == (
        None,
        "requester",
        staff_id,
        terminal_id,
    )
    assert (mine.outcome, mine.reason, mine.content) == ("PERMISSION_DENIED", reason, "")


def test_demo_staff_are_registered_for_their_own_affair(loop: LoopThread, topo: Topology) -> None:
    request = query(
        CITY,
        topo.people[0],
        PENSION,
        PENSION_INFO,
        "二十七",
        staff_id="Y-1203",
        terminal_id="YOK-TAX-07",
    )
    response = loop.run(_query(topo, CITY, request))
    assert response.serial > 0  # type: ignore[attr-defined]


def test_a_changed_register_takes_effect_while_the_server_runs(
    loop: LoopThread, topo: Topology
) -> None:
    request = query(CITY, topo.people[0], PENSION, PENSION_INFO, "二十七", staff_id="NEW-1")
    assert loop.run(refused(_query(topo, CITY, request))).reason == "STAFF_NOT_REGISTERED"
    path = topo.layout.agency_dir(CITY) / "staff.csv"
    path.write_text(render([TEST_STAFF, Grant("NEW-1", ("T-1",), (PENSION_INFO,))]), "utf-8")
    staff = topo.comms[CITY].requester.staff
    assert staff is not None
    wait_for(  # the watch loop re-reads it
        lambda: "NEW-1" in staff.register.by_staff,
        timeout=15,
        every=0.05,
        what="the comm server to re-read its staff register",
    )
    response = loop.run(_query(topo, CITY, request))
    assert response.serial > 0  # type: ignore[attr-defined]


def test_a_malformed_register_is_refused_at_load_naming_file_and_line(
    topo: Topology, tmp_path: Path
) -> None:
    bad = tmp_path / "staff.csv"
    bad.write_text(
        "staff_id,terminals,info_kinds,legal_basis_items,valid_until\nA,T,K,I,someday\n", "utf-8"
    )
    config = replace(topo.comms[CITY].config, staff_register=bad)
    with pytest.raises(ConfigError) as err:
        load_register(config)
    assert f"{bad}: line 2, column 5 (valid_until): 'someday' is not a date" in str(err.value)


# -- R28: answering in time -------------------------------------------------


def test_a_late_legacy_answer_is_discarded_and_logged_by_the_provider(
    loop: LoopThread, topo: Topology
) -> None:
    stub = topo.stubs[PENSION]
    stub.faults.delay_ms = 1500  # the provider's answer time is 0.5 s
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

    def provider_rows() -> list[object]:
        return [r for r in topo.store(PENSION).log_rows() if r.serial == serial]

    wait_for(
        lambda: len(provider_rows()) == 2,
        timeout=15,
        every=0.05,
        what="the provider's late-answer log row",
    )
    first, late = (r for r in topo.store(PENSION).log_rows() if r.serial == serial)
    assert (first.outcome, first.reason) == ("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT")
    assert (late.outcome, late.reason) == ("LATE_ANSWER", "LATE_ANSWER_DISCARDED")
    assert late.content == ""  # nothing was provided
    assert late.detail is not None
    assert "past the 0.5 s limit; discarded" in late.detail
    assert late.local_person_id == topo.people[1].local_ids[PENSION]
    hub_row = next(r for r in topo.hub_log().rows() if r.serial == serial)
    assert (hub_row.outcome, hub_row.reason) == ("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT")
    asked = [r for r in topo.store(CITY).log_rows() if r.serial == serial]
    assert [(r.outcome, r.reason, r.content) for r in asked] == [
        ("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT", "")
    ]


# -- isolation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        ("garbage", grpc.StatusCode.UNAVAILABLE, "LEGACY_GARBAGE"),
        ("drop", grpc.StatusCode.UNAVAILABLE, "LEGACY_UNAVAILABLE"),
        ("slow", grpc.StatusCode.DEADLINE_EXCEEDED, "LEGACY_TIMEOUT"),
    ],
)
def test_one_broken_legacy_answer_fails_alone_and_the_server_keeps_serving(
    loop: LoopThread, topo: Topology, fault: str, code: grpc.StatusCode, reason: str
) -> None:
    bad, good = topo.people[0], topo.people[1]
    stub = topo.stubs[PENSION]
    stub.person_faults[bad.local_ids[PENSION]] = fault
    expected = legacy_records(topo.people)[PENSION][good.local_ids[PENSION]][PENSION_INFO]

    async def together() -> list[object]:
        requests = [query(CITY, bad, PENSION, PENSION_INFO, "二十七")] + [
            query(CITY, good, PENSION, PENSION_INFO, "二十七") for _ in range(5)
        ]
        return list(await asyncio.gather(*(_outcome(topo, CITY, r) for r in requests)))

    try:
        outcomes = loop.run(together())
    finally:
        stub.person_faults.clear()
    first, rest = outcomes[0], outcomes[1:]
    assert isinstance(first, Refusal)
    assert (first.code, first.reason) == (code, reason)
    assert "serial" in first.metadata
    for answer in rest:
        assert not isinstance(answer, Refusal), answer
        assert json.loads(answer.answer) == expected  # type: ignore[attr-defined]
    # Right after, the same servers answer the person who just failed.
    after = loop.run(_query(topo, CITY, query(CITY, bad, PENSION, PENSION_INFO, "二十七")))
    assert after.serial > int(first.metadata["serial"])  # type: ignore[attr-defined]
