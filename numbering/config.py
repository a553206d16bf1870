"""The numbering agency's configuration: one TOML file, paths relative to it.

[numbering]
listen = "127.0.0.1:50070"
database_url = "sqlite:///{config_dir}/numbering.db"
registry_endpoint = "127.0.0.1:50073"   # the registry's ResidentDirectoryService
registry_timeout_seconds = 5.0          # optional: at most this long per question

The numbering agency holds no URL to the registry's store: a config with
``registry_database_url`` or ``registry_database_schema`` is refused.

[authorize]          # default for each group: ["service:registry"]; "hub" is refused
issue = ["service:registry"]
lookup = ["service:registry"]
change = ["service:registry"]

[tls]
ca_cert = "pki/ca.pem"
cert = "pki/services/numbering.pem"
key = "pki/services/numbering.key"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from numbering.authorization import Authorization
from renkei.config_util import (
    ConfigError,
    boolean,
    database_url,
    load_toml,
    number,
    optional_text,
    table,
    text,
    tls_files,
)
from renkei.pki import TlsFiles

# Keys of configs written before the registry had a directory service: they
# pointed the numbering agency at the registry's whole database (issue 13).
FORBIDDEN_KEYS = ("registry_database_url", "registry_database_schema")


@dataclass(frozen=True)
class NumberingConfig:
    listen: str
    database_url: str
    # The resident registry's ResidentDirectoryService (registry.toml ``listen``).
    registry_endpoint: str
    tls: TlsFiles | None
    authorize: Authorization = field(default_factory=Authorization)
    insecure_development: bool = False
    # PostgreSQL: the schema this party's tables live in (parties may share a database).
    database_schema: str | None = None
    # At most this long per CheckResidentCodes call (less if the caller's deadline is nearer).
    registry_timeout_seconds: float = 5.0
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def load(cls, path: Path) -> NumberingConfig:
        data = load_toml(path)
        base = path.parent
        numbering = table(data, "numbering", path)
        where = f"{path}: [numbering]"
        for key in FORBIDDEN_KEYS:
            if key in numbering:
                raise ConfigError(
                    f"{where} {key}: the numbering agency must not hold the registry's store; "
                    "name the registry's directory service as registry_endpoint instead"
                )
        return cls(
            listen=text(numbering, "listen", where, "127.0.0.1:50070"),
            database_url=database_url(numbering, where, base),
            registry_endpoint=text(numbering, "registry_endpoint", where),
            tls=tls_files(data, path),
            authorize=Authorization.from_table(
                table(data, "authorize", path), f"{path}: [authorize]"
            ),
            insecure_development=boolean(numbering, "insecure_development", where, False),
            database_schema=optional_text(numbering, "database_schema", where),
            registry_timeout_seconds=number(numbering, "registry_timeout_seconds", where, 5.0),
            shutdown_grace_seconds=number(
                numbering, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
            log_level=text(numbering, "log_level", where, "INFO"),
        )
