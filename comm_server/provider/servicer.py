"""ProviderService: the hub asks through it; each RPC onto the one provider pipeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from comm_server.callers import CallerCheck, Context
from comm_server.log_receipts import LogReceipt
from comm_server.provider.pipeline import Provider
from comm_server.provider.stream import provide_call, serve_provide_stream
from comm_server.provider.types import CollectCall, ProvideCall, ProvideItem
from renkei import validate
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc

_log = logging.getLogger("renkei.rpc")


class ProviderServicer(comm_pb2_grpc.ProviderServiceServicer):
    def __init__(self, provider: Provider, callers: CallerCheck) -> None:
        self._provider = provider
        self._callers = callers
        # Set on shutdown: open ProvideStreams finish their calls and end.
        self.draining = asyncio.Event()

    async def BulkProvide(  # gRPC method names are PascalCase
        self, request: comm_pb2.BulkProvideRequest, context: Context
    ) -> comm_pb2.BulkProvideResponse:
        self._callers.require_hub()
        provided = await self._provider.provide(
            ProvideCall(
                time=validate.timestamp("time", request.time),
                requester_agency_id=request.requester_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                items=[
                    ProvideItem(
                        i.serial,
                        i.index,
                        i.link_code,
                        LogReceipt.from_proto(i.log_receipt) if i.HasField("log_receipt") else None,
                    )
                    for i in request.items
                ],
                sealed_queries=request.sealed_queries,
                requester_sealing_public_key=request.requester_sealing_public_key,
                item_count=request.item_count,
                bulk=True,
                requester_exchange_certificate=request.requester_exchange_certificate,
                query_signature=request.query_signature,
            ),
            context.time_remaining(),
        )
        return comm_pb2.BulkProvideResponse(
            results=[
                comm_pb2.BulkProvideResult(serial=serial)
                if error is None
                else comm_pb2.BulkProvideResult(
                    serial=serial,
                    error=comm_pb2.BulkItemError(
                        code=error.code, reason=error.reason, message=error.message
                    ),
                )
                for serial, error in provided.results
            ],
            sealed_answers=provided.sealed_answer,
            answer_signature=provided.answer_signature,
        )

    async def Provide(  # gRPC method names are PascalCase
        self, request: comm_pb2.ProvideRequest, context: Context
    ) -> comm_pb2.ProvideResponse:
        self._callers.require_hub()
        provided = await self._provider.provide(provide_call(request), context.time_remaining())
        return comm_pb2.ProvideResponse(
            sealed_answer=provided.sealed_answer,
            ticket=provided.ticket,
            answer_signature=provided.answer_signature,
        )

    async def ProvideStream(  # gRPC method names are PascalCase
        self, request_iterator: AsyncIterator[comm_pb2.ProvideStreamRequest], context: Context
    ) -> AsyncIterator[comm_pb2.ProvideStreamResponse]:
        # A refusal of the whole stream (a caller not the hub) is the interceptor's to answer.
        async for response in serve_provide_stream(
            self._provider, request_iterator, self._callers.require_hub, self.draining
        ):
            yield response

    async def Collect(  # gRPC method names are PascalCase
        self, request: comm_pb2.CollectRequest, context: Context
    ) -> comm_pb2.CollectResponse:
        self._callers.require_hub()
        sealed = await self._provider.collect(
            CollectCall(
                serial=request.serial,
                ticket=request.ticket,
                requester_agency_id=request.requester_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                requester_sealing_public_key=request.requester_sealing_public_key,
                requester_exchange_certificate=request.requester_exchange_certificate,
            ),
            context.time_remaining(),
        )
        return comm_pb2.CollectResponse(
            sealed_answer=sealed.answer, answer_signature=sealed.signature
        )
