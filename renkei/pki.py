"""Mutual TLS between renkei's parties: the files each presents and who the peer is.

Every party (the hub and each agency's communication server) is both a gRPC
client and a gRPC server, and each must know *who* is calling, not just that
the caller holds some certificate.  Each party's leaf certificate carries a
URI SAN that names it (``urn:renkei:hub``, ``urn:renkei:agency:<id>`` or
``urn:renkei:service:<name>``), servers require and verify client
certificates, and ``peer_identity`` reads that URI back from the verified
connection.  The URI (rather than the CN or a DNS name) carries identity so
that hostnames stay free for ordinary TLS host verification.

Issuing certificates is the deployment tooling's business (``ops.pki``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
from cryptography import x509

HUB_ID = "hub"
SAN_PREFIX_AGENCY = "urn:renkei:agency:"
SAN_HUB = "urn:renkei:hub"
# Parties that are neither the hub nor an agency: the numbering agency, the
# resident registry, the ID issuer. Each is a separate key holder (R2).
SAN_PREFIX_SERVICE = "urn:renkei:service:"

AGENCY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Each leaf certificate also carries a DNS name of its party under this domain, and
# every renkei client checks the server's certificate against the name of the party
# it means to reach (grpc.ssl_target_name_override), not merely against the CA: a
# server holding another party's valid certificate fails the handshake (issue 13).
PARTY_DOMAIN = "renkei.internal"


def party_host(party: str) -> str:
    """The DNS name of ``"hub"``, ``"agency:<id>"`` or ``"service:<name>"``."""
    if party == HUB_ID:
        return f"hub.{PARTY_DOMAIN}"
    kind, sep, name = party.partition(":")
    if not sep or kind not in ("agency", "service"):
        raise ValueError(f"party {party!r} is not 'hub', 'agency:<id>' or 'service:<name>'")
    return f"{validate_agency_id(name)}.{kind}.{PARTY_DOMAIN}"


def party_of_uri(uri: str) -> str:
    """The party a certificate's URI SAN names, as ``party_host`` takes it."""
    if uri == SAN_HUB:
        return HUB_ID
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
