"""Real exchanges leave shares that verify: single, bulk and answer-later, on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from support.aio import LoopThread
from support.batch_legacy import FakeBatchLegacy
from support.topology import CITY, PENSION, Topology, query, start_topology

from comm_server import share_heads
from comm_server.share_verify import verify_share
from comm_server.store import open_key_store
from ops.demo_data import legacy_records, residents
from ops.deploy import Settings
from renkei.comm.v1 import comm_pb2

PENSION_INFO = "年金給付関係情報"
ITEM = "二十七"


@pytest.fixture(scope="module")
def world(
    loop: LoopThread,
    database: tuple[str | None, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Topology, FakeBatchLegacy]]:
    url, prefix = database
    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        database_url=url,
        schema_prefix=prefix,
    )
    batch = FakeBatchLegacy(legacy_records(residents())[PENSION])
    topo = loop.run(
        start_topology(tmp_path_factory.mktemp("share"), settings, legacy={PENSION: batch})
    )
    yield topo, batch
    loop.run(topo.stop())


async def _query(topo: Topology, request: comm_pb2.QueryRequest) -> comm_pb2.QueryResponse:
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.QueryResponse = await topo.requester_stub(ch).Query(request, timeout=10)
        return response


async def _fetch(topo: Topology, ticket: str) -> comm_pb2.FetchAnswerResponse:
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.FetchAnswerResponse = await topo.requester_stub(ch).FetchAnswer(
            comm_pb2.FetchAnswerRequest(ticket=ticket, staff_id="S-1", terminal_id="T-1"),
            timeout=10,
        )
        return response


async def _bulk(topo: Topology, people: list[int]) -> comm_pb2.BulkQueryResponse:
    request = comm_pb2.BulkQueryRequest(
        provider_agency_id=PENSION,
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        purpose="annual check",
        staff_id="S-1",
        terminal_id="T-1",
        items=[
            comm_pb2.BulkQueryItem(local_person_id=topo.people[p].local_ids[CITY]) for p in people
        ],
    )
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.BulkQueryResponse = await topo.requester_stub(ch).BulkQuery(
            request, timeout=10
        )
        return response


def test_answer_later_and_bulk_exchanges_leave_shares_that_verify(
    loop: LoopThread, world: tuple[Topology, FakeBatchLegacy]
) -> None:
    topo, batch = world
    pending = loop.run(_query(topo, query(CITY, topo.people[0], PENSION, PENSION_INFO, ITEM)))
    assert pending.state == comm_pb2.ANSWER_STATE_PENDING
    batch.release()
    assert loop.run(_fetch(topo, pending.ticket)).serial == pending.serial
    batch.answer_at_once = True
    try:
        bulk = loop.run(_bulk(topo, [0, 1, 2, 1]))
    finally:
        batch.answer_at_once = False
    assert len(bulk.results) == 4

    for agency in (CITY, PENSION):
        store = topo.store(agency)
        config = topo.comms[agency].config
        keys = open_key_store(config, topo.comms[agency].store)
        signer = share_heads.signer(keys, agency)
        share_heads.HeadStore(store.engine).sign(signer, agency, datetime.now(UTC))
        report = verify_share(store.engine, agency, share_heads.verifiers(keys, agency))
        assert report.findings == [], agency
        assert report.rows == len(store.log_rows(limit=100_000)) >= 5
        assert report.heads_checked == 1
