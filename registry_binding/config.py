"""The binding party's configuration: ``registry/registry.toml``, paths relative to it.

::

    [registry]
    database_url = "sqlite:///{config_dir}/registry.db"   # the register (the mock's own)
    listen = "127.0.0.1:0"                                 # optional
    id_issuer_endpoint = "127.0.0.1:50061"                 # optional here, needed to serve
    private_bodies = ["example-bank"]                      # optional: agencies designated
                                                           # as private bodies (R20)
    [binding]                                              # optional: this party's own store
    database_url = "sqlite:///{config_dir}/registry_binding.db"
    # database_schema = "registry_binding"                 # PostgreSQL

    [resident_source]                                      # optional: where residents come from
    kind = "juki_mock"                                     # a renkei.resident_sources entry point
    # every other key is handed to the source's factory; by default the
    # [registry] database_url and database_schema

    [authorize]                                            # optional: who may ask which
    directory = ["service:numbering"]                      # resident codes exist (the
                                                           # default; never "hub")
    [tls]                                                  # the party's service certificate
    ca_cert = "..."; cert = "..."; key = "..."

The deployment writes this file (``renkei deploy init``) and finds the
register by its ``[registry]`` section too. Configs written before the binding
party had its own store keep working: without ``[binding]`` the store is
``registry_binding.db`` beside the file (SQLite) or, on PostgreSQL, the
register's database in the schema ``<register schema>_binding``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_binding.directory import DEFAULT_DIRECTORY_CALLERS, directory_callers
from renkei.config_util import (
    ConfigError,
    boolean,
    database_url,
    load_toml,
    number,
    optional_text,
    table,
    text,
    text_list,
    tls_files,
)
from renkei.pki import TlsFiles, validate_agency_id
from renkei.retention import RetentionPolicy, retention_policy

DEFAULT_SOURCE = "juki_mock"


@dataclass(frozen=True)
class RegistryBindingConfig:
    # The binding party's own store.
    database_url: str
    id_issuer_endpoint: str | None = None
    listen: str = "127.0.0.1:0"
    tls: TlsFiles | None = None
    # PostgreSQL: the schema of this party's tables.
    database_schema: str | None = None
    insecure_development: bool = False
    shutdown_grace_seconds: float = 5.0
    # Agencies designated as private bodies: they bind only with consent (R20).
    private_bodies: tuple[str, ...] = ()
    # The renkei.resident_sources entry point and the options handed to it.
    resident_source: str = DEFAULT_SOURCE
    resident_source_options: Mapping[str, Any] = field(default_factory=dict)
    # Who may call ResidentDirectoryService (by default only the numbering agency).
    directory_callers: frozenset[str] = DEFAULT_DIRECTORY_CALLERS
    # [retention]: how long the consent log is kept, the purge's batches (R25).
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)

    @classmethod
    def load(cls, path: Path) -> RegistryBindingConfig:
        data = load_toml(path)
        config_dir = str(path.parent)
        section = table(data, "registry", path)
        where = f"{path}: [registry]"
        register_url = database_url(section, where, path.parent)
        register_schema = optional_text(section, "database_schema", where)
        endpoint = optional_text(section, "id_issuer_endpoint", where)

        own = table(data, "binding", path)
        if "database_url" in own:
            url = database_url(own, f"{path}: [binding]", path.parent)
            schema = optional_text(own, "database_schema", f"{path}: [binding]")
        elif register_url.startswith("sqlite"):
            url, schema = f"sqlite:///{config_dir}/registry_binding.db", None
        else:  # the register's server, a schema of this party's own
            url = register_url
            schema = f"{register_schema}_binding" if register_schema else "registry_binding"

        source = dict(table(data, "resident_source", path))
        kind = text(source, "kind", f"{path}: [resident_source]", DEFAULT_SOURCE)
        source.pop("kind", None)
        options = {
            k: v.replace("{config_dir}", config_dir) if isinstance(v, str) else v
            for k, v in source.items()
        } or {
            "database_url": register_url,
            **({} if register_schema is None else {"database_schema": str(register_schema)}),
        }
        authorize = table(data, "authorize", path)
        unknown = sorted(set(authorize) - {"directory"})
        if unknown:
            raise ConfigError(
                f"{path}: [authorize]: unknown groups {unknown}; known: ['directory']"
            )
        callers = directory_callers(
            text_list(authorize, "directory", f"{path}: [authorize]")
            if "directory" in authorize
            else None,
            f"{path}: [authorize] directory",
        )
        return cls(
            database_url=url,
            id_issuer_endpoint=endpoint,
            listen=text(section, "listen", where, "127.0.0.1:0"),
            tls=tls_files(data, path),
            database_schema=schema,
            insecure_development=boolean(section, "insecure_development", where, False),
            shutdown_grace_seconds=number(
                section, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
            private_bodies=_private_bodies(text_list(section, "private_bodies", where), where),
            resident_source=kind,
            resident_source_options=options,
            directory_callers=callers,
            retention=retention_policy(data, path),
        )


def _private_bodies(value: tuple[str, ...], where: str) -> tuple[str, ...]:
    for agency_id in value:
        try:
            validate_agency_id(agency_id)
        except ValueError as err:
            raise ConfigError(f"{where}: private_bodies: {err}") from None
    return value
