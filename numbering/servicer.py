"""NumberingService: caller check, proto <-> domain, nothing more."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from numbering.authorization import Authorization, Operation
from numbering.directory import call_deadline
from numbering.service import NumberingService
from numbering.store import CHANGE, ISSUE, RESIDENT_CODE_CHANGE
from renkei.grpcutil.caller import caller
from renkei.numbering.v1 import numbering_pb2, numbering_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")

_KINDS = {
    ISSUE: numbering_pb2.EVENT_KIND_ISSUE,
    CHANGE: numbering_pb2.EVENT_KIND_CHANGE,
    RESIDENT_CODE_CHANGE: numbering_pb2.EVENT_KIND_RESIDENT_CODE_CHANGE,
}


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


class NumberingServicer(numbering_pb2_grpc.NumberingServiceServicer):
    def __init__(
        self,
        service: NumberingService,
        authorization: Authorization,
        executor: Executor,
    ) -> None:
        self._service = service
        self._authorization = authorization
        self._executor = executor

    def _authorize(self, operation: Operation, context: Context) -> None:
        self._authorization.check(operation, caller())

    async def _run(self, context: Context, fn: Callable[..., T], *args: Any) -> T:
        # The store and the registry's directory block; keep them off the event loop.
        # The worker runs in a copy of this call's context (correlation id) plus its
        # deadline, so the directory hands on what is left of the caller's time.
        remaining = context.time_remaining()
        run = contextvars.copy_context()
        run.run(call_deadline.set, None if remaining is None else time.monotonic() + remaining)
        return await asyncio.get_running_loop().run_in_executor(self._executor, run.run, fn, *args)

    async def IssueNumber(  # gRPC method names are PascalCase
        self, request: numbering_pb2.IssueNumberRequest, context: Context
    ) -> numbering_pb2.IssueNumberResponse:
        self._authorize("issue", context)
        issued = await self._run(context, self._service.issue, request.resident_code)
        return numbering_pb2.IssueNumberResponse(
            number=issued.number,
            newly_issued=issued.newly_issued,
            issued_at=_timestamp(issued.issued_at),
            notice_html=issued.notice,
        )

    async def ChangeNumber(  # gRPC method names are PascalCase
        self, request: numbering_pb2.ChangeNumberRequest, context: Context
    ) -> numbering_pb2.ChangeNumberResponse:
        self._authorize("change", context)
        issued = await self._run(
            context, self._service.change_number, request.number, request.reason
        )
        return numbering_pb2.ChangeNumberResponse(
            number=issued.number,
            issued_at=_timestamp(issued.issued_at),
            notice_html=issued.notice,
        )

    async def ChangeResidentCode(  # gRPC method names are PascalCase
        self, request: numbering_pb2.ChangeResidentCodeRequest, context: Context
    ) -> numbering_pb2.ChangeResidentCodeResponse:
        self._authorize("change", context)
        number = await self._run(
            context,
            self._service.change_resident_code,
            request.old_resident_code,
            request.new_resident_code,
        )
        return numbering_pb2.ChangeResidentCodeResponse(number=number)

    async def LookupNumber(  # gRPC method names are PascalCase
        self, request: numbering_pb2.LookupNumberRequest, context: Context
    ) -> numbering_pb2.LookupNumberResponse:
        self._authorize("lookup", context)
        number = await self._run(context, self._service.lookup_number, request.resident_code)
        return numbering_pb2.LookupNumberResponse(number=number)

    async def LookupResidentCode(  # gRPC method names are PascalCase
        self, request: numbering_pb2.LookupResidentCodeRequest, context: Context
    ) -> numbering_pb2.LookupResidentCodeResponse:
        self._authorize("lookup", context)
        code = await self._run(context, self._service.lookup_resident_code, request.number)
        return numbering_pb2.LookupResidentCodeResponse(resident_code=code)

    async def GetHistory(  # gRPC method names are PascalCase
        self, request: numbering_pb2.GetHistoryRequest, context: Context
    ) -> numbering_pb2.GetHistoryResponse:
        self._authorize("lookup", context)
        found = await self._run(context, self._service.history, request.resident_code)
        return numbering_pb2.GetHistoryResponse(
            events=[
                numbering_pb2.HistoryEvent(
                    seq=e.seq,
                    kind=_KINDS[e.kind],
                    resident_code=e.resident_code,
                    old_number=e.old_number or "",
                    new_number=e.new_number or "",
                    old_resident_code=e.old_resident_code or "",
                    time=_timestamp(e.at),
                )
                for e in found
            ]
        )
