"""The numbering agency's configuration: one TOML file, paths relative to it.

[numbering]
listen = "127.0.0.1:50070"
database_url = "sqlite:///{config_dir}/numbering.db"
registry_database_url = "sqlite:///{config_dir}/../registry/registry.db"  # read-only

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


@dataclass(frozen=True)
class NumberingConfig:
    listen: str
    database_url: str
    # The resident registry's database, read only for its ``residents`` table.
    registry_database_url: str
    tls: TlsFiles | None
    authorize: Authorization = field(default_factory=Authorization)
    insecure_development: bool = False
    # PostgreSQL: the schema this party's tables live in (parties may share a database).
    database_schema: str | None = None
    # PostgreSQL: the schema the registry's ``residents`` table lives in.
    registry_database_schema: str | None = None
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def load(cls, path: Path) -> NumberingConfig:
        data = load_toml(path)
        base = path.parent
        numbering = table(data, "numbering", path)
        where = f"{path}: [numbering]"
        return cls(
            listen=text(numbering, "listen", where, "127.0.0.1:50070"),
            database_url=database_url(numbering, where, base),
            registry_database_url=text(numbering, "registry_database_url", where).replace(
                "{config_dir}", str(base)
            ),
            tls=tls_files(data, path),
            authorize=Authorization.from_table(
                table(data, "authorize", path), f"{path}: [authorize]"
            ),
            insecure_development=boolean(numbering, "insecure_development", where, False),
            database_schema=optional_text(numbering, "database_schema", where),
            registry_database_schema=optional_text(numbering, "registry_database_schema", where),
            shutdown_grace_seconds=number(
                numbering, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
            log_level=text(numbering, "log_level", where, "INFO"),
        )
