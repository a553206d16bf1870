"""A communication server's configuration: one TOML file per agency, paths relative to it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from renkei.config_util import (
    ConfigError,
    boolean,
    database_url,
    integer,
    load_toml,
    master_key_spec,
    number,
    optional_path,
    optional_text,
    path,
    table,
    text,
    text_list,
    tls_files,
)
from renkei.pki import TlsFiles, validate_agency_id
from renkei.retention import RetentionPolicy, retention_policy
from renkei.tlog import checkpoint, note

LEGACY_KINDS = ("jsonl", "fixed_tax", "soap", "csv_dropbox", "json_http")
# The built-in mapper for each kind of legacy system (docs/legacy-formats.md).
DEFAULT_FORMATS = {
    "fixed_tax": "fixed_tax",
    "soap": "soap_pension",
    "csv_dropbox": "csv_insurer",
    "json_http": "json_http",
}


@dataclass(frozen=True)
class LegacyConfig:
    """Where the legacy system is and how it is spoken to (docs/legacy-formats.md).

    ``kind``: "jsonl" (JSON lines over TCP) and "fixed_tax" (fixed-width cp932
    over TCP) use ``host``/``port``; "soap" (the SOAP endpoint) and "json_http"
    (the API's base) use ``url``; "csv_dropbox" uses ``folder`` (with ``inbox/``
    and ``outbox/``) polled every ``poll_interval_seconds``.

    ``format``: the mapper (``renkei.mappers`` entry point) that reads and writes
    the system's records, loaded once at start; required for every kind but
    "jsonl", whose JSON answers travel as they are when it has none.
    """

    kind: str
    host: str = "127.0.0.1"
    port: int = 0
    url: str = ""
    folder: Path | None = None
    poll_interval_seconds: float = 0.2
    format: str = ""

    @classmethod
    def from_table(cls, legacy: dict[str, Any], path: Path) -> LegacyConfig:
        where = f"{path}: [legacy]"
        kind = text(legacy, "kind", where, "jsonl")
        if kind not in LEGACY_KINDS:
            known = ", ".join(repr(k) for k in LEGACY_KINDS)
            raise ConfigError(f"{path}: [legacy] kind {kind!r} is unknown; known: {known}")
        transport = cls._transport(kind, legacy, path, where)
        fmt = text(legacy, "format", where, "")
        if kind != "jsonl" and not fmt:
            raise ConfigError(
                f"{where} format: the mapper's format name (e.g. {DEFAULT_FORMATS.get(kind)!r})"
                f" is required for kind {kind!r}"
            )
        return replace(transport, format=fmt)

    @classmethod
    def _transport(
        cls, kind: str, legacy: dict[str, Any], config_path: Path, where: str
    ) -> LegacyConfig:
        if kind in ("jsonl", "fixed_tax"):
            port = integer(legacy, "port", where, minimum=1, maximum=65535)
            return cls(kind, host=text(legacy, "host", where, "127.0.0.1"), port=port)
        if kind in ("soap", "json_http"):
            url = text(legacy, "url", where)
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{where} url: must start with http:// or https://")
            return cls(kind, url=url)
        folder = path(legacy, "folder", where, config_path.parent)
        interval = number(legacy, "poll_interval_seconds", where, 0.2)
        return cls(kind, folder=folder, poll_interval_seconds=interval)


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: checking this agency's share of the hub's log (comm_server.log_verify).

    ``hub_key``: the hub's checkpoint verifier key (a note vkey); ``witness_keys``:
    the witnesses' cosignature vkeys, at least one unless ``require_witness`` is
    false; ``origin``: the checkpoint's origin line, by default the hub key's
    name; ``verify_every_seconds``: how often ``renkei comm serve`` runs the job
    (0: only on demand, ``renkei comm log verify``).
    """

    hub_key: str
    witness_keys: tuple[str, ...] = ()
    require_witness: bool = True
    origin: str | None = None
    verify_every_seconds: float = 60.0

    @classmethod
    def from_table(cls, log: dict[str, Any], path: Path) -> LogConfig:
        where = f"{path}: [log]"
        hub_key = text(log, "hub_key", where)
        try:
            note.parse_verifier_key(hub_key)
        except note.NoteError as err:
            raise ConfigError(f"{where} hub_key: {err}") from None
        witnesses = text_list(log, "witness_keys", where)
        for i, w in enumerate(witnesses):
            try:
                checkpoint.parse_cosignature_verifier_key(w)
            except note.NoteError as err:
                raise ConfigError(f"{where} witness_keys[{i}]: {err}") from None
        require = boolean(log, "require_witness", where, True)
        if require and not witnesses:
            raise ConfigError(
                f"{where} witness_keys: at least one witness key is required"
                " (or require_witness = false, trusting the hub's signature alone)"
            )
        return cls(
            hub_key=hub_key,
            witness_keys=witnesses,
            require_witness=require,
            origin=optional_text(log, "origin", where),
            verify_every_seconds=number(log, "verify_every_seconds", where, 60.0, positive=False),
        )


@dataclass(frozen=True)
class CommConfig:
    agency_id: str
    listen: str
    hub_endpoint: str
    database_url: str
    # Where the master key comes from: file:PATH, env:NAME or pkcs11:... (renkei.keystore).
    master_key: str
    legacy: LegacyConfig
    tls: TlsFiles | None
    insecure_development: bool = False
    # PostgreSQL: the schema this party's tables live in (parties may share a database).
    database_schema: str | None = None
    # Provider side: the legacy system must answer within this (R28).
    answer_timeout_seconds: float = 2.0
    # Requester side: a whole linkage, hub and provider included.
    query_timeout_seconds: float = 5.0
    # The same two for a bulk query (up to 5,000 persons, looked up concurrently).
    bulk_answer_timeout_seconds: float = 30.0
    bulk_query_timeout_seconds: float = 60.0
    # Who answers as provider (R23 (8), (10)): the automated responder and this server.
    responder_staff_id: str = "auto-responder"
    responder_terminal_id: str = ""
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"
    # The resident registry's binding service, for binding records by the four facts.
    registry_endpoint: str | None = None
    # R19: who may query, for which affairs, from which terminals (comm_server.staff_register);
    # re-read while running every staff_register_refresh_seconds. None: no one may query.
    staff_register: Path | None = None
    staff_register_refresh_seconds: float = 2.0
    # The CA of agencies ([tls] exchange_ca, else the agencies CA of the [tls] ca_cert
    # bundle, never the hub's or the services'): the trust anchor of
    # peers' exchange certificates, checked before sealing to a peer (renkei.exchange_cert).
    exchange_ca: Path | None = None
    # [log]: the check of this agency's share of the hub's log; None: not configured.
    log: LogConfig | None = None
    # [retention]: how long the share of the log is kept, the purge's batches (R25).
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)

    @classmethod
    def load(cls, path: Path) -> CommConfig:
        data = load_toml(path)
        base = path.parent
        comm = table(data, "comm", path)
        legacy = table(data, "legacy", path)
        where = f"{path}: [comm]"
        agency_id = text(comm, "agency_id", where)
        try:
            validate_agency_id(agency_id)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
        tls = tls_files(data, path)
        tls_table = table(data, "tls", path)
        exchange_ca = optional_path(tls_table, "exchange_ca", f"{path}: [tls]", base)
        return cls(
            agency_id=agency_id,
            exchange_ca=exchange_ca or (tls.ca_cert if tls else None),
            listen=text(comm, "listen", where, "127.0.0.1:0"),
            hub_endpoint=text(comm, "hub_endpoint", where),
            database_url=database_url(comm, where, base),
            master_key=master_key_spec(text(comm, "master_key", where), base),
            legacy=LegacyConfig.from_table(legacy, path),
            tls=tls,
            insecure_development=boolean(comm, "insecure_development", where, False),
            database_schema=optional_text(comm, "database_schema", where),
            answer_timeout_seconds=number(comm, "answer_timeout_seconds", where, 2.0),
            query_timeout_seconds=number(comm, "query_timeout_seconds", where, 5.0),
            bulk_answer_timeout_seconds=number(comm, "bulk_answer_timeout_seconds", where, 30.0),
            bulk_query_timeout_seconds=number(comm, "bulk_query_timeout_seconds", where, 60.0),
            responder_staff_id=text(comm, "responder_staff_id", where, "auto-responder"),
            responder_terminal_id=text(comm, "responder_terminal_id", where, f"comm-{agency_id}"),
            shutdown_grace_seconds=number(
                comm, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
            log_level=text(comm, "log_level", where, "INFO"),
            registry_endpoint=optional_text(comm, "registry_endpoint", where),
            staff_register=optional_path(comm, "staff_register", where, base),
            staff_register_refresh_seconds=number(
                comm, "staff_register_refresh_seconds", where, 2.0
            ),
            log=LogConfig.from_table(table(data, "log", path), path) if "log" in data else None,
            retention=retention_policy(data, path),
        )
