"""Unit tests for renkei.errors: RenkeiError <-> gRPC status with google.rpc.ErrorInfo.

The round trips go through a real grpc.aio server on 127.0.0.1 (insecure; this
test is about status encoding, not transport security) whose handler aborts
with the status under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from renkei import errors
from renkei.errors import (
    DOMAIN,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RenkeiError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)

DETAILS_KEY = "grpc-status-details-bin"
SERVICE = "renkei.test.Errors"
METHOD = f"/{SERVICE}/Fail"
TIMEOUT = 5

Behaviour = Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]

SUBCLASSES: list[tuple[type[RenkeiError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


class _Status(NamedTuple):
    """A hand-built status, for trailers that disagree with the code."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: Any


def _rich_status(status: grpc.Status) -> status_pb2.Status:
    trailers = dict(status.trailing_metadata)
    assert set(trailers) == {DETAILS_KEY}
    return status_pb2.Status.FromString(trailers[DETAILS_KEY])


def _error_info(proto: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    assert len(proto.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert proto.details[0].Unpack(info)
    return info


def _abort_with(status: grpc.Status | _Status) -> Behaviour:
    async def behaviour(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(status.code, status.details, status.trailing_metadata)

    return behaviour


async def _failures(behaviours: Sequence[Behaviour], *, timeout: float) -> list[grpc.RpcError]:
    """Calls a one-method server once per behaviour; the request picks the behaviour."""

    async def handler(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await behaviours[int(request.decode())](context)
        return b"unexpected success"

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Fail": grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            found: list[grpc.RpcError] = []
            for i in range(len(behaviours)):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call(str(i).encode(), timeout=timeout)
                found.append(info.value)
            return found
    finally:
        await server.stop(None)


def _through_server(*behaviours: Behaviour, timeout: float = TIMEOUT) -> list[grpc.RpcError]:
    return asyncio.run(_failures(behaviours, timeout=timeout))


def _round_trip(*raised: RenkeiError, fallback: str = "FALLBACK") -> list[RenkeiError]:
    failures = _through_server(*(_abort_with(e.to_status()) for e in raised))
    return [from_rpc_error(f, fallback_reason=fallback) for f in failures]


# ------------------------------------------------------------------ to_status


def test_to_status_carries_error_info() -> None:
    err = PermissionDenied(
        "LINK_CODE_FOREIGN", "link_code was issued to another agency", {"field": "link_code"}
    )
    status = err.to_status()
    assert isinstance(status, grpc.Status)
    assert status.code == grpc.StatusCode.PERMISSION_DENIED
    assert status.details == "link_code was issued to another agency"
    proto = _rich_status(status)
    assert proto.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert proto.message == status.details
    info = _error_info(proto)
    assert info.domain == DOMAIN == "renkei"
    assert info.reason == "LINK_CODE_FOREIGN"
    assert dict(info.metadata) == {"field": "link_code"}
    assert errors.error_info(proto) == info


def test_to_status_decodes_with_grpc_status_helpers() -> None:
    err = InvalidArgument("INVALID_FIELD", "info_kind: is required", {"field": "info_kind"})
    status = err.to_status()
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="INVALID_FIELD", domain="renkei"))
    proto = _rich_status(status)
    assert proto.details[0].Is(error_details_pb2.ErrorInfo.DESCRIPTOR)
    assert proto.details[0].type_url == detail.type_url
    assert rpc_status.to_status(proto).trailing_metadata == status.trailing_metadata


@pytest.mark.parametrize(("cls", "code"), SUBCLASSES)
def test_subclass_codes(cls: type[RenkeiError], code: grpc.StatusCode) -> None:
    err = cls("SOME_REASON", "message")
    assert err.code == code
    status = err.to_status()
    assert status.code == code
    assert _rich_status(status).code == code.value[0]


def test_base_error_is_internal_and_code_can_be_overridden() -> None:
    assert RenkeiError("R", "m").to_status().code == grpc.StatusCode.INTERNAL
    err = RenkeiError("ALREADY", "m", code=grpc.StatusCode.ALREADY_EXISTS)
    assert err.to_status().code == grpc.StatusCode.ALREADY_EXISTS
    # Overriding one instance leaves the class default alone.
    assert NotFound("R", "m", code=grpc.StatusCode.ABORTED).code == grpc.StatusCode.ABORTED
    assert NotFound("R", "m").code == grpc.StatusCode.NOT_FOUND


def test_error_attributes_and_repr() -> None:
    meta = {"field": "x"}
    err = NotFound("AGENCY_UNKNOWN", "no such agency", meta)
    meta["field"] = "changed"  # the error keeps its own copy
    assert err.metadata == {"field": "x"}
    assert err.reason == "AGENCY_UNKNOWN"
    assert err.message == str(err) == "no such agency"
    assert repr(err) == "NotFound(NOT_FOUND, 'AGENCY_UNKNOWN', 'no such agency')"
    assert RenkeiError("R", "m").metadata == {}


def test_invalid_field_helper() -> None:
    err = errors.invalid_field("staff_id", "is required")
    assert isinstance(err, InvalidArgument)
    assert err.reason == "INVALID_FIELD"
    assert err.message == "staff_id: is required"
    assert err.metadata == {"field": "staff_id"}


def test_error_info_absent_or_other_detail() -> None:
    assert errors.error_info(status_pb2.Status(code=5, message="m")) is None
    other = any_pb2.Any()
    other.Pack(error_details_pb2.RetryInfo())
    info_any = any_pb2.Any()
    info_any.Pack(error_details_pb2.ErrorInfo(reason="R", domain="renkei"))
    assert errors.error_info(status_pb2.Status(code=5, details=[other])) is None
    found = errors.error_info(status_pb2.Status(code=5, details=[other, info_any]))
    assert found is not None
    assert found.reason == "R"


# ------------------------------------------------------------------ through a real server


def test_round_trip_preserves_code_reason_metadata() -> None:
    raised = [
        PermissionDenied(
            "LINK_CODE_FOREIGN",
            "link_code was issued to another agency",
            {"field": "link_code", "agency_id": "city-001"},
        ),
        InvalidArgument(
            "INVALID_FIELD",
            "info_kind: 地方税関係情報 は登録されていません",  # non-ASCII message
            {"field": "info_kind", "value": "地方税関係情報"},
        ),
        NotFound("AGENCY_UNKNOWN", "no agency", {}),
    ]
    for sent, got in zip(raised, _round_trip(*raised), strict=True):
        assert type(got) is type(sent)
        assert got.code == sent.code
        assert got.reason == sent.reason
        assert got.message == sent.message
        assert got.metadata == sent.metadata


def test_round_trip_every_subclass() -> None:
    raised = [
        cls(f"REASON_{i}", f"message {i}", {"i": str(i)}) for i, (cls, _) in enumerate(SUBCLASSES)
    ]
    for (cls, code), got in zip(SUBCLASSES, _round_trip(*raised), strict=True):
        assert type(got) is cls
        assert got.code == code
    got_reasons = [(g.reason, g.metadata) for g in _round_trip(*raised)]
    assert got_reasons == [(f"REASON_{i}", {"i": str(i)}) for i in range(len(SUBCLASSES))]


def test_round_trip_code_without_subclass_gives_base_error() -> None:
    (got,) = _round_trip(
        RenkeiError("EXISTS", "already there", code=grpc.StatusCode.ALREADY_EXISTS)
    )
    assert type(got) is RenkeiError
    assert got.code == grpc.StatusCode.ALREADY_EXISTS
    assert got.reason == "EXISTS"


def test_bare_status_gets_fallback_reason() -> None:
    async def bare(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.NOT_FOUND, "nothing here")

    async def bare_no_details(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "")

    with_details, without = _through_server(bare, bare_no_details)
    got = from_rpc_error(with_details, fallback_reason="PROVIDER_REFUSED")
    assert type(got) is NotFound
    assert got.code == grpc.StatusCode.NOT_FOUND
    assert got.reason == "PROVIDER_REFUSED"
    assert got.message == "nothing here"
    assert got.metadata == {}
    got = from_rpc_error(without, fallback_reason="PROVIDER_REFUSED")
    assert type(got) is PermissionDenied
    assert got.reason == got.message == "PROVIDER_REFUSED"


def test_error_info_of_another_domain_gets_fallback_reason() -> None:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="QUOTA", domain="example.com"))
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message="slow down", details=[detail])
    )
    (failure,) = _through_server(_abort_with(status))
    got = from_rpc_error(failure, fallback_reason="FALLBACK")
    assert type(got) is ResourceExhausted
    assert got.reason == "FALLBACK"
    assert got.metadata == {}


def test_inconsistent_details_trailer_gets_fallback_reason() -> None:
    # A trailer whose code disagrees with the call's status is ignored, not trusted.
    trailer = PermissionDenied("LINK_CODE_FOREIGN", "m").to_status().trailing_metadata
    status = _Status(grpc.StatusCode.NOT_FOUND, "m", trailer)
    (failure,) = _through_server(_abort_with(status))
    got = from_rpc_error(failure, fallback_reason="FALLBACK")
    assert type(got) is NotFound
    assert got.reason == "FALLBACK"


def test_internal_and_unknown_from_peer_become_unavailable() -> None:
    async def internal(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.INTERNAL, "peer broke")

    async def unknown(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNKNOWN, "peer confused")

    async def raises(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        raise RuntimeError("handler bug")

    renkei_internal = RenkeiError("DB_DOWN", "database down", {"k": "v"})
    failures = _through_server(internal, unknown, raises, _abort_with(renkei_internal.to_status()))
    assert [f.code() for f in failures] == [
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    ]
    got = [from_rpc_error(f, fallback_reason="PEER_FAILED") for f in failures]
    for g in got:
        assert type(g) is Unavailable
        assert g.code == grpc.StatusCode.UNAVAILABLE
        assert g.to_status().code == grpc.StatusCode.UNAVAILABLE
    assert [g.reason for g in got[:3]] == ["PEER_FAILED"] * 3
    assert got[0].message == "peer broke"
    assert got[3].reason == "DB_DOWN"  # a renkei reason survives; the code does not
    assert got[3].metadata == {"k": "v"}


def test_client_deadline_gets_fallback_reason() -> None:
    async def slow(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await asyncio.sleep(2)  # the slowness is the point: the client's deadline fires first

    (failure,) = _through_server(slow, timeout=0.05)
    got = from_rpc_error(failure, fallback_reason="PROVIDER_TIMEOUT")
    assert type(got) is DeadlineExceeded
    assert got.reason == "PROVIDER_TIMEOUT"


# ------------------------------------------------------------------ sync-style errors


class _SyncError(grpc.RpcError):
    """Stands in for a sync channel's _InactiveRpcError (code, details, trailers)."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Any) -> None:
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailers


def test_sync_style_error_round_trip() -> None:
    status = FailedPrecondition("NOT_BOUND", "person not bound", {"field": "x"}).to_status()
    err = _SyncError(status.code, status.details, status.trailing_metadata)
    got = from_rpc_error(err, fallback_reason="FALLBACK")
    assert type(got) is FailedPrecondition
    assert (got.reason, got.message, got.metadata) == (
        "NOT_BOUND",
        "person not bound",
        {"field": "x"},
    )
    got = from_rpc_error(
        _SyncError(grpc.StatusCode.UNAVAILABLE, "", None), fallback_reason="HUB_UNREACHABLE"
    )
    assert type(got) is Unavailable
    assert got.reason == got.message == "HUB_UNREACHABLE"


def test_bare_rpc_error_without_code_is_unavailable() -> None:
    got = from_rpc_error(grpc.RpcError(), fallback_reason="TRANSPORT")
    assert type(got) is Unavailable
    assert got.code == grpc.StatusCode.UNAVAILABLE
    assert got.reason == "TRANSPORT"
