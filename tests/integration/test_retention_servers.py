"""The running servers mount LegalHoldService (R25) over mutual TLS, for the oversight body only.

The oversight body's certificate comes from its own CA; one with its URI from
another domain's CA (here the services') names no one and is refused.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from support.aio import LoopThread
from support.lookalike import oversight_lookalike
from support.topology import CITY, Topology

from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc


def test_hub_comm_and_registry_take_holds_from_the_oversight_body_only(
    loop: LoopThread, topo: Topology, tmp_path: Path
) -> None:
    oversight = topo.tls("oversight")
    lookalike = oversight_lookalike(topo.layout.pki, tmp_path / "lookalike")
    servers = {
        "hub": (topo.hub.port, "hub"),
        "comm": (topo.comms[CITY].port, f"agency:{CITY}"),
        "registry": (topo.registry.port, "service:registry"),
    }

    async def run() -> None:
        for name, (port, peer) in servers.items():
            hold = oversight_pb2.LegalHold(hold_id=f"case-{name}", serials=[42])
            async with channel(f"127.0.0.1:{port}", oversight, peer=peer) as ch:
                stub = oversight_pb2_grpc.LegalHoldServiceStub(ch)
                await stub.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold))
                listed = await stub.ListLegalHolds(oversight_pb2.ListLegalHoldsRequest())
                assert [h.hold_id for h in listed.holds] == [f"case-{name}"], name
                await stub.ReleaseLegalHold(
                    oversight_pb2.ReleaseLegalHoldRequest(hold_id=f"case-{name}")
                )
            for other in (topo.tls(CITY), lookalike):
                async with channel(f"127.0.0.1:{port}", other, peer=peer) as ch:
                    stub = oversight_pb2_grpc.LegalHoldServiceStub(ch)
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold))
                    err = from_rpc_error(refused.value, fallback_reason="")
                    assert err.code == grpc.StatusCode.PERMISSION_DENIED, (name, other.cert)

    loop.run(run())
