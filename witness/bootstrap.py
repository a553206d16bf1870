"""Wiring the witness from ``witness.toml``: its store, its key, its HTTPS server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from renkei import https_tls as tls
from renkei.grpcutil.server import require_tls
from renkei.keystore import KeyStore
from renkei.runner import serve_until_signalled
from witness import keys
from witness.config import WitnessConfig
from witness.http import WitnessHttpServer
from witness.store import WitnessStore
from witness.witness import Witness


@dataclass
class WitnessServer:
    config: WitnessConfig
    witness: Witness
    http: WitnessHttpServer
    key_store: KeyStore

    @property
    def port(self) -> int:
        return self.http.port

    async def stop(self, grace: float | None = None) -> None:
        try:
            await self.http.stop(grace)
        finally:
            self.key_store.engine.dispose()


async def create_server(config: WitnessConfig) -> WitnessServer:
    require_tls("witness", config.tls, config.insecure_development)
    key_store = keys.open_key_store(config)
    witness = Witness(
        WitnessStore(key_store.engine), keys.cosigner(key_store, config.name), config.verifiers()
    )
    context = (
        None
        if config.tls is None
        else tls.server_context(config.tls, require_client_cert=config.require_client_cert)
    )
    http = WitnessHttpServer(
        witness,
        config.listen,
        ssl_context=context,
        shutdown_grace_seconds=config.shutdown_grace_seconds,
    )
    await http.start()
    return WitnessServer(config, witness, http, key_store)


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = WitnessConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
