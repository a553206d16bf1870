"""Bulk queries through a legacy client that looks many persons up in one call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from support.aio import LoopThread
from support.polling import wait_for
from support.topology import CITY, PENSION, Topology, start_topology

from comm_server.legacy import ManyLegacyClient
from ops.bench.bulk import MemoryLegacy
from ops.demo_data import legacy_records, residents
from ops.deploy import Settings
from renkei.comm.v1 import comm_pb2
from renkei.errors import Unavailable

PENSION_INFO = "年金給付関係情報"
ITEM = "二十七"


class FaultyManyLegacy(MemoryLegacy):
    """The in-memory table, with per-person failures and a whole-call delay."""

    def __init__(self, records: dict[str, Any]) -> None:
        super().__init__(records)
        self.calls: list[list[tuple[str, str, bytes]]] = []
        self.single_lookups = 0
        self.broken: set[str] = set()
        self.delay = 0.0
        self.whole_failure: Exception | None = None

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        self.single_lookups += 1
        return await super().lookup(local_person_id, info_kind, query, timeout=timeout)

    async def lookup_many(
        self, requests: Sequence[tuple[str, str, bytes]], *, timeout: float
    ) -> list[bytes | Exception]:
        self.calls.append(list(requests))
        if self.delay:
            await asyncio.sleep(self.delay)  # the slowness is the point: a real deadline fires
        if self.whole_failure is not None:
            raise self.whole_failure
        answers = await super().lookup_many(requests, timeout=timeout)
        return [
            RuntimeError("disk on fire") if local in self.broken else answer
            for (local, _, _), answer in zip(requests, answers, strict=True)
        ]


@dataclass
class World:
    topo: Topology
    legacy: FaultyManyLegacy


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
    legacy = FaultyManyLegacy(legacy_records(residents())[PENSION])
    assert isinstance(legacy, ManyLegacyClient)
    topo = loop.run(
        start_topology(tmp_path_factory.mktemp("many"), settings, legacy={PENSION: legacy})
    )
    yield World(topo, legacy)
    loop.run(topo.stop())


async def _bulk(
    topo: Topology, local_ids: list[str], timeout: float = 10
) -> comm_pb2.BulkQueryResponse:
    request = comm_pb2.BulkQueryRequest(
        provider_agency_id=PENSION,
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        purpose="annual check",
        staff_id="S-1",
        terminal_id="T-1",
        items=[comm_pb2.BulkQueryItem(local_person_id=lid) for lid in local_ids],
    )
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.BulkQueryResponse = await topo.requester_stub(ch).BulkQuery(
            request, timeout=timeout
        )
        return response


def _provider_rows(topo: Topology, serial: int) -> list[tuple[str, str]]:
    return [
        (r.outcome, r.reason)
        for r in topo.store(PENSION).log_rows(limit=100_000)
        if r.role == "provider" and r.serial == serial
    ]


def test_one_call_answers_everyone_in_order_and_errors_stay_per_person(
    loop: LoopThread, world: World
) -> None:
    topo, legacy = world.topo, world.legacy
    people = [0, 1, 0]
    local = [topo.people[p].local_ids[CITY] for p in people]
    pension_ids = [topo.people[p].local_ids[PENSION] for p in people]
    legacy.broken = {pension_ids[1]}
    legacy.calls.clear()
    before = legacy.single_lookups
    try:
        response = loop.run(_bulk(topo, local))
    finally:
        legacy.broken = set()
    # One call for the whole request, the persons in the request's order, no single lookups.
    assert [[r[0] for r in call] for call in legacy.calls] == [pension_ids]
    assert legacy.single_lookups == before
    records = legacy_records(topo.people)[PENSION]
    for i, (result, pension_id) in enumerate(zip(response.results, pension_ids, strict=True)):
        if i == 1:
            assert (result.error.code, result.error.reason) == (
                "UNAVAILABLE",
                "LEGACY_UNAVAILABLE",
            )
        else:
            assert not result.HasField("error"), result.error
            assert json.loads(result.answer) == records[pension_id][PENSION_INFO]
    assert _provider_rows(topo, response.results[1].serial) == [
        ("UNAVAILABLE", "LEGACY_UNAVAILABLE")
    ]
    assert _provider_rows(topo, response.results[0].serial) == [("OK", "")]


def test_a_late_call_times_every_person_out_and_each_late_answer_is_logged(
    loop: LoopThread, world: World
) -> None:
    topo, legacy = world.topo, world.legacy
    local = [topo.people[p].local_ids[CITY] for p in (0, 1)]
    # 1.2 s: each hop keeps back a tenth for its way back; the call takes 1.5 s.
    legacy.delay = 1.5
    try:
        response = loop.run(_bulk(topo, local, timeout=1.2))
    finally:
        legacy.delay = 0.0
    for result in response.results:
        assert (result.error.code, result.error.reason) == ("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT")

    def late_rows() -> list[list[tuple[str, str]]]:
        return [_provider_rows(topo, r.serial) for r in response.results]

    wait_for(
        lambda: all(len(r) == 2 for r in late_rows()),
        timeout=10,
        every=0.05,
        what="the provider to log each person's late answer",
    )
    assert (
        late_rows()
        == [[("DEADLINE_EXCEEDED", "LEGACY_TIMEOUT"), ("LATE_ANSWER", "LATE_ANSWER_DISCARDED")]] * 2
    )


def test_a_failed_call_is_every_persons_error(loop: LoopThread, world: World) -> None:
    topo, legacy = world.topo, world.legacy
    local = [topo.people[p].local_ids[CITY] for p in (0, 1)]
    legacy.whole_failure = Unavailable("LEGACY_UNAVAILABLE", "the legacy system is down")
    try:
        response = loop.run(_bulk(topo, local))
    finally:
        legacy.whole_failure = None
    for result in response.results:
        assert (result.error.code, result.error.reason) == ("UNAVAILABLE", "LEGACY_UNAVAILABLE")
        assert _provider_rows(topo, result.serial) == [("UNAVAILABLE", "LEGACY_UNAVAILABLE")]
