"""Every party's real server, in this process, on loopback, over mutual TLS.

The files are those ``ops.deploy.init_deployment`` writes for any deployment;
each server is its package's ``create_server(config)``. The servers run on an
event loop of their own in a background thread, so the fuzzer's blocking
client (its own thread) notices a server that stops answering by the call's
deadline, whatever the server's loop is doing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from comm_server import bootstrap as comm_bootstrap
from comm_server.binding.bind import bind_all
from comm_server.config import CommConfig
from hub_server import bootstrap as hub_bootstrap
from hub_server.config import HubConfig
from hub_server.directory import Directory
from id_issuer import bootstrap as issuer_bootstrap
from id_issuer.config import IdIssuerConfig
from id_issuer.issuer import IdIssuer
from legacy_stubs.jsonl_records.server import StubServer
from legacy_stubs.jsonl_records.store import RecordStore, write_records
from numbering import bootstrap as numbering_bootstrap
from numbering.config import NumberingConfig
from ops.demo_data import legacy_records, residents
from ops.deploy import DEMO_AGENCIES, REGISTRY, Endpoints, Layout, Settings, init_deployment
from ops.identities import issue_numbers, seed_registry
from registry_binding import bootstrap as registry_bootstrap
from registry_binding.config import RegistryBindingConfig
from renkei.pki import TlsFiles
from witness import bootstrap as witness_bootstrap
from witness.config import WitnessConfig

T = TypeVar("T")
AGENCY_IDS = tuple(a.agency_id for a in DEMO_AGENCIES)
HUB = "hub"
ID_ISSUER = "id-issuer"
NUMBERING = "numbering"
BINDING = "registry-binding"
PRIVATE_BODY = AGENCY_IDS[2]


class ErrorLog(logging.Handler):
    """Every record at ERROR or above any server logs: a bug even when the client is
    answered within the contract (a per-item INTERNAL on a stream, a background task)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {str(exc)[:200]})"
        self.records.append(text)

    def take(self) -> list[str]:
        taken, self.records = self.records, []
        return taken


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="fuzz-srv")
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@dataclass
class World:
    """The servers, by name (``hub``, an agency id for its comm server, ``id-issuer``...)."""

    layout: Layout
    loop: LoopThread
    ports: dict[str, int] = field(default_factory=dict)
    # Values a correct client would hold: link codes, Numbers (plausible field values).
    secrets: list[str] = field(default_factory=list)
    errors: ErrorLog = field(default_factory=ErrorLog)
    _stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def tls(self, party: str) -> TlsFiles:
        """A party's certificate: ``hub``, ``oversight``, ``agency:<id>`` or ``service:<name>``."""
        if party in (HUB, "oversight"):
            return self.layout.pki.files(party)
        kind, _, name = party.partition(":")
        if kind == "agency":
            return self.layout.pki.agency(name)
        return self.layout.pki.service(name)

    def party_of(self, server: str) -> str:
        """The party serving ``server`` (a key of ``ports``): hub, an agency or a service."""
        if server == HUB:
            return HUB
        if server in AGENCY_IDS:
            return f"agency:{server}"
        return f"service:{REGISTRY if server == BINDING else server}"

    def stop(self) -> None:
        async def stop_all() -> None:
            for stop in reversed(self._stops):
                await stop()

        try:
            self.loop.run(stop_all(), timeout=60)
        finally:
            self.loop.close()
            logging.getLogger().removeHandler(self.errors)


async def _start(world: World, root: Path) -> None:
    people = residents()
    records = legacy_records(people)
    stubs: dict[str, StubServer] = {}
    for agency_id in AGENCY_IDS:
        stub = StubServer(RecordStore(records.get(agency_id, {})), port=0)
        await stub.start()
        stubs[agency_id] = stub
        world._stops.append(stub.stop)
    endpoints = Endpoints(0, {a: 0 for a in AGENCY_IDS}, {a: s.port for a, s in stubs.items()})
    settings = Settings(answer_timeout_seconds=0.5, query_timeout_seconds=2.0, log_level="ERROR")
    layout = init_deployment(root, DEMO_AGENCIES, endpoints, settings)
    world.layout = layout
    for agency_id, agency_records in records.items():
        write_records(layout.legacy_records(agency_id), agency_records)
    await asyncio.to_thread(seed_registry, layout, people, 20, 11)

    issuer = await issuer_bootstrap.create_server(IdIssuerConfig.load(layout.id_issuer_config))
    world._stops.append(lambda: issuer.stop(0))
    world.ports[ID_ISSUER] = issuer.port
    issuer_endpoint = f"127.0.0.1:{issuer.port}"
    witness = await witness_bootstrap.create_server(
        replace(WitnessConfig.load(layout.witness_config), listen="127.0.0.1:0")
    )
    world._stops.append(lambda: witness.stop(0))
    hub_config = HubConfig.load(layout.hub_config)
    hub = await hub_bootstrap.create_server(
        replace(
            hub_config,
            id_issuer_endpoint=issuer_endpoint,
            log=replace(
                hub_config.log,
                witnesses=tuple(
                    replace(w, url=f"https://127.0.0.1:{witness.port}")
                    for w in hub_config.log.witnesses
                ),
            ),
        )
    )
    world._stops.append(lambda: hub.stop(0))
    world.ports[HUB] = hub.port
    registry = await registry_bootstrap.create_server(
        replace(
            RegistryBindingConfig.load(layout.registry_config),
            id_issuer_endpoint=issuer_endpoint,
            listen="127.0.0.1:0",
            tls=layout.pki.service(REGISTRY),
            # One of the three binds as a private body (only with consent), so that both
            # MatchRecords and MatchWithConsent get past their caller check.
            private_bodies=(PRIVATE_BODY,),
        )
    )
    world._stops.append(lambda: registry.stop(0))
    world.ports[BINDING] = registry.port
    numbering = await numbering_bootstrap.create_server(
        replace(
            NumberingConfig.load(layout.numbering_config),
            registry_endpoint=f"127.0.0.1:{registry.port}",
        )
    )
    world._stops.append(lambda: numbering.stop(0))
    world.ports[NUMBERING] = numbering.port
    codes = [p.resident_code for p in people[:5]]
    numbers = await issue_numbers(layout, numbering.port, codes, root / "notices")
    world.secrets.extend(numbers.values())
    sealer = IdIssuer.load(layout.id_issuer_config)
    comms = {}
    for agency_id in AGENCY_IDS:
        loaded = CommConfig.load(layout.comm_config(agency_id))
        config = replace(
            loaded,
            hub_endpoint=f"127.0.0.1:{hub.port}",
            registry_endpoint=f"127.0.0.1:{registry.port}",
            # The fuzzer plays a dishonest hub (it calls Provide as the hub with made-up
            # receipts), which the scheduled check of the hub's log rightly alarms on;
            # that check has tests of its own, and RPC contracts are what is fuzzed here.
            log=replace(loaded.log, verify_every_seconds=0) if loaded.log else None,
        )
        await bind_all(
            config,
            [
                (p.local_ids[agency_id], sealer.sealed_id_code(p.resident_code, agency_id))
                for p in people
                if agency_id in p.local_ids
            ],
        )
        comm = await comm_bootstrap.create_server(config)
        comms[agency_id] = comm
        world._stops.append(lambda comm=comm: comm.stop(0))  # type: ignore[misc]
        world.ports[agency_id] = comm.port
        for person in people[:10]:
            if agency_id in person.local_ids:
                code = await comm.store.link_code_for(person.local_ids[agency_id])
                world.secrets.extend([code] if code else [])
    hub.hub.directory = Directory(
        replace(agency, endpoint=f"127.0.0.1:{comms[agency.agency_id].port}")
        if agency.agency_id in comms
        else agency
        for agency in hub.hub.directory
    )


def start_world(root: Path) -> World:
    """Every server of a fresh deployment under ``root``; ``World.stop`` ends them."""
    loop = LoopThread()
    world = World(Layout(root), loop)
    logging.getLogger().addHandler(world.errors)
    try:
        loop.run(_start(world, root), timeout=300)
    except BaseException:
        world.stop()
        raise
    return world
