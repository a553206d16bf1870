"""Mutual TLS between renkei's parties: the files each presents and who the peer is.

Every party (the hub and each agency's communication server) is both a gRPC
client and a gRPC server, and each must know *who* is calling, not just that
the caller holds some certificate.  Each party's leaf certificate carries a
URI SAN that names it (``urn:renkei:hub``, ``urn:renkei:agency:<id>``,
``urn:renkei:service:<name>`` or ``urn:renkei:oversight``), servers require and verify client
certificates, and ``peer_identity`` reads that URI back from the verified
connection.  The URI (rather than the CN or a DNS name) carries identity so
that hostnames stay free for ordinary TLS host verification.

Trust mirrors who trusts whom (issue 13, finding 3): one certificate
authority per trust domain (the hub's, the agencies', the services', and the
oversight body's, issue 15), each restricted by X.509 Name Constraints to its
domain's DNS names (``CA_SUBTREES``), and every party trusts the bundle of
them all (``roots.pem``).
grpc (BoringSSL) enforces the constraints in the handshake; the URI SAN that
carries identity is not a DNS name, so ``Trust`` also checks on the server
side that a caller's certificate was issued by the CA of its kind, and that it
is not on that CA's revocation list (CRLs reloaded while serving).

Issuing certificates is the deployment tooling's business (``ops.pki``).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from renkei.errors import Unauthenticated
from renkei.logs import event

_log = logging.getLogger("renkei.pki")

HUB_ID = "hub"
SAN_PREFIX_AGENCY = "urn:renkei:agency:"
SAN_HUB = "urn:renkei:hub"
# Parties that are neither the hub nor an agency: the numbering agency, the
# resident registry, the ID issuer. Each is a separate key holder (R2).
SAN_PREFIX_SERVICE = "urn:renkei:service:"
# The oversight body (第三者機関, R27): reads every log share, sets legal holds.
SAN_OVERSIGHT = "urn:renkei:oversight"
OVERSIGHT_ID = "oversight"

AGENCY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Each leaf certificate also carries a DNS name of its party under this domain, and
# every renkei client checks the server's certificate against the name of the party
# it means to reach (grpc.ssl_target_name_override), not merely against the CA: a
# server holding another party's valid certificate fails the handshake (issue 13).
PARTY_DOMAIN = "renkei.internal"

PartyKind = Literal["hub", "agency", "service", "oversight"]
# The one DNS subtree each domain's CA may issue names in (its Name Constraints).
# A leading dot: subdomains only, so the agencies' CA cannot name agency.renkei.internal.
CA_SUBTREES: Mapping[PartyKind, str] = {
    "hub": f"hub.{PARTY_DOMAIN}",
    "agency": f".agency.{PARTY_DOMAIN}",
    "service": f".service.{PARTY_DOMAIN}",
    # One party, like the hub: its CA can name nobody else.
    "oversight": f"oversight.{PARTY_DOMAIN}",
}
DEFAULT_CRL_RELOAD_SECONDS = 5.0


def key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """keyUsage of renkei's certificates: digital signatures, and for a CA also
    certificates and CRLs. Leaves (TLS and exchange certificates alike) sign only."""
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


def party_host(party: str) -> str:
    """The DNS name of ``"hub"``, ``"agency:<id>"``, ``"service:<name>"`` or ``"oversight"``."""
    if party in (HUB_ID, OVERSIGHT_ID):
        return f"{party}.{PARTY_DOMAIN}"
    kind, sep, name = party.partition(":")
    if not sep or kind not in ("agency", "service"):
        raise ValueError(
            f"party {party!r} is not 'hub', 'agency:<id>', 'service:<name>' or 'oversight'"
        )
    return f"{validate_agency_id(name)}.{kind}.{PARTY_DOMAIN}"


def party_of_uri(uri: str) -> str:
    """The party a certificate's URI SAN names, as ``party_host`` takes it."""
    if uri == SAN_HUB:
        return HUB_ID
    if uri == SAN_OVERSIGHT:
        return OVERSIGHT_ID
    for prefix, kind in ((SAN_PREFIX_AGENCY, "agency"), (SAN_PREFIX_SERVICE, "service")):
        if uri.startswith(prefix):
            return f"{kind}:{uri.removeprefix(prefix)}"
    raise ValueError(f"{uri!r} names no renkei party")


def validate_agency_id(agency_id: str) -> str:
    """Return ``agency_id`` unchanged, or raise ValueError naming it.

    The id becomes a file name and part of a URI, hence the narrow alphabet.
    """
    if not isinstance(agency_id, str) or not AGENCY_ID_RE.fullmatch(agency_id):
        raise ValueError(f"invalid agency id {agency_id!r}: must match {AGENCY_ID_RE.pattern}")
    return agency_id


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class TlsFiles:
    """Paths to one party's PEM files: the CAs to trust, its certificate and key.

    ``ca_cert`` is one CA certificate or a bundle of them (a deployment's
    ``roots.pem``: the hub's, the agencies', the services' and the oversight
    body's CA). ``crls`` are the CAs' revocation lists, which a server checks its callers against,
    reloaded (by mtime) at most every ``crl_reload_seconds``.
    """

    ca_cert: Path
    cert: Path
    key: Path
    crls: tuple[Path, ...] = ()
    crl_reload_seconds: float = DEFAULT_CRL_RELOAD_SECONDS

    def trust(self) -> Trust:
        """What a server checks its callers' certificates against (``Trust``)."""
        return Trust(self.ca_cert, self.crls, reload_seconds=self.crl_reload_seconds)

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


# ----------------------------------------------------------------------- identity


@dataclass(frozen=True)
class PeerIdentity:
    """Who is on the other end of a verified mTLS connection."""

    kind: PartyKind
    # HUB_ID, OVERSIGHT_ID, or the agency id or service name.
    party_id: str


def identity_of_uri(uri: str) -> PeerIdentity | None:
    """The renkei party a URI SAN names (None: none)."""
    return _identity_from_uris((uri,))


def identity_of_uris(uris: Iterable[str]) -> PeerIdentity | None:
    """The single renkei party a certificate's URI SANs name (None: none, or several)."""
    return _identity_from_uris(uris)


def _identity_from_uris(uris: Iterable[str]) -> PeerIdentity | None:
    """The single renkei identity among ``uris``; None if there is none or it is ambiguous."""
    found: set[PeerIdentity] = set()
    for uri in uris:
        if uri == SAN_HUB:
            found.add(PeerIdentity("hub", HUB_ID))
        elif uri == SAN_OVERSIGHT:
            found.add(PeerIdentity("oversight", OVERSIGHT_ID))
        elif uri.startswith(SAN_PREFIX_AGENCY):
            agency_id = uri.removeprefix(SAN_PREFIX_AGENCY)
            if AGENCY_ID_RE.fullmatch(agency_id):
                found.add(PeerIdentity("agency", agency_id))
        elif uri.startswith(SAN_PREFIX_SERVICE):
            name = uri.removeprefix(SAN_PREFIX_SERVICE)
            if AGENCY_ID_RE.fullmatch(name):
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
    trust: Trust | None = None,
) -> PeerIdentity | None:
    """The calling party, from the URI SAN of its verified client certificate.

    None when the call did not arrive over TLS with a client certificate (an
    insecure dev port, or a server started with ``require_client_auth=False``)
    or when the certificate carries no single renkei URI.  The certificate is
    only as trustworthy as the server credentials: ``TlsFiles.server_credentials``
    has grpc verify it against our CAs before the call ever reaches a handler.

    With ``trust`` (every renkei server passes its own, ``start_server``), the
    certificate must also come from the CA of the identity's kind (else None:
    the hub's CA cannot make an agency), and one on its CA's revocation list
    raises ``Unauthenticated`` (CERTIFICATE_REVOKED).
    """
    auth: Mapping[str, Any] = context.auth_context()
    if b"ssl" not in _values(auth, "transport_security_type"):
        return None
    pems = _values(auth, "x509_pem_cert")
    if not pems:  # TLS, but the client presented no certificate
        return None
    uris = _values(auth, "peer_uri")  # grpc core lists the cert's URI SANs here
    if uris:
        identity = _identity_from_uris(u.decode("utf-8", "replace") for u in uris)
    else:
        identity = _identity_from_pem(pems[0])
    if identity is None or trust is None:
        return identity
    return trust.check(pems[0], identity)


# -------------------------------------------------------------- trust domains


def ca_kind(cert: x509.Certificate) -> PartyKind | Literal[""] | None:
    """The domain a CA certificate may issue for, read from its Name Constraints.

    None: an unconstrained CA (a deployment from before the split, one CA for
    all), trusted for every kind. ``""``: constrained, but to no renkei domain.
    """
    try:
        nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    dns = {n.value for n in nc.permitted_subtrees or () if isinstance(n, x509.DNSName)}
    for kind, subtree in CA_SUBTREES.items():
        if dns == {subtree}:
            return kind
    return ""


def _key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _authority_key_id(cert: x509.Certificate | x509.CertificateRevocationList) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    kind: PartyKind | Literal[""] | None
    key_id: bytes | None

    def issued(self, other: x509.Certificate | x509.CertificateRevocationList) -> bool:
        """Whether ``other`` (a leaf or a CRL) names this CA as issuer and bears its signature."""
        if other.issuer != self.cert.subject:
            return False
        aki = _authority_key_id(other)
        if aki is not None and self.key_id is not None and aki != self.key_id:
            return False
        try:
            if isinstance(other, x509.CertificateRevocationList):
                return other.is_signature_valid(self.cert.public_key())  # type: ignore[arg-type]
            other.verify_directly_issued_by(self.cert)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True


class Trust:
    """The CAs of a bundle, each for its domain, and their revocation lists.

    ``check`` is cached per certificate PEM (the issuer found, or none); the
    revocation lists are reloaded when their files change, looked at no more
    often than every ``reload_seconds``. A list not signed by one of the CAs is
    refused when loaded (logged) and the last good one of that file is kept.
    """

    _CACHE_LIMIT = 4096

    def __init__(
        self,
        roots: Path,
        crls: Sequence[Path] = (),
        *,
        reload_seconds: float = DEFAULT_CRL_RELOAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuers = [
            _Issuer(c, ca_kind(c), _key_id(c))
            for c in x509.load_pem_x509_certificates(Path(roots).read_bytes())
        ]
        self._crl_paths = tuple(Path(p) for p in crls)
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._checked_at: float | None = None
        self._seen: dict[Path, tuple[int, int]] = {}  # path -> (mtime_ns, size) last read
        self._revoked: dict[Path, tuple[int, frozenset[int]]] = {}  # path -> (issuer, serials)
        self._leaves: dict[bytes, tuple[int, int] | None] = {}  # pem -> (issuer, serial)

    @property
    def issuers(self) -> tuple[x509.Certificate, ...]:
        return tuple(i.cert for i in self._issuers)

    def check(self, pem: bytes, identity: PeerIdentity) -> PeerIdentity | None:
        """``identity`` if the CA of its kind issued ``pem`` and has not revoked it."""
        if pem in self._leaves:
            found = self._leaves[pem]
        else:
            found = self._issuer_of(pem)
            if len(self._leaves) >= self._CACHE_LIMIT:
                self._leaves.clear()
            self._leaves[pem] = found
        if found is None:
            return None
        index, serial = found
        if self._issuers[index].kind not in (None, identity.kind):
            kind = self._issuers[index].kind
            event(
                _log, "certificate of the wrong CA", logging.WARNING, party=identity.kind, ca=kind
            )
            return None
        if self.revoked(index, serial):
            raise Unauthenticated(
                "CERTIFICATE_REVOKED",
                f"the caller's certificate (serial {serial}) is on its CA's revocation list",
            )
        return identity

    def _issuer_of(self, pem: bytes) -> tuple[int, int] | None:
        try:
            leaf = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return None
        for index, issuer in enumerate(self._issuers):
            if issuer.issued(leaf):
                return index, leaf.serial_number
        return None

    def revocations_of(self, ca: x509.Certificate) -> Callable[[int], bool]:
        """Whether ``ca``, one of the bundle's CAs, has revoked a serial (its list as
        reloaded); the CA is found once here, not on every check."""
        for index, issuer in enumerate(self._issuers):
            if issuer.cert == ca:
                return functools.partial(self.revoked, index)
        return lambda serial: False  # a CA outside the bundle has no list here

    def revoked(self, issuer: int, serial: int) -> bool:
        self._maybe_reload()
        return any(i == issuer and serial in s for i, s in self._revoked.values())

    def _maybe_reload(self) -> None:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._reload_seconds:
            return
        self._checked_at = now
        for path in self._crl_paths:
            try:
                st = path.stat()
            except OSError:
                continue  # not there (yet): the last good list, if any, stays
            stamp = (st.st_mtime_ns, st.st_size)
            if self._seen.get(path) == stamp:
                continue
            self._seen[path] = stamp
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = path.read_bytes()
            crl = (
                x509.load_pem_x509_crl(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_crl(data)
            )
        except (OSError, ValueError) as err:
            event(
                _log,
                "CRL unreadable, last good one kept",
                logging.ERROR,
                path=str(path),
                error=str(err),
            )
            return
        for index, issuer in enumerate(self._issuers):
            if issuer.issued(crl):
                self._revoked[path] = (index, frozenset(r.serial_number for r in crl))
                event(_log, "CRL loaded", path=str(path), revoked=len(self._revoked[path][1]))
                return
        event(_log, "CRL not signed by a trusted CA, refused", logging.ERROR, path=str(path))
