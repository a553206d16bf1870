"""What every renkei gRPC method gets, once, from the server's one interceptor.

For each call to a renkei service (health and reflection are left as grpc
ships them) the interceptor sets the correlation id from the caller's
metadata (or makes one), reads who is calling (``renkei.grpcutil.caller``),
logs the call as one structured line with its latency, refuses request bytes
that are no message of the method's type (INVALID_ARGUMENT,
REQUEST_UNDECODABLE, where grpc would answer UNKNOWN), and turns a
``RenkeiError`` into a gRPC status with ErrorInfo. Anything else is a bug:
logged with its traceback and answered INTERNAL without details. The method
is named from the call itself, so no servicer repeats its name as a string.

Wrapped handlers are made once per method and kept, so a call costs one
dictionary lookup more than an uninterceptored server.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from renkei.errors import InvalidArgument, RenkeiError
from renkei.grpcutil.caller import DEV_PARTY_HEADER, reset_caller, resolve, set_caller
from renkei.logs import CORRELATION_HEADER, correlation_id, event, new_correlation_id
from renkei.pki import Trust

_log = logging.getLogger("renkei.rpc")

Context = grpc.aio.ServicerContext[Any, Any]
# Only renkei's own services; grpc's health and reflection run as they are.
OWN_SERVICES = "/renkei."


if TYPE_CHECKING:  # generic in grpc-stubs only
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class RpcInterceptor(_ServerInterceptor):
    def __init__(self, *, insecure_development: bool = False, trust: Trust | None = None) -> None:
        self._insecure = insecure_development
        self._trust = trust
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        if not method.startswith(OWN_SERVICES):
            return await continuation(handler_call_details)
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED
                return handler
            wrapped = self._wrapped[method] = self._wrap(handler, method.rpartition("/")[2])
        return wrapped

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], name: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        factory, behavior = _kind(handler)
        refusal = _undecodable(handler.request_deserializer)
        streams_in = handler.request_streaming
        if handler.response_streaming and inspect.isasyncgenfunction(behavior):
            new: Any = self._around_stream(behavior, name, streams_in, refusal)
        else:
            new = self._around_call(behavior, name, streams_in, refusal)
        return factory(
            new,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _enter(self, context: Context, tokens: list[Any]) -> None:
        """Set this call's correlation id, then its caller, each token into ``tokens`` as
        soon as it is set: a caller refused here (a revoked certificate) is logged under
        the call's correlation id, and ``_leave`` resets whatever was set."""
        cid, claimed = _metadata_of(context)
        tokens.append(correlation_id.set((cid or new_correlation_id())[:64]))
        identity = resolve(context, claimed, insecure_development=self._insecure, trust=self._trust)
        tokens.append(set_caller(identity))

    def _around_call(
        self,
        behavior: Callable[[Any, Context], Awaitable[Any]],
        name: str,
        streams_in: bool,
        refusal: Callable[[], InvalidArgument],
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def call(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            tokens: list[Any] = []
            try:
                self._enter(context, tokens)
                response = await behavior(_admit(request, streams_in, refusal), context)
            except RenkeiError as err:
                await _refuse(context, err, name, started)
            except Exception as err:
                await _fail(context, name, err)
            finally:
                _leave(tokens)
            _ok(name, started)
            return response

        return call

    def _around_stream(
        self,
        behavior: Callable[[Any, Context], AsyncIterator[Any]],
        name: str,
        streams_in: bool,
        refusal: Callable[[], InvalidArgument],
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            tokens: list[Any] = []
            try:
                self._enter(context, tokens)
                async for response in behavior(_admit(request, streams_in, refusal), context):
                    yield response
            except RenkeiError as err:
                await _refuse(context, err, name, started)
            except Exception as err:
                await _fail(context, name, err)
            finally:
                _leave(tokens)
            _ok(name, started)

        return stream


class _Undecodable:
    """What a request's bytes became when they were no message of its type."""

    __slots__ = ()


_UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer``, but bytes that are no such message give ``_UNDECODABLE``.

    grpc answers a deserializer's exception with UNKNOWN and the exception's
    class in the details; the call wrapper answers INVALID_ARGUMENT instead.
    """
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, or whatever else the parser makes of hostile bytes
            return _UNDECODABLE

    return deserialize


def _undecodable(deserializer: Callable[[bytes], Any] | None) -> Callable[[], InvalidArgument]:
    message_type = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    message = f"the request's bytes are not a valid {getattr(message_type, 'full_name', 'request')}"
    return functools.partial(InvalidArgument, "REQUEST_UNDECODABLE", message)


def _leave(tokens: list[Any]) -> None:
    """Reset what ``_enter`` set: the caller (if it got that far), then the correlation id."""
    if len(tokens) > 1:
        reset_caller(tokens[1])
    if tokens:
        correlation_id.reset(tokens[0])


def _admit(request: Any, streams_in: bool, refusal: Callable[[], InvalidArgument]) -> Any:
    """The request as the servicer gets it: undecodable bytes refused (a stream's, as read)."""
    if streams_in:
        return _checked(request, refusal)
    if type(request) is _Undecodable:
        raise refusal()
    return request


async def _checked(
    requests: AsyncIterator[Any], refusal: Callable[[], InvalidArgument]
) -> AsyncIterator[Any]:
    async for request in requests:
        if type(request) is _Undecodable:
            raise refusal()
        yield request


def _metadata_of(context: Context) -> tuple[str | None, str | None]:
    cid = claimed = None
    for key, value in context.invocation_metadata() or ():
        if key == CORRELATION_HEADER:
            cid = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        elif key == DEV_PARTY_HEADER:
            claimed = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return cid, claimed


def _kind(
    handler: grpc.RpcMethodHandler[Any, Any],
) -> tuple[Callable[..., grpc.RpcMethodHandler[Any, Any]], Any]:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler, handler.unary_unary
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler, handler.unary_stream
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler, handler.stream_unary
    return grpc.stream_stream_rpc_method_handler, handler.stream_stream


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def _refuse(context: Context, err: RenkeiError, name: str, started: float) -> None:
    status = err.to_status()
    event(
        _log,
        "rpc refused",
        method=name,
        code=err.code.name,
        reason=err.reason,
        detail=err.message,
        ms=_ms(started),
    )
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: abort raises") from err


async def _fail(context: Context, name: str, err: Exception) -> None:
    if context.done():  # an abort of the servicer's own, or a cancelled call
        raise err
    _log.exception("rpc failed", extra={"fields": {"method": name}})
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    raise AssertionError("unreachable: abort raises") from err


def _ok(name: str, started: float) -> None:
    if _log.isEnabledFor(logging.DEBUG):
        event(_log, "rpc ok", logging.DEBUG, method=name, ms=_ms(started))
