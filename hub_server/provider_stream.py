"""One long-lived ProvideStream to one provider, multiplexing Provide calls by id.

A unary call per exchange costs the hub and the provider a whole gRPC call
each (docs/benchmarks.md); on the stream an exchange is two messages. Each
call still has its own deadline (sent along, and enforced here), and its own
answer or refusal, matched by call id. The stream is opened on first use and
again after it breaks; a break fails only the calls in flight on it, with
PROVIDER_UNAVAILABLE, as a broken connection fails unary calls.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator

import grpc

from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.errors import DeadlineExceeded, from_parts, from_rpc_error, status_code
from renkei.logs import correlation_id

Request = comm_pb2.ProvideStreamRequest


class StreamUnsupported(Exception):
    """The provider does not offer ProvideStream (UNIMPLEMENTED): use unary Provide."""


class _Open:
    """One opened stream: its outgoing queue, its calls in flight, its reader."""

    def __init__(self, stub: comm_pb2_grpc.ProviderServiceAsyncStub) -> None:
        self.outbox: asyncio.Queue[Request | None] = asyncio.Queue()
        self.pending: dict[int, asyncio.Future[comm_pb2.ProvideResponse]] = {}
        self.call = stub.ProvideStream(self._requests())
        self.reader = asyncio.create_task(self._read())
        self.broken = False

    async def _requests(self) -> AsyncIterator[Request]:
        while (request := await self.outbox.get()) is not None:
            yield request

    async def _read(self) -> None:
        try:
            async for message in self.call:
                done = self.pending.pop(message.call_id, None)
                if done is None or done.done():
                    continue  # a call given up on already
                if message.WhichOneof("result") == "response":
                    done.set_result(message.response)
                else:
                    e = message.error
                    done.set_exception(
                        # A provider's failure it gave no reason for is still one.
                        from_parts(
                            status_code(e.code),
                            e.reason or "PROVIDER_UNAVAILABLE",
                            e.message,
                            dict(e.metadata),
                        )
                    )
            failure: Exception = from_parts(
                grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE", "the provider ended the stream"
            )
        except grpc.aio.AioRpcError as err:
            failure = (
                StreamUnsupported()
                if err.code() == grpc.StatusCode.UNIMPLEMENTED
                else from_rpc_error(err, fallback_reason="PROVIDER_UNAVAILABLE")
            )
        except asyncio.CancelledError:
            failure = from_parts(
                grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE", "the hub closed the stream"
            )
            raise
        finally:
            self.broken = True
            # Ends the request generator too: a broken stream's is never read again,
            # and left waiting on the queue it would outlive the event loop.
            self.outbox.put_nowait(None)
            for done in self.pending.values():
                if not done.done():
                    done.set_exception(failure)
            self.pending.clear()

    async def close(self) -> None:
        self.outbox.put_nowait(None)
        self.call.cancel()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


class ProviderStream:
    """Provide calls to one provider over a stream, reopened when it breaks."""

    def __init__(self, stub: comm_pb2_grpc.ProviderServiceAsyncStub) -> None:
        self._stub = stub
        self._open: _Open | None = None
        self._ids = itertools.count(1)

    async def provide(
        self, request: comm_pb2.ProvideRequest, timeout: float
    ) -> comm_pb2.ProvideResponse:
        """The provider's response; RenkeiError as a unary Provide would raise it;
        StreamUnsupported if the provider has no ProvideStream."""
        stream = self._open
        if stream is None or stream.broken:
            stream = self._open = _Open(self._stub)
        call_id = next(self._ids)
        done: asyncio.Future[comm_pb2.ProvideResponse] = asyncio.get_running_loop().create_future()
        stream.pending[call_id] = done
        stream.outbox.put_nowait(
            Request(
                call_id=call_id,
                provide=request,
                timeout_ms=max(1, math.ceil(timeout * 1000)),
                correlation_id=correlation_id.get(),
            )
        )
        try:
            async with asyncio.timeout(timeout):
                return await done
        except TimeoutError:
            stream.outbox.put_nowait(Request(call_id=call_id, cancel=True))
            raise DeadlineExceeded(
                "PROVIDER_DEADLINE_EXCEEDED", f"the provider did not answer within {timeout:.3f} s"
            ) from None
        except asyncio.CancelledError:
            stream.outbox.put_nowait(Request(call_id=call_id, cancel=True))
            raise
        finally:
            stream.pending.pop(call_id, None)

    async def close(self) -> None:
        if self._open is not None:
            await self._open.close()
            self._open = None
