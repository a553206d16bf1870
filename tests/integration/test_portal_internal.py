"""The portal's internal gRPC port (R27): the oversight body sets legal holds on the portal's
applications there, over mutual TLS; an agency's certificate is refused; no port unless
``[portal] internal_listen`` asks for one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.aio import LoopThread
from support.portal_env import card_authority, peers, portal_config

from ops.pki import init_pki
from portal.app_keys import Application
from portal.bootstrap import start
from portal.retention import purge_applications
from portal.store import SqlApplications
from renkei import db, legal_hold_service
from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.retention import HoldStore, RetentionPolicy

NOW = datetime(2033, 4, 1, 9, 0, tzinfo=UTC)
PORTAL_PEER = "agency:portal"


def test_the_oversight_body_sets_a_hold_an_agency_is_refused(
    loop: LoopThread, tmp_path: Path
) -> None:
    pki = init_pki(tmp_path / "pki", ["portal", "city"])
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path / "portal", ca, (None, "internal"))
    config = replace(config, tls=pki.agency("portal"), internal_listen="127.0.0.1:0")
    engine = db.create_engine(config.database_url)
    old = NOW - timedelta(days=3000)
    store = SqlApplications(engine)
    for n, serial in enumerate((41, 42, 43), start=1):
        store.save(Application(f"app-{n}", "1001", serial, "city", "ANSWERED", old, old))
    server = loop.run(start(config, peers(ca)[0]))
    port = server.internal_port
    assert port is not None

    async def calls() -> None:
        target = f"127.0.0.1:{port}"
        async with channel(target, pki.oversight(), peer=PORTAL_PEER) as ch:
            health = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=legal_hold_service.SERVICE_NAME)
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = oversight_pb2_grpc.LegalHoldServiceStub(ch)
            hold = oversight_pb2.LegalHold(hold_id="case-portal", serials=[41], reason="調査")
            await stub.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold))
            listed = await stub.ListLegalHolds(oversight_pb2.ListLegalHoldsRequest())
            assert [(h.hold_id, list(h.serials)) for h in listed.holds] == [("case-portal", [41])]
        async with channel(target, pki.agency("city"), peer=PORTAL_PEER) as ch:
            stub = oversight_pb2_grpc.LegalHoldServiceStub(ch)
            for call in (
                stub.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold)),
                stub.ReleaseLegalHold(oversight_pb2.ReleaseLegalHoldRequest(hold_id="case-portal")),
                stub.ListLegalHolds(oversight_pb2.ListLegalHoldsRequest()),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                err = from_rpc_error(refused.value, fallback_reason="")
                assert (err.code, err.reason) == (
                    grpc.StatusCode.PERMISSION_DENIED,
                    "CALLER_NOT_OVERSIGHT",
                )

    try:
        loop.run(calls())
    finally:
        loop.run(server.stop())
    try:
        # The hold is the portal's own: its purge keeps the application it names.
        policy = RetentionPolicy(days=30)
        (report,) = purge_applications(engine, HoldStore(engine), policy, now=NOW)
        assert (report.deleted, report.held) == (1, 1)  # app-3, the newest, is always kept
        assert store.get("1001", "app-1") is not None
        assert store.get("1001", "app-2") is None
    finally:
        engine.dispose()


def test_no_internal_port_unless_asked_for(loop: LoopThread, tmp_path: Path) -> None:
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path, ca, (None, "noport"))
    server = loop.run(start(config, peers(ca)[0]))
    try:
        assert server.internal is None
        assert server.internal_port is None
    finally:
        loop.run(server.stop())
