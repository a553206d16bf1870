"""``HubService.DeferDisclosure``: telling the hub that an exchange's entry is deferred (R26).

Called with this agency's client certificate on the hub's channel, as this
server's other jobs call the hub (``comm_server.clients.hub_client``).
"""

from __future__ import annotations

from datetime import datetime

import grpc

from comm_server.hub_client import HubClient
from renkei.errors import from_rpc_error
from renkei.grpcutil.client import outgoing_metadata
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc


async def defer_at_hub(
    hub: HubClient, serial: int, until: datetime, legal_reason: str, *, timeout: float
) -> None:
    """The hub records the deferral; its refusal is raised as the hub's RenkeiError."""
    request = hub_pb2.DeferDisclosureRequest(serial=serial, legal_reason=legal_reason)
    request.until.FromDatetime(until)
    stub = hub_pb2_grpc.HubServiceStub(hub.channel)
    try:
        await stub.DeferDisclosure(request, timeout=timeout, metadata=outgoing_metadata())
    except grpc.aio.AioRpcError as err:
        fallback = (
            "HUB_DEADLINE_EXCEEDED"
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            else "HUB_UNAVAILABLE"
        )
        raise from_rpc_error(err, fallback_reason=fallback) from None
