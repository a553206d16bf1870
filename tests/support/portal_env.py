"""A portal on loopback for tests: a web certificate, a card CA, cards, fake hub and registry."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.bootstrap import Peers
from portal.config import PortalConfig, RateLimits
from renkei import agency_keys, card, db
from renkei.db import sqlite_url
from renkei.hub.v1 import personal_pb2
from renkei.keystore import KeyStore, create_master_key_file, load_master_key

from .databases import POSTGRES_URL


def free_port() -> int:
    """A loopback port free now (the portal's origin names its port, so it is chosen first)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_web_certificate(folder: Path) -> tuple[Path, Path, str]:
    """(cert, key, base64 SHA-256 of its SPKI) of a self-signed cert for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "web.pem", folder / "web.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert_file, key_file, base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass
class DemoCard:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    key_file: Path
    cert_file: Path

    @property
    def serial(self) -> str:
        return str(self.cert.serial_number)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class CardAuthority:
    folder: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    revoked: list[tuple[int, datetime]] = field(default_factory=list)

    @property
    def cert_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def crl_file(self) -> Path:
        return self.folder / "crl.pem"

    def write_crl(self) -> None:
        crl = card.build_crl(self.cert, self.key, self.revoked, datetime.now(UTC))
        self.crl_file.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str) -> DemoCard:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = card.build_card_certificate(self.cert, self.key, key.public_key(), datetime.now(UTC))
        key_file, cert_file = self.folder / f"{name}.card-key.pem", self.folder / f"{name}.card.pem"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return DemoCard(key, cert, key_file, cert_file)

    def revoke(self, c: DemoCard) -> None:
        self.revoked.append((c.cert.serial_number, datetime.now(UTC)))
        self.write_crl()


def card_authority(folder: Path) -> CardAuthority:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = card.build_card_ca(datetime.now(UTC) - timedelta(hours=1))
    ca = CardAuthority(folder, cert, key)
    ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.write_crl()
    return ca


class FakeRegistry:
    """BindCard: checks the card as the registry would, seals "the person" as the serial."""

    def __init__(self, ca: CardAuthority) -> None:
        self._trust = card.CardTrust(ca.cert_file, ca.crl_file)
        self.calls = 0

    async def bind_card(self, certificate_der: bytes, challenge: bytes, signature: bytes) -> bytes:
        self.calls += 1
        identity = self._trust.verify(
            certificate_der,
            challenge,
            signature,
            audience="portal",
            now=datetime.now(UTC),
            max_age=timedelta(minutes=5),
        )
        return f"sealed:{identity.serial}".encode()


class FakeHub:
    """IssueLinkCode and PersonalLog: one fixed entry per person, named by the link code."""

    def __init__(self) -> None:
        self.issued = 0
        self.asked: list[str] = []

    async def issue_link_code(self, sealed_id_code: bytes) -> str:
        self.issued += 1
        return "LC-" + hashlib.sha256(sealed_id_code).hexdigest()[:24]

    async def list_entries(
        self, request: personal_pb2.ListPersonalEntriesRequest
    ) -> personal_pb2.ListPersonalEntriesResponse:
        self.asked.append(request.link_code)
        return personal_pb2.ListPersonalEntriesResponse()

    async def request_details(
        self, request: personal_pb2.RequestDetailsRequest
    ) -> personal_pb2.RequestDetailsResponse:
        return personal_pb2.RequestDetailsResponse(state=personal_pb2.DETAILS_STATE_PENDING)


def peers(ca: CardAuthority) -> tuple[Peers, FakeRegistry, FakeHub]:
    registry, hub = FakeRegistry(ca), FakeHub()
    return Peers(hub, hub, registry), registry, hub


def portal_config(
    folder: Path,
    ca: CardAuthority,
    database: tuple[str | None, str],
    *,
    limits: RateLimits | None = None,
    internal_listen: str | None = None,
    keys: bool = True,
) -> tuple[PortalConfig, str]:
    """(the config, its web certificate's SPKI hash), on a free loopback port; its store
    holds the portal's keys (as the deployment makes them) unless ``keys`` is False."""
    cert, key, spki = write_web_certificate(folder / "web")
    url, prefix = database
    port = free_port()
    config = PortalConfig(
        listen=f"127.0.0.1:{port}",
        public_url=f"https://127.0.0.1:{port}",
        database_url=url or sqlite_url(str(folder / "portal.db")),
        database_schema=None if url is None else f"{prefix}_p{uuid.uuid4().hex[:8]}",
        web_cert=cert,
        web_key=key,
        card_ca_cert=ca.cert_file,
        card_crl=ca.crl_file,
        hub_endpoint="127.0.0.1:1",
        registry_endpoint="127.0.0.1:1",
        rate_limits=limits or RateLimits(),
        master_key=f"file:{folder / 'master.key'}",
        internal_listen=internal_listen,
    )
    if url is not None:
        assert url == POSTGRES_URL
    if not (folder / "master.key").exists():
        create_master_key_file(folder / "master.key")
    if keys:
        provision_keys(config)
    return config, spki


def provision_keys(config: PortalConfig) -> bytes:
    """The portal's sealing and signing keys in its store; the sealing key's public half."""
    assert config.master_key is not None
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    try:
        return agency_keys.provision(KeyStore(engine, load_master_key(config.master_key)))
    finally:
        engine.dispose()
