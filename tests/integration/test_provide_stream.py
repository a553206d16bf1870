"""ProvideStream between the hub's gateway and a provider, over mutual TLS.

The provider side is the real ProviderServicer in front of a scripted
exchange, so each test chooses what one call does (answer after a while,
refuse, hang, fail); the hub side is the real GrpcProviderGateway. The last
tests run real relays through the demo topology, where every Provide goes
over the stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.aio import LoopThread
from support.exchange_fakes import CITY as CITY_FAKE
from support.exchange_fakes import ITEM, PENSION_INFO, Agencies
from support.exchange_fakes import PENSION as PENSION_FAKE
from support.polling import until
from support.refusals import refused
from support.topology import CITY, PENSION, Topology, query

from comm_server.callers import CallerCheck
from comm_server.provider.pipeline import Provider
from comm_server.provider.servicer import ProviderServicer
from comm_server.provider.types import ProvideCall, Provided
from comm_server.seal_info import query_info
from hub_server.directory import Agency
from hub_server.exchange import ProvideCall as HubProvideCall
from hub_server.exchange import ProvideItem
from hub_server.provider_gateway import GrpcProviderGateway
from ops import pki as ops_pki
from ops.demo_data import legacy_records
from renkei import sealing
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.errors import DeadlineExceeded, NotFound, RenkeiError, Unavailable
from renkei.grpcutil.client import peer_options
from renkei.grpcutil.server import ServerHandle, start_server

PROVIDER = "nenkin"
# A restarted provider is asked again within this many polls, this far apart: the hub's
# backoff (at most 250 ms, jitter 20 %) fits in 7; grpc's default (from 1 s) does not.
POLL_SECONDS = 0.05
RECONNECT_POLLS = 10
DOWN_POLLS = 30
SERVICES = [comm_pb2.DESCRIPTOR.services_by_name["ProviderService"].full_name]


class ScriptedExchange:
    """What each call does comes from its link code: ``answer``, ``slow:<s>``,
    ``refuse``, ``hang`` or ``boom``."""

    def __init__(self) -> None:
        self.remaining: dict[int, float | None] = {}
        self.started: set[int] = set()
        self.cancelled: set[int] = set()

    async def provide(self, call: ProvideCall, time_remaining: float | None) -> Provided:
        self.remaining[call.serial] = time_remaining
        self.started.add(call.serial)
        kind, _, arg = call.link_code.partition(":")
        if kind == "slow":
            await asyncio.sleep(float(arg))  # the slowness is the point: order, deadlines
        elif kind == "refuse":
            raise NotFound(
                "PERSON_NOT_BOUND",
                "the provider has no record bound to this person",
                {"provider_agency_id": PROVIDER},
            )
        elif kind == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.add(call.serial)
                raise
        elif kind == "boom":
            raise RuntimeError("a bug in the provider")
        return Provided(f"answer-{call.serial}".encode())


class CountingServicer(ProviderServicer):
    unary = 0

    def __init__(self, exchange: Provider, callers: CallerCheck) -> None:
        super().__init__(exchange, callers)

    async def Provide(  # gRPC method names are PascalCase
        self, request: comm_pb2.ProvideRequest, context: Any
    ) -> comm_pb2.ProvideResponse:
        type(self).unary += 1
        return await super().Provide(request, context)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> ops_pki.PkiLayout:
    return ops_pki.init_pki(tmp_path_factory.mktemp("pki"), ["city", PROVIDER])


async def _serve(
    layout: ops_pki.PkiLayout,
    exchange: ScriptedExchange,
    bind: str = "127.0.0.1:0",
    servicer: ProviderServicer | None = None,
) -> ServerHandle:
    servicer = servicer or CountingServicer(cast(Provider, exchange), CallerCheck(PROVIDER))
    return await start_server(
        name="scripted-provider",
        bind=bind,
        tls=layout.agency(PROVIDER),
        register=lambda s: comm_pb2_grpc.add_ProviderServiceServicer_to_server(servicer, s),
        services=SERVICES,
    )


def _agency(port: int) -> Agency:
    return Agency(PROVIDER, "pension", frozenset(), f"127.0.0.1:{port}", b"")


def _call(serial: int, link_code: str) -> HubProvideCall:
    return HubProvideCall(
        time=datetime.now(UTC),
        requester_agency_id="city",
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        item_count=1,
        items=[ProvideItem(serial, 0, link_code)],
        sealed_queries=b"",
        requester_sealing_public_key=b"",
        single=True,
    )


class Rig:
    def __init__(self, layout: ops_pki.PkiLayout, *, streams: bool = True) -> None:
        self.layout = layout
        self.exchange = ScriptedExchange()
        self.gateway = GrpcProviderGateway(layout.hub(), streams=streams)
        self.handle: ServerHandle | None = None
        self.servicer = CountingServicer(cast(Provider, self.exchange), CallerCheck(PROVIDER))

    async def __aenter__(self) -> Rig:
        self.handle = await _serve(self.layout, self.exchange, servicer=self.servicer)
        CountingServicer.unary = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gateway.close()
        if self.handle is not None:
            await self.handle.server.stop(0)

    @property
    def agency(self) -> Agency:
        assert self.handle is not None
        return _agency(self.handle.port)

    async def provide(self, serial: int, link_code: str, timeout: float = 5.0) -> bytes:
        provided = await self.gateway.provide(self.agency, _call(serial, link_code), timeout)
        return provided.sealed_answers


async def _error(call: Any) -> RenkeiError:
    try:
        await call
    except RenkeiError as err:
        return err
    raise AssertionError("the call did not fail")


def test_each_call_gets_its_own_answer_whatever_the_order(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    async def run() -> tuple[list[bytes], int]:
        async with Rig(layout) as rig:
            # Later serials answer sooner: answers come back out of order.
            answers = await asyncio.gather(
                *(rig.provide(s, f"slow:{(30 - s) * 0.01}") for s in range(1, 31))
            )
            return list(answers), CountingServicer.unary

    answers, unary = loop.run(run())
    assert answers == [f"answer-{s}".encode() for s in range(1, 31)]
    assert unary == 0  # all of them over the stream


def test_deadline_travels_with_the_call_and_is_enforced(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    async def run() -> tuple[RenkeiError, ScriptedExchange, bytes]:
        async with Rig(layout) as rig:
            err = await _error(rig.provide(7, "hang", timeout=0.3))
            # The provider is told the hub gave up, and stops working on the call.
            await until(lambda: 7 in rig.exchange.cancelled, what="the provider to cancel call 7")
            after = await rig.provide(8, "answer")  # the stream is still good
            return err, rig.exchange, after

    err, exchange, after = loop.run(run())
    assert isinstance(err, DeadlineExceeded)
    assert err.reason == "PROVIDER_DEADLINE_EXCEEDED"
    remaining = exchange.remaining[7]
    assert remaining is not None
    assert 0.2 < remaining <= 0.3
    assert after == b"answer-8"


def test_a_cancelled_caller_cancels_the_providers_work(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    async def run() -> set[int]:
        async with Rig(layout) as rig:
            task = asyncio.create_task(rig.provide(9, "hang"))
            await until(lambda: 9 in rig.exchange.started, what="the provider to start call 9")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: 9 in rig.exchange.cancelled, what="the provider to cancel call 9")
            return rig.exchange.cancelled

    assert loop.run(run()) == {9}


def test_a_refusal_keeps_its_code_reason_and_metadata_as_unary_does(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    async def run(streams: bool) -> RenkeiError:
        async with Rig(layout, streams=streams) as rig:
            return await _error(rig.provide(3, "refuse"))

    over_stream, unary = loop.run(run(True)), loop.run(run(False))
    for err in (over_stream, unary):
        assert isinstance(err, NotFound)
        assert err.reason == "PERSON_NOT_BOUND"
        assert err.metadata["provider_agency_id"] == PROVIDER
        assert err.message == "the provider has no record bound to this person"


def test_a_provider_bug_reaches_the_hub_as_unavailable(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    async def run() -> tuple[RenkeiError, bytes]:
        async with Rig(layout) as rig:
            err = await _error(rig.provide(4, "boom"))
            return err, await rig.provide(5, "answer")

    err, after = loop.run(run())
    assert isinstance(err, Unavailable)
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert "a bug" not in err.message  # the provider's internals stay there
    assert after == b"answer-5"


def test_a_provider_dying_mid_stream_fails_the_calls_in_flight_and_the_next_stream_works(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    async def run() -> tuple[list[RenkeiError], bytes]:
        async with Rig(layout) as rig:
            assert rig.handle is not None
            port = rig.handle.port
            calls = [asyncio.create_task(rig.provide(s, "hang")) for s in (11, 12, 13)]
            await until(lambda: {11, 12, 13} <= rig.exchange.started, what="calls 11-13 to start")
            await rig.handle.server.stop(0)
            errors = [await _error(c) for c in calls]
            # The provider comes back on the same port: the gateway opens a new stream.
            rig.handle = await _serve(layout, rig.exchange, f"127.0.0.1:{port}")
            return errors, await rig.provide(14, "answer", timeout=10)

    errors, after = loop.run(run())
    assert all(isinstance(e, Unavailable) for e in errors), errors
    assert after == b"answer-14"


def test_a_hub_dropping_the_stream_leaves_the_provider_a_row_per_call_in_flight(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    """The real pipeline behind the real servicer: the hub goes away mid-call (here its
    gateway closes, cancelling the stream), and every serial it asked about is logged."""

    async def run() -> list[tuple[int | None, str | None, str, str]]:
        world = Agencies()
        for n in range(3):
            world.legacy.slow[f"L-{n}"] = 60.0  # still looking up when the hub goes
        servicer = ProviderServicer(world.provider, CallerCheck(PROVIDER))
        handle = await _serve(layout, ScriptedExchange(), servicer=servicer)
        gateway = GrpcProviderGateway(layout.hub())
        sealed = sealing.seal(
            b"y=2025",
            sealing.load_public_key(world.hub.provider_key, field="provider key"),
            query_info(CITY_FAKE, PENSION_FAKE, PENSION_INFO, ITEM),
        )
        try:
            calls = [
                asyncio.create_task(
                    gateway.provide(
                        _agency(handle.port),
                        replace(
                            _call(401 + n, f"pension-code-{n}"),
                            sealed_queries=sealed,
                            requester_sealing_public_key=world.hub.requester_key,
                            requester_exchange_certificate=world.city_cert,
                            query_signature=world.query_signature(sealed),
                        ),
                        30,
                    )
                )
                for n in range(3)
            ]
            await until(lambda: len(world.legacy.asked) == 3, what="three lookups to start")
            await gateway.close()  # the hub's side of the stream is gone
            await asyncio.gather(*calls, return_exceptions=True)
            await until(lambda: len(world.pension_store.logs) == 3, what="three provider rows")
            return sorted(
                (r.serial, r.local_person_id, r.outcome, r.reason) for r in world.pension_store.logs
            )
        finally:
            await handle.server.stop(0)

    assert loop.run(run()) == [
        (401 + n, f"L-{n}", "INTERRUPTED", "HUB_STREAM_DROPPED") for n in range(3)
    ]


async def _serving(layout: ops_pki.PkiLayout, port: int) -> bool:
    """Whether the provider's health is SERVING, asked on a channel of its own (no backoff)."""
    creds = layout.hub().channel_credentials()
    options = peer_options(f"agency:{PROVIDER}")
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options) as ch:
        try:
            served = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        except grpc.aio.AioRpcError:
            return False
    return served.status == health_pb2.HealthCheckResponse.SERVING


def test_a_restarted_provider_is_asked_again_within_a_few_polls(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    """The hub's channel to a provider backs off for a moment only: once the provider
    serves again, the next lawful Provide gets through within a few polls."""

    async def run() -> int:
        async with Rig(layout) as rig:
            assert rig.handle is not None
            port = rig.handle.port
            assert await rig.provide(31, "answer") == b"answer-31"
            await rig.handle.server.stop(0)
            # The provider is gone: a call fails, and the hub's channel starts backing off.
            # It stays down while the hub keeps asking (a restart takes a while), so the
            # hub's channel is well into its reconnect backoff when it comes back.
            for serial in range(100, 100 + DOWN_POLLS):
                assert isinstance(await _error(rig.provide(serial, "answer")), Unavailable)
                await asyncio.sleep(POLL_SECONDS)  # the hub's traffic while it is down
            rig.handle = await _serve(layout, rig.exchange, f"127.0.0.1:{port}")
            await until(lambda: _serving(layout, port), what="the provider to serve again")
            attempts = 0

            async def attempt() -> bytes | None:
                nonlocal attempts
                attempts += 1
                try:
                    return await rig.provide(32 + attempts, "answer")
                except Unavailable:
                    return None

            await until(attempt, every=POLL_SECONDS, timeout=15, what="a Provide to get through")
            return attempts

    # With grpc's default backoff (1 s, then 1.6 times longer) this took 16 to 27 polls.
    assert loop.run(run()) <= RECONNECT_POLLS


def test_a_draining_provider_answers_what_runs_refuses_new_calls_and_ends_the_stream(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    """What a graceful shutdown of the communication server does to the hub's stream."""

    async def run() -> tuple[bytes, RenkeiError, bytes, set[int]]:
        async with Rig(layout) as rig:
            running = asyncio.create_task(rig.provide(21, "slow:0.3"))
            await until(lambda: 21 in rig.exchange.started, what="the provider to start call 21")
            rig.servicer.draining.set()
            refused_call = await _error(rig.provide(22, "answer"))
            answer = await running
            stream = rig.gateway._streams[rig.agency.endpoint]  # its state
            await until(
                lambda: stream._open is None or stream._open.broken,
                what="the hub to see the drained stream end",
            )
            # A stream ended by the provider is not reused: the next call opens a new one.
            rig.servicer.draining.clear()
            started = set(rig.exchange.started)
            return answer, refused_call, await rig.provide(23, "answer"), started

    answer, refused_call, after, started = loop.run(run())
    assert answer == b"answer-21"
    assert isinstance(refused_call, Unavailable)
    assert refused_call.reason == "PROVIDER_UNAVAILABLE"
    assert started == {21}  # the refused call never reached the exchange
    assert after == b"answer-23"


def test_a_provider_without_the_stream_gets_unary_calls(
    loop: LoopThread, layout: ops_pki.PkiLayout
) -> None:
    """An older communication server answers ProvideStream with UNIMPLEMENTED."""

    async def run() -> tuple[list[bytes], int]:
        exchange = ScriptedExchange()
        servicer = CountingServicer(cast(Provider, exchange), CallerCheck(PROVIDER))
        unary_only = grpc.method_handlers_generic_handler(
            SERVICES[0],
            {
                "Provide": grpc.unary_unary_rpc_method_handler(
                    servicer.Provide,
                    request_deserializer=comm_pb2.ProvideRequest.FromString,
                    response_serializer=comm_pb2.ProvideResponse.SerializeToString,
                )
            },
        )
        handle = await start_server(
            name="old-provider",
            bind="127.0.0.1:0",
            tls=layout.agency(PROVIDER),
            register=lambda s: s.add_generic_rpc_handlers((unary_only,)),
            services=SERVICES,
        )
        CountingServicer.unary = 0
        gateway = GrpcProviderGateway(layout.hub())
        try:
            answers = [
                (await gateway.provide(_agency(handle.port), _call(s, "answer"), 5)).sealed_answers
                for s in (1, 2)
            ]
            return answers, CountingServicer.unary
        finally:
            await gateway.close()
            await handle.server.stop(0)

    answers, unary = loop.run(run())
    assert answers == [b"answer-1", b"answer-2"]
    assert unary == 2


def test_only_the_hub_may_open_the_stream(loop: LoopThread, layout: ops_pki.PkiLayout) -> None:
    async def run() -> Any:
        handle = await _serve(layout, ScriptedExchange())
        creds = layout.agency("city").channel_credentials()
        try:
            target, options = f"127.0.0.1:{handle.port}", peer_options(f"agency:{PROVIDER}")
            async with grpc.aio.secure_channel(target, creds, options) as ch:

                async def one() -> AsyncIterator[comm_pb2.ProvideStreamRequest]:
                    yield comm_pb2.ProvideStreamRequest(
                        call_id=1, provide=comm_pb2.ProvideRequest(serial=1, link_code="answer")
                    )

                stream = comm_pb2_grpc.ProviderServiceStub(ch).ProvideStream(one(), timeout=5)

                async def drain() -> None:
                    async for _ in stream:
                        raise AssertionError("a non-hub caller got an answer")

                return await refused(drain())
        finally:
            await handle.server.stop(0)

    refusal = loop.run(run())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
    assert refusal.reason == "CALLER_NOT_HUB"


# -- through the real topology: every Provide goes over the stream -------------


def test_concurrent_relays_over_the_stream_each_open_and_are_logged_before_answering(
    loop: LoopThread, topo: Topology
) -> None:
    people = [p for p in topo.people if CITY in p.local_ids and PENSION in p.local_ids][:6]

    async def run() -> list[Any]:
        async with topo.channel(CITY, CITY) as ch:
            stub = topo.requester_stub(ch)
            return list(
                await asyncio.gather(
                    *(
                        stub.Query(
                            query(CITY, p, PENSION, "年金給付関係情報", "二十七"), timeout=10
                        )
                        for p in people
                        for _ in range(3)
                    )
                )
            )

    responses = loop.run(run())
    records = legacy_records(topo.people)[PENSION]
    expected = [records[p.local_ids[PENSION]]["年金給付関係情報"] for p in people for _ in range(3)]
    # Each answer opened under its own serial (a mix-up would not open) and is the right person's.
    assert [json.loads(r.answer) for r in responses] == expected
    serials = [r.serial for r in responses]
    assert len(set(serials)) == len(serials)
    rows = {r.serial: r for r in topo.hub_log().rows(limit=100_000)}
    # The answer came back only after the hub's outcome row was durable.
    assert all(rows[s].outcome == "OK" and rows[s].completed_at is not None for s in serials)
    gateway = topo.hub.gateway
    assert gateway._streams  # the stream, not unary calls, carried them
