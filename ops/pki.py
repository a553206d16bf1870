"""A private PKI that mirrors who trusts whom: one CA per trust domain.

``renkei pki init`` and ``renkei deploy init`` call this; ``renkei pki issue``
and ``renkei pki revoke`` are the CA side of a real ceremony.

    <root>/hub-ca/       ca.pem, ca.key, crl.pem   issues only the hub
    <root>/agencies-ca/  ca.pem, ca.key, crl.pem   issues only agencies
    <root>/services-ca/  ca.pem, ca.key, crl.pem   issues only the services (ID issuer, ...)
    <root>/oversight-ca/ ca.pem, ca.key, crl.pem   issues only the oversight body (issue 15)
    <root>/roots.pem     the four CA certificates: what every party trusts

Each CA certificate carries Name Constraints for its domain's DNS subtree
(``renkei.pki.CA_SUBTREES``), so the TLS stack refuses a name outside it, and
servers check that a caller's certificate came from the CA of its kind
(``renkei.pki.Trust``). Each party's key is made in that party's own folder
(``<party>/tls/key.pem``, never read by anyone else), with a certificate
signing request (``request.csr``) that the CA of its domain signs: the CA puts
in the certificate only the party's URI and DNS name, whatever else the
request asks for. Keys are EC P-256, written 0600.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from renkei import exchange_cert
from renkei.files import atomic_write
from renkei.pki import (
    CA_SUBTREES,
    HUB_ID,
    OVERSIGHT_ID,
    SAN_HUB,
    SAN_OVERSIGHT,
    SAN_PREFIX_AGENCY,
    SAN_PREFIX_SERVICE,
    PartyKind,
    TlsFiles,
    ca_kind,
    key_usage,
    party_host,
    party_of_uri,
    validate_agency_id,
)

__all__ = [
    "CA_FOLDERS",
    "DEFAULT_VALIDITY_DAYS",
    "Ca",
    "CaFiles",
    "PkiLayout",
    "TlsFiles",
    "init_pki",
    "load_pki",
    "make_request",
    "revoke",
    "sign_request",
]

DEFAULT_VALIDITY_DAYS = 825
CRL_VALIDITY_DAYS = 30
_CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdate notBefore a little
CA_FOLDERS: Mapping[PartyKind, str] = {
    "hub": "hub-ca",
    "agency": "agencies-ca",
    "service": "services-ca",
    "oversight": "oversight-ca",
}
_CA_NAMES: Mapping[PartyKind, str] = {
    "hub": "hub",
    "agency": "agencies",
    "service": "services",
    "oversight": "oversight",
}
# Inside a party's folder.
TLS_FOLDER = "tls"
KEY_FILE, CERT_FILE, CSR_FILE = "key.pem", "cert.pem", "request.csr"


def party_kind(party: str) -> PartyKind:
    """``hub``, ``agency``, ``service`` or ``oversight`` for ``"hub"``, ``"agency:<id>"``,
    ``"service:<name>"``, ``"oversight"``."""
    party_host(party)  # validates
    kind = party.partition(":")[0]
    if kind in (HUB_ID, OVERSIGHT_ID):
        return "hub" if kind == HUB_ID else "oversight"
    return "agency" if kind == "agency" else "service"


def party_name(party: str) -> str:
    """The name in a party's subject: the agency id or service name, else the party itself."""
    return party.partition(":")[2] or party


def party_uri(party: str) -> str:
    kind = party_kind(party)
    name = party.partition(":")[2]
    if kind == "hub":
        return SAN_HUB
    if kind == "oversight":
        return SAN_OVERSIGHT
    return (SAN_PREFIX_AGENCY if kind == "agency" else SAN_PREFIX_SERVICE) + name


# ------------------------------------------------------------------ the CAs


@dataclass(frozen=True)
class Ca:
    """A CA's private key and certificate, loaded where the key lives."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def kind(self) -> PartyKind:
        kind = ca_kind(self.cert)
        if not kind:
            raise ValueError("this CA certificate is not constrained to one renkei domain")
        return kind


_Ca = Ca  # the name the issuing helpers below used before the split


@dataclass(frozen=True)
class CaFiles:
    """One CA's folder: ``ca.pem``, ``ca.key`` (only here) and its revocation list."""

    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def crl(self) -> Path:
        return self.folder / "crl.pem"

    def load(self) -> Ca:
        """The CA with its key (FileNotFoundError where the key does not live)."""
        if not self.key.is_file():
            raise FileNotFoundError(
                f"no CA key at {self.key}: certificates can only be issued where the CA key lives"
            )
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key} is not an EC private key")
        if key.public_key() != cert.public_key():
            raise ValueError(f"{self.key} does not belong to {self.cert}")
        return Ca(key, cert)


def create_ca(
    folder: Path, kind: PartyKind, *, common_name: str, validity_days: int = DEFAULT_VALIDITY_DAYS
) -> CaFiles:
    """A new CA for ``kind`` in ``folder`` with an empty CRL; refuses to replace a CA key."""
    files = CaFiles(Path(folder))
    if files.key.exists():
        raise FileExistsError(f"{files.key} already exists: refusing to replace an existing CA")
    key = ec.generate_private_key(ec.SECP256R1())
    ca = Ca(key, _build_ca(key, kind, common_name, validity_days))
    atomic_write(files.cert, _cert_pem(ca.cert), 0o644)
    atomic_write(files.crl, _crl_pem(ca, ()), 0o644)
    atomic_write(files.key, key_pem(key), 0o600)  # last: a rerun after a failure may start over
    return files


def write_bundle(path: Path, certs: Iterable[Path]) -> None:
    """``roots.pem``: the CA certificates every party trusts, one after another."""
    atomic_write(path, b"".join(Path(c).read_bytes() for c in certs), 0o644)


# ---------------------------------------------------------------- the parties


def make_request(folder: Path, party: str) -> Path:
    """Make ``party``'s TLS key in ``folder`` (0600) and a CSR for it; the CSR's path.

    The key never leaves ``folder``; the CSR goes to the CA of the party's domain.
    """
    uri = party_uri(party)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_party_subject(party_kind(party), party_name(party)))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri), x509.DNSName(party_host(party))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = Path(folder)
    atomic_write(folder / KEY_FILE, key_pem(key), 0o600)
    atomic_write(folder / CSR_FILE, csr.public_bytes(serialization.Encoding.PEM), 0o644)
    return folder / CSR_FILE


def requested_party(csr: x509.CertificateSigningRequest) -> str:
    """The one renkei party a CSR asks to be (its URI SAN); ValueError otherwise."""
    if not csr.is_signature_valid:
        raise ValueError("the request's signature does not match its key")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError("the request names no party (no subjectAltName URI)") from None
    parties = set()
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        try:
            parties.add(party_of_uri(uri))
        except ValueError:
            continue
    if len(parties) != 1:
        raise ValueError(f"the request must name exactly one renkei party, not {sorted(parties)}")
    party = parties.pop()
    party_host(party)  # validates the id's alphabet
    return party


def sign_request(
    ca: Ca, csr_pem: bytes, *, validity_days: int = DEFAULT_VALIDITY_DAYS
) -> x509.Certificate:
    """The certificate for the party a CSR names, if that party is in ``ca``'s domain.

    The certificate carries the party's URI and DNS name only (``party_host``),
    whatever else the request lists; ValueError for a party of another domain.
    """
    csr = x509.load_pem_x509_csr(csr_pem)
    party = requested_party(csr)
    kind = party_kind(party)
    if kind != ca.kind:
        raise ValueError(
            f"this CA issues certificates for the {_CA_NAMES[ca.kind]} only, not for {party!r}"
        )
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("the request's key is not an EC key")
    now = _now()
    not_after = min(now + datetime.timedelta(days=validity_days), ca.cert.not_valid_after_utc)
    name = party_name(party)
    san = x509.SubjectAlternativeName(
        # The URI carries identity; the DNS name is what renkei's clients check
        # (renkei.pki.party_host). No loopback names: a certificate passes only as its party.
        [x509.UniformResourceIdentifier(party_uri(party)), x509.DNSName(party_host(party))]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_party_subject(kind, name))
        .issuer_name(ca.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=False), critical=True)
        # Every party is both a gRPC server and a gRPC client.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )


def revoke(ca_files: CaFiles, serials: Iterable[int]) -> list[int]:
    """Add ``serials`` to the CA's CRL (re-signed, written next to it); the list now."""
    ca = ca_files.load()
    known: dict[int, datetime.datetime] = {}
    if ca_files.crl.is_file():
        old = x509.load_pem_x509_crl(ca_files.crl.read_bytes())
        if not old.is_signature_valid(ca.key.public_key()):
            raise ValueError(f"{ca_files.crl} is not signed by {ca_files.cert}")
        known = {r.serial_number: r.revocation_date_utc for r in old}
    for serial in serials:
        known.setdefault(int(serial), _now())
    atomic_write(ca_files.crl, _crl_pem(ca, known.items()), 0o644)
    return sorted(known)


# ------------------------------------------------------------------ the layout


@dataclass(frozen=True)
class PkiLayout:
    """Where the CAs live under ``root``, and each party's TLS files under ``parties``.

    A bare PKI (``renkei pki init``) keeps the parties under ``root`` too:
    ``hub/tls/``, ``agencies/<id>/tls/``, ``services/<name>/tls/``,
    ``oversight/tls/``. A deployment
    puts them in each party's own folder (``service_folders`` names those of
    the services).
    """

    root: Path
    parties: Path
    service_folders: tuple[tuple[str, str], ...] = ()

    @classmethod
    def at(
        cls,
        root: Path,
        *,
        parties: Path | None = None,
        service_folders: Mapping[str, str] | None = None,
    ) -> PkiLayout:
        root = Path(root)
        folders = tuple(sorted((service_folders or {}).items()))
        return cls(root, Path(parties) if parties else root, folders)

    def ca(self, kind: PartyKind) -> CaFiles:
        return CaFiles(self.root / CA_FOLDERS[kind])

    @property
    def hub_ca(self) -> CaFiles:
        return self.ca("hub")

    @property
    def agencies_ca(self) -> CaFiles:
        """The CA that issues agency certificates (``agencies_ca.load()``: key and cert)."""
        return self.ca("agency")

    @property
    def services_ca(self) -> CaFiles:
        return self.ca("service")

    @property
    def oversight_ca(self) -> CaFiles:
        return self.ca("oversight")

    @property
    def roots(self) -> Path:
        return self.root / "roots.pem"

    @property
    def ca_cert(self) -> Path:
        """What every party trusts: the bundle of the CA certificates (``CA_FOLDERS``)."""
        return self.roots

    @property
    def crls(self) -> tuple[Path, ...]:
        return tuple(self.ca(kind).crl for kind in CA_FOLDERS)

    def party_dir(self, party: str) -> Path:
        """The folder of ``party``'s TLS key, request and certificate."""
        kind = party_kind(party)
        name = party.partition(":")[2]
        if kind in ("hub", "oversight"):
            base = self.parties / party
        elif kind == "agency":
            base = self.parties / "agencies" / name
        else:
            base = self.parties / dict(self.service_folders).get(name, f"services/{name}")
        return base / TLS_FOLDER

    def files(self, party: str) -> TlsFiles:
        folder = self.party_dir(party)
        return TlsFiles(self.roots, folder / CERT_FILE, folder / KEY_FILE, self.crls)

    def hub(self) -> TlsFiles:
        return self.files(HUB_ID)

    def agency(self, agency_id: str) -> TlsFiles:
        validate_agency_id(agency_id)  # also keeps the id from escaping the folder
        return self.files(f"agency:{agency_id}")

    def service(self, name: str) -> TlsFiles:
        validate_agency_id(name)
        return self.files(f"service:{name}")

    def oversight(self) -> TlsFiles:
        """The oversight body's TLS files (``oversight/tls/``)."""
        return self.files(OVERSIGHT_ID)

    def issue(self, party: str, *, validity_days: int = DEFAULT_VALIDITY_DAYS) -> TlsFiles:
        """Make (or replace) ``party``'s key in its folder and have its domain's CA sign it.

        Only the CSR crosses from the party's folder to the CA's, and only the
        certificate back.
        """
        folder = self.party_dir(party)
        csr = make_request(folder, party)
        cert = sign_request(
            self.ca(party_kind(party)).load(), csr.read_bytes(), validity_days=validity_days
        )
        atomic_write(folder / CERT_FILE, _cert_pem(cert), 0o644)
        return self.files(party)

    def issue_service(self, name: str) -> TlsFiles:
        """Issue (or overwrite) the certificate of a service party with the services' CA."""
        return self.issue(f"service:{validate_agency_id(name)}")

    def issue_agency(self, agency_id: str) -> TlsFiles:
        """Issue (or overwrite) the certificate of one agency with the agencies' CA."""
        return self.issue(f"agency:{validate_agency_id(agency_id)}")


def init_pki(
    root: Path,
    agency_ids: Sequence[str],
    *,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    common_name: str = "renkei demo",
    services: Sequence[str] = (),
    parties: Path | None = None,
    service_folders: Mapping[str, str] | None = None,
) -> PkiLayout:
    """Create the CAs under ``root`` (``CA_FOLDERS``) plus hub, agency, service and
    oversight-body certificates.

    Refuses (FileExistsError) when any CA key already exists, so an existing
    CA, and every certificate it signed, is never silently replaced.
    """
    if isinstance(agency_ids, str):  # a bare str is a Sequence[str] too
        raise TypeError("agency_ids must be a sequence of ids, not a single string")
    ids = list(dict.fromkeys(validate_agency_id(a) for a in agency_ids))  # dedupe, keep order
    names = list(dict.fromkeys(validate_agency_id(s) for s in services))
    if validity_days <= 0:
        raise ValueError(f"validity_days must be positive, got {validity_days}")
    layout = PkiLayout.at(Path(root), parties=parties, service_folders=service_folders)
    for kind in CA_FOLDERS:
        if layout.ca(kind).key.exists():
            raise FileExistsError(
                f"{layout.ca(kind).key} already exists: refusing to replace an existing CA; "
                "use a new directory, or issue more parties with `load_pki(...).issue(party)`"
            )
    for kind in CA_FOLDERS:
        create_ca(
            layout.ca(kind).folder,
            kind,
            common_name=f"{common_name} {_CA_NAMES[kind]} CA",
            validity_days=validity_days,
        )
    write_bundle(layout.roots, (layout.ca(kind).cert for kind in CA_FOLDERS))
    issued = [HUB_ID, *(f"agency:{a}" for a in ids), *(f"service:{s}" for s in names)]
    for party in [*issued, OVERSIGHT_ID]:
        layout.issue(party, validity_days=validity_days)
    return layout


def load_pki(
    root: Path, *, parties: Path | None = None, service_folders: Mapping[str, str] | None = None
) -> PkiLayout:
    """The layout of an existing PKI directory (the CA keys may be absent)."""
    layout = PkiLayout.at(Path(root), parties=parties, service_folders=service_folders)
    if not layout.roots.is_file():
        raise FileNotFoundError(f"no CA bundle at {layout.roots}: create it with init_pki first")
    return layout


def _load_ca(layout: PkiLayout) -> Ca:
    """The agencies' CA (the one that issues agency certificates), with its key."""
    return layout.agencies_ca.load()


# ----------------------------------------------------------------------- building


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _party_subject(kind: str, name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
            # CN is informational (identity is the URI SAN); ids fit its 64-char limit.
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _hub_subject() -> x509.Name:
    return _party_subject("hub", HUB_ID)


def _agency_subject(agency_id: str) -> x509.Name:
    return _party_subject("agency", agency_id)


def _build_ca(
    key: ec.EllipticCurvePrivateKey, kind: PartyKind, common_name: str, days: int
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{_CA_NAMES[kind]} CA"),
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
        .add_extension(key_usage(cert_sign=True), critical=True)
        # The TLS stack refuses any DNS name this CA signs outside its domain.
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(CA_SUBTREES[kind])], excluded_subtrees=None
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _crl_pem(ca: Ca, revoked: Iterable[tuple[int, datetime.datetime]]) -> bytes:
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - _CLOCK_SKEW)
        .next_update(now + datetime.timedelta(days=CRL_VALIDITY_DAYS))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# ------------------------------------------------------------------------ writing


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (written 0600 where it lives)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# ------------------------------------------------------------ exchange certificates
# (issue 13, finding 1; renkei.exchange_cert): an agency's Ed25519 signing key and,
# in an extension, its X25519 sealing key, certified by the CA of agencies.


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
    try:
        exchange_cert.sealing_key_of(sealing_ext)  # what every comm server will read
    except ValueError:
        raise ValueError("the exchange CSR's sealing-key extension is malformed") from None
    now = not_before or _now()
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=False), critical=True)
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
    ca: CaFiles, csr: x509.CertificateSigningRequest, agency_id: str, path: Path
) -> x509.Certificate:
    """Sign an agency's exchange CSR with the agencies' CA in ``ca`` and write the PEM.

    Refuses (ValueError) a CA of another domain: only the agencies' CA certifies an
    agency's sealing key."""
    loaded = ca.load()
    if ca_kind(loaded.cert) not in ("agency", None):
        raise ValueError(f"{ca.folder} is not the agencies' CA; only it certifies sealing keys")
    cert = sign_exchange_csr(loaded.key, loaded.cert, csr, agency_id)
    atomic_write(path, _cert_pem(cert), 0o644)
    return cert
