"""The demo's three agencies, hub and legacy stubs, in one process on loopback ports.

Every server is the real one from its ``create_server(config)``, reading the
files ``ops.deploy`` wrote, over mutual TLS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from comm_server import bootstrap as comm_bootstrap
from comm_server.binding.bind import bind_all
from comm_server.config import CommConfig
from comm_server.legacy import LegacyClient
from comm_server.staff_register import Grant
from comm_server.store import CommStore
from hub_server import bootstrap as hub_bootstrap
from hub_server.config import HubConfig
from hub_server.directory import Directory
from hub_server.log_store import SqlHubLog
from id_issuer import bootstrap as issuer_bootstrap
from id_issuer.config import IdIssuerConfig
from id_issuer.issuer import IdIssuer
from legacy_stubs.jsonl_records.protocol import GARBAGE, LookupRequest, not_found_response
from legacy_stubs.jsonl_records.server import StubServer
from legacy_stubs.jsonl_records.store import RecordStore, write_records
from numbering import bootstrap as numbering_bootstrap
from numbering.config import NumberingConfig
from ops.demo_data import Resident, legacy_records, residents
from ops.deploy import (
    DEMO_AGENCIES,
    AgencySpec,
    Endpoints,
    Layout,
    Settings,
    init_deployment,
)
from ops.identities import issue_numbers, seed_registry
from registry_binding import bootstrap as registry_bootstrap
from registry_binding.config import RegistryBindingConfig
from renkei import exchange_cert
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.grpcutil.client import channel
from renkei.hub.v1 import hub_pb2_grpc
from renkei.pki import TlsFiles
from witness import bootstrap as witness_bootstrap
from witness.config import WitnessConfig

CITY, PENSION, MINISTER = (a.agency_id for a in DEMO_AGENCIES)
# What query() sends: registered at every agency for every affair, at terminal T-1.
TEST_STAFF = Grant("S-1", ("T-1",), name="test staff")


class PersonFaultStub(StubServer):
    """The JSON-lines stub with faults for chosen persons only, so one bad request
    can run beside good ones: ``person_faults[local_person_id] = "drop" | "garbage" | "slow"
    | "missing"`` ("slow": answer after ``slow_seconds``; "missing": no such record).
    ``lookup_started`` is set as each lookup arrives, for a test to wait on."""

    slow_seconds = 1.5

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.person_faults: dict[str, str] = {}
        self.lookup_started = asyncio.Event()

    async def _lookup(
        self, request: LookupRequest, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        self.lookup_started.set()
        fault = self.person_faults.get(request.local_person_id)
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)  # the slowness is the point: deadlines fire
        if fault == "drop":
            return False
        if fault == "garbage":
            await self._send(writer, GARBAGE)
            return True
        if fault == "missing":
            await self._send(writer, not_found_response(request.id, "no such record"))
            return True
        return await super()._lookup(request, writer, peer)


@dataclass
class Topology:
    layout: Layout
    endpoints: Endpoints
    hub: hub_bootstrap.HubServer
    comms: dict[str, comm_bootstrap.CommServer]
    stubs: dict[str, PersonFaultStub]
    people: list[Resident]
    id_issuer: issuer_bootstrap.IdIssuerServer
    numbering: numbering_bootstrap.NumberingServer
    numbers: dict[str, str]
    # The registry's server: binding, and the resident directory the numbering agency asks.
    registry: registry_bootstrap.RegistryBindingServer
    # The oversight body's witness, cosigning the hub's checkpoints.
    witness: witness_bootstrap.WitnessServer

    def tls(self, party: str) -> TlsFiles:
        if party in ("hub", "oversight"):
            return self.layout.pki.files(party)
        return self.layout.pki.agency(party)

    def channel(self, target: str, as_party: str) -> grpc.aio.Channel:
        """A channel to 'hub' or an agency's comm server, with ``as_party``'s certificate."""
        port = self.hub.port if target == "hub" else self.comms[target].port
        peer = "hub" if target == "hub" else f"agency:{target}"
        return channel(f"127.0.0.1:{port}", self.tls(as_party), peer=peer)

    def hub_stub(self, channel: grpc.aio.Channel) -> hub_pb2_grpc.HubServiceAsyncStub:
        return hub_pb2_grpc.HubServiceStub(channel)  # type: ignore[return-value]

    def requester_stub(self, channel: grpc.aio.Channel) -> comm_pb2_grpc.RequesterServiceAsyncStub:
        return comm_pb2_grpc.RequesterServiceStub(channel)  # type: ignore[return-value]

    def provider_stub(self, channel: grpc.aio.Channel) -> comm_pb2_grpc.ProviderServiceAsyncStub:
        return comm_pb2_grpc.ProviderServiceStub(channel)  # type: ignore[return-value]

    def store(self, agency_id: str) -> CommStore:
        return self.comms[agency_id].store.store

    def hub_log(self) -> SqlHubLog:
        repo = self.hub.log.repo
        assert isinstance(repo, SqlHubLog)
        return repo

    def query_signature(
        self, requester: str, provider: str, info_kind: str, item: str, sealed: bytes = b""
    ) -> bytes:
        """``requester``'s signature over a sealed query (none: b""), as its comm server
        signs it, for tests that call the hub's Relay themselves."""
        keys = self.comms[requester].requester._keys
        return exchange_cert.sign(
            keys.signing, exchange_cert.query_context(requester, provider, info_kind, item, sealed)
        )

    def link_code(self, agency_id: str, person: int) -> str:
        code = self.store(agency_id).link_code_for(self.people[person].local_ids[agency_id])
        assert code is not None
        return code

    async def stop(self) -> None:
        for comm in self.comms.values():
            await comm.stop(0)
        await self.hub.stop(0)
        await self.witness.stop(0)
        await self.numbering.stop(0)
        await self.registry.stop(0)
        await self.id_issuer.stop(0)
        for stub in self.stubs.values():
            await stub.stop()


def query(
    requester: str,
    person: Resident,
    provider: str,
    info_kind: str,
    item: str,
    **overrides: object,
) -> comm_pb2.QueryRequest:
    fields: dict[str, object] = {
        "local_person_id": person.local_ids[requester],
        "provider_agency_id": provider,
        "info_kind": info_kind,
        "legal_basis_item": item,
        "purpose": "test",
        "staff_id": "S-1",
        "terminal_id": "T-1",
        **overrides,
    }
    return comm_pb2.QueryRequest(**fields)  # type: ignore[arg-type]


async def start_topology(
    root: Path,
    settings: Settings | None = None,
    legacy: Mapping[str, LegacyClient] | None = None,
    *,
    extra: Sequence[AgencySpec] = (),
    legacy_tables: Mapping[str, Mapping[str, Any]] | None = None,
    bind_people: bool = True,
) -> Topology:
    """Every server binds port 0; configs and the directory learn the real ports after.

    ``legacy`` puts another legacy client (e.g. a fake batch system) in front
    of an agency's communication server instead of its JSON-lines stub.
    ``extra`` agencies (a private body, say) get a comm server with an empty
    legacy system and no bound records. ``legacy_tables`` give agencies another
    ``[legacy]`` table (a real legacy stub and its mapper) in their comm.toml.
    ``bind_people`` False leaves every correspondence table empty (``renkei bind`` tests).
    """
    settings = settings or Settings(answer_timeout_seconds=0.5, query_timeout_seconds=3.0)
    if not settings.extra_staff:
        settings = replace(settings, extra_staff=(TEST_STAFF,))
    people = residents()
    agencies = (*DEMO_AGENCIES, *extra)
    stubs = {}
    records = legacy_records(people)
    for agency in agencies:
        stub = PersonFaultStub(RecordStore(records.get(agency.agency_id, {})), port=0)
        await stub.start()
        stubs[agency.agency_id] = stub
    endpoints = Endpoints(
        0,
        {a.agency_id: 0 for a in agencies},
        {aid: stub.port for aid, stub in stubs.items()},
        legacy=legacy_tables or {},
    )
    layout = init_deployment(root, agencies, endpoints, settings)
    for agency_id, agency_records in records.items():
        write_records(layout.legacy_records(agency_id), agency_records)
    seed_registry(layout, people, extra=50, seed=11)
    issuer = await issuer_bootstrap.create_server(IdIssuerConfig.load(layout.id_issuer_config))
    registry = await registry_bootstrap.create_server(
        replace(
            RegistryBindingConfig.load(layout.registry_config),
            id_issuer_endpoint=f"127.0.0.1:{issuer.port}",
            listen="127.0.0.1:0",
        )
    )
    numbering = await numbering_bootstrap.create_server(
        replace(
            NumberingConfig.load(layout.numbering_config),
            registry_endpoint=f"127.0.0.1:{registry.port}",
        )
    )
    numbers = await issue_numbers(
        layout, numbering.port, [p.resident_code for p in people], root / "notices"
    )
    witness = await witness_bootstrap.create_server(
        replace(WitnessConfig.load(layout.witness_config), listen="127.0.0.1:0")
    )
    hub_config = HubConfig.load(layout.hub_config)
    hub = await hub_bootstrap.create_server(
        replace(
            hub_config,
            id_issuer_endpoint=f"127.0.0.1:{issuer.port}",
            log=replace(
                hub_config.log,
                http_listen="127.0.0.1:0",
                witnesses=tuple(
                    replace(w, url=f"https://127.0.0.1:{witness.port}")
                    for w in hub_config.log.witnesses
                ),
            ),
        )
    )
    hub_endpoint = f"127.0.0.1:{hub.port}"
    configs = {
        a.agency_id: replace(
            CommConfig.load(layout.comm_config(a.agency_id)), hub_endpoint=hub_endpoint
        )
        for a in agencies
    }
    sealer = IdIssuer.load(layout.id_issuer_config)
    for aid, config in configs.items() if bind_people else ():
        await bind_all(
            config,
            [
                (p.local_ids[aid], sealer.sealed_id_code(p.resident_code, aid))
                for p in people
                if aid in p.local_ids
            ],
        )
    comms = {
        aid: await comm_bootstrap.create_server(c, (legacy or {}).get(aid))
        for aid, c in configs.items()
    }
    # Only the parties it runs: the deployment's portal (no server here) is left out of the
    # hub's directory, so an ID-key rotation here waits for the agencies alone (a deployment's
    # portal completes its part with `renkei portal rekey`: tests/integration/test_bind_card.py).
    hub.hub.directory = Directory(
        replace(agency, endpoint=f"127.0.0.1:{comms[agency.agency_id].port}")
        for agency in hub.hub.directory
        if agency.agency_id in comms
    )
    return Topology(
        layout, endpoints, hub, comms, stubs, people, issuer, numbering, numbers, registry, witness
    )
