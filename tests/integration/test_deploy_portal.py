"""`renkei deploy init` lays out the portal (issue 15): its folder, its two certificates, its
store (SQLite or a PostgreSQL schema of its own), its directory entry at the hub, the keys it
verifies the hub's proofs with, the card CA, and the registry's leave for it to bind cards."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hub_server.config import HubConfig
from hub_server.directory import Directory
from ops.deploy import DEMO_AGENCIES, Settings, endpoints_from, init_deployment
from ops.deploy_portal import PORTAL_ID, portal_files, web_ca_cert
from ops.pki import party_uri
from portal.config import PortalConfig
from registry_binding.config import RegistryBindingConfig
from renkei import db


def test_deploy_init_lays_out_the_portal(tmp_path: Path, database: tuple[str | None, str]) -> None:
    url, prefix = database
    endpoints = endpoints_from(50051, DEMO_AGENCIES)
    layout = init_deployment(
        tmp_path, DEMO_AGENCIES, endpoints, Settings(database_url=url, schema_prefix=prefix)
    )
    files = portal_files(tmp_path)
    config = PortalConfig.load(files.config)
    assert endpoints.portal_port == 50051 + 206
    assert config.listen == f"127.0.0.1:{endpoints.portal_port}"
    assert config.public_url == f"https://127.0.0.1:{endpoints.portal_port}"
    assert config.hub_endpoint == "127.0.0.1:50051"
    assert config.registry_endpoint == f"127.0.0.1:{endpoints.registry_port}"

    # Its store: a file of its own, or a schema of its own on the shared PostgreSQL.
    if url is None:
        assert config.database_url == f"sqlite:///{files.folder}/portal.db"
        assert config.database_schema is None
    else:
        assert config.database_url == url
        assert config.database_schema == f"{prefix}_portal"
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    try:
        tables = set(sa.inspect(engine).get_table_names(schema=config.database_schema))
    finally:
        engine.dispose()
    assert "portal_persons" in tables

    # It checks the hub's proofs with the same keys the agencies do.
    comm = tomllib.loads(layout.comm_config("141003").read_text(encoding="utf-8"))
    assert config.log_key == comm["log"]["hub_key"]
    assert list(config.witness_keys) == comm["log"]["witness_keys"]
    assert config.quorum == 1

    # Its mTLS identity is agency "portal" (agencies' CA); browsers see a web CA's certificate.
    assert config.tls is not None
    mtls = x509.load_pem_x509_certificate(config.tls.cert.read_bytes())
    uris = mtls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert party_uri(f"agency:{PORTAL_ID}") in uris.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    assert stat.S_IMODE(config.tls.key.stat().st_mode) == 0o600
    web = x509.load_pem_x509_certificate(config.web_cert.read_bytes())
    web_ca = x509.load_pem_x509_certificate(web_ca_cert(tmp_path).read_bytes())
    assert web.issuer == web_ca.subject
    roots = (tmp_path / "pki" / "roots.pem").read_bytes()
    # The web CA is never one of the renkei.internal CAs.
    assert web_ca.public_bytes(serialization.Encoding.PEM) not in roots

    # The hub knows it as an agency of no class, which it never dials.
    directory = Directory.load(layout.hub_dir / "directory.toml")
    portal = directory.get(PORTAL_ID)
    assert portal.classes == frozenset()
    assert portal.endpoint == ""
    assert portal.exchange_certificate  # agencies seal details to it
    assert [a.agency_id for a in directory] == [*(a.agency_id for a in DEMO_AGENCIES), PORTAL_ID]

    hub = HubConfig.load(layout.hub_config)
    assert hub.portal.agency_id == PORTAL_ID

    # The registry side: the card CA, and the portal's leave to bind cards.
    registry = RegistryBindingConfig.load(layout.registry_config)
    assert registry.portals == (PORTAL_ID,)
    assert registry.card_ca_dir is not None
    card_ca = registry.card_ca_dir.resolve()
    assert card_ca == (tmp_path / "pki" / "card-ca").resolve()
    assert config.card_ca_cert.resolve() == card_ca / "ca.pem"
    assert config.card_crl is not None
    assert config.card_crl.resolve() == card_ca / "crl.pem"
    assert (card_ca / "crl.pem").exists()
    assert stat.S_IMODE((card_ca / "ca.key").stat().st_mode) == 0o600
