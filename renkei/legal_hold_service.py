"""renkei.oversight.v1.LegalHoldService over a party's ``renkei.retention.HoldStore``.

Mounted by the hub, every communication server and the registry's binding
party; only the oversight body may call it (``require_oversight``). At the
registry, whose consent log has no hub serials, a hold's serials name
consent-log row ids (``ConsentLogRow.id``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from renkei.errors import InvalidArgument
from renkei.grpcutil.oversight import require_oversight
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.retention import HoldStore, LegalHold

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE_NAME = oversight_pb2.DESCRIPTOR.services_by_name["LegalHoldService"].full_name


class LegalHoldServicer(oversight_pb2_grpc.LegalHoldServiceServicer):
    def __init__(
        self, holds: HoldStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._holds = holds
        self._clock = clock

    async def SetLegalHold(  # gRPC method names are PascalCase
        self, request: oversight_pb2.SetLegalHoldRequest, context: Context
    ) -> oversight_pb2.SetLegalHoldResponse:
        require_oversight(context)
        if not request.HasField("hold"):
            raise InvalidArgument("HOLD_NAMES_NOTHING", "hold: not set", {"field": "hold"})
        h = request.hold
        hold = LegalHold(h.hold_id, tuple(h.serials), h.person, h.reason)
        await asyncio.to_thread(self._holds.set, hold, self._clock())
        return oversight_pb2.SetLegalHoldResponse()

    async def ReleaseLegalHold(  # gRPC method names are PascalCase
        self, request: oversight_pb2.ReleaseLegalHoldRequest, context: Context
    ) -> oversight_pb2.ReleaseLegalHoldResponse:
        require_oversight(context)
        await asyncio.to_thread(self._holds.release, request.hold_id)
        return oversight_pb2.ReleaseLegalHoldResponse()

    async def ListLegalHolds(  # gRPC method names are PascalCase
        self, request: oversight_pb2.ListLegalHoldsRequest, context: Context
    ) -> oversight_pb2.ListLegalHoldsResponse:
        require_oversight(context)
        holds = await asyncio.to_thread(self._holds.list)
        return oversight_pb2.ListLegalHoldsResponse(holds=[to_proto(h) for h in holds])


def to_proto(hold: LegalHold) -> oversight_pb2.LegalHold:
    msg = oversight_pb2.LegalHold(
        hold_id=hold.hold_id, serials=list(hold.serials), person=hold.person, reason=hold.reason
    )
    if hold.set_at is not None:
        msg.set_at.FromDatetime(hold.set_at)
    return msg


def add_to_server(server: grpc.aio.Server, holds: HoldStore) -> None:
    oversight_pb2_grpc.add_LegalHoldServiceServicer_to_server(LegalHoldServicer(holds), server)
