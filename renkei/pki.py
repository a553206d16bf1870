"""A tiny private PKI and the mutual-TLS plumbing built on it.

Every party (the hub and each agency's communication server) is both a gRPC
client and a gRPC server, and each must know *who* is calling, not just that
the caller holds some certificate.  So one demo CA issues every party a leaf
certificate whose URI SAN names it (``urn:renkei:hub`` or
``urn:renkei:agency:<id>``), servers require and verify client certificates,
and ``peer_identity`` reads that URI back from the verified connection.  The
URI (rather than the CN or a DNS name) carries identity so that hostnames stay
free for ordinary TLS host verification (``localhost`` in the demo).

Only ``cryptography`` and ``grpc`` are used; keys are EC P-256, written 0600.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from renkei.files import atomic_write

HUB_ID = "hub"
SAN_PREFIX_AGENCY = "urn:renkei:agency:"
SAN_HUB = "urn:renkei:hub"
# Parties that are neither the hub nor an agency: the numbering agency, the
# resident registry, the ID issuer. Each is a separate key holder (R2).
SAN_PREFIX_SERVICE = "urn:renkei:service:"

DEFAULT_VALIDITY_DAYS = 825
_AGENCY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdate notBefore a little
_LOCAL_ADDRESSES = ("127.0.0.1", "::1")


def validate_agency_id(agency_id: str) -> str:
    """Return ``agency_id`` unchanged, or raise ValueError naming it.

    The id becomes a file name and part of a URI, hence the narrow alphabet.
    """
    if not isinstance(agency_id, str) or not _AGENCY_ID_RE.fullmatch(agency_id):
        raise ValueError(f"invalid agency id {agency_id!r}: must match {_AGENCY_ID_RE.pattern}")
    return agency_id


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class TlsFiles:
    """Paths to one party's PEM files: the CA to trust, its certificate and key."""

    ca_cert: Path
    cert: Path
    key: Path

    def server_credentials(self, *, require_client_auth: bool = True) -> grpc.ServerCredentials:
        """Server credentials; by default the client must present a cert from our CA."""
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.ca_cert.read_bytes(),
            require_client_auth=require_client_auth,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials that trust only our CA and present this party's cert."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_cert.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes(),
        )


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


# ----------------------------------------------------------------------- identity


@dataclass(frozen=True)
class PeerIdentity:
    """Who is on the other end of a verified mTLS connection."""

    kind: Literal["hub", "agency", "service"]
    party_id: str  # HUB_ID for the hub, else the agency id or service name


def _identity_from_uris(uris: Iterable[str]) -> PeerIdentity | None:
    """The single renkei identity among ``uris``; None if there is none or it is ambiguous."""
    found: set[PeerIdentity] = set()
    for uri in uris:
        if uri == SAN_HUB:
            found.add(PeerIdentity("hub", HUB_ID))
        elif uri.startswith(SAN_PREFIX_AGENCY):
            agency_id = uri.removeprefix(SAN_PREFIX_AGENCY)
            if _AGENCY_ID_RE.fullmatch(agency_id):
                found.add(PeerIdentity("agency", agency_id))
        elif uri.startswith(SAN_PREFIX_SERVICE):
            name = uri.removeprefix(SAN_PREFIX_SERVICE)
            if _AGENCY_ID_RE.fullmatch(name):
                found.add(PeerIdentity("service", name))
    return found.pop() if len(found) == 1 else None


@functools.lru_cache(maxsize=1024)
def _identity_from_pem(pem: bytes) -> PeerIdentity | None:
    """Fallback when grpc does not expose ``peer_uri``: parse the cert (cached per PEM)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    return _identity_from_uris(san.get_values_for_type(x509.UniformResourceIdentifier))


def _values(auth: Mapping[str, Any], key: str) -> list[bytes]:
    # grpc documents Iterable[bytes] per key (and returns lists, sync and aio);
    # grpc-stubs types the sync one as plain bytes, so accept both.
    raw = auth.get(key)
    if raw is None:
        return []
    if isinstance(raw, bytes):
        return [raw]
    return [v for v in raw if isinstance(v, bytes)]


def peer_identity(
    context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any],
) -> PeerIdentity | None:
    """The calling party, from the URI SAN of its verified client certificate.

    None when the call did not arrive over TLS with a client certificate (an
    insecure dev port, or a server started with ``require_client_auth=False``)
    or when the certificate carries no single renkei URI.  The certificate is
    only as trustworthy as the server credentials: ``TlsFiles.server_credentials``
    has grpc verify it against our CA before the call ever reaches a handler.
    """
    auth: Mapping[str, Any] = context.auth_context()
    if b"ssl" not in _values(auth, "transport_security_type"):
        return None
    pems = _values(auth, "x509_pem_cert")
    if not pems:  # TLS, but the client presented no certificate
        return None
    uris = _values(auth, "peer_uri")  # grpc core lists the cert's URI SANs here
    if uris:
        return _identity_from_uris(u.decode("utf-8", "replace") for u in uris)
    return _identity_from_pem(pems[0])
