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
from renkei.config_util import load_toml, required, table, tls_files
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
            listen=str(numbering.get("listen", "127.0.0.1:50070")),
            database_url=str(required(numbering, "database_url", where)).replace(
                "{config_dir}", str(base)
            ),
            registry_database_url=str(required(numbering, "registry_database_url", where)).replace(
                "{config_dir}", str(base)
            ),
            tls=tls_files(data, path),
            authorize=Authorization.from_table(
                table(data, "authorize", path), f"{path}: [authorize]"
            ),
            insecure_development=bool(numbering.get("insecure_development", False)),
            database_schema=numbering.get("database_schema"),
            registry_database_schema=numbering.get("registry_database_schema"),
            shutdown_grace_seconds=float(numbering.get("shutdown_grace_seconds", 5.0)),
            log_level=str(numbering.get("log_level", "INFO")),
        )
