"""ProviderService (for the hub) and RequesterService (for the agency's legacy side)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from comm_server.bulk_exchange import (
    BulkExchange,
    BulkItem,
    BulkLocalQuery,
    BulkProvideCall,
    BulkProvideItem,
)
from comm_server.exchange import CollectCall, Exchange, FetchRequest, LocalQuery, ProvideCall
from comm_server.provide_stream import serve_provide_stream
from renkei.bulk import ItemError
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.errors import PermissionDenied, RenkeiError, Unauthenticated
from renkei.grpcutil.handlers import metadata_value, rpc
from renkei.logs import event
from renkei.pki import PeerIdentity, peer_identity

_log = logging.getLogger("renkei.rpc")

Context = grpc.aio.ServicerContext[Any, Any]
DEV_PARTY_HEADER = "x-renkei-dev-party"  # "hub" or "agency:<id>"; development ports only


class CallerCheck:
    def __init__(self, agency_id: str, *, insecure_development: bool) -> None:
        self._agency_id = agency_id
        self._insecure = insecure_development

    def identity(self, context: Context) -> PeerIdentity:
        identity = peer_identity(context)
        if identity is None and self._insecure:
            claimed = metadata_value(context, DEV_PARTY_HEADER) or ""
            if claimed == "hub":
                identity = PeerIdentity("hub", "hub")
            elif claimed.startswith("agency:"):
                identity = PeerIdentity("agency", claimed.removeprefix("agency:"))
        if identity is None:
            raise Unauthenticated(
                "CLIENT_CERT_REQUIRED", "this server knows callers only by client certificate"
            )
        return identity

    def require_hub(self, context: Context) -> None:
        if self.identity(context).kind != "hub":
            raise PermissionDenied("CALLER_NOT_HUB", "only the hub may ask this server to provide")

    def require_own_agency(self, context: Context) -> None:
        identity = self.identity(context)
        if identity.kind != "agency" or identity.party_id != self._agency_id:
            raise PermissionDenied(
                "CALLER_NOT_OWN_AGENCY",
                f"only agency {self._agency_id}'s own systems may query through this server",
            )


def _timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _item_error(error: ItemError | None) -> comm_pb2.BulkItemError | None:
    if error is None:
        return None
    return comm_pb2.BulkItemError(code=error.code, reason=error.reason, message=error.message)


class ProviderServicer(comm_pb2_grpc.ProviderServiceServicer):
    def __init__(self, exchange: Exchange, callers: CallerCheck, bulk: BulkExchange) -> None:
        self._exchange = exchange
        self._callers = callers
        self._bulk = bulk
        # Set on shutdown: open ProvideStreams finish their calls and end.
        self.draining = asyncio.Event()

    @rpc("BulkProvide")
    async def BulkProvide(  # gRPC method names are PascalCase
        self, request: comm_pb2.BulkProvideRequest, context: Context
    ) -> comm_pb2.BulkProvideResponse:
        self._callers.require_hub(context)
        results, sealed = await self._bulk.provide(
            BulkProvideCall(
                time=_timestamp(request.time),
                requester_agency_id=request.requester_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                item_count=request.item_count,
                items=[BulkProvideItem(i.serial, i.index, i.link_code) for i in request.items],
                sealed_queries=request.sealed_queries,
                requester_sealing_public_key=request.requester_sealing_public_key,
            ),
            context.time_remaining(),
        )
        return comm_pb2.BulkProvideResponse(
            results=[
                comm_pb2.BulkProvideResult(serial=serial)
                if error is None
                else comm_pb2.BulkProvideResult(serial=serial, error=_item_error(error))
                for serial, error in results
            ],
            sealed_answers=sealed,
        )

    @rpc("Provide")
    async def Provide(  # gRPC method names are PascalCase
        self, request: comm_pb2.ProvideRequest, context: Context
    ) -> comm_pb2.ProvideResponse:
        self._callers.require_hub(context)
        provided = await self._exchange.provide(
            ProvideCall(
                serial=request.serial,
                time=_timestamp(request.time),
                requester_agency_id=request.requester_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                link_code=request.link_code,
                sealed_query=request.sealed_query,
                requester_sealing_public_key=request.requester_sealing_public_key,
            ),
            context.time_remaining(),
        )
        return comm_pb2.ProvideResponse(
            sealed_answer=provided.sealed_answer, ticket=provided.ticket
        )

    async def ProvideStream(  # gRPC method names are PascalCase
        self, request_iterator: AsyncIterator[comm_pb2.ProvideStreamRequest], context: Context
    ) -> AsyncIterator[comm_pb2.ProvideStreamResponse]:
        try:
            async for response in serve_provide_stream(
                self._exchange,
                request_iterator,
                lambda: self._callers.require_hub(context),
                self.draining,
            ):
                yield response
        except RenkeiError as err:  # the stream as a whole refused (a caller not the hub)
            event(_log, "rpc refused", method="ProvideStream", reason=err.reason)
            status = err.to_status()
            await context.abort(status.code, status.details, status.trailing_metadata)

    @rpc("Collect")
    async def Collect(  # gRPC method names are PascalCase
        self, request: comm_pb2.CollectRequest, context: Context
    ) -> comm_pb2.CollectResponse:
        self._callers.require_hub(context)
        sealed = await self._exchange.collect(
            CollectCall(
                serial=request.serial,
                ticket=request.ticket,
                requester_agency_id=request.requester_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                requester_sealing_public_key=request.requester_sealing_public_key,
            ),
            context.time_remaining(),
        )
        return comm_pb2.CollectResponse(sealed_answer=sealed)


class RequesterServicer(comm_pb2_grpc.RequesterServiceServicer):
    def __init__(self, exchange: Exchange, callers: CallerCheck, bulk: BulkExchange) -> None:
        self._exchange = exchange
        self._callers = callers
        self._bulk = bulk

    @rpc("BulkQuery")
    async def BulkQuery(  # gRPC method names are PascalCase
        self, request: comm_pb2.BulkQueryRequest, context: Context
    ) -> comm_pb2.BulkQueryResponse:
        self._callers.require_own_agency(context)
        result = await self._bulk.query(
            BulkLocalQuery(
                provider_agency_id=request.provider_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                purpose=request.purpose,
                staff_id=request.staff_id,
                terminal_id=request.terminal_id,
                items=[BulkItem(i.local_person_id, i.query) for i in request.items],
            ),
            context.time_remaining(),
        )
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(result.time)
        return comm_pb2.BulkQueryResponse(
            time=when,
            legal_basis_item=result.legal_basis_item,
            policy_version=result.policy_version,
            results=[
                comm_pb2.BulkQueryResult(
                    local_person_id=r.local_person_id,
                    serial=r.serial,
                    answer=r.answer,
                    error=_item_error(r.error),
                    record=r.record,
                )
                for r in result.results
            ],
        )

    @rpc("Query")
    async def Query(  # gRPC method names are PascalCase
        self, request: comm_pb2.QueryRequest, context: Context
    ) -> comm_pb2.QueryResponse:
        self._callers.require_own_agency(context)
        result = await self._exchange.query(
            LocalQuery(
                local_person_id=request.local_person_id,
                provider_agency_id=request.provider_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                purpose=request.purpose,
                staff_id=request.staff_id,
                terminal_id=request.terminal_id,
                query=request.query,
            ),
            context.time_remaining(),
        )
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(result.time)
        return comm_pb2.QueryResponse(
            serial=result.serial,
            time=when,
            legal_basis_item=result.legal_basis_item,
            policy_version=result.policy_version,
            answer=result.answer,
            state=comm_pb2.ANSWER_STATE_PENDING
            if result.ticket
            else comm_pb2.ANSWER_STATE_ANSWERED,
            ticket=result.ticket,
            record=result.record,
        )

    @rpc("FetchAnswer")
    async def FetchAnswer(  # gRPC method names are PascalCase
        self, request: comm_pb2.FetchAnswerRequest, context: Context
    ) -> comm_pb2.FetchAnswerResponse:
        self._callers.require_own_agency(context)
        result = await self._exchange.fetch(
            FetchRequest(
                ticket=request.ticket, staff_id=request.staff_id, terminal_id=request.terminal_id
            ),
            context.time_remaining(),
        )
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(result.time)
        return comm_pb2.FetchAnswerResponse(
            serial=result.serial,
            time=when,
            legal_basis_item=result.legal_basis_item,
            answer=result.answer,
            record=result.record,
        )
