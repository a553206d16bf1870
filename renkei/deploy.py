"""Laying out a deployment: PKI, keys, directory, policy and one config per party.

Used by operators (`renkei deploy init`), the demo, the benchmark and the
end-to-end tests, so all of them run the same files the same way.

    <root>/pki/                 CA, hub and agency certificates
    <root>/hub/                 hub.toml, keys.json, directory.toml, legal_basis.toml, hub.db
    <root>/id_issuer/keys.json  the ID key (and the hub's public sealing key)
    <root>/agencies/<id>/       comm.toml, keys.json, legacy_records.json, comm.db
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from comm_server.keys import save_sealing_key
from hub_server.keys import HubKeys
from renkei import sealing
from renkei.id_issuer import IdIssuer
from renkei.keyfiles import b64
from renkei.pki import PkiLayout, TlsFiles, init_pki


@dataclass(frozen=True)
class AgencySpec:
    agency_id: str
    display_name: str
    classes: tuple[str, ...]


# Three agencies the demo table names: a city, the pension service, the minister.
DEMO_AGENCIES = (
    AgencySpec("141003", "横浜市長", ("市町村長",)),
    AgencySpec("nenkin", "日本年金機構", ("日本年金機構",)),
    AgencySpec("mhlw", "厚生労働大臣", ("厚生労働大臣",)),
)


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> PkiLayout:
        return PkiLayout.at(self.root / "pki")

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def hub_config(self) -> Path:
        return self.hub_dir / "hub.toml"

    @property
    def id_issuer_keys(self) -> Path:
        return self.root / "id_issuer" / "keys.json"

    def agency_dir(self, agency_id: str) -> Path:
        return self.root / "agencies" / agency_id

    def comm_config(self, agency_id: str) -> Path:
        return self.agency_dir(agency_id) / "comm.toml"

    def legacy_records(self, agency_id: str) -> Path:
        return self.agency_dir(agency_id) / "legacy_records.json"


@dataclass(frozen=True)
class Endpoints:
    hub_port: int
    comm_ports: Mapping[str, int]
    legacy_ports: Mapping[str, int]
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    answer_timeout_seconds: float = 2.0
    query_timeout_seconds: float = 5.0
    log_level: str = "INFO"
    # None: a SQLite file per party. Otherwise one URL shared by all, a schema each.
    database_url: str | None = None
    schema_prefix: str = "renkei"
    extra_hub: Mapping[str, Any] = field(default_factory=dict)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free at this moment (the OS may hand it out again; fine on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pick_endpoints(agencies: Sequence[AgencySpec]) -> Endpoints:
    return Endpoints(
        free_port(),
        {a.agency_id: free_port() for a in agencies},
        {a.agency_id: free_port() for a in agencies},
    )


def _write_toml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def _tls_paths(files: TlsFiles, config_dir: Path) -> dict[str, str]:
    """Relative to the config file, so a deployment folder can be moved whole."""
    return {
        "ca_cert": os.path.relpath(files.ca_cert, config_dir),
        "cert": os.path.relpath(files.cert, config_dir),
        "key": os.path.relpath(files.key, config_dir),
    }


def _db(settings: Settings, party: str) -> dict[str, str]:
    if settings.database_url is None:
        return {"database_url": "sqlite:///{config_dir}/" + f"{party}.db"}
    schema = f"{settings.schema_prefix}_{party}".lower().replace("-", "_").replace(".", "_")
    return {"database_url": settings.database_url, "database_schema": schema}


def init_deployment(
    root: Path,
    agencies: Sequence[AgencySpec],
    endpoints: Endpoints,
    settings: Settings = Settings(),
    *,
    policy: Path | None = None,
) -> Layout:
    layout = Layout(root)
    ids = [a.agency_id for a in agencies]
    pki = init_pki(layout.root / "pki", ids)
    host = endpoints.host

    keys = HubKeys.generate(ids)
    keys.save(layout.hub_dir / "keys.json")
    directory = []
    for agency in agencies:
        key = sealing.generate_private_key()
        save_sealing_key(layout.agency_dir(agency.agency_id) / "keys.json", key)
        directory.append(
            {
                "id": agency.agency_id,
                "name": agency.display_name,
                "classes": list(agency.classes),
                "endpoint": f"{host}:{endpoints.comm_ports[agency.agency_id]}",
                "sealing_public_key": b64(sealing.public_key_bytes(key)),
            }
        )
    _write_toml(layout.hub_dir / "directory.toml", {"agency": directory})
    policy_source = policy or Path(
        str(resources.files("hub_server").joinpath("data/legal_basis_demo.toml"))
    )
    shutil.copyfile(policy_source, layout.hub_dir / "legal_basis.toml")
    hub_pki = pki.hub()
    _write_toml(
        layout.hub_config,
        {
            "hub": {
                "listen": f"{host}:{endpoints.hub_port}",
                **_db(settings, "hub"),
                "directory": "directory.toml",
                "policy": "legal_basis.toml",
                "keys": "keys.json",
                "log_level": settings.log_level,
                **settings.extra_hub,
            },
            "tls": _tls_paths(hub_pki, layout.hub_dir),
        },
    )
    IdIssuer.create_key_file(layout.id_issuer_keys, sealing.public_key_bytes(keys.sealing_key))
    for agency in agencies:
        files = pki.agency(agency.agency_id)
        _write_toml(
            layout.comm_config(agency.agency_id),
            {
                "comm": {
                    "agency_id": agency.agency_id,
                    "listen": f"{host}:{endpoints.comm_ports[agency.agency_id]}",
                    "hub_endpoint": f"{host}:{endpoints.hub_port}",
                    **_db(settings, f"comm_{agency.agency_id}"),
                    "keys": "keys.json",
                    "answer_timeout_seconds": settings.answer_timeout_seconds,
                    "query_timeout_seconds": settings.query_timeout_seconds,
                    "log_level": settings.log_level,
                },
                "legacy": {
                    "kind": "jsonl",
                    "host": host,
                    "port": endpoints.legacy_ports[agency.agency_id],
                },
                "tls": _tls_paths(files, layout.agency_dir(agency.agency_id)),
            },
        )
    return layout
