"""A PKI that mirrors who trusts whom (issue 13, finding 3), and revocation.

Three CAs, one per trust domain, each constrained to its domain's DNS names:
the TLS stack refuses a certificate for the hub made by the services' CA, and
the servers (``renkei.pki.Trust`` in the one interceptor) refuse an agency
certificate made by the hub's CA, whose DNS name passes the constraints but
whose URI names a party of another domain. A certificate on its CA's CRL is
refused (UNAUTHENTICATED, CERTIFICATE_REVOKED) once a server has reloaded the
list, while it serves.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from support.aio import LoopThread
from support.topology import CITY, PENSION, Topology, start_topology

from ops import pki as ops_pki
from ops.deploy import Settings
from renkei.errors import from_rpc_error
from renkei.files import atomic_write
from renkei.grpcutil.caller import caller, label
from renkei.grpcutil.client import channel
from renkei.grpcutil.server import start_server
from renkei.hub.v1 import hub_pb2
from renkei.pki import SAN_HUB, SAN_PREFIX_AGENCY, TlsFiles, party_host

pytestmark = pytest.mark.dishonest  # docs/separation.md, "The dishonest-operator suite"

WHO = "/renkei.test.v1.Whoami/Who"  # under /renkei.: the interceptor reads the caller


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ops_pki.PkiLayout:
    return ops_pki.init_pki(tmp_path_factory.mktemp("pki"), [CITY], services=["registry"])


def _forge(ca_files: ops_pki.CaFiles, folder: Path, uri: str, dns: str, roots: Path) -> TlsFiles:
    """A certificate a CA's operator could sign by hand, past ``sign_request``'s checks."""
    ca = ca_files.load()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "forged")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri), x509.DNSName(dns)]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    files = TlsFiles(roots, folder / "cert.pem", folder / "key.pem")
    atomic_write(files.key, ops_pki.key_pem(key), 0o600)
    atomic_write(files.cert, ops_pki._cert_pem(cert), 0o644)
    return files


async def _who_server(tls: TlsFiles) -> Any:
    async def who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        identity = caller()
        return b"none" if identity is None else label(identity).encode()

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "renkei.test.v1.Whoami", {"Who": grpc.unary_unary_rpc_method_handler(who)}
        )
        server.add_generic_rpc_handlers((handler,))

    return await start_server(
        name="whoami", bind="127.0.0.1:0", tls=tls, register=register, services=()
    )


async def _ask(port: int, tls: TlsFiles, peer: str) -> str:
    async with channel(f"127.0.0.1:{port}", tls, peer=peer) as ch:
        try:
            answer: bytes = await ch.unary_unary(WHO, None, None)(b"", timeout=5)
        except grpc.aio.AioRpcError as err:
            return err.code().name
    return answer.decode()


def test_parties_of_each_domain_are_known(loop: LoopThread, pki: ops_pki.PkiLayout) -> None:
    async def scenario() -> list[str]:
        handle = await _who_server(pki.hub())
        try:
            return [
                await _ask(handle.port, pki.agency(CITY), "hub"),
                await _ask(handle.port, pki.service("registry"), "hub"),
            ]
        finally:
            await handle.stop(0)

    assert loop.run(scenario()) == [f"agency:{CITY}", "service:registry"]


def test_the_hubs_ca_cannot_make_an_agency(
    loop: LoopThread, pki: ops_pki.PkiLayout, tmp_path: Path
) -> None:
    # The DNS name is the hub's own (within the hub CA's constraints), so the handshake
    # passes; the URI names an agency, which only the agencies' CA may issue.
    forged = _forge(pki.hub_ca, tmp_path, SAN_PREFIX_AGENCY + CITY, party_host("hub"), pki.roots)

    async def scenario() -> str:
        handle = await _who_server(pki.agency(CITY))
        try:
            return await _ask(handle.port, forged, f"agency:{CITY}")
        finally:
            await handle.stop(0)

    assert loop.run(scenario()) == "none"  # a valid handshake, but no one


def test_the_services_ca_cannot_name_the_hub(
    loop: LoopThread, pki: ops_pki.PkiLayout, tmp_path: Path
) -> None:
    forged = _forge(pki.services_ca, tmp_path, SAN_HUB, party_host("hub"), pki.roots)

    async def scenario() -> tuple[str, str]:
        # As a server squatting on the hub's address: the client's handshake fails.
        squatter = await _who_server(forged)
        try:
            as_server = await _ask(squatter.port, pki.agency(CITY), "hub")
        finally:
            await squatter.stop(0)
        # As a client calling a party: the server's handshake fails.
        server = await _who_server(pki.agency(CITY))
        try:
            as_client = await _ask(server.port, forged, f"agency:{CITY}")
        finally:
            await server.stop(0)
        return as_server, as_client

    assert loop.run(scenario()) == ("UNAVAILABLE", "UNAVAILABLE")  # name constraints


# ------------------------------------------------------------------ revocation


RELOAD_SECONDS = 0.2


@pytest.fixture(scope="module")
def topo(
    loop: LoopThread, database: tuple[str | None, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    url, prefix = database
    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        database_url=url,
        schema_prefix=f"{prefix}_crl",
        crl_reload_seconds=RELOAD_SECONDS,
    )
    topology = loop.run(start_topology(tmp_path_factory.mktemp("topology"), settings))
    yield topology
    loop.run(topology.stop())


APPROVE = hub_pb2.ApproveRequest(
    provider_agency_id=PENSION, info_kind="年金給付関係情報", legal_basis_item="二十七"
)


async def _approve(topo: Topology, as_party: str) -> tuple[str, str]:
    async with topo.channel("hub", as_party) as ch:
        try:
            await topo.hub_stub(ch).Approve(APPROVE, timeout=5)
        except grpc.aio.AioRpcError as err:
            refusal = from_rpc_error(err, fallback_reason="NONE")
            return err.code().name, refusal.reason
    return "OK", ""


def test_a_revoked_agency_is_refused_while_the_hub_serves(loop: LoopThread, topo: Topology) -> None:
    pki = topo.layout.pki
    assert loop.run(_approve(topo, CITY)) == ("OK", "")
    serial = x509.load_pem_x509_certificate(pki.agency(CITY).cert.read_bytes()).serial_number
    ops_pki.revoke(pki.agencies_ca, [serial])

    async def refused() -> tuple[str, str]:
        deadline = time.monotonic() + 30  # a bound, not a speed: reloads come every 0.2 s
        while True:
            answer = await _approve(topo, CITY)
            if answer != ("OK", "") or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(RELOAD_SECONDS / 2)

    assert loop.run(refused()) == ("UNAUTHENTICATED", "CERTIFICATE_REVOKED")
    # Another agency is untouched.
    assert loop.run(_approve(topo, PENSION)) == ("OK", "")


def test_a_crl_not_signed_by_its_ca_is_refused_and_the_last_good_one_kept(
    loop: LoopThread, topo: Topology
) -> None:
    """Runs after the revocation above: a forged, empty list must not undo it."""
    pki = topo.layout.pki
    assert loop.run(_approve(topo, CITY))[1] == "CERTIFICATE_REVOKED"
    impostor = ops_pki.Ca(
        ec.generate_private_key(ec.SECP256R1()),
        x509.load_pem_x509_certificate(pki.agencies_ca.cert.read_bytes()),
    )
    atomic_write(pki.agencies_ca.crl, ops_pki._crl_pem(impostor, ()), 0o644)
    time.sleep(RELOAD_SECONDS * 3)  # the servers have looked at it (and refused it) by now
    assert loop.run(_approve(topo, CITY)) == ("UNAUTHENTICATED", "CERTIFICATE_REVOKED")
