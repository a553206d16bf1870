"""Rotating an agency's link-code key (R11): the window, the re-key job, a crash in the middle."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from support.aio import LoopThread
from support.polling import until
from support.refusals import refused
from support.topology import CITY, MINISTER, PENSION, Topology, query, start_topology

from comm_server.binding.rekey import rekey
from comm_server.hub_client import HubClient
from hub_server import keys
from ops.deploy import Settings
from renkei.hub.v1 import hub_pb2

PENSION_INFO = "年金給付関係情報"
TAX_INFO = "地方税関係情報"


@pytest.fixture
def topo(loop: LoopThread, tmp_path: Path) -> Iterator[Topology]:
    topology = loop.run(start_topology(tmp_path))
    yield topology
    loop.run(topology.stop())


class CrashAfter:
    """A hub client that dies after ``n`` re-key batches, as a killed job would."""

    def __init__(self, inner: HubClient, n: int) -> None:
        self._inner = inner
        self._left = n

    async def rekey_link_codes(self, codes: list[str], *, timeout: float) -> object:
        if codes:
            if self._left == 0:
                raise ConnectionError("killed")
            self._left -= 1
        return await self._inner.rekey_link_codes(codes, timeout=timeout)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def _ask(topo: Topology, requester: str, provider: str, info: str, item: str) -> bytes:
    request = query(requester, topo.people[1], provider, info, item)
    async with topo.channel(requester, requester) as ch:
        response = await topo.requester_stub(ch).Query(request, timeout=10)
    return bytes(response.answer)


def _bind_more(loop: LoopThread, topo: Topology, n: int) -> None:
    """More records at the city, so the job needs several batches."""
    from comm_server.binding.bind import bind
    from id_issuer.issuer import IdIssuer

    issuer = IdIssuer.load(topo.layout.id_issuer_config)
    comm = topo.comms[CITY]

    async def go() -> None:
        for i in range(n):
            resident = f"{90000000000 + i}"
            sealed = issuer.sealed_id_code(resident, CITY)
            await bind(comm.store, comm.hub, f"Z{i:05d}", sealed)

    loop.run(go())


def test_rotation_rekey_crash_resume_window_and_retirement(
    loop: LoopThread, topo: Topology
) -> None:
    _bind_more(loop, topo, 25)
    store = topo.store(CITY)
    before = {lid: store.link_code_for(lid) for lid, _ in store.rekey_pending(99, "", 1000)[0]}
    assert len(before) == 28
    old_code = topo.link_code(CITY, 1)

    key_store = topo.hub.key_admin.store
    version = keys.rotate_link_key(key_store, CITY, timedelta(days=30))
    assert version == 2
    topo.hub.hub.codec = loop.run(topo.hub.key_admin.codec())

    # Mid-rotation both ways still work: the city presents v1, the hub sends the city v1.
    assert "老齢基礎年金" in loop.run(_ask(topo, CITY, PENSION, PENSION_INFO, "二十七")).decode()
    assert loop.run(_ask(topo, MINISTER, CITY, TAX_INFO, "四十八"))

    comm = topo.comms[CITY]
    with pytest.raises(ConnectionError):
        loop.run(rekey(comm.store, CrashAfter(comm.hub, 2), batch=10))  # type: ignore[arg-type]
    total, left = store.rekey_counts(2)
    assert (total, left) == (28, 8)  # two batches of ten committed, none half-written

    # The provider side already finds people by either code.
    assert loop.run(_ask(topo, MINISTER, CITY, TAX_INFO, "四十八"))

    progress: list[tuple[int, int]] = []
    report = loop.run(
        rekey(comm.store, comm.hub, batch=10, progress=lambda d, t: progress.append((d, t)))
    )
    assert report.completed
    assert report.rekeyed == 8
    assert report.promoted == 28
    assert report.refused == {}
    assert progress[0] == (0, 8)
    assert progress[-1] == (8, 8)

    after = {lid: store.link_code_for(lid) for lid in before}
    assert set(after) == set(before)
    assert all(code and code.startswith("2.") for code in after.values())
    assert len(set(after.values())) == 28
    assert store.rekey_counts(2) == (28, 0)
    # Each new code is the same person: the hub translates it as before.
    assert loop.run(_ask(topo, CITY, PENSION, PENSION_INFO, "二十七"))
    assert loop.run(_ask(topo, MINISTER, CITY, TAX_INFO, "四十八"))

    # Re-running a finished job changes nothing.
    again = loop.run(rekey(comm.store, comm.hub, batch=10))
    assert (again.completed, again.rekeyed, again.promoted) == (True, 0, 0)

    async def relay_old() -> object:
        async with topo.channel("hub", CITY) as ch:
            return await topo.hub_stub(ch).Relay(
                hub_pb2.RelayRequest(
                    provider_agency_id=PENSION,
                    info_kind=PENSION_INFO,
                    legal_basis_item="二十七",
                    link_code=old_code,
                    query_signature=topo.query_signature(CITY, PENSION, PENSION_INFO, "二十七"),
                ),
                timeout=5,
            )

    # Inside the window the old code is still accepted ...
    assert loop.run(relay_old())
    [old] = [v for v in key_store.versions(keys.LINK_PREFIX + CITY) if v.version == 1]
    assert old.accept_until is not None
    assert old.accept_until > datetime.now(UTC) + timedelta(days=29)

    # ... and after it, refused with a reason.
    codec = topo.hub.hub.codec
    topo.hub.hub.codec = type(codec)(keys.link_keyring(key_store), lambda: old.accept_until)  # type: ignore[arg-type]
    refusal = loop.run(refused(relay_old()))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "LINK_CODE_KEY_RETIRED",
    )
    assert refusal.metadata["key_version"] == "1"


def test_complete_rekey_refuses_a_version_that_is_not_the_newest(
    loop: LoopThread, topo: Topology
) -> None:
    async def complete(version: int) -> object:
        async with topo.channel("hub", CITY) as ch:
            return await topo.hub_stub(ch).CompleteRekey(
                hub_pb2.CompleteRekeyRequest(key_version=version), timeout=5
            )

    refusal = loop.run(refused(complete(7)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REKEY_VERSION_NOT_NEWEST",
    )
    assert refusal.metadata["field"] == "key_version"


def test_the_hub_picks_up_a_rotation_made_while_it_runs(loop: LoopThread, tmp_path: Path) -> None:
    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        extra_hub={"key_refresh_seconds": 0.05},
    )

    async def scenario() -> tuple[int, int]:
        topo = await start_topology(tmp_path / "t", settings)
        try:
            before = topo.hub.hub.codec.newest_version(PENSION)
            await asyncio.to_thread(
                keys.rotate_link_key, topo.hub.key_admin.store, PENSION, timedelta(days=1)
            )
            await until(
                lambda: topo.hub.hub.codec.newest_version(PENSION) == 2,
                timeout=10,
                every=0.05,
                what="the hub to load the rotated key (version 2)",
            )
            return before, topo.hub.hub.codec.newest_version(PENSION)
        finally:
            await topo.stop()

    assert loop.run(scenario()) == (1, 2)


def test_id_key_rotation_rekeys_every_agency_and_cuts_over_together(
    loop: LoopThread, topo: Topology
) -> None:
    from hub_server.id_issuer_client import IdKeyState
    from id_issuer import issuer as id_issuer

    old_code = topo.link_code(CITY, 1)
    service = topo.id_issuer.service
    assert id_issuer.rotate(service.store, timedelta(days=60)) == 2
    loop.run(service.reload())
    loop.run(topo.hub.hub.refresh_id_state())
    assert (topo.hub.hub.id_state.current, topo.hub.hub.id_state.newest) == (1, 2)

    order = [CITY, PENSION, MINISTER]
    first = {}
    for agency in order:
        comm = topo.comms[agency]
        first[agency] = loop.run(rekey(comm.store, comm.hub, batch=2))
        # Whatever is re-keyed so far, exchanges keep working both ways.
        assert loop.run(_ask(topo, CITY, PENSION, PENSION_INFO, "二十七"))
        assert loop.run(_ask(topo, MINISTER, CITY, TAX_INFO, "四十八"))
    # The first two wait for the rest; the last one completes the rotation for all.
    assert [first[a].waiting for a in order] == [True, True, False]
    assert first[MINISTER].completed
    assert topo.hub.hub.id_state.current == 2
    for agency in (CITY, PENSION):
        comm = topo.comms[agency]
        again = loop.run(rekey(comm.store, comm.hub, batch=2))
        assert again.completed
        assert again.rekeyed == 0
    for agency in order:
        store = topo.store(agency)
        assert store.rekey_counts(1, 2) == (len(store.rekey_pending(99, "", 100)[0]), 0)
    new_code = topo.link_code(CITY, 1)
    assert new_code != old_code
    assert new_code.startswith("1.")  # the link-code key did not change; the ID code did
    assert loop.run(_ask(topo, CITY, PENSION, PENSION_INFO, "二十七"))
    assert loop.run(_ask(topo, MINISTER, CITY, TAX_INFO, "四十八"))

    async def relay(code: str) -> object:
        async with topo.channel("hub", CITY) as ch:
            return await topo.hub_stub(ch).Relay(
                hub_pb2.RelayRequest(
                    provider_agency_id=PENSION,
                    info_kind=PENSION_INFO,
                    legal_basis_item="二十七",
                    link_code=code,
                    query_signature=topo.query_signature(CITY, PENSION, PENSION_INFO, "二十七"),
                ),
                timeout=5,
            )

    assert loop.run(relay(old_code))  # inside the window
    # The same person under the old and the new ID code: both person keys lead to all rows.
    rows = [
        r
        for r in topo.hub_log().rows()
        if (r.entry.requester_agency_id, r.entry.provider_agency_id) == (CITY, PENSION)
    ]
    keys_seen = {r.entry.person_key for r in rows}
    assert len(keys_seen) == 2
    everything = {r.serial for r in topo.hub_log().rows() if r.entry.person_key in keys_seen}
    for key in keys_seen:
        assert {r.serial for r in topo.hub_log().rows_for_person(key or "")} == everything
    until = topo.hub.hub.id_state.accept_until[1]
    assert until > datetime.now(UTC) + timedelta(days=59)
    topo.hub.hub.id_state = IdKeyState(2, 2, {1: datetime.now(UTC) - timedelta(seconds=1)})
    refusal = loop.run(refused(relay(old_code)))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ID_CODE_KEY_RETIRED",
    )
    assert loop.run(relay(new_code))
