"""The hub knows callers only by their certificates (R30)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.aio import LoopThread
from support.refusals import refused
from support.topology import CITY, PENSION, Topology

from id_issuer.issuer import IdIssuer
from ops.pki import init_pki
from renkei import codes, id_code_batch, id_code_signing, sealing
from renkei.grpcutil.client import peer_options
from renkei.hub.v1 import hub_pb2

APPROVE = hub_pb2.ApproveRequest(
    provider_agency_id=PENSION, info_kind="年金給付関係情報", legal_basis_item="二十七"
)


def _approve(topo: Topology, credentials: grpc.ChannelCredentials) -> object:
    async def call() -> object:
        target = f"127.0.0.1:{topo.hub.port}"
        async with grpc.aio.secure_channel(target, credentials, peer_options("hub")) as ch:
            return await topo.hub_stub(ch).Approve(APPROVE, timeout=5)

    return call()


def test_a_caller_without_a_client_certificate_cannot_connect(
    loop: LoopThread, topo: Topology
) -> None:
    ca = topo.layout.pki.ca_cert.read_bytes()
    refusal = loop.run(refused(_approve(topo, grpc.ssl_channel_credentials(root_certificates=ca))))
    assert refusal.code == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails: no status detail


def test_a_certificate_from_another_ca_cannot_connect(
    loop: LoopThread, topo: Topology, tmp_path: Path
) -> None:
    foreign = init_pki(tmp_path / "foreign", [CITY]).agency(CITY)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=topo.layout.pki.ca_cert.read_bytes(),
        private_key=foreign.key.read_bytes(),
        certificate_chain=foreign.cert.read_bytes(),
    )
    refusal = loop.run(refused(_approve(topo, credentials)))
    assert refusal.code == grpc.StatusCode.UNAVAILABLE


def test_a_valid_certificate_of_an_unregistered_agency_is_refused(
    loop: LoopThread, topo: Topology
) -> None:
    ghost = topo.layout.pki.issue_agency("ghost-agency")
    refusal = loop.run(refused(_approve(topo, ghost.channel_credentials())))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_REGISTERED",
    )


def test_the_hubs_own_certificate_is_not_an_agency(loop: LoopThread, topo: Topology) -> None:
    refusal = loop.run(refused(_approve(topo, topo.layout.pki.hub().channel_credentials())))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CLIENT_CERT_REQUIRED",
    )


def test_issue_link_code_answers_the_callers_own_code_only(
    loop: LoopThread, topo: Topology
) -> None:
    issuer = IdIssuer.load(topo.layout.id_issuer_config)
    person = topo.people[0]

    async def issue(as_agency: str, sealed: bytes) -> object:
        async with topo.channel("hub", as_agency) as ch:
            return await topo.hub_stub(ch).IssueLinkCode(
                hub_pb2.IssueLinkCodeRequest(sealed_id_code=sealed), timeout=5
            )

    mine = loop.run(issue(CITY, issuer.sealed_id_code(person.resident_code, CITY)))
    assert mine.link_code == topo.link_code(CITY, 0)  # type: ignore[attr-defined]
    # A sealed ID code made out to the pension service opens for nobody else.
    stolen = issuer.sealed_id_code(person.resident_code, PENSION)
    refusal = loop.run(refused(issue(CITY, stolen)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SEALED_PAYLOAD_INVALID",
    )
    refusal = loop.run(refused(issue(CITY, b"")))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")


@pytest.mark.dishonest
def test_an_id_code_an_agency_sealed_itself_mints_no_link_code(
    loop: LoopThread, topo: Topology
) -> None:
    """Issue 13, finding 5: the hub's sealing key is public, and HPKE's base mode
    names no sender, so an agency could seal any ID code-shaped bytes to the hub
    and have link codes minted past the four-fact binding. Only the ID issuer's
    signed codes are taken now."""
    issuer = IdIssuer.load(topo.layout.id_issuer_config)  # for the hub's public key only
    hub_key = issuer.hub_key
    made_up = [bytes([1]) + os.urandom(codes.ID_CODE_BYTES - 1) for _ in range(3)]
    single = sealing.seal(made_up[0], hub_key, sealing.id_code_sealing_info(CITY))
    own_key = ed25519.Ed25519PrivateKey.generate()  # an agency's own key, not the issuer's
    signed_by_agency = sealing.seal(
        id_code_signing.signed(own_key, sealing.id_code_sealing_info(CITY), made_up[0]),
        hub_key,
        sealing.id_code_sealing_info(CITY),
    )
    batch = id_code_batch.seal_batch(made_up, hub_key, CITY, signer=own_key)

    async def issue() -> list[object]:
        async with topo.channel("hub", CITY) as ch:
            stub = topo.hub_stub(ch)
            return [
                await refused(
                    stub.IssueLinkCode(hub_pb2.IssueLinkCodeRequest(sealed_id_code=s), timeout=5)
                )
                for s in (single, signed_by_agency)
            ] + [
                await refused(
                    stub.IssueLinkCodes(
                        hub_pb2.IssueLinkCodesRequest(sealed_batch=batch), timeout=5
                    )
                )
            ]

    for refusal in loop.run(issue()):
        assert (refusal.code, refusal.reason) == (  # type: ignore[attr-defined]
            grpc.StatusCode.PERMISSION_DENIED,
            "ID_CODE_NOT_FROM_ISSUER",
        )


@pytest.mark.parametrize("target", ["hub", CITY])
def test_health_and_reflection_are_served(loop: LoopThread, topo: Topology, target: str) -> None:
    async def check() -> tuple[int, list[str]]:
        async with topo.channel(target, CITY) as ch:
            health = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
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
    assert "grpc.health.v1.Health" in names
    expected = "renkei.hub.v1.HubService" if target == "hub" else "renkei.comm.v1.ProviderService"
    assert expected in names
