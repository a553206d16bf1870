"""Legal holds (R25) through ``LegalHoldService`` on the hub, an agency or the registry.

What a hold names (serials, or at the hub a person key) is not purged until the
oversight body releases it. The party checks and keeps the hold; this module
only builds the calls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from renkei.errors import RenkeiError, from_rpc_error, invalid_field
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc

HOLD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
MAX_REASON_CHARS = 400
PEER_UNAVAILABLE = "OVERSIGHT_PEER_UNAVAILABLE"


@dataclass(frozen=True)
class Hold:
    hold_id: str
    serials: tuple[int, ...]
    person: str
    reason: str
    set_at: datetime | None


def check(hold_id: str, reason: str | None = None) -> None:
    """Refuse here what the party would refuse, before any call."""
    if not HOLD_ID.fullmatch(hold_id):
        raise invalid_field("hold_id", "1 to 64 of A-Z a-z 0-9 _ . : -")
    if reason is not None and not 0 < len(reason) <= MAX_REASON_CHARS:
        raise invalid_field("reason", f"1 to {MAX_REASON_CHARS} characters")


class HoldClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 30.0) -> None:
        self._stub = oversight_pb2_grpc.LegalHoldServiceStub(channel)
        self._timeout = timeout

    async def set(
        self, hold_id: str, reason: str, *, serials: Sequence[int] = (), person: str = ""
    ) -> None:
        check(hold_id, reason)
        if not serials and not person:
            raise invalid_field("serials", "a hold names serials or a person")
        hold = oversight_pb2.LegalHold(
            hold_id=hold_id, serials=list(serials), person=person, reason=reason
        )
        hold.set_at.FromDatetime(datetime.now(UTC))
        try:
            await self._stub.SetLegalHold(
                oversight_pb2.SetLegalHoldRequest(hold=hold), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None

    async def release(self, hold_id: str) -> None:
        check(hold_id)
        try:
            await self._stub.ReleaseLegalHold(
                oversight_pb2.ReleaseLegalHoldRequest(hold_id=hold_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None

    async def list(self) -> list[Hold]:
        try:
            response = await self._stub.ListLegalHolds(
                oversight_pb2.ListLegalHoldsRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
        return [
            Hold(
                h.hold_id,
                tuple(h.serials),
                h.person,
                h.reason,
                h.set_at.ToDatetime(tzinfo=UTC) if h.HasField("set_at") else None,
            )
            for h in response.holds
        ]


def _error(err: grpc.aio.AioRpcError) -> RenkeiError:
    return from_rpc_error(err, fallback_reason=PEER_UNAVAILABLE)
