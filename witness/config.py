"""The witness's configuration: ``witness.toml``, paths relative to it.

::

    [witness]
    listen = "127.0.0.1:8443"
    database_url = "sqlite:///{config_dir}/witness.db"   # its checkpoints and its key store
    master_key = "file:master.key"
    name = "witness.renkei.example"     # the cosigning key's name (its vkey's first part)
    log_level = "INFO"

    [[witness.log]]
    origin = "hub.renkei.example/log"
    key = "<the log's vkey>"

    [tls]
    ca_cert = "../pki/roots.pem"
    cert = "tls/cert.pem"
    key = "tls/key.pem"
    crls = [...]                        # checked only when client certificates are required

Optional in ``[witness]``: ``database_schema`` (PostgreSQL), ``require_client_cert``
(false: a client may present a certificate, need not), ``shutdown_grace_seconds``
(5), ``insecure_development`` (true: plain HTTP without ``[tls]``, never in production).
The cosigning key itself is in the key store, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renkei.config_util import (
    ConfigError,
    boolean,
    database_url,
    load_toml,
    master_key_spec,
    number,
    optional_text,
    table,
    text,
    tls_files,
)
from renkei.pki import TlsFiles
from renkei.tlog import note
from renkei.tlog.checkpoint import Checkpoint, CheckpointFormatError

# The store's primary key column holds the origin (witness.store).
MAX_ORIGIN_CHARS = 1000


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) into its parts; ValueError naming what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"listen address {listen!r}: want host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


@dataclass(frozen=True)
class LogKey:
    origin: str
    key: str  # the log's verifier key string

    def verifier(self) -> note.Ed25519Verifier:
        return note.parse_verifier_key(self.key)


@dataclass(frozen=True)
class WitnessConfig:
    listen: str
    database_url: str
    master_key: str
    name: str
    logs: tuple[LogKey, ...]
    tls: TlsFiles | None
    require_client_cert: bool = False
    insecure_development: bool = False
    database_schema: str | None = None
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def load(cls, path: Path) -> WitnessConfig:
        data = load_toml(path)
        base = path.parent
        section = table(data, "witness", path)
        where = f"{path}: [witness]"
        name = text(section, "name", where)
        if not note.valid_name(name):
            raise ConfigError(f"{where} name: {name!r} is not a key name (no spaces, no '+')")
        listen = text(section, "listen", where, "127.0.0.1:0")
        try:
            split_listen(listen)
        except ValueError as err:
            raise ConfigError(f"{where} listen: {err}") from None
        return cls(
            listen=listen,
            database_url=database_url(section, where, base),
            master_key=master_key_spec(text(section, "master_key", where), base),
            name=name,
            logs=_logs(section, f"{path}: [[witness.log]]"),
            tls=tls_files(data, path),
            require_client_cert=boolean(section, "require_client_cert", where, False),
            insecure_development=boolean(section, "insecure_development", where, False),
            database_schema=optional_text(section, "database_schema", where),
            shutdown_grace_seconds=number(
                section, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
            log_level=text(section, "log_level", where, "INFO"),
        )

    def verifiers(self) -> dict[str, note.Verifier]:
        return {log.origin: log.verifier() for log in self.logs}


def _logs(section: dict[str, Any], where: str) -> tuple[LogKey, ...]:
    entries = section.get("log", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: must be an array of tables")
    found: dict[str, LogKey] = {}
    for i, entry in enumerate(entries, 1):
        at = f"{where} #{i}"
        origin, key = text(entry, "origin", at), text(entry, "key", at)
        try:
            # An origin is a checkpoint's first line: what the witness will be asked about.
            Checkpoint(origin, 0, bytes(32))
        except CheckpointFormatError as err:
            raise ConfigError(f"{at} origin: {err}") from None
        if len(origin) > MAX_ORIGIN_CHARS:
            raise ConfigError(f"{at} origin: over {MAX_ORIGIN_CHARS} characters")
        if origin in found:
            raise ConfigError(f"{at} origin: {origin!r} is listed twice")
        try:
            note.parse_verifier_key(key)
        except note.MalformedKeyError as err:
            raise ConfigError(f"{at} key: {err}") from None
        found[origin] = LogKey(origin, key)
    if not found:
        raise ConfigError(f"{where}: no log configured; the witness would refuse everything")
    return tuple(found.values())
