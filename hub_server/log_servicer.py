"""renkei.log.v1.LogService: the verifiable log's checkpoint, proofs and entries.

Proofs and checkpoints are public facts about the tree (its hashes reveal
nothing); an entry is returned only to its requester or its provider. A
request for an entry the caller may not see is refused the same way whether
or not the entry exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from hub_server.checkpoints import Checkpointer
from hub_server.log_tree import TreeReader
from renkei.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable
from renkei.grpcutil.caller import caller_agency
from renkei.log.v1 import log_pb2, log_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
MAX_ENTRIES = 1000


class LogServicer(log_pb2_grpc.LogServiceServicer):
    def __init__(self, reader: TreeReader, checkpoints: Checkpointer, size: Callable[[], int]):
        self._reader = reader
        self._checkpoints = checkpoints
        self._size = size  # the committed tree's size

    async def GetCheckpoint(  # gRPC method names are PascalCase
        self, request: log_pb2.GetCheckpointRequest, context: Context
    ) -> log_pb2.GetCheckpointResponse:
        latest = self._checkpoints.latest
        if latest is None:
            raise Unavailable("CHECKPOINT_NOT_YET_SIGNED", "the hub has signed no checkpoint yet")
        return log_pb2.GetCheckpointResponse(checkpoint=latest)

    async def GetInclusionProof(  # gRPC method names are PascalCase
        self, request: log_pb2.GetInclusionProofRequest, context: Context
    ) -> log_pb2.GetInclusionProofResponse:
        size = self._tree_size("tree_size", request.tree_size)
        if request.leaf_index >= size:
            raise InvalidArgument(
                "LEAF_INDEX_OUT_OF_RANGE",
                f"leaf_index: {request.leaf_index} is not below tree_size {size}",
                {"field": "leaf_index"},
            )
        hashes = await asyncio.to_thread(self._reader.inclusion_proof, request.leaf_index, size)
        return log_pb2.GetInclusionProofResponse(hashes=hashes)

    async def GetConsistencyProof(  # gRPC method names are PascalCase
        self, request: log_pb2.GetConsistencyProofRequest, context: Context
    ) -> log_pb2.GetConsistencyProofResponse:
        second = self._tree_size("second_size", request.second_size)
        if request.first_size > second:
            raise InvalidArgument(
                "TREE_SIZES_OUT_OF_ORDER",
                f"first_size {request.first_size} is larger than second_size {second}",
                {"field": "first_size"},
            )
        if request.first_size == 0:  # the empty tree is a prefix of every tree
            return log_pb2.GetConsistencyProofResponse()
        hashes = await asyncio.to_thread(self._reader.consistency_proof, request.first_size, second)
        return log_pb2.GetConsistencyProofResponse(hashes=hashes)

    async def GetEntries(  # gRPC method names are PascalCase
        self, request: log_pb2.GetEntriesRequest, context: Context
    ) -> log_pb2.GetEntriesResponse:
        indices = list(request.leaf_indices)
        if not indices or len(indices) > MAX_ENTRIES:
            raise InvalidArgument(
                "ENTRY_COUNT_OUT_OF_RANGE",
                f"leaf_indices: {len(indices)} given, 1 to {MAX_ENTRIES} allowed",
                {"field": "leaf_indices"},
            )
        size = self._size()
        beyond = [i for i in indices if i >= size]
        if beyond:
            raise InvalidArgument(
                "LEAF_INDEX_OUT_OF_RANGE",
                f"leaf_indices: {beyond[0]} is not below the tree's size {size}",
                {"field": "leaf_indices"},
            )
        agency = caller_agency()
        found = await asyncio.to_thread(self._reader.entries, indices)
        gone = [i for i in indices if i not in found]
        purged = await asyncio.to_thread(self._reader.purged, gone) if gone else set()
        for i in indices:
            stored = found.get(i)
            if stored is None and i in purged:
                # Its hash is still the tree's (proofs verify); only the entry went.
                raise FailedPrecondition(
                    "ENTRY_PURGED",
                    f"leaf {i}: its entry was purged under retention (its hash remains)",
                    {"field": "leaf_indices", "leaf_index": str(i)},
                )
            if stored is None or agency not in (stored.requester, stored.provider):
                raise PermissionDenied(
                    "ENTRY_NOT_ENTITLED",
                    f"leaf {i}: only the exchange's requester and provider may read its entry",
                    {"field": "leaf_indices"},
                )
        return log_pb2.GetEntriesResponse(
            entries=[
                log_pb2.LogReceipt(serial=found[i].serial, leaf_index=i, entry=found[i].entry)
                for i in indices
            ]
        )

    def _tree_size(self, field: str, value: int) -> int:
        size = self._size()
        if not 0 < value <= size:
            raise InvalidArgument(
                "TREE_SIZE_OUT_OF_RANGE",
                f"{field}: {value} is not between 1 and the tree's size {size}",
                {"field": field},
            )
        return value
