"""The ID issuer's configuration: ``issuer.toml``, paths relative to it."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from renkei.config_util import (
    ConfigError,
    load_toml,
    master_key_spec,
    required,
    table,
    tls_files,
)
from renkei.pki import TlsFiles


@dataclass(frozen=True)
class IdIssuerConfig:
    listen: str
    database_url: str
    master_key: str
    hub_sealing_public_key: bytes
    tls: TlsFiles | None
    # Parties that may have ID codes sealed for agencies ("service:registry", ...).
    may_seal: frozenset[str]
    insecure_development: bool = False
    database_schema: str | None = None
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def load(cls, path: Path) -> IdIssuerConfig:
        data = load_toml(path)
        base = path.parent
        section = table(data, "id_issuer", path)
        authorize = table(data, "authorize", path)
        where = f"{path}: [id_issuer]"
        try:
            hub_key = base64.b64decode(
                str(required(section, "hub_sealing_public_key", where)), validate=True
            )
        except ValueError:
            raise ConfigError(f"{where}: hub_sealing_public_key is not base64") from None
        return cls(
            listen=str(section.get("listen", "127.0.0.1:0")),
            database_url=str(required(section, "database_url", where)).replace(
                "{config_dir}", str(base)
            ),
            master_key=master_key_spec(str(required(section, "master_key", where)), base),
            hub_sealing_public_key=hub_key,
            tls=tls_files(data, path),
            may_seal=frozenset(str(p) for p in authorize.get("seal", [])),
            insecure_development=bool(section.get("insecure_development", False)),
            database_schema=section.get("database_schema"),
            shutdown_grace_seconds=float(section.get("shutdown_grace_seconds", 5.0)),
            log_level=str(section.get("log_level", "INFO")),
        )
