"""The hub's configuration: one TOML file, paths relative to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub_server.directory import AGENCY_ID_RE
from renkei import deadline, id_code_signing
from renkei.config_util import (
    ConfigError,
    boolean,
    database_url,
    load_toml,
    master_key_spec,
    number,
    optional_text,
    path,
    table,
    text,
    tls_files,
)
from renkei.pki import TlsFiles
from renkei.retention import RetentionPolicy, retention_policy
from renkei.tlog import checkpoint, note

# The log's name: its checkpoints' origin line and its key's name.
DEFAULT_ORIGIN = "log.hub.renkei.internal"
# The portal's agency id unless [portal] agency_id says otherwise.
DEFAULT_PORTAL = "portal"


@dataclass(frozen=True)
class HubConfig:
    listen: str
    database_url: str
    directory_path: Path
    policy_path: Path
    # Where the master key comes from: file:PATH, env:NAME or pkcs11:... (renkei.keystore).
    master_key: str
    tls: TlsFiles | None
    insecure_development: bool = False
    # PostgreSQL: the schema this party's tables live in (parties may share a database).
    database_schema: str | None = None
    # Upper bound for one relay when the caller sets no deadline.
    relay_ceiling_seconds: float = 10.0
    # The same for one bulk relay (up to 5,000 persons).
    bulk_relay_ceiling_seconds: float = 60.0
    # Seconds kept back from the caller's deadline to write the log row (renkei.deadline).
    log_margin_seconds: float = deadline.HUB_LOG_MARGIN_SECONDS
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"
    # How often a running hub looks for key changes (a rotation, a completed re-key).
    key_refresh_seconds: float = 5.0
    # The ID issuer, needed only while agencies re-key after an ID-key rotation.
    id_issuer_endpoint: str | None = None
    # Provide over one ProvideStream per provider (false: one unary call per exchange).
    provider_streams: bool = True
    # Base64 of the ID issuer's Ed25519 public key: sealed ID codes must carry its
    # signature (renkei.id_code_signing). Without it the hub mints no link code.
    id_issuer_signing_public_key: str | None = None
    # The verifiable log ([log]): its origin line (and checkpoint key name), the
    # longest a durable entry waits for a signed checkpoint, and the witnesses.
    log: LogConfig = field(default_factory=lambda: LogConfig())
    # The portal ([portal]): the one agency PersonalLogService answers (issue 15).
    portal: PortalConfig = field(default_factory=lambda: PortalConfig())
    # [retention]: how long the log is kept, the purge's batches, its scheduled job (R25).
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)

    @classmethod
    def load(cls, config_path: Path) -> HubConfig:
        data = load_toml(config_path)
        base = config_path.parent
        hub = table(data, "hub", config_path)
        where = f"{config_path}: [hub]"
        return cls(
            listen=text(hub, "listen", where, "127.0.0.1:50051"),
            database_url=database_url(hub, where, base),
            directory_path=path(hub, "directory", where, base),
            policy_path=path(hub, "policy", where, base),
            master_key=master_key_spec(text(hub, "master_key", where), base),
            tls=tls_files(data, config_path),
            insecure_development=boolean(hub, "insecure_development", where, False),
            database_schema=optional_text(hub, "database_schema", where),
            relay_ceiling_seconds=number(hub, "relay_ceiling_seconds", where, 10.0),
            bulk_relay_ceiling_seconds=number(hub, "bulk_relay_ceiling_seconds", where, 60.0),
            log_margin_seconds=number(
                hub, "log_margin_seconds", where, deadline.HUB_LOG_MARGIN_SECONDS, positive=False
            ),
            shutdown_grace_seconds=number(
                hub, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
            log_level=text(hub, "log_level", where, "INFO"),
            key_refresh_seconds=number(hub, "key_refresh_seconds", where, 5.0),
            id_issuer_endpoint=optional_text(hub, "id_issuer_endpoint", where),
            provider_streams=boolean(hub, "provider_streams", where, True),
            id_issuer_signing_public_key=_issuer_key(hub, where),
            log=LogConfig.load(data, config_path),
            portal=PortalConfig.load(data, config_path),
            retention=retention_policy(data, config_path),
        )


@dataclass(frozen=True)
class PortalConfig:
    # The agency id the portal's certificate names; it is a directory agency like any other.
    agency_id: str = DEFAULT_PORTAL

    @classmethod
    def load(cls, data: dict[str, Any], config_path: Path) -> PortalConfig:
        raw = table(data, "portal", config_path)
        where = f"{config_path}: [portal]"
        agency_id = text(raw, "agency_id", where, DEFAULT_PORTAL)
        if not AGENCY_ID_RE.match(agency_id):
            raise ConfigError(f"{where} agency_id: must be 1-64 letters, digits, '.', '_' or '-'")
        return cls(agency_id=agency_id)


@dataclass(frozen=True)
class WitnessEndpoint:
    url: str
    # Its cosignature verifier key (vkey): a cosignature that does not verify is not kept.
    key: str


@dataclass(frozen=True)
class LogConfig:
    # Off: rows only, no entries, tree or checkpoints (benchmarks compare the two).
    tree: bool = True
    origin: str = DEFAULT_ORIGIN
    checkpoint_interval_seconds: float = 0.5
    witnesses: tuple[WitnessEndpoint, ...] = ()
    # tlog-tiles over HTTPS (host:port), off when unset.
    http_listen: str | None = None
    # Parties (URIs of their certificates) that may read entry bundles over HTTP.
    entry_readers: tuple[str, ...] = ("urn:renkei:oversight",)

    @classmethod
    def load(cls, data: dict[str, Any], config_path: Path) -> LogConfig:
        raw = data.get("log", {})
        where = f"{config_path}: [log]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: not a table")
        witnesses = raw.get("witness", [])
        if not isinstance(witnesses, list) or not all(isinstance(w, dict) for w in witnesses):
            raise ConfigError(f"{where} witness: an array of tables ([[log.witness]])")
        origin = text(raw, "origin", where, DEFAULT_ORIGIN)
        if not note.valid_name(origin):
            raise ConfigError(f"{where} origin: {origin!r} is not a valid note key name")
        readers = raw.get("entry_readers", list(cls.entry_readers))
        if not isinstance(readers, list) or not all(isinstance(r, str) for r in readers):
            raise ConfigError(f"{where} entry_readers: a list of party URIs")
        return cls(
            tree=boolean(raw, "tree", where, True),
            origin=origin,
            checkpoint_interval_seconds=number(raw, "checkpoint_interval_seconds", where, 0.5),
            witnesses=tuple(
                WitnessEndpoint(
                    text(w, "url", f"{where} witness[{i}]"),
                    _witness_key(text(w, "key", f"{where} witness[{i}]"), f"{where} witness[{i}]"),
                )
                for i, w in enumerate(witnesses)
            ),
            http_listen=optional_text(raw, "http_listen", where),
            entry_readers=tuple(readers),
        )


def _witness_key(vkey: str, where: str) -> str:
    try:
        checkpoint.parse_cosignature_verifier_key(vkey)
    except ValueError as err:
        raise ConfigError(f"{where} key: {err}") from None
    return vkey


def _issuer_key(hub: dict[str, Any], where: str) -> str | None:
    encoded = optional_text(hub, "id_issuer_signing_public_key", where)
    if encoded is not None:
        try:
            id_code_signing.load_public_key_b64(encoded)
        except ValueError as err:
            raise ConfigError(f"{where} id_issuer_signing_public_key: {err}") from None
    return encoded
