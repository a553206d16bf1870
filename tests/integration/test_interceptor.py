"""The one server interceptor: caller, correlation id, refusals and bugs, for every renkei method.

A real grpc.aio server on loopback (a development port, so the caller may name
itself in the one development header) with a small IdIssuerService whose
methods say what the interceptor gave them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from renkei.errors import PermissionDenied, error_info
from renkei.grpcutil import caller
from renkei.grpcutil.server import start_server
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc
from renkei.logs import CORRELATION_HEADER, correlation_id

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = "renkei.idissuer.v1.IdIssuerService"


class Echo(id_issuer_pb2_grpc.IdIssuerServiceServicer):
    async def SealIdCodes(  # gRPC method names are PascalCase
        self, request: id_issuer_pb2.SealIdCodesRequest, context: Context
    ) -> id_issuer_pb2.SealIdCodesResponse:
        if request.agency_id == "refuse":
            raise PermissionDenied("CALLER_NOT_AUTHORIZED", "no", {"field": "agency_id"})
        if request.agency_id == "bug":
            raise ValueError("a bug with a secret in it")
        who = caller.caller()
        return id_issuer_pb2.SealIdCodesResponse(
            results=[
                id_issuer_pb2.SealedIdCode(error_reason=caller.label(who) if who else "-"),
                id_issuer_pb2.SealedIdCode(error_reason=correlation_id.get() or "-"),
            ]
        )


async def _call(
    agency_id: str, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[id_issuer_pb2.SealIdCodesResponse | None, grpc.aio.AioRpcError | None]:
    handle = await start_server(
        name="test",
        bind="127.0.0.1:0",
        tls=None,
        register=lambda s: id_issuer_pb2_grpc.add_IdIssuerServiceServicer_to_server(Echo(), s),
        services=[SERVICE],
        insecure_development=True,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = id_issuer_pb2_grpc.IdIssuerServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            served = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
            assert served.status == health_pb2.HealthCheckResponse.SERVING
            try:
                answer = await stub.SealIdCodes(
                    id_issuer_pb2.SealIdCodesRequest(agency_id=agency_id),
                    metadata=metadata,
                    timeout=5,
                )
            except grpc.aio.AioRpcError as err:
                return None, err
            return answer, None
    finally:
        await handle.stop(0)


def test_the_caller_and_correlation_id_reach_the_method() -> None:
    answer, _ = asyncio.run(
        _call(
            "x",
            ((caller.DEV_PARTY_HEADER, "agency:141003"), (CORRELATION_HEADER, "cid-42")),
        )
    )
    assert answer is not None
    assert [r.error_reason for r in answer.results] == ["agency:141003", "cid-42"]


def test_no_caller_without_a_certificate_or_a_claim() -> None:
    answer, _ = asyncio.run(_call("x"))
    assert answer is not None
    assert answer.results[0].error_reason == "-"
    assert answer.results[1].error_reason != "-"  # a correlation id was made


def test_a_malformed_claim_names_no_caller() -> None:
    answer, _ = asyncio.run(_call("x", ((caller.DEV_PARTY_HEADER, "agency:../etc"),)))
    assert answer is not None
    assert answer.results[0].error_reason == "-"


def test_a_refusal_becomes_its_status_with_error_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="renkei.rpc")
    _, err = asyncio.run(_call("refuse"))
    assert err is not None
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_info(status)
    assert info is not None
    assert (info.reason, info.domain, info.metadata["field"]) == (
        "CALLER_NOT_AUTHORIZED",
        "renkei",
        "agency_id",
    )
    refused = [r for r in caplog.records if r.getMessage() == "rpc refused"]
    assert refused
    assert refused[0].fields["method"] == "SealIdCodes"  # type: ignore[attr-defined]


def test_a_bug_is_internal_and_tells_nothing(caplog: pytest.LogCaptureFixture) -> None:
    _, err = asyncio.run(_call("bug"))
    assert err is not None
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details() == "internal error"
    assert "secret" not in (err.debug_error_string() or "")
    assert any(r.getMessage() == "rpc failed" for r in caplog.records)


def test_outside_a_call_there_is_no_caller() -> None:
    assert caller.caller() is None
    assert caller.caller_agency() is None
    with pytest.raises(Exception, match="client certificate"):
        caller.require_caller()


async def _raw(method: str, data: bytes) -> grpc.aio.AioRpcError:
    handle = await start_server(
        name="test",
        bind="127.0.0.1:0",
        tls=None,
        register=lambda s: id_issuer_pb2_grpc.add_IdIssuerServiceServicer_to_server(Echo(), s),
        services=[SERVICE],
        insecure_development=True,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            call = channel.unary_unary(f"/{SERVICE}/{method}")  # bytes as they are
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(data, timeout=5)
            return caught.value
    finally:
        await handle.stop(0)


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x12\x80\x80\x80\x80\x80"])
def test_undecodable_bytes_are_invalid_argument_not_unknown(data: bytes) -> None:
    err = asyncio.run(_raw("SealIdCodes", data))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "DecodeError" not in (err.details() or "")
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_info(status)
    assert info is not None
    assert info.reason == "REQUEST_UNDECODABLE"
    assert "renkei.idissuer.v1.SealIdCodesRequest" in (err.details() or "")
