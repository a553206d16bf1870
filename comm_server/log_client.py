"""Reading the hub's log (renkei.log.v1.LogService) over the server's hub channel.

``LogReader`` is what the verify job (``comm_server.log_verify``) needs; ``LogClient``
is it over gRPC, on the channel ``HubClient`` already holds (same mutual TLS,
same reconnect settings). A refusal is the hub's ``RenkeiError`` (its reason,
or ``HUB_UNAVAILABLE`` / ``HUB_DEADLINE_EXCEEDED`` for a bare status), as for
the hub's other calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from comm_server.log_receipts import LogReceipt
from renkei.errors import RenkeiError, from_rpc_error
from renkei.grpcutil.client import outgoing_metadata
from renkei.log.v1 import log_pb2, log_pb2_grpc

# Per call: proofs and a batch of entries are small and quick to serve.
DEFAULT_TIMEOUT_SECONDS = 10.0
# LogService's bound on GetEntries (log.proto).
MAX_ENTRIES_PER_CALL = 1000


class LogReader(Protocol):
    async def checkpoint(self) -> bytes:
        """The latest checkpoint: a signed note with the cosignatures the hub holds."""
        ...

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    async def consistency_proof(self, old: int, new: int) -> list[bytes]: ...

    async def entries(self, indices: Sequence[int]) -> list[LogReceipt]:
        """At most ``MAX_ENTRIES_PER_CALL``; in the request's order."""
        ...


def _error(err: grpc.aio.AioRpcError) -> RenkeiError:
    fallback = (
        "HUB_DEADLINE_EXCEEDED"
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else "HUB_UNAVAILABLE"
    )
    return from_rpc_error(err, fallback_reason=fallback)


class LogClient:
    """``LogReader`` over gRPC; the channel is the caller's (it closes it)."""

    def __init__(
        self, channel: grpc.aio.Channel, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self._stub = log_pb2_grpc.LogServiceStub(channel)
        self._timeout = timeout

    async def checkpoint(self) -> bytes:
        try:
            response = await self._stub.GetCheckpoint(
                log_pb2.GetCheckpointRequest(),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
        return bytes(response.checkpoint)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        try:
            response = await self._stub.GetInclusionProof(
                log_pb2.GetInclusionProofRequest(leaf_index=index, tree_size=size),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
        return [bytes(h) for h in response.hashes]

    async def consistency_proof(self, old: int, new: int) -> list[bytes]:
        try:
            response = await self._stub.GetConsistencyProof(
                log_pb2.GetConsistencyProofRequest(first_size=old, second_size=new),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
        return [bytes(h) for h in response.hashes]

    async def entries(self, indices: Sequence[int]) -> list[LogReceipt]:
        if len(indices) > MAX_ENTRIES_PER_CALL:
            raise ValueError(f"{len(indices)} entries asked, at most {MAX_ENTRIES_PER_CALL}")
        try:
            response = await self._stub.GetEntries(
                log_pb2.GetEntriesRequest(leaf_indices=list(indices)),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
        return [LogReceipt.from_proto(e) for e in response.entries]
