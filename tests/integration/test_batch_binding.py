"""Binding in bulk: ID codes sealed as one batch (SealIdCodeBatch), link codes for the
whole batch (HubService.IssueLinkCodes), and the hub's refusals of a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from support.aio import LoopThread
from support.refusals import Refusal, refused
from support.topology import CITY, PENSION, Topology

from hub_server.id_issuer_client import IdKeyState
from id_issuer.issuer import IdIssuer
from ops.deploy import REGISTRY
from renkei import codes, id_code_batch
from renkei.grpcutil.client import peer_options
from renkei.hub.v1 import hub_pb2
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc


async def _issue(topo: Topology, as_agency: str, sealed: bytes) -> hub_pb2.IssueLinkCodesResponse:
    async with topo.channel("hub", as_agency) as ch:
        return await topo.hub_stub(ch).IssueLinkCodes(
            hub_pb2.IssueLinkCodesRequest(sealed_batch=sealed), timeout=5
        )


def _batch(topo: Topology, agency: str, people: list[int]) -> bytes:
    issuer = IdIssuer.load(topo.layout.id_issuer_config)
    id_codes = [issuer.issuer.issue(topo.people[p].resident_code) for p in people]
    return issuer.sealed_batch(id_codes, agency)


def test_the_registry_gets_one_sealed_batch_that_the_hub_turns_into_link_codes(
    loop: LoopThread, topo: Topology
) -> None:
    codes_ = [topo.people[1].resident_code, "12345", topo.people[0].resident_code]

    async def seal() -> id_issuer_pb2.SealIdCodeBatchResponse:
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{topo.id_issuer.port}",
            topo.layout.pki.service(REGISTRY).channel_credentials(),
            peer_options("service:id-issuer"),
        )
        async with channel:
            stub = id_issuer_pb2_grpc.IdIssuerServiceStub(channel)
            return await stub.SealIdCodeBatch(
                id_issuer_pb2.SealIdCodeBatchRequest(agency_id=CITY, resident_codes=codes_),
                timeout=5,
            )

    sealed = loop.run(seal())
    assert list(sealed.error_reasons) == ["", "RESIDENT_CODE_MALFORMED", ""]
    assert codes_[0].encode() not in sealed.sealed_batch
    answer = loop.run(_issue(topo, CITY, sealed.sealed_batch))
    # In the batch's order: person 1, then person 0; the codes the city bound them with.
    assert [c.link_code for c in answer.link_codes] == [
        topo.link_code(CITY, 1),
        topo.link_code(CITY, 0),
    ]
    assert [c.id_key_version for c in answer.link_codes] == [1, 1]
    assert answer.key_version == 1
    assert answer.batch_id == id_code_batch.batch_id_of(sealed.sealed_batch)
    # The same batch again: the same codes (a rerun after a crash binds nobody anew).
    again = loop.run(_issue(topo, CITY, sealed.sealed_batch))
    assert list(again.link_codes) == list(answer.link_codes)


def test_only_listed_parties_may_seal_a_batch(loop: LoopThread, topo: Topology) -> None:
    async def as_agency() -> Refusal:
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{topo.id_issuer.port}",
            topo.tls(CITY).channel_credentials(),
            peer_options("service:id-issuer"),
        )
        async with channel:
            stub = id_issuer_pb2_grpc.IdIssuerServiceStub(channel)
            return await refused(
                stub.SealIdCodeBatch(
                    id_issuer_pb2.SealIdCodeBatchRequest(agency_id=CITY, resident_codes=[]),
                    timeout=5,
                )
            )

    refusal = loop.run(as_agency())
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_AUTHORIZED",
    )


@pytest.mark.dishonest
def test_a_batch_sealed_for_another_agency_is_refused(loop: LoopThread, topo: Topology) -> None:
    for_pension = _batch(topo, PENSION, [0, 1])
    refusal = loop.run(refused(_issue(topo, CITY, for_pension)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SEALED_PAYLOAD_INVALID",
    )
    assert refusal.metadata["field"] == "sealed_batch"
    # It opens for the pension service, with the pension service's own codes.
    answer = loop.run(_issue(topo, PENSION, for_pension))
    assert [c.link_code for c in answer.link_codes] == [
        topo.link_code(PENSION, 0),
        topo.link_code(PENSION, 1),
    ]


@pytest.mark.parametrize(
    ("sealed", "reason", "metadata"),
    [
        (b"", "INVALID_FIELD", {"field": "sealed_batch"}),
        (b"x" * 30_000, "INVALID_FIELD", {"field": "sealed_batch"}),
        (b"RKB2", "SEALED_BATCH_MALFORMED", {"field": "sealed_batch", "byte_offset": "0"}),
        (
            b"JUNK" + b"\x00" * 80,
            "SEALED_BATCH_MALFORMED",
            {"field": "sealed_batch", "byte_offset": "0"},
        ),
        (b"RKB2" + b"\x00" * 80, "SEALED_PAYLOAD_INVALID", {"field": "sealed_batch"}),
    ],
)
def test_a_malformed_batch_is_refused_naming_the_field(
    loop: LoopThread, topo: Topology, sealed: bytes, reason: str, metadata: dict[str, str]
) -> None:
    refusal = loop.run(refused(_issue(topo, CITY, sealed)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert {k: refusal.metadata[k] for k in metadata} == metadata


def test_a_single_sealed_id_code_is_not_a_batch(loop: LoopThread, topo: Topology) -> None:
    issuer = IdIssuer.load(topo.layout.id_issuer_config)
    single = issuer.sealed_id_code(topo.people[0].resident_code, CITY)
    refusal = loop.run(refused(_issue(topo, CITY, single)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SEALED_BATCH_MALFORMED",
    )


def test_a_batch_of_a_retired_id_key_version_is_refused_as_a_whole(
    loop: LoopThread, topo: Topology
) -> None:
    sealed = _batch(topo, CITY, [0, 1])
    hub = topo.hub.hub
    before = hub.id_state
    hub.id_state = IdKeyState(2, 2, {1: datetime.now(UTC) - timedelta(seconds=1)})
    try:
        refusal = loop.run(refused(_issue(topo, CITY, sealed)))
    finally:
        hub.id_state = before
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ID_CODE_KEY_RETIRED",
    )
    assert refusal.metadata["field"] == "sealed_batch"
    assert refusal.metadata["index"] == "0"
    assert refusal.metadata["id_key_version"] == "1"
    assert len(loop.run(_issue(topo, CITY, sealed)).link_codes) == 2


def test_the_id_code_bytes_never_reach_the_agency(loop: LoopThread, topo: Topology) -> None:
    issuer = IdIssuer.load(topo.layout.id_issuer_config)
    id_code = issuer.issuer.issue(topo.people[0].resident_code)
    assert len(id_code) == codes.ID_CODE_BYTES
    sealed = issuer.sealed_batch([id_code], CITY)
    answer = loop.run(_issue(topo, CITY, sealed))
    assert id_code not in sealed
    assert id_code not in answer.SerializeToString()


def test_a_caller_that_is_no_agency_gets_no_link_codes(loop: LoopThread, topo: Topology) -> None:
    sealed = _batch(topo, CITY, [0])
    refusal = loop.run(refused(_issue(topo, "hub", sealed)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CLIENT_CERT_REQUIRED",
    )
