"""The hub's ID-issuer client takes a broken answer as the issuer's fault, with a reason."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from support.aio import LoopThread

from hub_server.id_issuer_client import GrpcIdIssuer
from renkei.errors import RenkeiError
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc


class _BrokenIssuer(id_issuer_pb2_grpc.IdIssuerServiceServicer):
    async def GetIdKeyStatus(  # gRPC method names are PascalCase
        self,
        request: id_issuer_pb2.GetIdKeyStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> id_issuer_pb2.GetIdKeyStatusResponse:
        r = id_issuer_pb2.GetIdKeyStatusResponse(current_version=1, newest_version=2)
        v = r.versions.add(version=1)
        v.accept_until.seconds = 253402300800  # 10000-01-01: no datetime holds it
        return r


def test_an_out_of_range_accept_until_is_id_issuer_answer_invalid() -> None:
    async def scenario() -> RenkeiError:
        server = grpc.aio.server()
        id_issuer_pb2_grpc.add_IdIssuerServiceServicer_to_server(_BrokenIssuer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        client = GrpcIdIssuer(f"127.0.0.1:{port}", None, insecure_development=True)
        try:
            with pytest.raises(RenkeiError) as caught:
                await client.status()
            return caught.value
        finally:
            await client.close()
            await server.stop(0)

    loop = LoopThread()
    try:
        err = loop.run(scenario())
    finally:
        loop.close()
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "ID_ISSUER_ANSWER_INVALID")
