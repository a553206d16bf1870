"""Wiring the numbering agency: every dependency is built here, once, from the config."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from numbering.config import NumberingConfig
from numbering.directory import GrpcResidentDirectory
from numbering.service import NumberingService
from numbering.servicer import NumberingServicer
from numbering.store import NumberingStore
from renkei import db
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.numbering.v1 import numbering_pb2, numbering_pb2_grpc
from renkei.runner import serve_until_signalled

SERVICE_NAME = numbering_pb2.DESCRIPTOR.services_by_name["NumberingService"].full_name


@dataclass
class NumberingServer:
    config: NumberingConfig
    service: NumberingService
    handle: ServerHandle
    executor: ThreadPoolExecutor
    directory: GrpcResidentDirectory

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        # Off the loop: a worker still asking the registry needs the loop to finish.
        await asyncio.to_thread(self.executor.shutdown, wait=True)
        await self.directory.close()
        self.service.store.engine.dispose()


async def create_server(config: NumberingConfig) -> NumberingServer:
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    store = NumberingStore(engine)
    directory = GrpcResidentDirectory(
        config.registry_endpoint,
        config.tls,
        insecure_development=config.insecure_development,
        timeout=config.registry_timeout_seconds,
    )
    service = NumberingService(store, directory)
    # SQLite serialises writers anyway: one thread avoids lock waits.
    executor = ThreadPoolExecutor(
        max_workers=1 if engine.dialect.name == "sqlite" else 4, thread_name_prefix="numbering"
    )
    servicer = NumberingServicer(
        service,
        config.authorize,
        executor,
    )
    handle = await start_server(
        name="numbering",
        bind=config.listen,
        tls=config.tls,
        register=lambda server: numbering_pb2_grpc.add_NumberingServiceServicer_to_server(
            servicer, server
        ),
        services=[SERVICE_NAME],
        insecure_development=config.insecure_development,
    )
    return NumberingServer(config, service, handle, executor, directory)


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = NumberingConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
