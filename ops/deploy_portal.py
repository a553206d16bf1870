"""The portal's part of a deployment (issue 15): its folder, certificates, keys and config.

    <root>/portal/           portal.toml, master.key, portal.db (its store and keys), exchange.pem
    <root>/portal/tls/       its mutual-TLS key and certificate: agency "portal" (the agencies' CA),
                             for the hub and the registry, never shown to browsers
    <root>/portal/web/       its own server certificate for browsers (portal.pem, portal.key)
    <root>/pki/web-ca/       the CA that signed it: a public CA's stand-in, which a browser of
                             the demo is told to trust (never one of the renkei.internal CAs)
    <root>/pki/card-ca/      the card CA (ops.cards), run by the registry side

To the hub the portal is an agency of its own with no class of Annex Table 2
(so it may relay nothing): a directory entry with its link-code key and its
exchange certificate, which the agencies seal details to (renkei.disclosure).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ops.pki import PkiLayout, issue_exchange_certificate, key_pem, make_request, sign_request
from renkei import agency_keys, db
from renkei.files import atomic_write
from renkei.keystore import KeyStore, create_master_key_file, load_master_key
from renkei.pki import key_usage

PORTAL_ID = "portal"
PORTAL_NAME = "マイナポータル"
WEB_CA_FOLDER = Path("pki") / "web-ca"
_VALIDITY = datetime.timedelta(days=398)  # what browsers accept of a server certificate


@dataclass(frozen=True)
class PortalFiles:
    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "portal.toml"

    @property
    def exchange_certificate(self) -> Path:
        return self.folder / "exchange.pem"

    @property
    def web_cert(self) -> Path:
        return self.folder / "web" / "portal.pem"

    @property
    def web_key(self) -> Path:
        return self.folder / "web" / "portal.key"


def portal_files(root: Path) -> PortalFiles:
    return PortalFiles(root / PORTAL_ID)


def web_ca_cert(root: Path) -> Path:
    """The web CA's certificate: what a browser (or the counter) trusts the portal by."""
    return root / WEB_CA_FOLDER / "ca.pem"


def _web_ca(root: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    folder = root / WEB_CA_FOLDER
    if (folder / "ca.key").exists():
        key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, "renkei demo web CA"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    atomic_write(folder / "ca.key", key_pem(key), 0o600)
    return cert, key


def issue_web_certificate(
    root: Path, files: PortalFiles, hosts: Sequence[str] = ("localhost",), ips: Sequence[str] = ()
) -> None:
    """The portal's server certificate for browsers, from the web CA (key made in its folder)."""
    ca_cert, ca_key = _web_ca(root)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    atomic_write(files.web_key, key_pem(key), 0o600)
    chain = cert.public_bytes(serialization.Encoding.PEM)
    atomic_write(files.web_cert, chain, 0o644)


@dataclass(frozen=True)
class PortalSetup:
    files: PortalFiles
    directory_entry: dict[str, Any]  # the hub's [[agency]] entry for the portal


def lay_out_portal(
    root: Path,
    pki: PkiLayout,
    *,
    listen: str,
    public_url: str,
    internal_listen: str | None = None,
    hub_endpoint: str,
    registry_endpoint: str,
    database: Mapping[str, str],
    tls: Mapping[str, Any],
    log_level: str = "INFO",
) -> PortalSetup:
    """The portal's folder: keys, both certificates and portal.toml (``[verify]`` comes later,
    once the hub's log key and the witness's exist: ``set_verifier_keys``)."""
    files = portal_files(root)
    files.folder.mkdir(parents=True, exist_ok=True)
    tls_dir = files.folder / "tls"
    # Its mutual-TLS identity is agency "portal": the key is made here, the agencies' CA signs.
    csr = make_request(tls_dir, f"agency:{PORTAL_ID}")
    cert = sign_request(pki.agencies_ca.load(), csr.read_bytes())
    atomic_write(tls_dir / "cert.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    host = listen.rpartition(":")[0]
    issue_web_certificate(root, files, ("localhost",), (host,) if _is_ip(host) else ())
    create_master_key_file(files.folder / "master.key")
    config: dict[str, Any] = {
        "portal": {
            "listen": listen,
            # mutual TLS, for the oversight body's legal holds on the applications (R25)
            **({"internal_listen": internal_listen} if internal_listen else {}),
            "public_url": public_url,
            "agency_id": PORTAL_ID,
            **database,
            "master_key": "file:master.key",
            "log_level": log_level,
        },
        "web_tls": {"cert": "web/portal.pem", "key": "web/portal.key"},
        "tls": dict(tls),
        "hub": {"endpoint": hub_endpoint},
        "registry": {"endpoint": registry_endpoint},
        "cards": {"ca_cert": "../pki/card-ca/ca.pem", "crl": "../pki/card-ca/crl.pem"},
    }
    _write(files.config, config)
    url = str(database["database_url"]).replace("{config_dir}", str(files.folder))
    keys = KeyStore(
        db.create_engine(url, schema=database.get("database_schema")),
        load_master_key(f"file:{files.folder / 'master.key'}"),
    )
    try:
        sealing_public = agency_keys.provision(keys)
        issue_exchange_certificate(
            pki.agencies_ca,
            agency_keys.exchange_csr(keys, PORTAL_ID),
            PORTAL_ID,
            files.exchange_certificate,
        )
    finally:
        keys.engine.dispose()
    entry = {
        "id": PORTAL_ID,
        "name": PORTAL_NAME,
        "classes": [],
        "endpoint": "",  # the hub never calls the portal
        "sealing_public_key": base64.b64encode(sealing_public).decode(),
        "exchange_certificate": files.exchange_certificate.read_text(encoding="ascii"),
    }
    return PortalSetup(files, entry)


def set_verifier_keys(files: PortalFiles, log_key: str, witness_keys: Sequence[str]) -> None:
    """``[verify]``: what the portal checks the hub's proofs and checkpoints with."""
    data = tomllib.loads(files.config.read_text(encoding="utf-8"))
    data["verify"] = {"log_key": log_key, "witness_keys": list(witness_keys), "quorum": 1}
    _write(files.config, data)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, tomli_w.dumps(data).encode("utf-8"), 0o644)
