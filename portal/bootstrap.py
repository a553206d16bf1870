"""Wiring the portal: every dependency built here, once, from the config; HTTPS only.

Besides the web application: its sealing key (``renkei.agency_keys`` in its own
database, under ``[portal] master_key``), its retention job (``portal.retention``)
and, with ``[portal] internal_listen``, an internal mutual-TLS gRPC port serving
the oversight body's LegalHoldService.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import sqlalchemy as sa
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import x25519
from sqlalchemy.engine import Engine

from portal import pages
from portal import retention as portal_retention
from portal.app_keys import APPLICATIONS, PERSONAL_LOG, PersonalLog
from portal.config import PortalConfig
from portal.history import VERIFIER, HistoryVerifier
from portal.hub_client import HubClient
from portal.ratelimit import TokenBuckets
from portal.registry_client import RegistryClient
from portal.sessions import Sessions, utc_now
from portal.signin import CardBinder, LinkCodes, SignIn
from portal.store import PortalStore, SqlApplications
from portal.web import (
    CONFIG,
    MAX_BODY,
    RATE,
    SESSIONS,
    SIGNIN,
    SIGNIN_TEMPLATES,
    add_routes,
    security_headers,
    sessions_and_csrf,
    templates,
)
from renkei import agency_keys, db, legal_hold_service, retention
from renkei.card import CardTrust
from renkei.config_util import ConfigError
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.keystore import KeyStore, load_master_key
from renkei.retention import HoldStore
from renkei.runner import serve_until_signalled
from renkei.tlog import checkpoint, note

log = logging.getLogger(__name__)
EXPIRE_EVERY = 60.0  # seconds between sweeps of expired sessions and challenges
# The legal holds on the portal's applications (what the internal port's service sets).
HOLDS = web.AppKey("legal_holds", HoldStore)


def web_ssl_context(config: PortalConfig) -> ssl.SSLContext:
    """The internet side's TLS: the portal's own web certificate, TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.web_cert, config.web_key)
    return context


def _verifier(config: PortalConfig) -> HistoryVerifier | None:
    if not config.log_key:
        return None
    return HistoryVerifier(
        note.parse_verifier_key(config.log_key),
        [checkpoint.parse_cosignature_verifier_key(k) for k in config.witness_keys],
        config.quorum,
    )


def load_sealing_key(config: PortalConfig, engine: Engine) -> x25519.X25519PrivateKey:
    """The key agencies seal details to the portal with, from its key store; a ConfigError
    in one line when there is none (the deployment provisions it: ops/deploy_portal.py)."""
    where = "[portal] master_key"
    if not config.master_key:
        raise ConfigError(f"{where}: not set; the portal's keys are wrapped under it")
    try:
        keys = KeyStore(engine, load_master_key(config.master_key))
        if not keys.versions(agency_keys.SEALING):
            raise ConfigError(
                f"{where}: the portal's key store ({engine.url.render_as_string()}) has no"
                " sealing key; provision it with renkei.agency_keys.provision, as the"
                " deployment does, and have its exchange certificate issued"
            )
        return agency_keys.sealing_key(keys)
    except ValueError as err:  # the master key unreadable, or not the one the keys are under
        raise ConfigError(f"{where}: {err}") from None


@dataclass
class Peers:
    """What the portal calls: the hub (PersonalLog, IssueLinkCode) and the registry (BindCard).

    ``closers`` are awaited at shutdown (the gRPC channels the bootstrap opened).
    """

    personal_log: PersonalLog
    link_codes: LinkCodes
    registry: CardBinder
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def grpc_peers(config: PortalConfig) -> Peers:
    hub = HubClient(
        config.hub_endpoint, config.tls, insecure_development=config.insecure_development
    )
    registry = RegistryClient(
        config.registry_endpoint, config.tls, insecure_development=config.insecure_development
    )
    return Peers(hub, hub, registry, [hub.close, registry.close])


def create_app(
    config: PortalConfig,
    peers: Peers | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> web.Application:
    """The portal's aiohttp application (``peers``: the real gRPC clients unless given)."""
    store = PortalStore(db.create_engine(config.database_url, schema=config.database_schema))
    try:
        sealing_key = load_sealing_key(config, store.engine)
        holds = HoldStore(store.engine)
    except BaseException:
        store.engine.dispose()
        raise
    peers = peers or grpc_peers(config)
    sessions = Sessions(store, timedelta(minutes=config.session_minutes), clock=clock)
    signin = SignIn(
        audience=config.agency_id,
        trust=CardTrust(config.card_ca_cert, config.card_crl),
        store=store,
        sessions=sessions,
        registry=peers.registry,
        hub=peers.link_codes,
        challenge_lifetime=timedelta(seconds=config.challenge_seconds),
        clock=clock,
    )
    app = web.Application(
        middlewares=[security_headers, sessions_and_csrf], client_max_size=MAX_BODY
    )
    app[CONFIG] = config
    app[SESSIONS] = sessions
    app[SIGNIN] = signin
    app[RATE] = TokenBuckets(config.rate_limits)
    app[SIGNIN_TEMPLATES] = templates()
    app[PERSONAL_LOG] = peers.personal_log
    app[APPLICATIONS] = SqlApplications(store.engine)
    app[pages.SEALING_KEY] = sealing_key
    app[pages.FONT_PATH] = config.font
    app[HOLDS] = holds
    verifier = _verifier(config)
    if verifier is not None:
        app[VERIFIER] = verifier
    add_routes(app)
    pages.routes(app)

    async def close(_: web.Application) -> None:
        for closer in peers.closers:
            await closer()
        store.engine.dispose()

    app.on_cleanup.append(close)
    app.cleanup_ctx.append(_expiring(store, clock))
    app.cleanup_ctx.append(_purging(config, store.engine, holds, clock))
    return app


def _purging(
    config: PortalConfig, engine: Engine, holds: HoldStore, clock: Callable[[], datetime]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The retention job of ``[retention] every_seconds`` (none when 0), cancelled at cleanup."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        stopping = threading.Event()  # a run in its thread ends between two batches
        task = retention.schedule(
            config.retention,
            lambda: portal_retention.purge_applications(
                engine, holds, config.retention, now=clock(), stop=stopping.is_set
            ),
        )
        yield
        stopping.set()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run


def _expiring(
    store: PortalStore, clock: Callable[[], datetime]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A background task deleting expired sessions and challenges every ``EXPIRE_EVERY``."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(EXPIRE_EVERY)
                try:
                    await asyncio.to_thread(store.expire, clock())
                except sa.exc.SQLAlchemyError:
                    log.exception("expiring sessions failed; trying again later")

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


def _port(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # the portal faces the internet


@dataclass
class PortalServer:
    config: PortalConfig
    runner: web.AppRunner
    port: int
    # The internal gRPC port ([portal] internal_listen; None: off).
    internal: ServerHandle | None = None

    @property
    def internal_port(self) -> int | None:
        return None if self.internal is None else self.internal.port

    async def stop(self, grace: float | None = None) -> None:
        """The internal port first (its calls use the store the web side closes), giving its
        calls in flight ``grace`` (default ``shutdown_grace_seconds``), then the web server
        (its requests get ``shutdown_grace_seconds``, the runner's shutdown timeout)."""
        grace = self.config.shutdown_grace_seconds if grace is None else grace
        if self.internal is not None:
            await self.internal.stop(grace)
        await self.runner.cleanup()


async def start_internal(config: PortalConfig, holds: HoldStore) -> ServerHandle | None:
    """The oversight body's port: LegalHoldService (only its certificate admitted, by the
    servicer), health and reflection, mutual TLS with the portal's ``[tls]`` files."""
    if config.internal_listen is None:
        return None

    def register(server: grpc.aio.Server) -> None:
        legal_hold_service.add_to_server(server, holds)

    return await start_server(
        name="portal-internal",
        bind=config.internal_listen,
        tls=config.tls,
        register=register,
        services=[legal_hold_service.SERVICE_NAME],
        insecure_development=config.insecure_development,
    )


async def start(
    config: PortalConfig,
    peers: Peers | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> PortalServer:
    """Serves the portal over HTTPS on ``config.listen`` (port 0: any free port)."""
    app = create_app(config, peers, clock=clock)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.shutdown_grace_seconds)
    await runner.setup()
    host, port = _port(config.listen)
    site = web.TCPSite(runner, host, port, ssl_context=web_ssl_context(config))
    internal: ServerHandle | None = None
    try:
        await site.start()
        internal = await start_internal(config, app[HOLDS])
    except BaseException:
        await runner.cleanup()
        raise
    return PortalServer(config, runner, int(runner.addresses[0][1]), internal)


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = PortalConfig.load(config_path)
    await serve_until_signalled(lambda: start(config), port_file)
