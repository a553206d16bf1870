"""Wiring the hub: every dependency is built here, once, from the config."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hub_server.config import HubConfig
from hub_server.directory import Directory
from hub_server.keys import HubKeys
from hub_server.linkage import Hub
from hub_server.log_store import AsyncHubLog, SqlHubLog
from hub_server.policy import TablePolicy
from hub_server.provider_gateway import GrpcProviderGateway
from hub_server.servicer import HubServicer
from renkei import codes, db
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc
from renkei.logs import event
from renkei.runner import serve_until_signalled

_log = logging.getLogger("hub_server")
SERVICE_NAME = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name


@dataclass
class HubServer:
    config: HubConfig
    hub: Hub
    handle: ServerHandle
    log: AsyncHubLog
    gateway: GrpcProviderGateway

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        await self.gateway.close()
        self.log.close()


async def create_server(config: HubConfig) -> HubServer:
    keys = HubKeys.load(config.keys_path)
    directory = Directory.load(config.directory_path)
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    repo = SqlHubLog(engine)
    interrupted = repo.mark_interrupted()
    if interrupted:
        event(_log, "closed log rows left pending by a previous run", rows=interrupted)
    log = AsyncHubLog(repo, writers=1 if engine.dialect.name == "sqlite" else 4)
    gateway = GrpcProviderGateway(config.tls, insecure_development=config.insecure_development)
    hub = Hub(
        directory=directory,
        policy=TablePolicy.load(config.policy_path),
        codec=codes.LinkCodec(keys.link_keys),
        log=log,
        gateway=gateway,
        log_index_key=keys.log_index_key,
        sealing_key=keys.sealing_key,
        relay_ceiling=config.relay_ceiling_seconds,
        log_margin=config.log_margin_seconds,
    )
    servicer = HubServicer(hub, insecure_development=config.insecure_development)
    handle = await start_server(
        name="hub",
        bind=config.listen,
        tls=config.tls,
        register=lambda server: hub_pb2_grpc.add_HubServiceServicer_to_server(servicer, server),
        services=[SERVICE_NAME],
        insecure_development=config.insecure_development,
    )
    return HubServer(config, hub, handle, log, gateway)


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = HubConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
