"""A dishonest agency squats on another party's address (issue 13, finding 4).

Tried on a running deployment, as an outsider would: the pension service's
communication server (or the hub) stops, and the minister's operator starts a
server on its port with the minister's own valid certificate. Before issue 13
the hub's ProvideStream reached the squatter with the provider's link code, and
its answer was logged OK by all three; the city's Relay reached a squatter on
the hub's port with the city's own link code. Now every client names the party
it means, so the handshake fails: no call reaches the squatter, and the city's
caller and log share say which party could not be reached.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from support.aio import LoopThread
from support.topology import CITY, PENSION, Topology, query, start_topology

from ops.deploy import Settings
from renkei.comm.v1 import comm_pb2_grpc
from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel

pytestmark = pytest.mark.dishonest  # docs/separation.md, "The dishonest-operator suite"

SQUATTER = "mhlw"  # the minister: a registered agency with a valid certificate
PENSION_QUERY = ("年金給付関係情報", "二十七")


class _Recorder(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # grpc-stubs: generic
    """Answers nothing, remembers every method that reached it."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> None:
        self.methods.append(handler_call_details.method)
        return None  # UNIMPLEMENTED, had anything got this far


@pytest.fixture
def world(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    settings = Settings(answer_timeout_seconds=0.5, query_timeout_seconds=2.0)
    topology = loop.run(start_topology(tmp_path_factory.mktemp("squat"), settings))
    yield topology
    loop.run(topology.stop())


async def _squat(topo: Topology, port: int) -> tuple[grpc.aio.Server, _Recorder]:
    recorder = _Recorder()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((recorder,))
    bound = server.add_secure_port(
        f"127.0.0.1:{port}", topo.layout.pki.agency(SQUATTER).server_credentials()
    )
    assert bound == port, "the squatter could not take the port"
    await server.start()
    return server, recorder


async def _city_asks_pension(topo: Topology) -> tuple[grpc.StatusCode, str]:
    target = f"127.0.0.1:{topo.comms[CITY].port}"
    async with channel(target, topo.layout.pki.agency(CITY), peer=f"agency:{CITY}") as ch:
        stub = comm_pb2_grpc.RequesterServiceStub(ch)
        try:
            await stub.Query(query(CITY, topo.people[0], PENSION, *PENSION_QUERY), timeout=10)
        except grpc.aio.AioRpcError as err:
            refusal = from_rpc_error(err, fallback_reason="")
            return err.code(), refusal.reason
    return grpc.StatusCode.OK, ""


Outcome = tuple[tuple[grpc.StatusCode, str], "_Recorder"]


def _run(loop: LoopThread, topo: Topology, party: str) -> Outcome:
    """A query that works, then ``party`` stops and the squatter takes its port, then again."""

    async def scenario() -> Outcome:
        assert await _city_asks_pension(topo) == (grpc.StatusCode.OK, "")
        if party == "hub":
            port = topo.hub.port
            await topo.hub.stop(0)
        else:
            port = topo.comms[party].port
            await topo.comms[party].stop(0)
        server, recorder = await _squat(topo, port)
        try:
            return await _city_asks_pension(topo), recorder
        finally:
            await server.stop(0)

    return loop.run(scenario(), timeout=60)


def test_a_squatter_on_the_providers_address_gets_no_call_and_no_link_code(
    loop: LoopThread, world: Topology
) -> None:
    (code, reason), squatter = _run(loop, world, PENSION)

    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE")
    assert squatter.methods == []  # the hub never sent it a ProvideStream or Provide
    last = world.store(CITY).log_rows(limit=10**6)[-1]
    assert (last.counterpart_agency_id, last.reason) == (PENSION, "PROVIDER_UNAVAILABLE")
    assert not [r for r in world.hub_log().rows(limit=10**6) if r.outcome == "OK"][1:], (
        "only the query before the squat was answered"
    )


def test_a_squatter_on_the_hubs_address_gets_no_relay(loop: LoopThread, world: Topology) -> None:
    (code, reason), squatter = _run(loop, world, "hub")

    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE")
    assert squatter.methods == []  # no Relay with the city's link code reached it
    last = world.store(CITY).log_rows(limit=10**6)[-1]
    assert (last.counterpart_agency_id, last.reason) == (PENSION, "HUB_UNAVAILABLE")
