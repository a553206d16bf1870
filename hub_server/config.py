"""The hub's configuration: one TOML file, paths relative to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from renkei import deadline
from renkei.config_util import load_toml, master_key_spec, required, resolve, table, tls_files
from renkei.pki import TlsFiles


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

    @classmethod
    def load(cls, path: Path) -> HubConfig:
        data = load_toml(path)
        base = path.parent
        hub = table(data, "hub", path)
        where = f"{path}: [hub]"
        return cls(
            listen=str(hub.get("listen", "127.0.0.1:50051")),
            database_url=str(required(hub, "database_url", where)).replace(
                "{config_dir}", str(base)
            ),
            directory_path=resolve(base, str(required(hub, "directory", where))),
            policy_path=resolve(base, str(required(hub, "policy", where))),
            master_key=master_key_spec(str(required(hub, "master_key", where)), base),
            tls=tls_files(data, path),
            insecure_development=bool(hub.get("insecure_development", False)),
            database_schema=hub.get("database_schema"),
            relay_ceiling_seconds=float(hub.get("relay_ceiling_seconds", 10.0)),
            bulk_relay_ceiling_seconds=float(hub.get("bulk_relay_ceiling_seconds", 60.0)),
            log_margin_seconds=float(
                hub.get("log_margin_seconds", deadline.HUB_LOG_MARGIN_SECONDS)
            ),
            shutdown_grace_seconds=float(hub.get("shutdown_grace_seconds", 5.0)),
            log_level=str(hub.get("log_level", "INFO")),
            key_refresh_seconds=float(hub.get("key_refresh_seconds", 5.0)),
            id_issuer_endpoint=hub.get("id_issuer_endpoint"),
            provider_streams=bool(hub.get("provider_streams", True)),
        )
