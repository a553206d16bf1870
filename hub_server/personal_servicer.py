"""PersonalLogService: proto <-> domain (hub_server/personal.py, details.py), nothing more."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from hub_server import details
from hub_server.details import DetailsDesk
from hub_server.personal import ListQuery, PersonalLog
from hub_server.personal_store import Deferral
from renkei import validate
from renkei.grpcutil.caller import caller_agency
from renkei.hub.v1 import personal_pb2, personal_pb2_grpc
from renkei.tlog import receipt_proto

Context = grpc.aio.ServicerContext[Any, Any]

_STATES = {
    details.PENDING_STATE: personal_pb2.DETAILS_STATE_PENDING,
    details.ANSWERED: personal_pb2.DETAILS_STATE_ANSWERED,
    details.DEFERRED: personal_pb2.DETAILS_STATE_DEFERRED,
    details.REFUSED: personal_pb2.DETAILS_STATE_REFUSED,
}


def deferral_proto(deferral: Deferral | None) -> personal_pb2.Deferral | None:
    if deferral is None:
        return None
    until = timestamp_pb2.Timestamp()
    until.FromDatetime(deferral.until)
    return personal_pb2.Deferral(
        agency_id=deferral.agency_id, until=until, legal_reason=deferral.legal_reason
    )


class PersonalLogServicer(personal_pb2_grpc.PersonalLogServiceServicer):
    def __init__(self, personal: PersonalLog, desk: DetailsDesk) -> None:
        self._personal = personal
        self._desk = desk

    async def ListPersonalEntries(  # gRPC method names are PascalCase
        self, request: personal_pb2.ListPersonalEntriesRequest, context: Context
    ) -> personal_pb2.ListPersonalEntriesResponse:
        caller = self._personal.portal(caller_agency())
        page = await self._personal.list_entries(
            caller,
            ListQuery(
                link_code=request.link_code,
                start=validate.timestamp("start_time", request.start_time)
                if request.HasField("start_time")
                else None,
                end=validate.timestamp("end_time", request.end_time)
                if request.HasField("end_time")
                else None,
                agency_id=request.agency_id,
                page_size=request.page_size,
                page_token=request.page_token,
            ),
        )
        return personal_pb2.ListPersonalEntriesResponse(
            entries=[
                personal_pb2.PersonalEntry(
                    serial=e.serial,
                    leaf_index=e.leaf_index,
                    entry=e.entry,
                    leaf_hash=e.leaf_hash,
                    inclusion_proof=e.inclusion_proof,
                    legal_basis_text=e.legal_basis_text,
                    requester_name=e.requester_name,
                    provider_name=e.provider_name,
                    deferral=deferral_proto(e.deferral),
                )
                for e in page.entries
            ],
            checkpoint=page.checkpoint,
            next_page_token=page.next_page_token,
        )

    async def RequestDetails(  # gRPC method names are PascalCase
        self, request: personal_pb2.RequestDetailsRequest, context: Context
    ) -> personal_pb2.RequestDetailsResponse:
        caller = self._personal.portal(caller_agency())
        result = await self._desk.request(
            caller,
            request.link_code,
            request.serial,
            request.agency_id,
            request.application_id,
            context.time_remaining(),
        )
        return personal_pb2.RequestDetailsResponse(
            state=_STATES[result.state],
            sealed_details=result.sealed_details,
            request_serial=result.request_serial,
            deferral=deferral_proto(result.deferral),
            refusal_reason=result.refusal_reason,
            log_receipts=receipt_proto.to_protos(result.receipts),
        )
