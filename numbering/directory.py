"""Which resident codes exist: the resident registry's answer, as the numbering agency asks it.

The numbering agency issues a Number only for a resident code the registry
knows (R8). It holds no URL to the registry's store: it asks the registry's
``renkei.registry.v1.ResidentDirectoryService`` (``CheckResidentCodes``),
over mutual TLS with its own certificate, and checks it reached the registry
(``peer="service:registry"``). The answer is existence only: which of the
codes it sent are in use.

``NumberingService`` is plain synchronous Python, run in worker threads; the
gRPC channel lives on the server's event loop. ``GrpcResidentDirectory``
hands each call to that loop and waits, with what is left of the caller's
deadline (``call_deadline``, set by the servicer) less a margin.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar

import grpc

from renkei.deadline import NUMBERING_MARGIN_SECONDS, budget
from renkei.errors import Unavailable, from_rpc_error
from renkei.grpcutil.client import channel, outgoing_metadata
from renkei.limits import MAX_RESIDENT_CODES_CHECK
from renkei.pki import TlsFiles
from renkei.registry.v1 import resident_directory_pb2 as pb
from renkei.registry.v1 import resident_directory_pb2_grpc as pb_grpc

REGISTRY = "service:registry"
# How long past a call's deadline a worker waits for the loop that carries it.
_LOOP_GRACE_SECONDS = 1.0
# The current call's deadline on the time.monotonic() clock (None: the caller set none).
call_deadline: ContextVar[float | None] = ContextVar("numbering_call_deadline", default=None)


class StaticResidentDirectory:
    """A fixed set of resident codes (tests, the benchmark)."""

    def __init__(self, codes: Iterable[str]) -> None:
        self._codes = frozenset(codes)

    def exists(self, resident_code: str) -> bool:
        return resident_code in self._codes

    def existing(self, resident_codes: Sequence[str]) -> set[str]:
        return set(self._codes.intersection(resident_codes))


class GrpcResidentDirectory:
    """The registry's ``ResidentDirectoryService``, asked from the service's worker threads.

    Build it on the event loop that is to carry its calls (``create_server``);
    ``exists`` and ``existing`` block the calling thread, which must not be
    that loop's. Any failure of the registry (unreachable, refusing, a
    deadline hit in flight) is UNAVAILABLE ``REGISTRY_UNAVAILABLE`` with the
    registry's code and reason in the message: it is never passed on as if
    the numbering agency's caller had been refused.
    """

    def __init__(
        self,
        endpoint: str,
        tls: TlsFiles | None,
        *,
        insecure_development: bool = False,
        timeout: float = 5.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._endpoint = endpoint
        self._channel = channel(
            endpoint, tls, peer=REGISTRY, insecure_development=insecure_development
        )
        self._stub = pb_grpc.ResidentDirectoryServiceStub(self._channel)
        self._timeout = timeout

    def exists(self, resident_code: str) -> bool:
        return resident_code in self.existing([resident_code])

    def existing(self, resident_codes: Sequence[str]) -> set[str]:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("GrpcResidentDirectory blocks: call it from a worker thread")
        found: set[str] = set()
        for i in range(0, len(resident_codes), MAX_RESIDENT_CODES_CHECK):
            chunk = list(resident_codes[i : i + MAX_RESIDENT_CODES_CHECK])
            deadline = call_deadline.get()
            timeout = budget(
                self._timeout,
                None if deadline is None else deadline - time.monotonic(),
                NUMBERING_MARGIN_SECONDS,
                for_what="to ask the resident registry",
            )
            future = asyncio.run_coroutine_threadsafe(
                self.check(chunk, timeout, outgoing_metadata()), self._loop
            )
            try:
                # The call's own deadline ends it; this only guards against a stopped loop.
                found |= future.result(timeout + _LOOP_GRACE_SECONDS)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise Unavailable(
                    "REGISTRY_UNAVAILABLE",
                    f"the resident registry at {self._endpoint}: no answer in {timeout:.3f} s",
                ) from None
        return found

    async def check(
        self,
        resident_codes: list[str],
        timeout: float,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> set[str]:
        """The codes of ``resident_codes`` (at most MAX_RESIDENT_CODES_CHECK) the registry has."""
        try:
            response = await self._stub.CheckResidentCodes(
                pb.CheckResidentCodesRequest(resident_codes=resident_codes),
                timeout=timeout,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as err:
            peer = from_rpc_error(err, fallback_reason="REGISTRY_UNAVAILABLE")
            raise Unavailable(
                "REGISTRY_UNAVAILABLE",
                f"the resident registry at {self._endpoint} did not answer which resident "
                f"codes exist: {peer.code.name} {peer.reason}: {peer.message}",
            ) from None
        # Belt and braces: only codes asked about count, whatever the answer holds.
        return set(response.existing_resident_codes).intersection(resident_codes)

    async def close(self) -> None:
        await self._channel.close(None)
