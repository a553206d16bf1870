"""Wiring the hub: every dependency is built here, once, from the config."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from aiohttp import web

from hub_server import keys
from hub_server import retention as hub_retention
from hub_server.checkpoints import Checkpointer, NamedWitness
from hub_server.config import HubConfig
from hub_server.deferral import DeferralDesk
from hub_server.details import DetailsDesk
from hub_server.directory import Directory
from hub_server.id_issuer_client import GrpcIdIssuer
from hub_server.linkage import Hub
from hub_server.log_servicer import LogServicer
from hub_server.log_store import AsyncHubLog, SqlHubLog
from hub_server.log_tree import TreeReader
from hub_server.personal import PersonalLog, registry_names
from hub_server.personal_servicer import PersonalLogServicer
from hub_server.personal_store import SqlPersonalStore, SqlProofs
from hub_server.policy_versions import PolicySet, fingerprint, load_policy
from hub_server.provider_gateway import GrpcProviderGateway
from hub_server.rekey_store import RekeyCompletions
from hub_server.servicer import HubServicer
from hub_server.tiles_server import start_tiles_server
from renkei import codes, db, id_code_signing, legal_hold_service, retention
from renkei.config_util import ConfigError
from renkei.errors import RenkeiError
from renkei.grpcutil.server import ServerHandle, require_tls, start_server
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc, personal_pb2, personal_pb2_grpc
from renkei.keystore import KeyStore, load_master_key
from renkei.log.v1 import log_pb2, log_pb2_grpc
from renkei.logs import event
from renkei.pki import party_host
from renkei.retention import HoldStore
from renkei.runner import serve_until_signalled
from renkei.tlog import checkpoint
from renkei.tlog.witness_client import WitnessClient

_log = logging.getLogger("hub_server")
SERVICE_NAME = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name
# The witness's party name: its certificate's DNS name is this party's (renkei.pki.party_host).
WITNESS_PARTY = "service:witness"
LOG_SERVICE_NAME = log_pb2.DESCRIPTOR.services_by_name["LogService"].full_name
PERSONAL_SERVICE_NAME = personal_pb2.DESCRIPTOR.services_by_name["PersonalLogService"].full_name


class StoreKeyAdmin:
    """The hub's key store, used off the event loop."""

    def __init__(
        self, store: KeyStore, completions: RekeyCompletions, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self._completions = completions
        self._clock = clock

    async def record_completion(self, agency_id: str, id_key_version: int) -> set[str]:
        def record() -> set[str]:
            self._completions.record(agency_id, id_key_version, self._clock())
            return self._completions.agencies_done(id_key_version)

        return await asyncio.to_thread(record)

    async def make_current(self, agency_id: str, version: int) -> datetime | None:
        return await asyncio.to_thread(
            self.store.make_current, keys.LINK_PREFIX + agency_id, version, now=self._clock()
        )

    async def codec(self) -> codes.LinkCodec:
        keyring = await asyncio.to_thread(keys.link_keyring, self.store)
        return codes.LinkCodec(keyring, self._clock)

    async def generation(self) -> int:
        return await asyncio.to_thread(self.store.generation)


@dataclass
class HubServer:
    config: HubConfig
    hub: Hub
    handle: ServerHandle
    log: AsyncHubLog
    gateway: GrpcProviderGateway
    key_admin: StoreKeyAdmin
    refresher: asyncio.Task[None]
    id_issuer: GrpcIdIssuer | None
    # The verifiable log's checkpoints (None with the tree off).
    checkpointer: Checkpointer | None = None
    checkpointing: asyncio.Task[None] | None = None
    # tlog-tiles over HTTPS ([log] http_listen), and the port it bound.
    tiles: web.AppRunner | None = None
    tiles_port: int | None = None
    # The retention job ([retention] every_seconds; None: off).
    retention: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        self.refresher.cancel()
        if self.retention is not None:
            self.retention.cancel()
        if self.checkpointing is not None:
            self.checkpointing.cancel()
        if self.tiles is not None:
            await self.tiles.cleanup()
        if self.checkpointer is not None:
            await self.checkpointer.close()
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        await self.gateway.close()
        if self.id_issuer is not None:
            await self.id_issuer.close()
        self.log.close()


async def reload_policy(hub: Hub, path: Path) -> bool:
    """Load the policy folder again; on any fault keep the versions in force."""
    try:
        policy = await asyncio.to_thread(load_policy, path)
    except (ValueError, OSError) as err:
        event(_log, "policy refused; the versions in force stay", logging.ERROR, error=str(err))
        return False
    hub.policy = policy  # one assignment: a request in flight keeps the set it started with
    event(_log, "policy loaded", versions=[v.table.version for v in policy.versions])
    return True


async def watch(hub: Hub, admin: StoreKeyAdmin, every: float, policy_path: Path) -> None:
    """Pick up what operators change while the hub runs: keys, ID-key state, policy."""
    seen = await admin.generation()
    policy_seen = fingerprint(policy_path)
    while True:
        await asyncio.sleep(every)
        try:
            now = await admin.generation()
            if now != seen:
                hub.codec, seen = await admin.codec(), now
                event(_log, "reloaded keys", generation=now)
            current = fingerprint(policy_path)
            if current != policy_seen:
                policy_seen = current
                await reload_policy(hub, policy_path)
            await hub.refresh_id_state()
        except RenkeiError as err:
            event(_log, "ID issuer not reachable", logging.WARNING, reason=err.reason)
        except Exception:
            _log.exception("refresh failed; keeping what is in memory")


def _policy_at_start(path: Path) -> PolicySet:
    """The policy in force at start; a broken one stops the hub before any store is opened.

    A ConfigError, so ``renkei hub serve`` says it in one line. A version that
    breaks later is refused by ``reload_policy`` and the hub keeps the one it has.
    """
    try:
        return load_policy(path)
    except (ValueError, OSError) as err:
        problem = str(err)
        raise ConfigError(
            problem if problem.startswith(str(path)) else f"{path}: {problem}"
        ) from None


async def create_server(config: HubConfig) -> HubServer:
    require_tls("hub", config.tls, config.insecure_development)
    policy = _policy_at_start(config.policy_path)
    if config.id_issuer_signing_public_key is None:
        raise ConfigError(
            "[hub] id_issuer_signing_public_key: missing; the hub takes only ID codes the ID"
            " issuer signed (renkei deploy init writes it)"
        )
    issuer_key = id_code_signing.load_public_key_b64(config.id_issuer_signing_public_key)
    directory = Directory.load(config.directory_path)
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    store = KeyStore(engine, load_master_key(config.master_key))
    keys.provision(store, [a.agency_id for a in directory])
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731  # one shared clock
    key_admin = StoreKeyAdmin(store, RekeyCompletions(engine), clock)
    id_issuer = (
        GrpcIdIssuer(
            config.id_issuer_endpoint,
            config.tls,
            insecure_development=config.insecure_development,
        )
        if config.id_issuer_endpoint
        else None
    )
    repo = SqlHubLog(engine)
    interrupted = repo.mark_interrupted()
    if interrupted:
        event(_log, "closed log rows left pending by a previous run", rows=interrupted)
    log = AsyncHubLog(repo)
    checkpointer = None
    reader = TreeReader(engine)  # the record as the checkpointer and both servers read it
    tree_writer = repo.tree
    if tree_writer is not None:
        signer = keys.checkpoint_signer(store, config.log.origin)
        checkpointer = Checkpointer(
            lambda: tree_writer.head,
            reader,
            checkpoint.CheckpointSigner(signer),
            signer.verifier(),
            witnesses_of(config),
            # Its own thread: signing and witnessing never wait behind the log's writes.
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-checkpoints"),
            config.log.checkpoint_interval_seconds,
        )
    gateway = GrpcProviderGateway(
        config.tls,
        insecure_development=config.insecure_development,
        streams=config.provider_streams,
    )
    hub = Hub(
        directory=directory,
        policy=policy,
        codec=await key_admin.codec(),
        log=log,
        gateway=gateway,
        key_admin=key_admin,
        id_issuer=id_issuer,
        log_index_key=keys.log_index_key(store),
        sealing_key=keys.sealing_key(store),
        id_issuer_key=issuer_key,
        clock=clock,
        relay_ceiling=config.relay_ceiling_seconds,
        bulk_relay_ceiling=config.bulk_relay_ceiling_seconds,
        log_margin=config.log_margin_seconds,
    )
    personal_store = SqlPersonalStore(engine)
    servicer = HubServicer(hub, DeferralDesk(personal_store, clock))
    services = [SERVICE_NAME, PERSONAL_SERVICE_NAME]
    # The portal's view (issue 15): with the tree off, its listing is refused (LOG_TREE_OFF).
    personal = PersonalLog(
        hub,
        personal_store,
        SqlProofs(reader) if tree_writer is not None else None,
        portal_id=config.portal.agency_id,
        clock=clock,
        names=registry_names(),
    )
    personal_servicer = PersonalLogServicer(
        personal,
        DetailsDesk(
            personal,
            log,
            gateway,
            ceiling=config.relay_ceiling_seconds,
            log_margin=config.log_margin_seconds,
        ),
    )
    holds = HoldStore(engine, persons=True)
    services.append(legal_hold_service.SERVICE_NAME)
    log_servicer: LogServicer | None = None
    if checkpointer is not None and tree_writer is not None:
        # After mark_interrupted above: the rows it closed are in the first checkpoint.
        await checkpointer.start()
        log_servicer = LogServicer(reader, checkpointer, lambda: tree_writer.head[0])
        services.append(LOG_SERVICE_NAME)

    def register(server: grpc.aio.Server) -> None:
        hub_pb2_grpc.add_HubServiceServicer_to_server(servicer, server)
        personal_pb2_grpc.add_PersonalLogServiceServicer_to_server(personal_servicer, server)
        if log_servicer is not None:
            log_pb2_grpc.add_LogServiceServicer_to_server(log_servicer, server)
        legal_hold_service.add_to_server(server, holds)

    handle = await start_server(
        name="hub",
        bind=config.listen,
        tls=config.tls,
        register=register,
        services=services,
        insecure_development=config.insecure_development,
    )
    try:
        await hub.refresh_id_state()
    except RenkeiError as err:  # the ID issuer may start after the hub; the refresher retries
        event(_log, "ID issuer not reachable yet", reason=err.reason)
    refresher = asyncio.create_task(
        watch(hub, key_admin, config.key_refresh_seconds, config.policy_path)
    )
    checkpointing = asyncio.create_task(checkpointer.run()) if checkpointer is not None else None
    tiles, tiles_port = None, None
    if checkpointer is not None and config.log.http_listen is not None:
        tiles, tiles_port = await start_tiles_server(
            config.log.http_listen,
            config.tls,
            reader,
            checkpointer,
            config.log.entry_readers,
        )
        event(_log, "log served over HTTPS (tlog-tiles)", port=tiles_port)
    purging = retention.schedule(
        config.retention, lambda: [hub_retention.purge_on_writer(log, holds, config.retention)]
    )
    return HubServer(
        config,
        hub,
        handle,
        log,
        gateway,
        key_admin,
        refresher,
        id_issuer,
        checkpointer,
        checkpointing,
        tiles,
        tiles_port,
        purging,
    )


def witnesses_of(config: HubConfig) -> list[NamedWitness]:
    """A client per ``[[log.witness]]``, checking the witness's certificate against the roots."""
    out = []
    for w in config.log.witnesses:
        if w.url.startswith("https://") and config.tls is None:
            if not config.insecure_development:
                raise ConfigError(f"[log] witness {w.url}: an https witness needs the hub's [tls]")
            # A development port has no roots to check the witness by: it is not asked.
            event(_log, "witness not asked without [tls]", logging.WARNING, witness=w.url)
            continue
        tls = config.tls if w.url.startswith("https://") else None
        client = WitnessClient(
            w.url,
            roots=tls.ca_cert if tls is not None else None,  # the roots bundle
            server_name=party_host(WITNESS_PARTY),
        )
        out.append(NamedWitness(w.url, client, checkpoint.parse_cosignature_verifier_key(w.key)))
    return out


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = HubConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
