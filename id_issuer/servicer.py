"""IdIssuerService over gRPC: who may call what, proto <-> domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from id_issuer.service import IdIssuerService
from renkei.errors import PermissionDenied
from renkei.grpcutil.caller import label, require_caller
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _timestamp(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


class IdIssuerServicer(id_issuer_pb2_grpc.IdIssuerServiceServicer):
    def __init__(self, service: IdIssuerService, may_seal: frozenset[str]) -> None:
        self._service = service
        self._may_seal = may_seal

    def _require(self, context: Context, allowed: frozenset[str]) -> None:
        caller = label(require_caller("the ID issuer"))
        if caller not in allowed:
            raise PermissionDenied(
                "CALLER_NOT_AUTHORIZED", f"{caller} may not call this method of the ID issuer"
            )

    async def SealIdCodes(  # gRPC method names are PascalCase
        self, request: id_issuer_pb2.SealIdCodesRequest, context: Context
    ) -> id_issuer_pb2.SealIdCodesResponse:
        self._require(context, self._may_seal)
        items = self._service.seal(request.agency_id, list(request.resident_codes))
        return id_issuer_pb2.SealIdCodesResponse(
            results=[
                id_issuer_pb2.SealedIdCode(sealed_id_code=i.value, error_reason=i.error_reason)
                for i in items
            ]
        )

    async def SealIdCodeBatch(  # gRPC method names are PascalCase
        self, request: id_issuer_pb2.SealIdCodeBatchRequest, context: Context
    ) -> id_issuer_pb2.SealIdCodeBatchResponse:
        self._require(context, self._may_seal)
        sealed, reasons = self._service.seal_batch(request.agency_id, list(request.resident_codes))
        return id_issuer_pb2.SealIdCodeBatchResponse(sealed_batch=sealed, error_reasons=reasons)

    async def ReissueIdCodes(  # gRPC method names are PascalCase
        self, request: id_issuer_pb2.ReissueIdCodesRequest, context: Context
    ) -> id_issuer_pb2.ReissueIdCodesResponse:
        self._require(context, frozenset({"hub"}))
        items, newest = self._service.reissue(list(request.id_codes))
        return id_issuer_pb2.ReissueIdCodesResponse(
            results=[
                id_issuer_pb2.ReissuedIdCode(id_code=i.value, error_reason=i.error_reason)
                for i in items
            ],
            newest_version=newest,
        )

    async def GetIdKeyStatus(  # gRPC method names are PascalCase
        self, request: id_issuer_pb2.GetIdKeyStatusRequest, context: Context
    ) -> id_issuer_pb2.GetIdKeyStatusResponse:
        self._require(context, frozenset({"hub"}))
        status = self._service.status()
        return id_issuer_pb2.GetIdKeyStatusResponse(
            current_version=status.current,
            newest_version=status.newest,
            versions=[
                id_issuer_pb2.IdKeyVersion(version=v, accept_until=_timestamp(until))
                for v, until in sorted(status.accept_until.items())
            ],
        )

    async def CompleteIdRotation(  # gRPC method names are PascalCase
        self, request: id_issuer_pb2.CompleteIdRotationRequest, context: Context
    ) -> id_issuer_pb2.CompleteIdRotationResponse:
        self._require(context, frozenset({"hub"}))
        until = await self._service.complete_rotation(request.version)
        return id_issuer_pb2.CompleteIdRotationResponse(
            current_version=request.version, previous_accepted_until=_timestamp(until)
        )
