"""DisclosureService: the hub asks for a person's details; onto the one ``Answerer``."""

from __future__ import annotations

from comm_server.callers import Context
from comm_server.disclosure.service import Answerer
from comm_server.disclosure.types import DiscloseCall, State
from renkei.comm.v1 import disclosure_pb2, disclosure_pb2_grpc
from renkei.grpcutil.caller import require_hub

_STATES = {
    State.PENDING: disclosure_pb2.DISCLOSURE_STATE_PENDING,
    State.ANSWERED: disclosure_pb2.DISCLOSURE_STATE_ANSWERED,
    State.DEFERRED: disclosure_pb2.DISCLOSURE_STATE_DEFERRED,
    State.REFUSED: disclosure_pb2.DISCLOSURE_STATE_REFUSED,
}


class DisclosureServicer(disclosure_pb2_grpc.DisclosureServiceServicer):
    def __init__(self, answerer: Answerer) -> None:
        self._answerer = answerer

    async def Disclose(  # gRPC method names are PascalCase
        self, request: disclosure_pb2.DiscloseRequest, context: Context
    ) -> disclosure_pb2.DiscloseResponse:
        # The provider side's reason: the hub alone relays applications (R26).
        require_hub("CALLER_NOT_HUB", "only the hub may ask this server for a person's details")
        answer = await self._answerer.disclose(
            DiscloseCall(
                serial=request.serial,
                link_code=request.link_code,
                application_id=request.application_id,
                recipient_agency_id=request.recipient_agency_id,
                request_serial=request.request_serial,
            ),
            context.time_remaining(),
        )
        response = disclosure_pb2.DiscloseResponse(
            state=_STATES[answer.state],
            sealed_details=answer.sealed_details,
            deferral_reason=answer.deferral_reason,
            refusal_reason=answer.refusal_reason,
        )
        if answer.deferred_until is not None:
            response.deferred_until.FromDatetime(answer.deferred_until)
        return response
