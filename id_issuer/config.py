"""The ID issuer's configuration: ``issuer.toml``, paths relative to it."""

from __future__ import annotations

import base64
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
    text_list,
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
        return cls(
            listen=text(section, "listen", where, "127.0.0.1:0"),
            database_url=database_url(section, where, base),
            master_key=master_key_spec(text(section, "master_key", where), base),
            hub_sealing_public_key=hub_sealing_public_key(section, where),
            tls=tls_files(data, path),
            may_seal=frozenset(text_list(authorize, "seal", f"{path}: [authorize]")),
            insecure_development=boolean(section, "insecure_development", where, False),
            database_schema=optional_text(section, "database_schema", where),
            shutdown_grace_seconds=number(
                section, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
            log_level=text(section, "log_level", where, "INFO"),
        )


def hub_sealing_public_key(section: dict[str, Any], where: str) -> bytes:
    """``hub_sealing_public_key``: base64 of the hub's 32-byte X25519 public key."""
    encoded = text(section, "hub_sealing_public_key", where)
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error
        raise ConfigError(f"{where} hub_sealing_public_key: is not base64") from None
    if len(key) != 32:
        raise ConfigError(f"{where} hub_sealing_public_key: is {len(key)} bytes; X25519 is 32")
    return key
