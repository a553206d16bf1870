"""ProviderService.ProvideStream: many Provide calls from the hub over one stream.

Each request runs as its own task through the same ``Provider.provide`` as a
unary Provide call, with the deadline the request carries; its answer or
refusal goes back tagged with the request's call id as soon as it is ready.
A cancel message, or the stream ending early (the hub gone), cancels the
calls still running, as a cancelled unary call would be; the pipeline logs
each as INTERRUPTED, the reason given as the cancellation's message. When the server
shuts down (``draining`` set), the stream takes no new calls, answers the
ones running and ends, so a graceful shutdown is not held up by the hub's
long-lived stream; the hub opens a new one, elsewhere or after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from comm_server.log_receipts import LogReceipt
from comm_server.provider.pipeline import HUB_CANCELLED, HUB_STREAM_DROPPED, Provider
from comm_server.provider.types import ProvideCall
from renkei import validate
from renkei.comm.v1 import comm_pb2
from renkei.errors import RenkeiError, Unavailable
from renkei.logs import correlation_id, event, new_correlation_id

_log = logging.getLogger("renkei.rpc")
# Each call inside the one stream is logged as the interceptor logs a unary call.
_METHOD = (
    comm_pb2.DESCRIPTOR.services_by_name["ProviderService"].methods_by_name["ProvideStream"].name
)

Context = grpc.aio.ServicerContext[Any, Any]
Requests = AsyncIterator[comm_pb2.ProvideStreamRequest]
Response = comm_pb2.ProvideStreamResponse


_SHUTTING_DOWN = Unavailable(
    "PROVIDER_UNAVAILABLE", "the provider is shutting down and takes no new calls"
)


def provide_call(request: comm_pb2.ProvideRequest) -> ProvideCall:
    """A unary Provide's request (or one of a stream's) as the pipeline takes it."""
    return ProvideCall.single(
        serial=request.serial,
        time=validate.timestamp("time", request.time),
        requester_agency_id=request.requester_agency_id,
        info_kind=request.info_kind,
        legal_basis_item=request.legal_basis_item,
        link_code=request.link_code,
        sealed_query=request.sealed_query,
        requester_sealing_public_key=request.requester_sealing_public_key,
        requester_exchange_certificate=request.requester_exchange_certificate,
        query_signature=request.query_signature,
        log_receipt=(
            LogReceipt.from_proto(request.log_receipt) if request.HasField("log_receipt") else None
        ),
    )


def _refusal(call_id: int, err: RenkeiError) -> Response:
    return Response(
        call_id=call_id,
        error=comm_pb2.ProvideStreamError(
            code=err.code.value[0], message=err.message, reason=err.reason, metadata=err.metadata
        ),
    )


async def serve_provide_stream(
    provider: Provider,
    requests: Requests,
    check_caller: Callable[[], None],
    draining: asyncio.Event | None = None,
) -> AsyncIterator[Response]:
    """The responses to ``requests``, in the order they are ready."""
    check_caller()
    draining = draining or asyncio.Event()
    out: asyncio.Queue[Response | None] = asyncio.Queue()
    running: dict[int, asyncio.Task[None]] = {}

    async def one(call_id: int, request: comm_pb2.ProvideStreamRequest) -> None:
        correlation_id.set(request.correlation_id[:64] or new_correlation_id())
        started = time.perf_counter()
        try:
            # No timeout_ms: no deadline, as a unary call without one (the server's ceiling).
            remaining = request.timeout_ms / 1000 if request.timeout_ms else None
            provided = await provider.provide(provide_call(request.provide), remaining)
            out.put_nowait(
                Response(
                    call_id=call_id,
                    response=comm_pb2.ProvideResponse(
                        sealed_answer=provided.sealed_answer,
                        ticket=provided.ticket,
                        answer_signature=provided.answer_signature,
                    ),
                )
            )
        except RenkeiError as err:
            event(
                _log,
                "rpc refused",
                method=_METHOD,
                code=err.code.name,
                reason=err.reason,
                detail=err.message,
                ms=round((time.perf_counter() - started) * 1000, 3),
            )
            out.put_nowait(_refusal(call_id, err))
        except asyncio.CancelledError:
            raise  # the hub gave up on it: nothing to answer
        except Exception:
            _log.exception("rpc failed", extra={"fields": {"method": _METHOD}})
            out.put_nowait(
                Response(
                    call_id=call_id,
                    error=comm_pb2.ProvideStreamError(
                        code=grpc.StatusCode.INTERNAL.value[0], message="internal error"
                    ),
                )
            )
        finally:
            running.pop(call_id, None)

    async def read() -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("kind")
                if kind == "provide" and draining.is_set():
                    out.put_nowait(_refusal(request.call_id, _SHUTTING_DOWN))
                elif kind == "provide" and request.call_id not in running:
                    running[request.call_id] = asyncio.create_task(one(request.call_id, request))
                elif kind == "cancel" and (task := running.get(request.call_id)) is not None:
                    task.cancel(HUB_CANCELLED)
            # The hub closed its side: answer what is still running, then end. (Waited for,
            # not gathered: cancelling this wait must not cancel the calls, see below.)
            while running:
                await asyncio.wait(list(running.values()))
        finally:
            out.put_nowait(None)

    async def drain() -> None:
        await draining.wait()
        while running:
            await asyncio.wait(list(running.values()))
        out.put_nowait(None)

    reader = asyncio.create_task(read())
    drainer = asyncio.create_task(drain())
    try:
        while (response := await out.get()) is not None:
            yield response
        if not draining.is_set():
            await reader  # a failed read of the requests ends the stream with its error
    finally:
        # Calls still running here: the stream ended without the hub closing its side. Each
        # is cancelled once, with the reason its INTERRUPTED row gives (a second cancel,
        # from a gather or from grpc cancelling this stream again, would lose the reason).
        for task in list(running.values()):
            task.cancel(HUB_STREAM_DROPPED)
        reader.cancel()
        drainer.cancel()
        await asyncio.shield(
            asyncio.gather(reader, drainer, *running.values(), return_exceptions=True)
        )
