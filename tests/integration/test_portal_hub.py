"""The hub's PersonalLogService and DeferDisclosure on a running hub, over mutual TLS (issue 15).

The demo's agencies plus the portal (an ordinary directory agency with no
classes and its own link-code key), a witness cosigning the hub's
checkpoints, and, for RequestDetails, a small DisclosureService standing in
for the pension service's communication server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from support.aio import LoopThread
from support.refusals import refused
from support.topology import CITY, MINISTER, PENSION, Topology, query, start_topology

from hub_server.directory import Directory
from hub_server.personal import DISCLOSURE_INFO_KIND
from ops.deploy import AgencySpec, Settings
from renkei.comm.v1 import disclosure_pb2, disclosure_pb2_grpc
from renkei.grpcutil.caller import caller
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.hub.v1 import hub_pb2, personal_pb2, personal_pb2_grpc
from renkei.tlog import checkpoint, merkle
from renkei.tlog.entry import EXCHANGE, FETCH, OUTCOME, Entry

PORTAL = "portal"
PENSION_INFO = "年金給付関係情報"
APP = "portal-application-1"


@pytest.fixture(scope="module")
def topo(
    loop: LoopThread,
    database: tuple[str | None, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Topology]:
    url, prefix = database
    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        database_url=url,
        schema_prefix=prefix,
    )
    topology = loop.run(
        start_topology(
            tmp_path_factory.mktemp("portal-hub"),
            settings,
            extra=[AgencySpec(PORTAL, "マイポータル", ())],
        )
    )
    yield topology
    loop.run(topology.stop())


def _personal(ch: grpc.aio.Channel) -> personal_pb2_grpc.PersonalLogServiceAsyncStub:
    return personal_pb2_grpc.PersonalLogServiceStub(ch)  # type: ignore[return-value]


def portal_code(topo: Topology, person: int) -> str:
    """The portal's link code for the person (binding would give it the same one)."""
    codec = topo.hub.hub.codec
    id_code, _ = codec.decode(CITY, topo.link_code(CITY, person))
    return codec.encode(PORTAL, id_code)


async def lawful(topo: Topology, person: int) -> int:
    async with topo.channel(CITY, CITY) as ch:
        response = await topo.requester_stub(ch).Query(
            query(CITY, topo.people[person], PENSION, PENSION_INFO, "二十七"), timeout=10
        )
    return int(response.serial)


async def listing(
    topo: Topology, person: int, as_party: str = PORTAL, **fields: Any
) -> personal_pb2.ListPersonalEntriesResponse:
    async with topo.channel("hub", as_party) as ch:
        return await _personal(ch).ListPersonalEntries(
            personal_pb2.ListPersonalEntriesRequest(link_code=portal_code(topo, person), **fields),
            timeout=10,
        )


async def proved(topo: Topology, person: int) -> personal_pb2.ListPersonalEntriesResponse:
    """The listing once every entry in it is in a witnessed checkpoint."""
    for _ in range(100):
        got = await listing(topo, person, page_size=1000)
        if got.entries and all(e.inclusion_proof for e in got.entries):
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("the entries were not in a witnessed checkpoint within 10 s")


def verify(topo: Topology, page: personal_pb2.ListPersonalEntriesResponse) -> None:
    """Each proof against the checkpoint, and the checkpoint by the hub's key and the witness."""
    assert topo.hub.checkpointer is not None
    witnesses = [
        checkpoint.parse_cosignature_verifier_key(w.key) for w in topo.hub.config.log.witnesses
    ]
    assert witnesses
    cp = checkpoint.verify_checkpoint(page.checkpoint, topo.hub.checkpointer.verifier, witnesses)
    for e in page.entries:
        if e.entry:
            assert bytes(e.leaf_hash) == merkle.leaf_hash(e.entry)
        merkle.verify_inclusion(
            bytes(e.leaf_hash), e.leaf_index, cp.size, list(e.inclusion_proof), cp.root_hash
        )


def test_a_person_sees_exactly_their_own_entries_each_proved(
    loop: LoopThread, topo: Topology
) -> None:
    async def run() -> None:
        mine = [await lawful(topo, 0), await lawful(topo, 0)]
        theirs = await lawful(topo, 1)
        page = await proved(topo, 0)
        verify(topo, page)
        serials = [e.serial for e in page.entries]
        assert theirs not in serials
        assert set(mine) <= set(serials)
        assert serials == sorted(serials, reverse=True)
        newest = [e for e in page.entries if e.serial == mine[1]]
        assert [Entry.decode(e.entry).kind for e in newest] == [OUTCOME, EXCHANGE]
        exchange = newest[1]
        assert (exchange.requester_name, exchange.provider_name) == (
            topo.hub.hub.directory.get(CITY).display_name,
            topo.hub.hub.directory.get(PENSION).display_name,
        )
        assert exchange.legal_basis_text  # the affair of Annex Table 2 item 二十七
        other = await proved(topo, 1)
        assert theirs in {e.serial for e in other.entries}
        assert not set(mine) & {e.serial for e in other.entries}
        # Paging by one gives the same leaves in the same order.
        seen: list[int] = []
        token = ""
        while True:
            part = await listing(topo, 0, page_size=1, page_token=token)
            seen += [e.leaf_index for e in part.entries]
            token = part.next_page_token
            if not token:
                break
        assert seen[: len(page.entries)] == [e.leaf_index for e in page.entries]

    loop.run(run())


def test_the_portal_only_and_it_may_relay_nothing(loop: LoopThread, topo: Topology) -> None:
    async def run() -> None:
        got = await refused(listing(topo, 0, as_party=CITY))
        assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_PORTAL")
        got = await refused(listing(topo, 0, page_token="forged"))
        assert (got.code, got.reason, got.metadata.get("field")) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "page_token",
        )
        async with topo.channel("hub", PORTAL) as ch:
            relay = await refused(
                topo.hub_stub(ch).Relay(
                    hub_pb2.RelayRequest(
                        provider_agency_id=PENSION,
                        info_kind=PENSION_INFO,
                        legal_basis_item="二十七",
                        link_code=portal_code(topo, 0),
                    ),
                    timeout=10,
                )
            )
            assert (relay.code, relay.reason) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "NO_ITEM_FOR_REQUESTER",
            )
            bulk = await refused(
                topo.hub_stub(ch).BulkRelay(
                    hub_pb2.BulkRelayRequest(
                        provider_agency_id=PENSION,
                        info_kind=PENSION_INFO,
                        legal_basis_item="二十七",
                        link_codes=[portal_code(topo, 0)],
                        sealed_queries=b"sealed",
                    ),
                    timeout=10,
                )
            )
            assert (bulk.code, bulk.reason) == (relay.code, relay.reason)
            # And it is a directory agency like any other: its exchange certificate is served.
            agency = await topo.hub_stub(ch).GetAgency(
                hub_pb2.GetAgencyRequest(agency_id=PORTAL), timeout=10
            )
            assert agency.agency.exchange_certificate
            assert list(agency.agency.classes) == []

    loop.run(run())


def _until(at: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(at)
    return out


def test_a_deferred_exchange_shows_only_that_it_exists(loop: LoopThread, topo: Topology) -> None:
    async def run() -> None:
        serial = await lawful(topo, 0)
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
        request = hub_pb2.DeferDisclosureRequest(
            serial=serial, until=_until(until), legal_reason="刑事訴訟法第197条第1項"
        )
        async with topo.channel("hub", MINISTER) as ch:
            outsider = await refused(topo.hub_stub(ch).DeferDisclosure(request, timeout=10))
            unknown = await refused(
                topo.hub_stub(ch).DeferDisclosure(
                    hub_pb2.DeferDisclosureRequest(
                        serial=10**12, until=_until(until), legal_reason="x"
                    ),
                    timeout=10,
                )
            )
        assert (outsider.code, outsider.reason) == (grpc.StatusCode.NOT_FOUND, "EXCHANGE_UNKNOWN")
        assert (unknown.code, unknown.reason) == (outsider.code, outsider.reason)
        async with topo.channel("hub", PENSION) as ch:
            await topo.hub_stub(ch).DeferDisclosure(request, timeout=10)
            empty = await refused(
                topo.hub_stub(ch).DeferDisclosure(
                    hub_pb2.DeferDisclosureRequest(serial=serial, until=_until(until)), timeout=10
                )
            )
            assert empty.metadata.get("field") == "legal_reason"
        page = await proved(topo, 0)
        verify(topo, page)
        hidden = [e for e in page.entries if e.serial == serial]
        assert len(hidden) == 2
        for e in hidden:
            assert (e.entry, e.legal_basis_text, e.requester_name, e.provider_name) == (
                b"",
                "",
                "",
                "",
            )
            assert (e.deferral.agency_id, e.deferral.legal_reason) == (
                PENSION,
                "刑事訴訟法第197条第1項",
            )
            assert e.deferral.until.ToDatetime(UTC) == until
        async with topo.channel("hub", PENSION) as ch:  # lifted: an until in the past
            lift = hub_pb2.DeferDisclosureRequest(
                serial=serial, until=_until(datetime(2000, 1, 1, tzinfo=UTC)), legal_reason="解除"
            )
            await topo.hub_stub(ch).DeferDisclosure(lift, timeout=10)
        again = await listing(topo, 0, page_size=1000)
        assert all(
            e.entry and not e.HasField("deferral") for e in again.entries if e.serial == serial
        )

    loop.run(run())


class FakeDisclosure(disclosure_pb2_grpc.DisclosureServiceServicer):
    """The agency's side, scripted: PENDING on the first ask, ANSWERED after."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, disclosure_pb2.DiscloseRequest]] = []

    async def Disclose(  # gRPC method names are PascalCase
        self, request: disclosure_pb2.DiscloseRequest, context: Any
    ) -> disclosure_pb2.DiscloseResponse:
        who = caller()
        self.asked.append((who.kind if who is not None else None, request))
        if len(self.asked) == 1:
            return disclosure_pb2.DiscloseResponse(state=disclosure_pb2.DISCLOSURE_STATE_PENDING)
        return disclosure_pb2.DiscloseResponse(
            state=disclosure_pb2.DISCLOSURE_STATE_ANSWERED, sealed_details=b"sealed to the portal"
        )


async def _pension_at(topo: Topology, endpoint: str) -> None:
    """Point the hub's directory entry of the pension service at ``endpoint``."""
    hub = topo.hub.hub
    hub.directory = Directory(
        a if a.agency_id != PENSION else type(a)(**{**a.__dict__, "endpoint": endpoint})
        for a in hub.directory
    )


def test_details_pending_then_answered_through_the_agencys_disclosure_service(
    loop: LoopThread, topo: Topology
) -> None:
    fake = FakeDisclosure()

    async def run() -> None:
        serial = await lawful(topo, 0)
        theirs = await lawful(topo, 1)
        server: ServerHandle = await start_server(
            name="fake-disclosure",
            bind="127.0.0.1:0",
            tls=topo.tls(PENSION),
            register=lambda s: disclosure_pb2_grpc.add_DisclosureServiceServicer_to_server(fake, s),
            services=[],
        )
        before = topo.hub.hub.directory.get(PENSION).endpoint
        await _pension_at(topo, f"127.0.0.1:{server.port}")
        try:
            async with topo.channel("hub", PORTAL) as ch:
                stub = _personal(ch)

                def ask(person: int, at: int) -> Any:
                    return stub.RequestDetails(
                        personal_pb2.RequestDetailsRequest(
                            link_code=portal_code(topo, person),
                            serial=at,
                            agency_id=PENSION,
                            application_id=APP,
                        ),
                        timeout=10,
                    )

                first = await ask(0, serial)
                assert first.state == personal_pb2.DETAILS_STATE_PENDING
                assert [Entry.decode(r.entry).kind for r in first.log_receipts] == [
                    EXCHANGE,
                    OUTCOME,
                ]
                second = await ask(0, serial)
                assert second.state == personal_pb2.DETAILS_STATE_ANSWERED
                assert second.sealed_details == b"sealed to the portal"
                assert second.request_serial == first.request_serial
                assert [Entry.decode(r.entry).kind for r in second.log_receipts] == [FETCH]
                other = await refused(ask(0, theirs))
                assert (other.code, other.reason) == (
                    grpc.StatusCode.NOT_FOUND,
                    "DETAILS_NOT_FOUND",
                )
                stranger = await refused(ask(1, serial))
                assert (stranger.code, stranger.reason, stranger.message) == (
                    other.code,
                    other.reason,
                    other.message,
                )
        finally:
            await _pension_at(topo, before)
            await server.stop(0)
        assert [caller for caller, _ in fake.asked] == ["hub", "hub"]
        (_, asked), _ = fake.asked
        assert (asked.serial, asked.application_id, asked.recipient_agency_id) == (
            serial,
            APP,
            PORTAL,
        )
        assert asked.request_serial == first.request_serial
        # The pension service's own link code for the person, as its correspondence table has it.
        assert asked.link_code == topo.link_code(PENSION, 0)
        log = topo.hub_log()
        row = log.row(first.request_serial)
        assert row is not None
        assert (row.entry.requester_agency_id, row.entry.info_kind) == (
            PORTAL,
            DISCLOSURE_INFO_KIND,
        )
        assert [o for _, o, _ in log.fetches(first.request_serial)] == ["OK"]
        mine = await proved(topo, 0)
        assert first.request_serial in {e.serial for e in mine.entries}

    loop.run(run())


def test_an_unreachable_agency_is_unavailable(loop: LoopThread, topo: Topology) -> None:
    async def run() -> None:
        serial = await lawful(topo, 0)
        before = topo.hub.hub.directory.get(PENSION).endpoint
        await _pension_at(topo, "127.0.0.1:1")  # nobody listens there
        try:
            async with topo.channel("hub", PORTAL) as ch:
                got = await refused(
                    _personal(ch).RequestDetails(
                        personal_pb2.RequestDetailsRequest(
                            link_code=portal_code(topo, 0),
                            serial=serial,
                            agency_id=PENSION,
                            application_id="portal-application-2",
                        ),
                        timeout=5,
                    )
                )
        finally:
            await _pension_at(topo, before)
        assert got.code == grpc.StatusCode.UNAVAILABLE
        assert got.reason == "PROVIDER_UNAVAILABLE"
        row = topo.hub_log().row(int(got.metadata["serial"]))
        assert row is not None
        assert (row.outcome, row.reason) == ("UNAVAILABLE", "PROVIDER_UNAVAILABLE")

    loop.run(run())
