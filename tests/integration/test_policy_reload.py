"""A new policy version loads while the hub serves, dropping no request; a bad one is refused."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from support.aio import LoopThread
from support.polling import until
from support.topology import CITY, PENSION, start_topology

import hub_server
from hub_server.policy_versions import JST
from ops.deploy import Settings
from renkei.hub.v1 import hub_pb2


def test_reload_under_load_then_refuse_a_bad_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loop = LoopThread()
    caplog.set_level(logging.INFO, logger="hub_server")

    def refusals() -> int:
        """How many times the hub has refused the policy folder (it logs each)."""
        return sum(r.getMessage().startswith("policy refused") for r in caplog.records)

    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        extra_hub={"key_refresh_seconds": 0.05},
    )

    async def scenario() -> tuple[list[str], list[str], list[str], str]:
        topo = await start_topology(tmp_path / "t", settings)
        folder = topo.layout.hub_dir / "policy"
        # The next version: the small demo table, without item 二十七.
        demo = Path(hub_server.__file__).parent / "data" / "legal_basis_demo.toml"
        body = demo.read_text("utf-8").replace("effective = 2015-10-05", "")
        start = body.index('[[item]]\nitem = "二十七"')
        without_27 = body[:start] + body[body.index("[[item]]", start + 1) :]
        request = hub_pb2.ApproveRequest(
            provider_agency_id=PENSION, info_kind="年金給付関係情報", legal_basis_item="二十七"
        )
        seen: list[str] = []
        errors: list[str] = []
        stop = asyncio.Event()

        async def client() -> None:
            async with topo.channel("hub", CITY) as ch:
                stub = topo.hub_stub(ch)
                while not stop.is_set():
                    try:
                        answer = await stub.Approve(request, timeout=5)
                        seen.append(answer.reason or "APPROVED")
                    except grpc.aio.AioRpcError as err:
                        errors.append(err.code().name)

        async def more_answers(what: str) -> None:
            served = len(seen)
            await until(lambda: len(seen) >= served + 6, timeout=10, what=what)

        try:
            clients = [asyncio.ensure_future(client()) for _ in range(6)]
            await more_answers("answers under the first version")
            effective = (datetime.now(JST) - timedelta(minutes=1)).isoformat(timespec="seconds")
            (folder / "v2.toml").write_text(f"effective = {effective}\n{without_27}", "utf-8")
            await until(
                lambda: bool(seen) and seen[-1] == "LEGAL_BASIS_ITEM_UNKNOWN",
                timeout=10,
                what="answers under v2 (item 二十七 unknown)",
            )
            await more_answers("more answers under v2")
            # A broken version file: refused as a whole, the versions in force stay.
            refused_before = refusals()
            (folder / "v3.toml").write_text("effective = 2020-01-01\n[[item]\n", "utf-8")
            await until(
                lambda: refusals() > refused_before, timeout=10, what="the hub to refuse v3.toml"
            )
            await more_answers("answers after the refusal")
            stop.set()
            await asyncio.gather(*clients)
            async with topo.channel("hub", CITY) as ch:
                final = (await topo.hub_stub(ch).Approve(request, timeout=5)).reason
            versions = [v.source for v in topo.hub.hub.policy.versions]  # type: ignore[attr-defined]
            return seen, errors, versions, final
        finally:
            await topo.stop()

    try:
        seen, errors, versions, final = loop.run(scenario(), timeout=60)
    finally:
        loop.close()
    assert errors == []
    assert seen[0] == "APPROVED"
    assert set(seen) == {"APPROVED", "LEGAL_BASIS_ITEM_UNKNOWN"}
    assert versions == ["annex-2015.toml", "v2.toml"]
    assert final == "LEGAL_BASIS_ITEM_UNKNOWN"
