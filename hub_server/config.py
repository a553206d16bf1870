"""The hub's configuration: one TOML file, paths relative to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        )


def _issuer_key(hub: dict[str, Any], where: str) -> str | None:
    encoded = optional_text(hub, "id_issuer_signing_public_key", where)
    if encoded is not None:
        try:
            id_code_signing.load_public_key_b64(encoded)
        except ValueError as err:
            raise ConfigError(f"{where} id_issuer_signing_public_key: {err}") from None
    return encoded
