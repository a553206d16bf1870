"""Graceful shutdown: NOT_SERVING first, calls in flight finish, then the server stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.aio import LoopThread
from support.topology import CITY, PENSION, query, start_topology


def test_provider_drains_in_flight_calls_after_announcing_not_serving(tmp_path: Path) -> None:
    loop = LoopThread()

    async def scenario() -> tuple[list[int], bytes]:
        topo = await start_topology(tmp_path)
        try:
            legacy = topo.stubs[PENSION]
            legacy.faults.delay_ms = 300  # slow on purpose: the call is still in flight at stop
            legacy.lookup_started.clear()
            statuses: list[int] = []
            watch_channel = topo.channel(PENSION, CITY)
            watch = health_pb2_grpc.HealthStub(watch_channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=10
            )
            statuses.append((await watch.read()).status)
            async with topo.channel(CITY, CITY) as ch:
                in_flight = asyncio.ensure_future(
                    topo.requester_stub(ch).Query(
                        query(CITY, topo.people[0], PENSION, "年金給付関係情報", "二十七"),
                        timeout=10,
                    )
                )
                async with asyncio.timeout(5):
                    await legacy.lookup_started.wait()  # the provider waits on its legacy system
                stopping = asyncio.ensure_future(topo.comms[PENSION].stop(grace=5))
                statuses.append((await watch.read()).status)
                answer = await in_flight
                watch.cancel()  # a watch is a call in flight too: it would hold the grace period
                await watch_channel.close(None)
                await stopping
            return statuses, answer.answer
        finally:
            topo.stubs[PENSION].faults.delay_ms = 0
            await topo.stop()

    try:
        statuses, answer = loop.run(scenario())
    finally:
        loop.close()
    assert statuses == [
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    ]
    assert "老齢基礎年金" in answer.decode()
