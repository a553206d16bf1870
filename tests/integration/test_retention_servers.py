"""The running servers mount LegalHoldService (R25) over mutual TLS, for the oversight body only.

The PKI has no domain of the oversight body's yet: its certificate here is
issued by the services' CA with the URI SAN ``urn:renkei:oversight``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from support.aio import LoopThread
from support.topology import CITY, Topology

from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.pki import SAN_OVERSIGHT, TlsFiles, party_host


def _oversight_tls(topo: Topology, folder: Path) -> TlsFiles:
    ca = topo.layout.pki.services_ca.load()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "oversight")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(SAN_OVERSIGHT),
                    x509.DNSName(party_host("service:oversight")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(topo.layout.pki.roots, folder / "cert.pem", folder / "key.pem")


def test_hub_comm_and_registry_take_holds_from_the_oversight_body_only(
    loop: LoopThread, topo: Topology, tmp_path: Path
) -> None:
    oversight = _oversight_tls(topo, tmp_path / "oversight")
    servers = {
        "hub": (topo.hub.port, "hub"),
        "comm": (topo.comms[CITY].port, f"agency:{CITY}"),
        "registry": (topo.registry.port, "service:registry"),
    }

    async def run() -> None:
        for name, (port, peer) in servers.items():
            hold = oversight_pb2.LegalHold(hold_id=f"case-{name}", serials=[42])
            async with channel(f"127.0.0.1:{port}", oversight, peer=peer) as ch:
                stub = oversight_pb2_grpc.LegalHoldServiceStub(ch)
                await stub.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold))
                listed = await stub.ListLegalHolds(oversight_pb2.ListLegalHoldsRequest())
                assert [h.hold_id for h in listed.holds] == [f"case-{name}"], name
                await stub.ReleaseLegalHold(
                    oversight_pb2.ReleaseLegalHoldRequest(hold_id=f"case-{name}")
                )
            async with channel(f"127.0.0.1:{port}", topo.tls(CITY), peer=peer) as ch:
                stub = oversight_pb2_grpc.LegalHoldServiceStub(ch)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold))
                err = from_rpc_error(refused.value, fallback_reason="")
                assert (err.code, err.reason) == (
                    grpc.StatusCode.PERMISSION_DENIED,
                    "CALLER_NOT_OVERSIGHT",
                ), name

    loop.run(run())
