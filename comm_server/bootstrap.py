"""Wiring one agency's communication server from its config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from comm_server import keys
from comm_server.config import CommConfig
from comm_server.exchange import Exchange
from comm_server.hub_client import HubClient
from comm_server.legacy import LegacyClient
from comm_server.legacy.factory import open_legacy_client
from comm_server.servicers import CallerCheck, ProviderServicer, RequesterServicer
from comm_server.store import AsyncCommStore, open_key_store, open_store
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.runner import serve_until_signalled

SERVICES = [
    comm_pb2.DESCRIPTOR.services_by_name["ProviderService"].full_name,
    comm_pb2.DESCRIPTOR.services_by_name["RequesterService"].full_name,
]


@dataclass
class CommServer:
    config: CommConfig
    exchange: Exchange
    store: AsyncCommStore
    hub: HubClient
    legacy: LegacyClient
    handle: ServerHandle

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        await self.hub.close()
        await self.legacy.aclose()
        self.store.close()


async def create_server(config: CommConfig) -> CommServer:
    store = open_store(config)
    hub = HubClient(
        config.hub_endpoint, config.tls, insecure_development=config.insecure_development
    )
    legacy = open_legacy_client(config.legacy)
    exchange = Exchange(
        agency_id=config.agency_id,
        store=store,
        hub=hub,
        legacy=legacy,
        sealing_key=keys.sealing_key(open_key_store(config, store)),
        answer_timeout=config.answer_timeout_seconds,
        query_timeout=config.query_timeout_seconds,
        responder_staff_id=config.responder_staff_id,
        responder_terminal_id=config.responder_terminal_id,
    )
    callers = CallerCheck(config.agency_id, insecure_development=config.insecure_development)
    provider = ProviderServicer(exchange, callers)
    requester = RequesterServicer(exchange, callers)

    def register(server: object) -> None:
        comm_pb2_grpc.add_ProviderServiceServicer_to_server(provider, server)  # type: ignore[arg-type]
        comm_pb2_grpc.add_RequesterServiceServicer_to_server(requester, server)  # type: ignore[arg-type]

    handle = await start_server(
        name=f"comm:{config.agency_id}",
        bind=config.listen,
        tls=config.tls,
        register=register,
        services=SERVICES,
        insecure_development=config.insecure_development,
    )
    return CommServer(config, exchange, store, hub, legacy, handle)


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = CommConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
