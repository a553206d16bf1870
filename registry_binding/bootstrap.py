"""Wiring the registry's binding party: every dependency is built here, once, from the config."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

from registry_binding import retention as registry_retention
from registry_binding.binding import RegistryBinding
from registry_binding.config import RegistryBindingConfig
from registry_binding.consent import ConsentBinding, ConsentLog
from registry_binding.directory import ResidentDirectoryServicer
from registry_binding.matching import Matcher
from registry_binding.sealer import GrpcSealer
from registry_binding.servicer import BindingServicer
from registry_binding.sources import open_source
from registry_binding.store import BindingStore
from registry_binding.subscriptions import Subscriptions
from renkei import db, legal_hold_service, retention
from renkei.config_util import ConfigError
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.registry.v1 import (
    registry_pb2,
    registry_pb2_grpc,
    resident_directory_pb2,
    resident_directory_pb2_grpc,
)
from renkei.residents import ResidentSource
from renkei.retention import HoldStore
from renkei.runner import serve_until_signalled

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["BindingService"].full_name
# The numbering agency's narrow view of the register, on the same port (registry.toml listen).
DIRECTORY_SERVICE_NAME = resident_directory_pb2.DESCRIPTOR.services_by_name[
    "ResidentDirectoryService"
].full_name


@dataclass
class RegistryBindingServer:
    config: RegistryBindingConfig
    binding: RegistryBinding
    subscriptions: Subscriptions
    store: BindingStore
    source: ResidentSource
    sealer: GrpcSealer
    handle: ServerHandle
    # The retention job ([retention] every_seconds; None: off).
    retention: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        if self.retention is not None:
            self.retention.cancel()
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        await self.sealer.close()
        self.source.close()
        self.store.engine.dispose()


async def create_server(config: RegistryBindingConfig) -> RegistryBindingServer:
    if not config.id_issuer_endpoint:
        raise ConfigError("[registry] id_issuer_endpoint is needed to serve binding")
    source = open_source(config.resident_source, config.resident_source_options)
    store = BindingStore(db.create_engine(config.database_url, schema=config.database_schema))
    sealer: GrpcSealer | None = None
    try:
        matcher = await asyncio.to_thread(Matcher, source)
        log = ConsentLog(store.engine)
        sealer = GrpcSealer(
            config.id_issuer_endpoint, config.tls, insecure_development=config.insecure_development
        )
        subscriptions = Subscriptions(store, source)
        binding = RegistryBinding(matcher, sealer, subscriptions=subscriptions)
        consent = ConsentBinding(matcher, source, sealer, log, config.private_bodies)
        servicer = BindingServicer(binding, subscriptions, consent)
        directory = ResidentDirectoryServicer(source, config.directory_callers)
        holds = HoldStore(store.engine)

        def register(server: grpc.aio.Server) -> None:
            registry_pb2_grpc.add_BindingServiceServicer_to_server(servicer, server)
            resident_directory_pb2_grpc.add_ResidentDirectoryServiceServicer_to_server(
                directory, server
            )
            legal_hold_service.add_to_server(server, holds)

        handle = await start_server(
            name="registry-binding",
            bind=config.listen,
            tls=config.tls,
            register=register,
            services=[SERVICE_NAME, DIRECTORY_SERVICE_NAME, legal_hold_service.SERVICE_NAME],
            insecure_development=config.insecure_development,
        )
    except BaseException:
        if sealer is not None:
            await sealer.close()
        source.close()
        store.engine.dispose()
        raise
    purging = retention.schedule(
        config.retention,
        lambda: registry_retention.purge_consent_log(
            store.engine, holds, config.retention, now=datetime.now(UTC)
        ),
    )
    return RegistryBindingServer(
        config, binding, subscriptions, store, source, sealer, handle, purging
    )


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = RegistryBindingConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
