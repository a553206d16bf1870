"""Wiring one agency's communication server from its config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from comm_server import keys, share_heads
from comm_server import retention as comm_retention
from comm_server.callers import CallerCheck
from comm_server.clients import hub_client
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.legacy import LegacyClient
from comm_server.legacy.factory import open_legacy_client
from comm_server.log_client import LogClient
from comm_server.log_trust import SqlVerifyStore
from comm_server.log_verify import Keys, ShareVerifier, run_every
from comm_server.mapping.errors import SpecError, UnknownFormat
from comm_server.mapping.mapper import Mapper
from comm_server.mapping.registry import load_mapper
from comm_server.provider.pipeline import Provider
from comm_server.provider.servicer import ProviderServicer
from comm_server.requester.pipeline import Requester
from comm_server.requester.servicer import RequesterServicer
from comm_server.staff_register import RegisterError, RegisterFile
from comm_server.store import AsyncCommStore, open_key_store, open_store
from renkei import legal_hold_service, retention
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.config_util import ConfigError
from renkei.exchange_cert import ExchangeVerifier
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.logs import event
from renkei.retention import HoldStore
from renkei.runner import serve_until_signalled

_log = logging.getLogger("comm_server")

SERVICES = [
    comm_pb2.DESCRIPTOR.services_by_name["ProviderService"].full_name,
    comm_pb2.DESCRIPTOR.services_by_name["RequesterService"].full_name,
]


@dataclass
class CommServer:
    config: CommConfig
    requester: Requester
    provider: Provider
    store: AsyncCommStore
    hub: HubClient
    legacy: LegacyClient
    handle: ServerHandle
    provider_service: ProviderServicer
    watcher: asyncio.Task[None] | None = None
    # The scheduled check of this agency's share of the hub's log ([log]), if on.
    log_checker: asyncio.Task[None] | None = None
    head_signer: asyncio.Task[None] | None = None  # signed heads of the log share
    retention: asyncio.Task[None] | None = None  # [retention] every_seconds; None: off

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
        if self.log_checker is not None:
            self.log_checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.log_checker
        if self.head_signer is not None:
            self.head_signer.cancel()
        if self.retention is not None:
            self.retention.cancel()
        self.provider_service.draining.set()
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        await self.provider.aclose()
        await self.hub.close()
        await self.legacy.aclose()
        self.store.close()


async def watch_register(staff: RegisterFile, every: float) -> None:
    """Pick up changes to the staff register while the server runs."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(staff.refresh)
        except Exception:
            _log.exception("staff register refresh failed; keeping the one in force")


def start_log_checker(
    config: CommConfig, store: AsyncCommStore, hub: HubClient
) -> asyncio.Task[None] | None:
    """The verify job every ``[log] verify_every_seconds``, on the hub's channel; a task of
    its own, so a slow hub or a failed run never holds up an exchange."""
    if config.log is None or config.log.verify_every_seconds <= 0:
        return None
    checker = ShareVerifier(
        LogClient(hub.channel),
        SqlVerifyStore(store.store.engine),
        Keys.from_config(config.log),
        agency_id=config.agency_id,
    )
    return asyncio.create_task(run_every(checker.run, config.log.verify_every_seconds))


def load_register(config: CommConfig) -> RegisterFile | None:
    if config.staff_register is None:
        event(_log, "no staff_register configured: every query will be refused", logging.WARNING)
        return None
    try:
        return RegisterFile(config.staff_register)
    except RegisterError as err:
        raise ConfigError(str(err)) from None


def load_format(config: CommConfig) -> Mapper | None:
    """The ``[legacy] format`` mapper, loaded once; an unknown one stops the server."""
    if not config.legacy.format:
        return None
    try:
        return load_mapper(config.legacy.format)
    except (UnknownFormat, SpecError) as err:
        raise ConfigError(f"[legacy] format: {err.message}") from None


def exchange_verifier(config: CommConfig) -> ExchangeVerifier:
    """The check of peers' exchange certificates, under the agencies' CA ([tls] exchange_ca)."""
    if config.exchange_ca is None:
        raise ConfigError(
            "[tls] exchange_ca (or ca_cert): the CA of agencies' exchange certificates is "
            "needed to seal to any peer"
        )
    try:
        verifier = ExchangeVerifier.from_pem_file(config.exchange_ca)
    except (OSError, ValueError) as err:
        raise ConfigError(f"[tls] exchange_ca {config.exchange_ca}: {err}") from None
    # The agencies' CA revokes exchange certificates in the same CRL as TLS ones.
    return verifier.with_revocation(config.tls.trust()) if config.tls else verifier


async def create_server(config: CommConfig, legacy: LegacyClient | None = None) -> CommServer:
    """``legacy`` replaces the client the config names (tests: a fake batch system)."""
    staff = load_register(config)
    mapper = load_format(config)
    store = open_store(config)
    hub = hub_client(config)
    if legacy is None:
        legacy = open_legacy_client(config.legacy)
    key_store = open_key_store(config, store)
    own = keys.own_keys(key_store)
    log_signer = share_heads.signer(key_store, config.agency_id)
    peers = exchange_verifier(config)
    requester = Requester(
        agency_id=config.agency_id,
        store=store,
        hub=hub,
        keys=own,
        peers=peers,
        query_timeout=config.query_timeout_seconds,
        bulk_query_timeout=config.bulk_query_timeout_seconds,
        staff=staff,
        mapper=mapper,
    )
    provider = Provider(
        agency_id=config.agency_id,
        store=store,
        legacy=legacy,
        keys=own,
        peers=peers,
        answer_timeout=config.answer_timeout_seconds,
        bulk_answer_timeout=config.bulk_answer_timeout_seconds,
        responder_staff_id=config.responder_staff_id,
        responder_terminal_id=config.responder_terminal_id,
        mapper=mapper,
    )
    callers = CallerCheck(config.agency_id)
    provider_service = ProviderServicer(provider, callers)
    requester_service = RequesterServicer(requester, callers)

    holds = HoldStore(store.store.engine)

    def register(server: object) -> None:
        comm_pb2_grpc.add_ProviderServiceServicer_to_server(provider_service, server)  # type: ignore[arg-type]
        comm_pb2_grpc.add_RequesterServiceServicer_to_server(requester_service, server)  # type: ignore[arg-type]
        legal_hold_service.add_to_server(server, holds)  # type: ignore[arg-type]

    handle = await start_server(
        name=f"comm:{config.agency_id}",
        bind=config.listen,
        tls=config.tls,
        register=register,
        services=[*SERVICES, legal_hold_service.SERVICE_NAME],
        insecure_development=config.insecure_development,
    )
    watcher = (
        asyncio.create_task(watch_register(staff, config.staff_register_refresh_seconds))
        if staff is not None
        else None
    )
    head_signer = asyncio.create_task(
        share_heads.sign_periodically(
            share_heads.HeadStore(store.store.engine), log_signer, config.agency_id
        )
    )
    return CommServer(
        config,
        requester,
        provider,
        store,
        hub,
        legacy,
        handle,
        provider_service,
        watcher,
        start_log_checker(config, store, hub),
        head_signer,
        retention.schedule(
            config.retention,
            lambda: comm_retention.purge_comm(
                store.store.engine, holds, config.retention, now=datetime.now(UTC)
            ),
        ),
    )


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = CommConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
