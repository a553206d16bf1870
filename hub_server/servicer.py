"""HubService: proto <-> domain, nothing more."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from hub_server.deferral import DeferralDesk
from hub_server.exchange import RelayRequest
from hub_server.linkage import Hub
from hub_server.policy import Decision
from renkei import validate
from renkei.errors import invalid_field
from renkei.grpcutil.caller import caller_agency
from renkei.grpcutil.metadata import MAX_ANNOUNCED_BYTES, SERIALS_METADATA_PREFIX
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc
from renkei.tlog import receipt_proto

Context = grpc.aio.ServicerContext[Any, Any]


def _citation(decision: Decision) -> hub_pb2.Citation:
    return hub_pb2.Citation(
        item=decision.item, affair=decision.affair, policy_version=decision.policy_version
    )


async def _announce(context: Context, tags: dict[str, str]) -> None:
    """The serials of a relay's rows, in initial metadata once they are durable."""
    metadata = tuple((SERIALS_METADATA_PREFIX + key, value) for key, value in tags.items())
    if sum(len(v) for _, v in metadata) <= MAX_ANNOUNCED_BYTES:
        await context.send_initial_metadata(metadata)


class HubServicer(hub_pb2_grpc.HubServiceServicer):
    def __init__(self, hub: Hub, deferrals: DeferralDesk | None = None) -> None:
        self._hub = hub
        self._deferrals = deferrals

    async def Approve(  # gRPC method names are PascalCase
        self, request: hub_pb2.ApproveRequest, context: Context
    ) -> hub_pb2.ApproveResponse:
        caller = self._hub.caller(caller_agency())
        decision = self._hub.approve(
            caller, request.provider_agency_id, request.info_kind, request.legal_basis_item
        )
        return hub_pb2.ApproveResponse(
            decision=hub_pb2.DECISION_APPROVED if decision.approved else hub_pb2.DECISION_DENIED,
            reason=decision.reason,
            message=decision.message,
            citation=_citation(decision),
        )

    async def Translate(  # gRPC method names are PascalCase
        self, request: hub_pb2.TranslateRequest, context: Context
    ) -> hub_pb2.TranslateResponse:
        caller = self._hub.caller(caller_agency())
        result = self._hub.translate(caller, request.provider_agency_id, request.link_code)
        return hub_pb2.TranslateResponse(
            provider_agency_id=result.provider_agency_id,
            link_code_key_version=result.link_code_key_version,
            current_key_version=result.current_key_version,
        )

    async def Relay(  # gRPC method names are PascalCase
        self, request: hub_pb2.RelayRequest, context: Context
    ) -> hub_pb2.RelayResponse:
        caller = self._hub.caller(caller_agency())
        result = await self._hub.relay(
            caller,
            RelayRequest(
                provider_agency_id=request.provider_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                link_codes=(request.link_code,),
                sealed_queries=request.sealed_query,
                single=True,
                query_signature=request.query_signature,
            ),
            context.time_remaining(),
            lambda tags: _announce(context, tags),
        )
        ((serial, _),) = result.results  # a refusal of a single relay is raised, not returned
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(result.time)
        return hub_pb2.RelayResponse(
            serial=serial,
            time=when,
            citation=_citation(result.decision),
            sealed_answer=result.sealed_answers,
            ticket=result.ticket,
            answer_signature=result.answer_signature,
            log_receipts=receipt_proto.to_protos(result.receipts.get(serial, ())),
        )

    async def BulkRelay(  # gRPC method names are PascalCase
        self, request: hub_pb2.BulkRelayRequest, context: Context
    ) -> hub_pb2.BulkRelayResponse:
        caller = self._hub.caller(caller_agency())
        result = await self._hub.relay(
            caller,
            RelayRequest(
                provider_agency_id=request.provider_agency_id,
                info_kind=request.info_kind,
                legal_basis_item=request.legal_basis_item,
                link_codes=list(request.link_codes),
                sealed_queries=request.sealed_queries,
                query_signature=request.query_signature,
            ),
            context.time_remaining(),
            lambda tags: _announce(context, tags),
        )
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(result.time)
        return hub_pb2.BulkRelayResponse(
            time=when,
            citation=_citation(result.decision),
            results=[
                hub_pb2.BulkRelayResult(
                    serial=serial,
                    log_receipts=receipt_proto.to_protos(result.receipts.get(serial, ())),
                )
                if error is None
                else hub_pb2.BulkRelayResult(
                    serial=serial,
                    error=hub_pb2.BulkItemError(
                        code=error.code, reason=error.reason, message=error.message
                    ),
                    log_receipts=receipt_proto.to_protos(result.receipts.get(serial, ())),
                )
                for serial, error in result.results
            ],
            sealed_answers=result.sealed_answers,
            answer_signature=result.answer_signature,
        )

    async def FetchAnswer(  # gRPC method names are PascalCase
        self, request: hub_pb2.FetchAnswerRequest, context: Context
    ) -> hub_pb2.FetchAnswerResponse:
        caller = self._hub.caller(caller_agency())
        result = await self._hub.fetch_answer(
            caller, request.serial, request.ticket, context.time_remaining()
        )
        return hub_pb2.FetchAnswerResponse(
            serial=result.serial,
            citation=hub_pb2.Citation(
                item=result.legal_basis_item, policy_version=result.policy_version
            ),
            sealed_answer=result.sealed_answer,
            answer_signature=result.answer_signature,
            log_receipt=receipt_proto.to_proto(result.receipt) if result.receipt else None,
        )

    async def IssueLinkCode(  # gRPC method names are PascalCase
        self, request: hub_pb2.IssueLinkCodeRequest, context: Context
    ) -> hub_pb2.IssueLinkCodeResponse:
        caller = self._hub.caller(caller_agency())
        link_code, version, id_version = self._hub.issue_link_code(caller, request.sealed_id_code)
        return hub_pb2.IssueLinkCodeResponse(
            link_code=link_code, key_version=version, id_key_version=id_version
        )

    async def DeferDisclosure(  # gRPC method names are PascalCase
        self, request: hub_pb2.DeferDisclosureRequest, context: Context
    ) -> hub_pb2.DeferDisclosureResponse:
        caller = self._hub.caller(caller_agency())
        if self._deferrals is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this hub keeps no deferrals")
            raise AssertionError("abort raises")
        if not request.HasField("until"):
            raise invalid_field("until", "is required")
        until = validate.timestamp("until", request.until)
        await self._deferrals.defer(caller, request.serial, until, request.legal_reason)
        return hub_pb2.DeferDisclosureResponse()

    async def IssueLinkCodes(  # gRPC method names are PascalCase
        self, request: hub_pb2.IssueLinkCodesRequest, context: Context
    ) -> hub_pb2.IssueLinkCodesResponse:
        caller = self._hub.caller(caller_agency())
        issued = self._hub.issue_link_codes(caller, request.sealed_batch)
        return hub_pb2.IssueLinkCodesResponse(
            link_codes=[
                hub_pb2.IssuedLinkCode(link_code=code, id_key_version=version)
                for code, version in zip(issued.link_codes, issued.id_key_versions, strict=True)
            ],
            key_version=issued.key_version,
            batch_id=issued.batch_id,
        )

    async def GetAgency(  # gRPC method names are PascalCase
        self, request: hub_pb2.GetAgencyRequest, context: Context
    ) -> hub_pb2.GetAgencyResponse:
        self._hub.caller(caller_agency())
        agency = self._hub.directory.get(request.agency_id)
        return hub_pb2.GetAgencyResponse(
            agency=hub_pb2.Agency(
                agency_id=agency.agency_id,
                display_name=agency.display_name,
                sealing_public_key=agency.sealing_public_key,
                classes=sorted(agency.classes),
                exchange_certificate=agency.exchange_certificate,
            )
        )

    async def RekeyLinkCodes(  # gRPC method names are PascalCase
        self, request: hub_pb2.RekeyLinkCodesRequest, context: Context
    ) -> hub_pb2.RekeyLinkCodesResponse:
        caller = self._hub.caller(caller_agency())
        answer = await self._hub.rekey_link_codes(caller, list(request.link_codes))
        return hub_pb2.RekeyLinkCodesResponse(
            results=[
                hub_pb2.RekeyedLinkCode(link_code=r.link_code, error_reason=r.error_reason)
                for r in answer.results
            ],
            newest_key_version=answer.newest_key_version,
            current_key_version=answer.current_key_version,
            newest_id_key_version=answer.newest_id_key_version,
        )

    async def CompleteRekey(  # gRPC method names are PascalCase
        self, request: hub_pb2.CompleteRekeyRequest, context: Context
    ) -> hub_pb2.CompleteRekeyResponse:
        caller = self._hub.caller(caller_agency())
        current, until, may_promote = await self._hub.complete_rekey(
            caller, request.key_version, request.id_key_version
        )
        response = hub_pb2.CompleteRekeyResponse(
            current_key_version=current, may_promote=may_promote
        )
        if until is not None:
            response.previous_accepted_until.FromDatetime(until)
        return response
