"""Every renkei client checks whom it reached (issue 13, finding 4).

Outgoing connections used to check only that the CA signed the server's
certificate, and every certificate named localhost and 127.0.0.1: a party
holding any valid certificate could take over another's address and receive
its calls (the hub's ProvideStream with the provider's link codes, or every
Relay). Each certificate now also names its party (``renkei.pki.party_host``),
and each client asks for the party it means; a squatter fails the handshake.
"""

from __future__ import annotations

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from support.aio import LoopThread

from comm_server.hub_client import HubClient
from ops.pki import PkiLayout, init_pki
from renkei.errors import RenkeiError
from renkei.grpcutil.client import channel
from renkei.pki import TlsFiles, party_host

pytestmark = pytest.mark.dishonest  # docs/separation.md, "The dishonest-operator suite"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki"), ["141003", "nenkin"], services=["registry"])


async def _serving(tls: TlsFiles) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials())
    await server.start()
    return server, port


async def _check(port: int, tls: TlsFiles, peer: str | None) -> grpc.StatusCode:
    """OK, or the code of a failed call (UNAVAILABLE: the TLS handshake refused)."""
    async with channel(f"127.0.0.1:{port}", tls, peer=peer) as ch:
        try:
            await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def test_a_client_reaches_only_the_party_it_names(loop: LoopThread, pki: PkiLayout) -> None:
    async def scenario() -> dict[str, grpc.StatusCode]:
        server, port = await _serving(pki.agency("nenkin"))  # the pension service's own cert
        try:
            city = pki.agency("141003")
            return {
                peer: await _check(port, city, peer)
                for peer in ("agency:nenkin", "agency:141003", "hub", "service:registry")
            }
        finally:
            await server.stop(0)

    assert loop.run(scenario()) == {
        "agency:nenkin": grpc.StatusCode.OK,
        "agency:141003": grpc.StatusCode.UNAVAILABLE,
        "hub": grpc.StatusCode.UNAVAILABLE,
        "service:registry": grpc.StatusCode.UNAVAILABLE,
    }


def test_an_agency_squatting_on_the_hubs_address_gets_no_call(
    loop: LoopThread, pki: PkiLayout
) -> None:
    async def scenario() -> RenkeiError:
        server, port = await _serving(pki.agency("nenkin"))  # valid, but not the hub's
        client = HubClient(f"127.0.0.1:{port}", pki.agency("141003"))
        try:
            with pytest.raises(RenkeiError) as refused:
                await client.exchange_certificate("nenkin", timeout=3)
            return refused.value
        finally:
            await client.close()
            await server.stop(0)

    err = loop.run(scenario())
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE")


def test_each_certificate_names_its_party(pki: PkiLayout) -> None:
    for party, files in (
        ("hub", pki.hub()),
        ("agency:141003", pki.agency("141003")),
        ("service:registry", pki.service("registry")),
    ):
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert party_host(party) in names.get_values_for_type(x509.DNSName)
