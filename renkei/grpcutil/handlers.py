"""The one decorator every servicer method wears.

It sets the correlation id from the caller's metadata (or makes one), logs the
call as one structured line, and turns a ``RenkeiError`` into a gRPC status
with ErrorInfo. Anything else is a bug: logged with its traceback and answered
INTERNAL without details.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from renkei.errors import RenkeiError
from renkei.logs import CORRELATION_HEADER, correlation_id, event, new_correlation_id

_log = logging.getLogger("renkei.rpc")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")
Handler = Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item[0] == key:
            value = item[1]
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def rpc(method: str) -> Callable[[Handler[Self, Req, Resp]], Handler[Self, Req, Resp]]:
    def decorate(fn: Handler[Self, Req, Resp]) -> Handler[Self, Req, Resp]:
        @functools.wraps(fn)
        async def wrapper(
            self: Self, request: Req, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Resp:
            cid = metadata_value(context, CORRELATION_HEADER) or new_correlation_id()
            token = correlation_id.set(cid[:64])
            started = time.perf_counter()
            try:
                response = await fn(self, request, context)
            except RenkeiError as err:
                status = err.to_status()
                event(
                    _log,
                    "rpc refused",
                    method=method,
                    code=err.code.name,
                    reason=err.reason,
                    detail=err.message,
                    ms=round((time.perf_counter() - started) * 1000, 3),
                )
                await context.abort(status.code, status.details, status.trailing_metadata)
                raise AssertionError("unreachable: abort raises") from err
            except Exception:
                if context.done():
                    raise
                _log.exception("rpc failed", extra={"fields": {"method": method}})
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
                raise AssertionError("unreachable: abort raises") from None
            finally:
                correlation_id.reset(token)
            if _log.isEnabledFor(logging.DEBUG):
                event(
                    _log,
                    "rpc ok",
                    logging.DEBUG,
                    method=method,
                    ms=round((time.perf_counter() - started) * 1000, 3),
                )
            return response

        return wrapper

    return decorate


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current correlation id to the next hop."""
    cid = correlation_id.get()
    return ((CORRELATION_HEADER, cid),) if cid else ()
