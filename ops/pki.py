"""A tiny private PKI for a deployment: one CA, and a leaf certificate per party.

``renkei pki init`` and ``renkei deploy init`` call this.  Each leaf carries
the party's URI SAN (``renkei.pki``), so that the parties' servers can tell
who is calling.  Only ``cryptography`` is used; keys are EC P-256, written 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from renkei.files import atomic_write
from renkei.pki import (
    HUB_ID,
    SAN_HUB,
    SAN_PREFIX_AGENCY,
    SAN_PREFIX_SERVICE,
    TlsFiles,
    party_host,
    party_of_uri,
    validate_agency_id,
)

__all__ = ["DEFAULT_VALIDITY_DAYS", "PkiLayout", "TlsFiles", "init_pki", "load_pki"]

DEFAULT_VALIDITY_DAYS = 825
_CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdate notBefore a little
_LOCAL_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class PkiLayout:
    """Where the CA and every party's files live under ``root``."""

    root: Path
    ca_cert: Path
    ca_key: Path

    @classmethod
    def at(cls, root: Path) -> PkiLayout:
        root = Path(root)
        return cls(root=root, ca_cert=root / "ca.pem", ca_key=root / "ca.key")

    @property
    def agencies_dir(self) -> Path:
        return self.root / "agencies"

    def hub(self) -> TlsFiles:
        return TlsFiles(self.ca_cert, self.root / "hub.pem", self.root / "hub.key")

    def agency(self, agency_id: str) -> TlsFiles:
        validate_agency_id(agency_id)  # also keeps the id from escaping agencies_dir
        return TlsFiles(
            self.ca_cert,
            self.agencies_dir / f"{agency_id}.pem",
            self.agencies_dir / f"{agency_id}.key",
        )

    @property
    def services_dir(self) -> Path:
        return self.root / "services"

    def service(self, name: str) -> TlsFiles:
        validate_agency_id(name)
        return TlsFiles(
            self.ca_cert, self.services_dir / f"{name}.pem", self.services_dir / f"{name}.key"
        )

    def issue_service(self, name: str) -> TlsFiles:
        """Issue (or overwrite) the certificate of a service party with the existing CA."""
        files = self.service(name)
        key, cert = _issue_leaf(
            _load_ca(self),
            _party_subject("service", name),
            SAN_PREFIX_SERVICE + name,
            DEFAULT_VALIDITY_DAYS,
        )
        self.services_dir.mkdir(parents=True, exist_ok=True)
        _write_leaf(files, key, cert)
        return files

    def issue_agency(self, agency_id: str) -> TlsFiles:
        """Issue (or overwrite) the certificate of one agency with the existing CA."""
        files = self.agency(agency_id)
        ca = _load_ca(self)
        key, cert = _issue_leaf(
            ca,
            _agency_subject(agency_id),
            SAN_PREFIX_AGENCY + agency_id,
            DEFAULT_VALIDITY_DAYS,
        )
        self.agencies_dir.mkdir(parents=True, exist_ok=True)
        _write_leaf(files, key, cert)
        return files


def init_pki(
    root: Path,
    agency_ids: Sequence[str],
    *,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    common_name: str = "renkei demo CA",
    services: Sequence[str] = (),
) -> PkiLayout:
    """Create a fresh CA plus hub and agency certificates under ``root``.

    Refuses (FileExistsError) when ``root/ca.key`` already exists, so an
    existing CA, and every certificate it signed, is never silently replaced.
    """
    if isinstance(agency_ids, str):  # a bare str is a Sequence[str] too
        raise TypeError("agency_ids must be a sequence of ids, not a single string")
    ids = list(dict.fromkeys(validate_agency_id(a) for a in agency_ids))  # dedupe, keep order
    if validity_days <= 0:
        raise ValueError(f"validity_days must be positive, got {validity_days}")
    layout = PkiLayout.at(Path(root))
    if layout.ca_key.exists():
        raise FileExistsError(
            f"{layout.ca_key} already exists: refusing to replace an existing CA; "
            "use a new directory, or issue more agencies with `load_pki(...).issue_agency(id)`"
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _build_ca(ca_key, common_name, validity_days)
    ca = _Ca(ca_key, ca_cert)

    layout.agencies_dir.mkdir(parents=True, exist_ok=True)
    _write_leaf(layout.hub(), *_issue_leaf(ca, _hub_subject(), SAN_HUB, validity_days))
    for agency_id in ids:
        leaf = _issue_leaf(
            ca, _agency_subject(agency_id), SAN_PREFIX_AGENCY + agency_id, validity_days
        )
        _write_leaf(layout.agency(agency_id), *leaf)
    if services:
        layout.services_dir.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys(validate_agency_id(s) for s in services):
        leaf = _issue_leaf(
            ca, _party_subject("service", name), SAN_PREFIX_SERVICE + name, validity_days
        )
        _write_leaf(layout.service(name), *leaf)
    # The CA goes last: if anything above failed there is no ca.key yet, so a
    # rerun is allowed and overwrites the partial leftovers.
    atomic_write(layout.ca_cert, _cert_pem(ca_cert), 0o644)
    atomic_write(layout.ca_key, _key_pem(ca_key), 0o600)
    return layout


def load_pki(root: Path) -> PkiLayout:
    """The layout of an existing PKI directory (``ca.key`` may be absent on a party)."""
    layout = PkiLayout.at(Path(root))
    if not layout.ca_cert.is_file():
        raise FileNotFoundError(
            f"no CA certificate at {layout.ca_cert}: create it with init_pki first"
        )
    return layout


# ----------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _hub_subject() -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "hub"),
            x509.NameAttribute(NameOID.COMMON_NAME, HUB_ID),
        ]
    )


def _party_subject(kind: str, name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _agency_subject(agency_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "agency"),
            # CN is informational (identity is the URI SAN); ids fit its 64-char limit.
            x509.NameAttribute(NameOID.COMMON_NAME, agency_id),
        ]
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _build_ca(key: ec.EllipticCurvePrivateKey, common_name: str, days: int) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_leaf(
    ca: _Ca, subject: x509.Name, uri: str, days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    # A leaf never outlives its CA (matters for issue_agency on an old CA).
    not_after = min(now + datetime.timedelta(days=days), ca.cert.not_valid_after_utc)
    san = x509.SubjectAlternativeName(
        [
            x509.UniformResourceIdentifier(uri),
            # The name renkei's own clients check (renkei.pki.party_host); the loopback
            # names below serve tools and tests that dial 127.0.0.1 without naming a party.
            x509.DNSName(party_host(party_of_uri(uri))),
            x509.DNSName("localhost"),
            *(x509.IPAddress(ipaddress.ip_address(a)) for a in _LOCAL_ADDRESSES),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        # Every party is both a gRPC server and a gRPC client.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return key, cert


def _load_ca(layout: PkiLayout) -> _Ca:
    if not layout.ca_key.is_file():
        raise FileNotFoundError(
            f"no CA key at {layout.ca_key}: certificates can only be issued where the CA key lives"
        )
    cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{layout.ca_key} is not an EC private key")
    if key.public_key() != cert.public_key():
        raise ValueError(f"{layout.ca_key} does not belong to {layout.ca_cert}")
    return _Ca(key, cert)


# ------------------------------------------------------------------------ writing


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_leaf(files: TlsFiles, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    atomic_write(files.key, _key_pem(key), 0o600)
    atomic_write(files.cert, _cert_pem(cert), 0o644)


# ------------------------------------------------------------ exchange certificates
# (issue 13, finding 1; renkei.exchange_cert): an agency's Ed25519 signing key and,
# in an extension, its X25519 sealing key, certified by the CA of agencies.


def agencies_ca(layout: PkiLayout) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA that issues agencies' certificates, and so their exchange certificates.

    The one place exchange certificates get their CA from (today the deployment's
    single CA)."""
    ca = _load_ca(layout)
    return ca.key, ca.cert


def agencies_ca_cert(layout: PkiLayout) -> Path:
    """The certificate communication servers trust exchange certificates under."""
    return layout.ca_cert


def sign_exchange_csr(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    agency_id: str,
    *,
    days: int = DEFAULT_VALIDITY_DAYS,
    not_before: datetime.datetime | None = None,
) -> x509.Certificate:
    """An exchange certificate for ``agency_id`` from its CSR (renkei.exchange_cert.build_csr).

    The CSR must be self-signed with an Ed25519 key, ask for exactly this agency's URI
    SAN and carry the sealing-key extension; the certificate carries only what the CA
    decides (the SAN, keyUsage digitalSignature, the sealing key), nothing else asked."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from renkei import exchange_cert

    validate_agency_id(agency_id)
    if not csr.is_signature_valid:
        raise ValueError("the exchange CSR's signature does not verify")
    public = csr.public_key()
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise ValueError("an exchange certificate certifies an Ed25519 key")
    try:
        asked = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sealing_ext = csr.extensions.get_extension_for_oid(exchange_cert.SEALING_KEY_OID).value
    except x509.ExtensionNotFound as missing:
        raise ValueError(f"the exchange CSR lacks {missing.oid.dotted_string}") from None
    if asked.get_values_for_type(x509.UniformResourceIdentifier) != [SAN_PREFIX_AGENCY + agency_id]:
        raise ValueError(f"the exchange CSR does not name agency {agency_id!r} alone")
    if not isinstance(sealing_ext, x509.UnrecognizedExtension) or sealing_ext.value[:2] != (
        b"\x04\x20"  # a DER OCTET STRING of the 32 bytes of an X25519 key
    ):
        raise ValueError("the exchange CSR's sealing-key extension is malformed")
    if len(sealing_ext.value) != 34:
        raise ValueError("the exchange CSR's sealing-key extension is malformed")
    start = (not_before or _now()) - _CLOCK_SKEW
    not_after = min(
        start + _CLOCK_SKEW + datetime.timedelta(days=days), ca_cert.not_valid_after_utc
    )
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(exchange_cert.exchange_key_usage(), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(SAN_PREFIX_AGENCY + agency_id)]
            ),
            critical=False,
        )
        .add_extension(sealing_ext, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def issue_exchange_certificate(
    layout: PkiLayout, csr: x509.CertificateSigningRequest, agency_id: str, path: Path
) -> x509.Certificate:
    """Sign an agency's exchange CSR with the agencies' CA and write the PEM to ``path``."""
    cert = sign_exchange_csr(*agencies_ca(layout), csr, agency_id)
    atomic_write(path, _cert_pem(cert), 0o644)
    return cert
