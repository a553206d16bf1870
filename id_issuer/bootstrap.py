"""Wiring the ID issuer from ``issuer.toml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from id_issuer.config import IdIssuerConfig
from id_issuer.issuer import provision
from id_issuer.service import IdIssuerService
from id_issuer.servicer import IdIssuerServicer
from renkei import db
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc
from renkei.keystore import KeyStore, load_master_key
from renkei.runner import serve_until_signalled

SERVICE_NAME = id_issuer_pb2.DESCRIPTOR.services_by_name["IdIssuerService"].full_name


@dataclass
class IdIssuerServer:
    config: IdIssuerConfig
    service: IdIssuerService
    handle: ServerHandle

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)


async def create_server(config: IdIssuerConfig) -> IdIssuerServer:
    store = KeyStore(
        db.create_engine(config.database_url, schema=config.database_schema),
        load_master_key(config.master_key),
    )
    provision(store)
    service = IdIssuerService(store, config.hub_sealing_public_key)
    servicer = IdIssuerServicer(service, config.may_seal)
    handle = await start_server(
        name="id-issuer",
        bind=config.listen,
        tls=config.tls,
        register=lambda server: id_issuer_pb2_grpc.add_IdIssuerServiceServicer_to_server(
            servicer, server
        ),
        services=[SERVICE_NAME],
        insecure_development=config.insecure_development,
    )
    return IdIssuerServer(config, service, handle)


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = IdIssuerConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
