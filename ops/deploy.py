"""Laying out a deployment: PKI, keys, directory, policy and one config per party.

Used by operators (`renkei deploy init`), the demo, the benchmark and the
end-to-end tests, so all of them run the same files the same way.

    <root>/pki/                 the four CAs (hub-ca/, agencies-ca/, services-ca/,
                                oversight-ca/: key, certificate, CRL each) and roots.pem,
                                their bundle
    <party>/tls/                each party's TLS key (made there), its CSR and certificate
    <root>/hub/                 hub.toml, master.key, directory.toml, policy/ (versions), hub.db
    <root>/id_issuer/           issuer.toml, master.key, id_issuer.db (the ID key)
    <root>/agencies/<id>/       comm.toml, master.key, staff.csv, legacy_records.json, comm_<id>.db,
                                exchange.pem (its exchange certificate, renkei.exchange_cert)
    <root>/oversight/           oversight.toml (whom the oversight body reads: the hub and its
                                log keys, every comm server, the registry's binding party),
                                tls/; no store: it keeps only what it fetched, as files (out/)
    <root>/portal/              portal.toml, master.key, portal.db, exchange.pem, tls/, web/
                                (ops/deploy_portal.py); <root>/pki/web-ca/ its web CA
    <root>/pki/card-ca/         the card CA the registry side issues residents' cards with
                                (ops/cards.py)

Each party's data keys live in its own database, wrapped under its own
master key (``renkei.keystore``).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy.engine import Engine

from comm_server.config import CommConfig
from comm_server.keys import exchange_csr
from comm_server.keys import provision as comm_key_setup
from comm_server.staff_register import Grant, render
from comm_server.store import open_key_store as open_comm_key_store
from hub_server.config import HubConfig
from hub_server.keys import checkpoint_signer
from hub_server.keys import provision as hub_key_setup
from hub_server.keys import sealing_key as hub_sealing_key
from id_issuer.issuer import open_key_store as open_issuer_key_store
from id_issuer.issuer import provision as id_key_setup
from ops.cards import init_card_ca
from ops.deploy_portal import (
    PORTAL_ID,
    PortalSetup,
    lay_out_portal,
    portal_files,
    set_verifier_keys,
)
from ops.pki import CERT_FILE, KEY_FILE, PkiLayout, init_pki, issue_exchange_certificate
from renkei import db, sealing
from renkei.keystore import KeyStore, create_master_key_file, load_master_key
from renkei.pki import TlsFiles
from witness.setup import init_witness

ID_ISSUER = "id-issuer"
REGISTRY = "registry"
NUMBERING = "numbering"
# Each service's folder in a deployment.
WITNESS = "witness"
SERVICE_FOLDERS = {
    ID_ISSUER: "id_issuer",
    REGISTRY: "registry",
    NUMBERING: "numbering",
    WITNESS: "witness",
}
# The witness's cosignature key name (C2SP note key names are URL-like).
WITNESS_KEY_NAME = "witness.service.renkei.internal"


@dataclass(frozen=True)
class AgencySpec:
    agency_id: str
    display_name: str
    classes: tuple[str, ...]


def registered(*agency_ids: str) -> tuple[AgencySpec, ...]:
    """Agencies as the hub's agency registry knows them, with all their classes."""
    from hub_server.agencies import AgencyRegistry

    registry = AgencyRegistry.load()
    return tuple(
        AgencySpec(a.agency_id, a.display_name, tuple(sorted(a.classes)))
        for a in (registry.get(i) for i in agency_ids)
    )


# The demo's three: a city, the pension service and the minister, from the registry.
DEMO_AGENCIES = registered("141003", "nenkin", "mhlw")


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> PkiLayout:
        """The CAs under ``pki/``; each party's TLS files in its own folder (``tls/``)."""
        return PkiLayout.at(self.root / "pki", parties=self.root, service_folders=SERVICE_FOLDERS)

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def hub_config(self) -> Path:
        return self.hub_dir / "hub.toml"

    @property
    def id_issuer_config(self) -> Path:
        return self.root / "id_issuer" / "issuer.toml"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry" / "registry.toml"

    @property
    def numbering_config(self) -> Path:
        return self.root / "numbering" / "numbering.toml"

    @property
    def witness_config(self) -> Path:
        return self.root / "witness" / "witness.toml"

    @property
    def oversight_dir(self) -> Path:
        return self.root / "oversight"

    @property
    def oversight_config(self) -> Path:
        return self.oversight_dir / "oversight.toml"

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
    id_issuer_port: int = 0
    numbering_port: int = 0
    registry_port: int = 0
    # The witness (HTTPS) and the hub's log over HTTPS (tlog-tiles).
    witness_port: int = 0
    log_http_port: int = 0
    # The portal (HTTPS to browsers: the one party facing the internet).
    portal_port: int = 0
    # The portal's internal gRPC port (mutual TLS: the oversight body's legal holds).
    portal_internal_port: int = 0
    # An agency's [legacy] table (kind, format, url/port/folder: docs/legacy-formats.md);
    # an agency not here gets the JSON-lines system at its legacy_ports entry.
    legacy: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    answer_timeout_seconds: float = 2.0
    query_timeout_seconds: float = 5.0
    log_level: str = "INFO"
    # None: a SQLite file per party. Otherwise one URL shared by all, a schema each.
    database_url: str | None = None
    schema_prefix: str = "renkei"
    extra_hub: Mapping[str, Any] = field(default_factory=dict)
    # Staff registered at every agency besides the demo's own (tests use this).
    extra_staff: Sequence[Grant] = ()
    # How often each server looks at the CAs' revocation lists (None: its default).
    crl_reload_seconds: float | None = None
    # How often each communication server checks its share of the hub's log (0: never).
    log_verify_seconds: float = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port free at this moment (the OS may hand it out again; fine on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def endpoints_from(base: int, agencies: Sequence[AgencySpec]) -> Endpoints:
    """Fixed ports from ``base`` (``renkei deploy init --base-port``): the hub at
    base, communication servers from base+1, legacy systems from base+101, then
    the ID issuer, the numbering agency and the registry at base+201..203, the
    witness at base+204, the hub's log over HTTPS at base+205, the portal at base+206 and its
    internal port at base+207."""
    return Endpoints(
        base,
        {a.agency_id: base + 1 + i for i, a in enumerate(agencies)},
        {a.agency_id: base + 101 + i for i, a in enumerate(agencies)},
        id_issuer_port=base + 201,
        numbering_port=base + 202,
        registry_port=base + 203,
        witness_port=base + 204,
        log_http_port=base + 205,
        portal_port=base + 206,
        portal_internal_port=base + 207,
    )


def pick_endpoints(agencies: Sequence[AgencySpec]) -> Endpoints:
    return Endpoints(
        free_port(),
        {a.agency_id: free_port() for a in agencies},
        {a.agency_id: free_port() for a in agencies},
        id_issuer_port=free_port(),
        numbering_port=free_port(),
        registry_port=free_port(),
        witness_port=free_port(),
        log_http_port=free_port(),
        portal_port=free_port(),
        portal_internal_port=free_port(),
    )


def _write_toml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def tls_table(
    files: TlsFiles, config_dir: Path, crl_reload_seconds: float | None = None
) -> dict[str, Any]:
    """A ``[tls]`` table, relative to the config file, so a deployment can be moved whole."""
    table: dict[str, Any] = {
        "ca_cert": os.path.relpath(files.ca_cert, config_dir),
        "cert": os.path.relpath(files.cert, config_dir),
        "key": os.path.relpath(files.key, config_dir),
        "crls": [os.path.relpath(p, config_dir) for p in files.crls],
    }
    if crl_reload_seconds is not None:
        table["crl_reload_seconds"] = crl_reload_seconds
    return table


def _db(settings: Settings, party: str) -> dict[str, str]:
    if settings.database_url is None:
        return {"database_url": "sqlite:///{config_dir}/" + f"{party}.db"}
    schema = f"{settings.schema_prefix}_{party}".lower().replace("-", "_").replace(".", "_")
    return {"database_url": settings.database_url, "database_schema": schema}


def demo_staff(agency_id: str) -> list[Grant]:
    """The demo's staff at one agency, each at the terminal and for the affair its queries use."""
    from ops.demo_data import queries, residents  # the demo's world, only when deploying

    grants: dict[tuple[str, str], Grant] = {}
    for q in queries(residents()):
        if q.requester != agency_id or not q.staff_registered:
            continue
        old = grants.get((q.staff_id, q.terminal_id))
        kinds = sorted({q.info_kind, *(old.info_kinds if old else ())})
        items = sorted({q.item, *(old.legal_basis_items if old else ())})
        grants[(q.staff_id, q.terminal_id)] = Grant(
            q.staff_id, (q.terminal_id,), tuple(kinds), tuple(items), name="demo staff"
        )
    return list(grants.values())


def write_staff_register(path: Path, agency_id: str, grants: Sequence[Grant]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        render(
            grants,
            f"Staff register of agency {agency_id} (R19): who may do exchange work,\n"
            "for which kinds of information and legal-basis items, from which terminals.\n"
            "Columns: docs/operations.md. Changes take effect while the server runs.",
        ),
        encoding="utf-8",
    )


def exchange_certificate_path(layout: Layout, agency_id: str) -> Path:
    return layout.agency_dir(agency_id) / "exchange.pem"


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
    # Each party's TLS key is made in its own folder; only CSRs reach the CAs.
    pki = init_pki(
        layout.root / "pki",
        ids,
        services=[ID_ISSUER, REGISTRY, NUMBERING, WITNESS],
        parties=layout.root,
        service_folders=SERVICE_FOLDERS,
    )

    def _tls_paths(files: TlsFiles, config_dir: Path) -> dict[str, Any]:
        return tls_table(files, config_dir, settings.crl_reload_seconds)

    host = endpoints.host
    hub_endpoint = f"{host}:{endpoints.hub_port}"

    # Each party gets its own master key; its data keys live in its own store.
    directory = []
    for agency in agencies:
        folder = layout.agency_dir(agency.agency_id)
        folder.mkdir(parents=True, exist_ok=True)
        create_master_key_file(folder / "master.key")
        write_staff_register(
            folder / "staff.csv",
            agency.agency_id,
            [*demo_staff(agency.agency_id), *settings.extra_staff],
        )
        _write_toml(
            layout.comm_config(agency.agency_id),
            {
                "comm": {
                    "agency_id": agency.agency_id,
                    "listen": f"{host}:{endpoints.comm_ports[agency.agency_id]}",
                    "hub_endpoint": hub_endpoint,
                    "registry_endpoint": f"{host}:{endpoints.registry_port}",
                    **_db(settings, f"comm_{agency.agency_id}"),
                    "master_key": "file:master.key",
                    "answer_timeout_seconds": settings.answer_timeout_seconds,
                    "query_timeout_seconds": settings.query_timeout_seconds,
                    "log_level": settings.log_level,
                    "staff_register": "staff.csv",
                },
                "legacy": dict(endpoints.legacy[agency.agency_id])
                if agency.agency_id in endpoints.legacy
                else {
                    "kind": "jsonl",
                    "host": host,
                    "port": endpoints.legacy_ports[agency.agency_id],
                },
                "tls": {
                    **_tls_paths(pki.agency(agency.agency_id), folder),
                    # The CA of agencies: it issues the exchange certificates peers seal to.
                    "exchange_ca": os.path.relpath(pki.agencies_ca.cert, folder),
                },
            },
        )
        comm_keys = open_comm_key_store(CommConfig.load(layout.comm_config(agency.agency_id)))
        sealing_public = comm_key_setup(comm_keys)
        # The agency asks (a CSR signed with its own key), the CA of agencies signs.
        issue_exchange_certificate(
            pki.agencies_ca,
            exchange_csr(comm_keys, agency.agency_id),
            agency.agency_id,
            exchange_certificate_path(layout, agency.agency_id),
        )
        directory.append(
            {
                "id": agency.agency_id,
                "name": agency.display_name,
                "classes": list(agency.classes),
                "endpoint": f"{host}:{endpoints.comm_ports[agency.agency_id]}",
                "sealing_public_key": base64.b64encode(sealing_public).decode(),
                "exchange_certificate": exchange_certificate_path(
                    layout, agency.agency_id
                ).read_text(encoding="ascii"),
            }
        )
        comm_keys.engine.dispose()

    # The portal: an agency to the hub with no class (it may relay nothing), its own web
    # certificate for browsers; its [verify] keys come once the hub's and the witness's exist.
    # (A caller that lists an agency "portal" of its own, a test's stand-in, gets that one.)
    registry_endpoint = f"{host}:{endpoints.registry_port}"
    portal: PortalSetup | None = None
    if PORTAL_ID not in ids:
        portal_dir = portal_files(layout.root).folder
        portal_tls = TlsFiles(
            pki.roots, portal_dir / "tls" / CERT_FILE, portal_dir / "tls" / KEY_FILE, pki.crls
        )
        portal = lay_out_portal(
            layout.root,
            pki,
            listen=f"{host}:{endpoints.portal_port}",
            internal_listen=f"{host}:{endpoints.portal_internal_port}",
            public_url=f"https://{host}:{endpoints.portal_port}",
            hub_endpoint=hub_endpoint,
            registry_endpoint=registry_endpoint,
            database=_db(settings, PORTAL_ID),
            tls=_tls_paths(portal_tls, portal_dir),
            log_level=settings.log_level,
        )
        directory.append(portal.directory_entry)
        _make_portal_store(portal.files.config)

    layout.hub_dir.mkdir(parents=True, exist_ok=True)
    create_master_key_file(layout.hub_dir / "master.key")
    _write_toml(layout.hub_dir / "directory.toml", {"agency": directory})
    (layout.hub_dir / "policy").mkdir(parents=True, exist_ok=True)
    if policy is None:
        # Annex Table 2 as amended in 2015, compiled by the hub itself.
        (layout.hub_dir / "policy" / "annex-2015.toml").write_text(
            'effective = 2015-10-05\nsource = "annex-2015"\n', encoding="utf-8"
        )
    else:
        shutil.copyfile(policy, layout.hub_dir / "policy" / policy.name)
    hub_toml: dict[str, Any] = {
        "hub": {
            "listen": f"{host}:{endpoints.hub_port}",
            **_db(settings, "hub"),
            "directory": "directory.toml",
            "policy": "policy",
            "master_key": "file:master.key",
            "log_level": settings.log_level,
            "id_issuer_endpoint": f"{host}:{endpoints.id_issuer_port}",
            **settings.extra_hub,
        },
        "tls": _tls_paths(pki.hub(), layout.hub_dir),
        # The one agency PersonalLogService answers: a person's own history, by its link code.
        "portal": {"agency_id": PORTAL_ID},
    }
    _write_toml(layout.hub_config, hub_toml)
    hub_config = HubConfig.load(layout.hub_config)
    hub_keys = KeyStore(
        db.create_engine(hub_config.database_url, schema=hub_config.database_schema),
        load_master_key(hub_config.master_key),
    )
    hub_key_setup(hub_keys, sorted({*ids, PORTAL_ID}))  # the portal gets link codes of its own
    hub_public = sealing.public_key_bytes(hub_sealing_key(hub_keys))
    origin = hub_config.log.origin
    hub_log_key = checkpoint_signer(hub_keys, origin).verifier().verifier_key()
    hub_keys.engine.dispose()

    # The witness, run by the oversight body: it cosigns the hub's checkpoints, and
    # agencies trust a checkpoint only with its cosignature (docs/verifiable-log.md).
    witness_dir = layout.witness_config.parent
    witness_db = _db(settings, WITNESS)
    witness_key = init_witness(
        witness_dir,
        listen=f"{host}:{endpoints.witness_port}",
        tls=_tls_paths(pki.service(WITNESS), witness_dir),
        logs=[(origin, hub_log_key)],
        database_url=witness_db["database_url"],
        database_schema=witness_db.get("database_schema"),
        name=WITNESS_KEY_NAME,
        log_level=settings.log_level,
    )
    hub_toml["log"] = {
        "origin": origin,
        "http_listen": f"{host}:{endpoints.log_http_port}",
        "witness": [{"url": f"https://{host}:{endpoints.witness_port}", "key": witness_key}],
    }
    for agency in agencies:
        path = layout.comm_config(agency.agency_id)
        comm_toml = tomllib.loads(path.read_text(encoding="utf-8"))
        comm_toml["log"] = {
            "hub_key": hub_log_key,
            "witness_keys": [witness_key],
            "verify_every_seconds": settings.log_verify_seconds,
        }
        _write_toml(path, comm_toml)
    if portal is not None:
        set_verifier_keys(portal.files, hub_log_key, [witness_key])

    issuer_dir = layout.id_issuer_config.parent
    issuer_dir.mkdir(parents=True, exist_ok=True)
    create_master_key_file(issuer_dir / "master.key")
    _write_toml(
        layout.id_issuer_config,
        {
            "id_issuer": {
                "listen": f"{host}:{endpoints.id_issuer_port}",
                "database_url": "sqlite:///{config_dir}/id_issuer.db",
                "master_key": "file:master.key",
                "hub_sealing_public_key": base64.b64encode(hub_public).decode(),
                "log_level": settings.log_level,
            },
            # Who may have ID codes sealed for agencies: the registry's side (binding).
            "authorize": {"seal": [f"service:{REGISTRY}"]},
            "tls": _tls_paths(pki.service(ID_ISSUER), issuer_dir),
        },
    )
    issuer_keys, _ = open_issuer_key_store(layout.id_issuer_config)
    issuer_public = id_key_setup(issuer_keys)
    issuer_keys.engine.dispose()
    # The hub takes only ID codes this key signed (renkei.id_code_signing).
    hub_toml["hub"]["id_issuer_signing_public_key"] = base64.b64encode(issuer_public).decode()
    _write_toml(layout.hub_config, hub_toml)

    # The resident registry (a legacy system, mocked) and the numbering agency,
    # which asks the registry's directory service whether resident codes exist
    # and holds no URL to the registry's store (issue 13).
    registry_db = _db(settings, "registry")
    _write_toml(
        layout.registry_config,
        {
            "registry": {
                **registry_db,
                # Its binding service: agencies match their records here (R14);
                # and its resident directory, for the numbering agency (R8).
                "listen": registry_endpoint,
                "id_issuer_endpoint": f"{host}:{endpoints.id_issuer_port}",
                # The agencies that may bind a person's card (BindCard): the portal.
                "portals": [PORTAL_ID],
            },
            # The binding party's own store: handles and consent log, never the facts.
            "binding": _db(settings, "registry_binding"),
            # Who may ask which resident codes exist: the numbering agency only.
            "authorize": {"directory": [f"service:{NUMBERING}"]},
            "tls": _tls_paths(pki.service(REGISTRY), layout.registry_config.parent),
        },
    )
    # The card CA the registry side issues residents' cards with ([cards] ca_dir, its
    # default ../pki/card-ca); the portal and the counter trust its certificate and CRL.
    init_card_ca(layout.root)
    _write_toml(
        layout.numbering_config,
        {
            "numbering": {
                "listen": f"{host}:{endpoints.numbering_port}",
                **_db(settings, "numbering"),
                "registry_endpoint": registry_endpoint,
                "log_level": settings.log_level,
            },
            "authorize": {
                "issue": [f"service:{REGISTRY}"],
                "lookup": [f"service:{REGISTRY}"],
                "change": [f"service:{REGISTRY}"],
            },
            "tls": _tls_paths(pki.service(NUMBERING), layout.numbering_config.parent),
        },
    )
    _write_toml(
        layout.oversight_config,
        oversight_config(
            tls=_tls_paths(pki.oversight(), layout.oversight_dir),
            hub_endpoint=hub_endpoint,
            origin=origin,
            hub_log_key=hub_log_key,
            witness_keys=[witness_key],
            agencies={a.agency_id: f"{host}:{endpoints.comm_ports[a.agency_id]}" for a in agencies},
            registry_endpoint=registry_endpoint,
            portal_endpoint=f"{host}:{endpoints.portal_internal_port}" if portal else None,
        ),
    )
    return layout


def _make_portal_store(config_path: Path) -> None:
    """The portal's tables, made now (its own start makes them too) so that a store audit
    of a deployment whose portal never ran sees an empty store rather than none."""
    from portal.config import PortalConfig
    from portal.store import PortalStore

    config = PortalConfig.load(config_path)
    store = PortalStore(db.create_engine(config.database_url, schema=config.database_schema))
    store.engine.dispose()


def oversight_config(
    *,
    tls: Mapping[str, Any],
    hub_endpoint: str,
    origin: str,
    hub_log_key: str,
    witness_keys: Sequence[str],
    agencies: Mapping[str, str],
    registry_endpoint: str,
    portal_endpoint: str | None = None,
) -> dict[str, Any]:
    """``oversight.toml`` (oversight.config.OversightConfig): the oversight body's own
    certificate, and every share it reads: the hub's log (with the keys that verify its
    checkpoints), each communication server by agency id, the registry's consent log, and
    the portal's internal port (legal holds on its applications)."""
    config: dict[str, Any] = {
        "tls": dict(tls),
        "hub": {
            "endpoint": hub_endpoint,
            "origin": origin,
            "log_key": hub_log_key,
            "witness_keys": list(witness_keys),
        },
        "agency": [{"id": agency_id, "endpoint": end} for agency_id, end in agencies.items()],
        "registry": {"endpoint": registry_endpoint},
        # What it fetched and what it made of it: files, never a database.
        "output": {"dir": "out"},
    }
    if portal_endpoint is not None:
        config["portal"] = {"endpoint": portal_endpoint}
    return config


def registry_engine(layout: Layout) -> Engine:
    """The mocked resident registry's database (``registry/registry.toml``)."""
    from renkei.config_util import load_toml, required, table

    data = table(load_toml(layout.registry_config), "registry", layout.registry_config)
    where = f"{layout.registry_config}: [registry]"
    url = str(required(data, "database_url", where)).replace(
        "{config_dir}", str(layout.registry_config.parent)
    )
    return db.create_engine(url, schema=data.get("database_schema"))
