"""Mutual TLS end to end: a real grpc.aio server reports who called it.

This is the contract the hub's authorization rests on: a caller is identified
only by a certificate from *our* CA, and anything else never reaches a handler.
Each test runs its own event loop (no pytest-asyncio) and every wait is bounded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from ops import pki as ops_pki
from ops.pki import PkiLayout
from renkei import pki
from renkei.grpcutil.client import peer_options

AGENCY = "city-001"
METHOD = "/renkei.test.v1.Whoami/Who"
CALL_TIMEOUT = 5.0  # seconds, per RPC
TEST_TIMEOUT = 10.0  # seconds, whole server+call round


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return ops_pki.init_pki(tmp_path_factory.mktemp("pki"), [AGENCY, "nta"])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    # Same agency id, different CA: the id alone must not be enough.
    return ops_pki.init_pki(tmp_path_factory.mktemp("foreign"), [AGENCY])


async def _who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    ident = pki.peer_identity(context)
    return b"none" if ident is None else f"{ident.kind}:{ident.party_id}".encode()


def _ask(
    server_creds: grpc.ServerCredentials | None,
    channel_creds: grpc.ChannelCredentials | None,
    server_party: str = "hub",
) -> str:
    """Start a server (insecure if server_creds is None), call it once, return the answer."""

    async def run() -> str:
        handler = grpc.method_handlers_generic_handler(
            "renkei.test.v1.Whoami",
            {"Who": grpc.unary_unary_rpc_method_handler(_who)},  # raw bytes both ways
        )
        server = grpc.aio.server(handlers=[handler])
        if server_creds is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", server_creds)
        await server.start()
        try:
            target = f"127.0.0.1:{port}"
            channel = (
                grpc.aio.insecure_channel(target)
                if channel_creds is None
                # The server's certificate names its party, not an address.
                else grpc.aio.secure_channel(target, channel_creds, peer_options(server_party))
            )
            async with channel:
                call = channel.unary_unary(METHOD, None, None)  # raw bytes, no (de)serializer
                answer: bytes = await call(b"", timeout=CALL_TIMEOUT)
                return answer.decode()
        finally:
            await server.stop(None)

    async def bounded() -> str:
        return await asyncio.wait_for(run(), TEST_TIMEOUT)

    return asyncio.run(bounded())


def test_agency_identity(layout: PkiLayout) -> None:
    answer = _ask(layout.hub().server_credentials(), layout.agency(AGENCY).channel_credentials())
    assert answer == f"agency:{AGENCY}"


def test_hub_identity(layout: PkiLayout) -> None:
    # An agency's server sees the hub calling it.
    answer = _ask(
        layout.agency("nta").server_credentials(), layout.hub().channel_credentials(), "agency:nta"
    )
    assert answer == "hub:hub"


def test_service_identity(layout: PkiLayout) -> None:
    numbering = layout.issue_service("numbering")
    answer = _ask(layout.hub().server_credentials(), numbering.channel_credentials())
    assert answer == "service:numbering"


def test_client_from_foreign_ca_rejected(layout: PkiLayout, foreign: PkiLayout) -> None:
    other = foreign.agency(AGENCY)
    # Trusts our CA (so the server cert is fine) but presents a foreign client cert:
    # only the server's client verification can refuse this.
    creds = grpc.ssl_channel_credentials(
        root_certificates=layout.ca_cert.read_bytes(),
        private_key=other.key.read_bytes(),
        certificate_chain=other.cert.read_bytes(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        _ask(layout.hub().server_credentials(), creds)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_party_of_foreign_pki_rejected(layout: PkiLayout, foreign: PkiLayout) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        _ask(layout.hub().server_credentials(), foreign.agency(AGENCY).channel_credentials())
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_without_certificate_rejected(layout: PkiLayout) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=layout.ca_cert.read_bytes())
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        _ask(layout.hub().server_credentials(), creds)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_no_identity_when_client_auth_not_required(layout: PkiLayout) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=layout.ca_cert.read_bytes())
    answer = _ask(layout.hub().server_credentials(require_client_auth=False), creds)
    assert answer == "none"


def test_no_identity_on_insecure_port() -> None:
    assert _ask(None, None) == "none"


def test_files_are_read_from_disk(layout: PkiLayout) -> None:
    # Credentials are built from the files at call time, so a freshly issued
    # agency can connect without restarting anything.
    files = ops_pki.load_pki(layout.root).issue_agency("late-joiner")
    answer = _ask(layout.hub().server_credentials(), files.channel_credentials())
    assert answer == "agency:late-joiner"
