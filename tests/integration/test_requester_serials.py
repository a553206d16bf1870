"""A requester's row carries the hub's serial however the call ends (R24: shares joinable).

The hub announces a relay's serial in initial metadata once its row is
durable, so a call ended without the hub's status (the hub gone mid-call,
the call's own deadline) still logs the serial at the requester.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from support.aio import LoopThread
from support.topology import CITY, PENSION, query, start_topology

from comm_server.hub_client import HubClient
from renkei.errors import RenkeiError
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc


def test_a_hub_stopped_mid_call_leaves_the_requesters_row_with_the_hubs_serial(
    tmp_path: Path,
) -> None:
    loop = LoopThread()

    async def scenario() -> tuple[grpc.aio.AioRpcError, list[Any], list[Any]]:
        topo = await start_topology(tmp_path)
        try:
            legacy = topo.stubs[PENSION]
            legacy.faults.delay_ms = 3000  # the provider is still asking when the hub goes
            legacy.lookup_started.clear()
            async with topo.channel(CITY, CITY) as ch:
                in_flight = asyncio.ensure_future(
                    topo.requester_stub(ch).Query(
                        query(CITY, topo.people[0], PENSION, "年金給付関係情報", "二十七"),
                        timeout=10,
                    )
                )
                async with asyncio.timeout(5):
                    await legacy.lookup_started.wait()
                await topo.hub.stop(0)
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await in_flight
            return failed.value, topo.hub_log().rows(), topo.store(CITY).log_rows()
        finally:
            topo.stubs[PENSION].faults.delay_ms = 0
            await topo.stop()

    try:
        error, hub_rows, city_rows = loop.run(scenario())
    finally:
        loop.close()
    assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    (hub_row,) = hub_rows
    (asked,) = [r for r in city_rows if r.role == "requester"]
    assert asked.serial == hub_row.serial
    assert asked.outcome != "OK"


class _AnnouncingHub(hub_pb2_grpc.HubServiceServicer):
    """Logs (announces) a serial, then never answers: the caller's deadline ends the call."""

    async def Relay(  # gRPC method names are PascalCase
        self, request: hub_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> hub_pb2.RelayResponse:
        await context.send_initial_metadata((("x-renkei-serial", "7"),))
        await asyncio.sleep(10)  # the silence is the point: the client's deadline fires
        return hub_pb2.RelayResponse()

    async def BulkRelay(  # gRPC method names are PascalCase
        self, request: hub_pb2.BulkRelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> hub_pb2.BulkRelayResponse:
        await context.send_initial_metadata((("x-renkei-serials", "7-9"),))
        await asyncio.sleep(10)  # the silence is the point: the client's deadline fires
        return hub_pb2.BulkRelayResponse()


def test_a_relay_ended_by_its_deadline_keeps_the_serials_the_hub_announced() -> None:
    async def scenario() -> tuple[RenkeiError, RenkeiError]:
        server = grpc.aio.server()
        hub_pb2_grpc.add_HubServiceServicer_to_server(_AnnouncingHub(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        client = HubClient(f"127.0.0.1:{port}", None, insecure_development=True)
        try:
            with pytest.raises(RenkeiError) as single:
                await client.relay(
                    provider_agency_id=PENSION,
                    info_kind="年金給付関係情報",
                    legal_basis_item="二十七",
                    link_code="x",
                    sealed_query=b"q",
                    query_signature=b"s",
                    timeout=0.2,
                )
            with pytest.raises(RenkeiError) as many:
                await client.bulk_relay(
                    provider_agency_id=PENSION,
                    info_kind="年金給付関係情報",
                    legal_basis_item="二十七",
                    link_codes=["x", "y", "z"],
                    sealed_queries=b"q",
                    query_signature=b"s",
                    timeout=0.2,
                )
            return single.value, many.value
        finally:
            await client.close()
            await server.stop(0)

    loop = LoopThread()
    try:
        single, many = loop.run(scenario())
    finally:
        loop.close()
    assert (single.code, single.reason) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "HUB_DEADLINE_EXCEEDED",
    )
    assert single.metadata["serial"] == "7"
    assert many.metadata["serials"] == "7-9"
