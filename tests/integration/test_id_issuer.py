"""The ID issuer's service: who may call what, and sealed ID codes the hub accepts."""

from __future__ import annotations

import grpc
from support.aio import LoopThread
from support.refusals import refused
from support.topology import CITY, Topology

from ops.deploy import REGISTRY
from renkei.grpcutil.client import peer_options
from renkei.hub.v1 import hub_pb2
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc


def _stub(topo: Topology, credentials: grpc.ChannelCredentials) -> tuple[grpc.aio.Channel, object]:
    target, options = f"127.0.0.1:{topo.id_issuer.port}", peer_options("service:id-issuer")
    channel = grpc.aio.secure_channel(target, credentials, options)
    return channel, id_issuer_pb2_grpc.IdIssuerServiceStub(channel)


def test_the_registry_gets_sealed_id_codes_that_the_hub_turns_into_link_codes(
    loop: LoopThread, topo: Topology
) -> None:
    person = topo.people[0]

    async def scenario() -> tuple[list[str], str]:
        channel, stub = _stub(topo, topo.layout.pki.service(REGISTRY).channel_credentials())
        async with channel:
            answer = await stub.SealIdCodes(  # type: ignore[attr-defined]
                id_issuer_pb2.SealIdCodesRequest(
                    agency_id=CITY, resident_codes=[person.resident_code, "12345", "１２３"]
                ),
                timeout=5,
            )
        reasons = [r.error_reason for r in answer.results]
        async with topo.channel("hub", CITY) as ch:
            issued = await topo.hub_stub(ch).IssueLinkCode(
                hub_pb2.IssueLinkCodeRequest(sealed_id_code=answer.results[0].sealed_id_code),
                timeout=5,
            )
        return reasons, issued.link_code

    reasons, link_code = loop.run(scenario())
    assert reasons == ["", "RESIDENT_CODE_MALFORMED", "RESIDENT_CODE_MALFORMED"]
    assert link_code == topo.link_code(CITY, 0)


def test_only_listed_parties_may_seal_and_only_the_hub_may_reissue(
    loop: LoopThread, topo: Topology
) -> None:
    async def as_agency() -> tuple[object, object]:
        channel, stub = _stub(topo, topo.tls(CITY).channel_credentials())
        async with channel:
            seal = await refused(
                stub.SealIdCodes(  # type: ignore[attr-defined]
                    id_issuer_pb2.SealIdCodesRequest(agency_id=CITY, resident_codes=[]), timeout=5
                )
            )
            reissue = await refused(
                stub.ReissueIdCodes(  # type: ignore[attr-defined]
                    id_issuer_pb2.ReissueIdCodesRequest(id_codes=[]), timeout=5
                )
            )
        return seal, reissue

    seal, reissue = loop.run(as_agency())
    for refusal in (seal, reissue):
        assert (refusal.code, refusal.reason) == (  # type: ignore[attr-defined]
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_AUTHORIZED",
        )


def test_an_oversized_batch_is_refused_naming_the_field(loop: LoopThread, topo: Topology) -> None:
    async def too_many() -> object:
        channel, stub = _stub(topo, topo.layout.pki.service(REGISTRY).channel_credentials())
        async with channel:
            return await refused(
                stub.SealIdCodes(  # type: ignore[attr-defined]
                    id_issuer_pb2.SealIdCodesRequest(
                        agency_id=CITY, resident_codes=["00000000000"] * 1001
                    ),
                    timeout=5,
                )
            )

    refusal = loop.run(too_many())
    assert (refusal.code, refusal.reason) == (  # type: ignore[attr-defined]
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
    )
    assert refusal.metadata["field"] == "resident_codes"  # type: ignore[attr-defined]
