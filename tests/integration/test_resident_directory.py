"""The registry's ResidentDirectoryService: the numbering agency's only view of the register.

Served by the registry's own process (the same port as BindingService), over
mutual TLS, for ``service:numbering`` only; it answers which of the codes
sent exist, nothing more. The numbering agency (which holds no URL to the
registry's store) issues Numbers through it. Issue 13, finding 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.aio import LoopThread
from support.refusals import Refusal, refused
from support.topology import CITY, Topology

from legacy_stubs.registry.store import RegistryStore
from numbering import number
from ops.deploy import registry_engine
from registry_binding.bootstrap import DIRECTORY_SERVICE_NAME
from renkei.grpcutil.client import channel
from renkei.limits import MAX_RESIDENT_CODES_CHECK
from renkei.numbering.v1 import numbering_pb2, numbering_pb2_grpc
from renkei.pki import TlsFiles
from renkei.registry.v1 import resident_directory_pb2 as pb
from renkei.registry.v1 import resident_directory_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    Stub = pb_grpc.ResidentDirectoryServiceAsyncStub

UNKNOWN = "99999999999"


def _tls(topo: Topology, party: str) -> TlsFiles:
    pki = topo.layout.pki
    if party == "hub":
        return pki.hub()
    kind, _, name = party.partition(":")
    return pki.agency(name) if kind == "agency" else pki.service(name)


def _ask(loop: LoopThread, topo: Topology, party: str, codes: list[str]) -> Any:
    """CheckResidentCodes as ``party``: the response, or the Refusal."""

    async def run() -> Any:
        async with channel(
            f"127.0.0.1:{topo.registry.port}", _tls(topo, party), peer="service:registry"
        ) as ch:
            stub: Stub = pb_grpc.ResidentDirectoryServiceStub(ch)
            call = stub.CheckResidentCodes(
                pb.CheckResidentCodesRequest(resident_codes=codes), timeout=10
            )
            try:
                return await call
            except grpc.aio.AioRpcError:
                return await refused(call)

    return loop.run(run())


def _synthetic(topo: Topology, count: int) -> list[str]:
    """Residents of the register the topology gave no Number to."""
    store = RegistryStore(registry_engine(topo.layout))
    try:
        demo = {p.resident_code for p in topo.people}
        return [r.resident_code for r in store.sample(200) if r.resident_code not in demo][:count]
    finally:
        store.engine.dispose()


def test_the_numbering_agency_learns_which_codes_exist(loop: LoopThread, topo: Topology) -> None:
    known = _synthetic(topo, 3)
    answer = _ask(loop, topo, "service:numbering", [*known, UNKNOWN, known[0]])
    assert isinstance(answer, pb.CheckResidentCodesResponse)
    assert sorted(answer.existing_resident_codes) == sorted(known)
    # Existence only: the response has no other field set.
    assert [f.name for f, _ in answer.ListFields()] == ["existing_resident_codes"]
    empty = _ask(loop, topo, "service:numbering", [])
    assert list(empty.existing_resident_codes) == []


@pytest.mark.parametrize(
    "party", [f"agency:{CITY}", "hub", "service:registry", "service:id-issuer"]
)
def test_anyone_else_is_refused(loop: LoopThread, topo: Topology, party: str) -> None:
    got = _ask(loop, topo, party, _synthetic(topo, 1))
    assert got == Refusal(
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_AUTHORIZED",
        {"caller": party, "operation": "directory"},
        got.message,
    )


@pytest.mark.parametrize(
    ("codes", "problem"),
    [
        (["10000000000"] * (MAX_RESIDENT_CODES_CHECK + 1), f"at most {MAX_RESIDENT_CODES_CHECK}"),
        (["1234567890"], "11 ASCII digits"),
        (["１２３４５６７８９０１"], "11 ASCII digits"),
        (["1234567890a"], "11 ASCII digits"),
    ],
)
def test_bad_requests_name_the_field(
    loop: LoopThread, topo: Topology, codes: list[str], problem: str
) -> None:
    got = _ask(loop, topo, "service:numbering", codes)
    assert (got.code, got.reason, got.metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "resident_codes"},
    )
    assert problem in got.message
    assert "resident_codes" in got.message


def test_health_and_reflection_name_the_directory(loop: LoopThread, topo: Topology) -> None:
    async def check() -> tuple[int, list[str]]:
        async with channel(
            f"127.0.0.1:{topo.registry.port}",
            topo.layout.pki.service("numbering"),
            peer="service:registry",
        ) as ch:
            health = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=DIRECTORY_SERVICE_NAME), timeout=5
            )
            names: list[str] = []
            stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            async for answer in stream:
                names += [s.name for s in answer.list_services_response.service]
            return health.status, names

    status, names = loop.run(check())
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert {DIRECTORY_SERVICE_NAME, "renkei.registry.v1.BindingService"} <= set(names)


def test_numbering_issues_through_the_directory(loop: LoopThread, topo: Topology) -> None:
    """A code the register knows gets a Number; an unknown one is refused as before."""
    fresh = _synthetic(topo, 5)[-1]

    async def run() -> tuple[numbering_pb2.IssueNumberResponse, Refusal]:
        async with channel(
            f"127.0.0.1:{topo.numbering.port}",
            topo.layout.pki.service("registry"),
            peer="service:numbering",
        ) as ch:
            stub = numbering_pb2_grpc.NumberingServiceStub(ch)
            issued = await stub.IssueNumber(
                numbering_pb2.IssueNumberRequest(resident_code=fresh), timeout=10
            )
            unknown = await refused(
                stub.IssueNumber(
                    numbering_pb2.IssueNumberRequest(resident_code=UNKNOWN), timeout=10
                )
            )
            return issued, unknown

    issued, unknown = loop.run(run())
    assert number.is_valid(issued.number)
    assert issued.newly_issued
    assert (unknown.code, unknown.reason, unknown.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        "RESIDENT_UNKNOWN",
        {"field": "resident_code"},
    )
