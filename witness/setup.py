"""Laying out a witness's folder: ``witness.toml``, ``master.key`` and its cosigning key.

The deployment tooling (``ops.deploy``) calls ``init_witness`` with the witness's
TLS table and the logs it serves, and hands the vkey it returns to whoever
checks cosignatures (the agencies' configs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from renkei.keystore import create_master_key_file
from witness import keys
from witness.config import WitnessConfig

CONFIG_FILE = "witness.toml"
MASTER_KEY_FILE = "master.key"


def init_witness(
    folder: Path,
    *,
    listen: str,
    tls: dict[str, Any],
    logs: list[tuple[str, str]],
    database_url: str = "sqlite:///{config_dir}/witness.db",
    name: str,
    database_schema: str | None = None,
    log_level: str = "INFO",
) -> str:
    """Write the config and the master key, make the key; the witness's vkey.

    ``logs`` are (origin, the log's vkey); ``tls`` is the ``[tls]`` table, its
    paths relative to ``folder``. Refuses (FileExistsError) an existing master key.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    create_master_key_file(folder / MASTER_KEY_FILE)
    section: dict[str, Any] = {
        "listen": listen,
        "database_url": database_url,
        "master_key": f"file:{MASTER_KEY_FILE}",
        "name": name,
        "log_level": log_level,
        "log": [{"origin": origin, "key": key} for origin, key in logs],
    }
    if database_schema is not None:
        section["database_schema"] = database_schema
    data: dict[str, Any] = {"witness": section}
    if tls:
        data["tls"] = tls
    config_path = folder / CONFIG_FILE
    config_path.write_text(tomli_w.dumps(data), encoding="utf-8")
    config = WitnessConfig.load(config_path)  # read back as serve will read it
    store = keys.open_key_store(config)
    try:
        keys.provision(store)
        return keys.cosigner(store, config.name).verifier().verifier_key()
    finally:
        store.engine.dispose()
