"""Domain errors and their gRPC form (AIP-193).

Domain code raises a ``RenkeiError``; the servicer layer turns it into a gRPC
status whose details carry a ``google.rpc.ErrorInfo`` with domain ``renkei``.
A client turns such a status back into the same error with ``from_rpc_error``,
so a refusal crosses several hops without losing its reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "renkei"


class RenkeiError(Exception):
    """A refusal with a gRPC code, an UPPER_SNAKE reason and a message for people."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(
        self,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        code: grpc.StatusCode | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.reason!r}, {self.message!r})"

    def to_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=self.metadata
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        proto = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return rpc_status.to_status(proto)


class InvalidArgument(RenkeiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class PermissionDenied(RenkeiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(RenkeiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class NotFound(RenkeiError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(RenkeiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(RenkeiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(RenkeiError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(RenkeiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


_BY_CODE: dict[grpc.StatusCode, type[RenkeiError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        PermissionDenied,
        Unauthenticated,
        NotFound,
        FailedPrecondition,
        DeadlineExceeded,
        Unavailable,
        ResourceExhausted,
    )
}


def invalid_field(field: str, problem: str) -> InvalidArgument:
    """A request field that is missing, malformed or out of range."""
    return InvalidArgument("INVALID_FIELD", f"{field}: {problem}", {"field": field})


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def from_rpc_error(err: grpc.RpcError, *, fallback_reason: str) -> RenkeiError:
    """The RenkeiError a peer raised, or one built from a bare status.

    Works for sync calls and ``grpc.aio.AioRpcError`` alike (both expose code,
    details and trailing metadata). A status without ErrorInfo (a transport
    failure, a deadline hit in flight) keeps its code and gets
    ``fallback_reason`` so callers still see a reason.
    """
    code: grpc.StatusCode = getattr(err, "code", lambda: grpc.StatusCode.UNKNOWN)()
    details: str = getattr(err, "details", lambda: "")() or ""
    info = None
    if hasattr(err, "trailing_metadata"):
        try:
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
        except ValueError:
            status = None
        if status is not None:
            info = error_info(status)
    if info is not None and info.domain == DOMAIN:
        return from_parts(code, info.reason, details, dict(info.metadata))
    return from_parts(code, fallback_reason, details)


def from_parts(
    code: grpc.StatusCode, reason: str, message: str, metadata: Mapping[str, str] | None = None
) -> RenkeiError:
    """The RenkeiError a peer refused with, from its code, reason, message and metadata."""
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        # A peer's internal failure is reported as unavailable, never echoed as ours.
        code = grpc.StatusCode.UNAVAILABLE
    cls = _BY_CODE.get(code, RenkeiError)
    return cls(reason, message or reason, metadata, code=code)


_CODES_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    """The grpc.StatusCode of a google.rpc.Code number (UNKNOWN for a number it is not)."""
    return _CODES_BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)
