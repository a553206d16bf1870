"""RequesterService: the agency's legacy side asks through it; each RPC onto one pipeline."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from comm_server.callers import CallerCheck, Context
from comm_server.requester.pipeline import Requester
from comm_server.requester.types import FetchRequest, LocalQuery, Person
from renkei.bulk import ItemError
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc


def item_error(error: ItemError | None) -> comm_pb2.BulkItemError | None:
    if error is None:
        return None
    return comm_pb2.BulkItemError(code=error.code, reason=error.reason, message=error.message)


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def _local_query(
    request: comm_pb2.QueryRequest | comm_pb2.BulkQueryRequest, persons: list[Person], bulk: bool
) -> LocalQuery:
    """The fields a Query and a BulkQuery share, onto the one pipeline's request."""
    return LocalQuery(
        provider_agency_id=request.provider_agency_id,
        info_kind=request.info_kind,
        legal_basis_item=request.legal_basis_item,
        purpose=request.purpose,
        staff_id=request.staff_id,
        terminal_id=request.terminal_id,
        persons=persons,
        bulk=bulk,
    )


class RequesterServicer(comm_pb2_grpc.RequesterServiceServicer):
    def __init__(self, requester: Requester, callers: CallerCheck) -> None:
        self._requester = requester
        self._callers = callers

    async def BulkQuery(  # gRPC method names are PascalCase
        self, request: comm_pb2.BulkQueryRequest, context: Context
    ) -> comm_pb2.BulkQueryResponse:
        self._callers.require_own_agency()
        result = await self._requester.query(
            _local_query(
                request, [Person(i.local_person_id, i.query) for i in request.items], bulk=True
            ),
            context.time_remaining(),
        )
        return comm_pb2.BulkQueryResponse(
            time=_timestamp(result.time),
            legal_basis_item=result.legal_basis_item,
            policy_version=result.policy_version,
            results=[
                comm_pb2.BulkQueryResult(
                    local_person_id=r.local_person_id,
                    serial=r.serial,
                    answer=r.answer,
                    error=item_error(r.error),
                    record=r.record,
                )
                for r in result.persons
            ],
        )

    async def Query(  # gRPC method names are PascalCase
        self, request: comm_pb2.QueryRequest, context: Context
    ) -> comm_pb2.QueryResponse:
        self._callers.require_own_agency()
        result = await self._requester.query(
            _local_query(request, [Person(request.local_person_id, request.query)], bulk=False),
            context.time_remaining(),
        )
        person = result.persons[0]
        return comm_pb2.QueryResponse(
            serial=person.serial,
            time=_timestamp(result.time),
            legal_basis_item=result.legal_basis_item,
            policy_version=result.policy_version,
            answer=person.answer,
            state=comm_pb2.ANSWER_STATE_PENDING
            if result.ticket
            else comm_pb2.ANSWER_STATE_ANSWERED,
            ticket=result.ticket,
            record=person.record,
        )

    async def FetchAnswer(  # gRPC method names are PascalCase
        self, request: comm_pb2.FetchAnswerRequest, context: Context
    ) -> comm_pb2.FetchAnswerResponse:
        self._callers.require_own_agency()
        result = await self._requester.fetch(
            FetchRequest(
                ticket=request.ticket, staff_id=request.staff_id, terminal_id=request.terminal_id
            ),
            context.time_remaining(),
        )
        person = result.persons[0]
        return comm_pb2.FetchAnswerResponse(
            serial=person.serial,
            time=_timestamp(result.time),
            legal_basis_item=result.legal_basis_item,
            answer=person.answer,
            record=person.record,
        )
