"""Exchange certificates and exchange signatures (issue 13, finding 1).

Agencies seal to each other end to end, but used to take each other's X25519
sealing keys from the hub's directory: a dishonest hub could hand out a key of
its own, open every answer and re-seal it, and, HPKE's base mode naming no
sender, forge answers to a requester whose public key it knows.

So each agency holds an Ed25519 signing key (in its own key store) and an
*exchange certificate* issued by the agencies' CA: X.509, subject key the
signing key, URI SAN ``urn:renkei:agency:<id>``, keyUsage digitalSignature
only, and the agency's raw 32-byte X25519 sealing key in a private extension
(``SEALING_KEY_OID``, a DER OCTET STRING). The hub still carries the
certificates (GetAgency, ProvideRequest) but cannot make one: every
communication server checks a peer's certificate against the CA before it
seals to the key inside (``ExchangeVerifier``), and each side signs what it
seals (``query_context``/``answer_context``) and checks the other's
signature with the key the certificate binds.

Only ``cryptography`` primitives: the certificate is checked directly
against the one CA certificate (signature, issuer, validity), no path
building.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.x509.oid import NameOID

from renkei import bulk, sealing
from renkei.errors import PermissionDenied
from renkei.pki import (
    CA_SUBTREES,
    SAN_PREFIX_AGENCY,
    Trust,
    ca_kind,
    key_usage,
    validate_agency_id,
)

# renkei's private arc: 2.25.<UUID> (ITU-T X.667: an OID anyone may take without
# registering), from the UUID 6f1c5e0a-3b8d-4c7e-9a41-2d5b7e9c0f13. Arc .1 under it:
# the exchange certificate's sealing-key extension.
RENKEI_ARC = "2.25.147706101404773596017632880810513043219"
SEALING_KEY_OID = x509.ObjectIdentifier(RENKEI_ARC + ".1")

# The extension's value: a DER OCTET STRING (tag 0x04) of the key's 32 bytes.
_SEALING_KEY_DER_HEADER = bytes([0x04, sealing.PUBLIC_KEY_BYTES])

SIGNATURE_BYTES = 64
# The most certificates a communication server keeps verified (one per peer agency).
CACHE_ENTRIES = 4096


def sealing_key_extension(sealing_public: bytes) -> x509.UnrecognizedExtension:
    if len(sealing_public) != sealing.PUBLIC_KEY_BYTES:
        raise ValueError(f"an X25519 key is {sealing.PUBLIC_KEY_BYTES} bytes")
    return x509.UnrecognizedExtension(SEALING_KEY_OID, _SEALING_KEY_DER_HEADER + sealing_public)


def sealing_key_of(extension: x509.ExtensionType) -> x25519.X25519PublicKey:
    """The X25519 key a sealing-key extension holds (ValueError if it holds none): read
    alike by the CA before it signs and by every comm server before it seals."""
    der = extension.value if isinstance(extension, x509.UnrecognizedExtension) else b""
    header = _SEALING_KEY_DER_HEADER
    if len(der) != len(header) + sealing.PUBLIC_KEY_BYTES or not der.startswith(header):
        raise ValueError("is not a DER OCTET STRING of an X25519 key")
    return x25519.X25519PublicKey.from_public_bytes(der[len(header) :])


def build_csr(
    agency_id: str, signing_key: ed25519.Ed25519PrivateKey, sealing_public: bytes
) -> x509.CertificateSigningRequest:
    """The agency's request for its exchange certificate: the CA signs it, no key travels."""
    validate_agency_id(agency_id)
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renkei"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "agency exchange"),
                    x509.NameAttribute(NameOID.COMMON_NAME, agency_id),
                ]
            )
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(SAN_PREFIX_AGENCY + agency_id)]
            ),
            critical=False,
        )
        .add_extension(key_usage(cert_sign=False), critical=True)
        .add_extension(sealing_key_extension(sealing_public), critical=False)
        .sign(signing_key, None)
    )


# ------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class VerifiedPeer:
    """What a verified exchange certificate binds to one agency."""

    agency_id: str
    signing_key: ed25519.Ed25519PublicKey
    sealing_key: x25519.X25519PublicKey
    not_after: datetime.datetime
    serial: int  # on the agencies' CA's revocation list, or not


def _invalid(agency_id: str, problem: str) -> PermissionDenied:
    return PermissionDenied(
        "PEER_CERTIFICATE_INVALID",
        f"the exchange certificate given for agency {agency_id!r} {problem}; "
        "nothing was sealed to it",
        {"agency_id": agency_id},
    )


def verify_certificate(
    der: bytes,
    ca: x509.Certificate,
    agency_id: str,
    *,
    now: datetime.datetime | None = None,
) -> VerifiedPeer:
    """The keys ``der`` binds to ``agency_id``, if the agencies' CA ``ca`` issued it and it
    is in force; else PERMISSION_DENIED ``PEER_CERTIFICATE_INVALID`` saying why."""
    when = now or datetime.datetime.now(datetime.UTC)
    if not der:
        raise _invalid(agency_id, "is missing")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise _invalid(agency_id, "is not a DER X.509 certificate") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise _invalid(agency_id, "was not issued by the agencies' CA") from None
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise _invalid(agency_id, "is not valid at this time (expired or not yet valid)")
    if not ca.not_valid_before_utc <= when <= ca.not_valid_after_utc:
        raise _invalid(agency_id, "was issued by a CA certificate that is not valid now")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        sealing_ext = cert.extensions.get_extension_for_oid(SEALING_KEY_OID).value
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as missing:
        raise _invalid(agency_id, f"lacks the extension {missing.oid.dotted_string}") from None
    except ValueError:
        raise _invalid(agency_id, "has a malformed extension") from None
    if san.get_values_for_type(x509.UniformResourceIdentifier) != [SAN_PREFIX_AGENCY + agency_id]:
        raise _invalid(agency_id, "names another party")
    if basic.ca or not usage.digital_signature or usage.key_cert_sign or usage.key_agreement:
        raise _invalid(agency_id, "is not for signing exchanges")
    public = cert.public_key()
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise _invalid(agency_id, "does not certify an Ed25519 signing key")
    try:
        sealing_key = sealing_key_of(sealing_ext)
    except ValueError:
        raise _invalid(agency_id, "has a malformed sealing-key extension") from None
    return VerifiedPeer(
        agency_id, public, sealing_key, cert.not_valid_after_utc, cert.serial_number
    )


class ExchangeVerifier:
    """A communication server's check of its peers' exchange certificates, cached per
    certificate bytes and agency (a hit still checks the certificate has not expired,
    and, with ``trust``, that the agencies' CA has not revoked it since: its CRL is
    reloaded while serving, as for TLS callers)."""

    def __init__(self, ca: x509.Certificate, trust: Trust | None = None) -> None:
        self.ca = ca
        self._revoked = trust.revocations_of(ca) if trust is not None else None
        self._verified: dict[tuple[bytes, str], VerifiedPeer] = {}

    def with_revocation(self, trust: Trust) -> ExchangeVerifier:
        """The same check, refusing certificates on the agencies' CA's list in ``trust``."""
        return ExchangeVerifier(self.ca, trust)

    @classmethod
    def from_pem_file(cls, path: Path) -> ExchangeVerifier:
        """Trusting the agencies' CA in the PEM file at ``path``: the file may be the
        bundle of every domain's CA (``roots.pem``), of which only the CA whose Name
        Constraints are the agencies' domain is taken, never the hub's or the
        services'; a file of one unconstrained CA (a deployment from before the CAs
        were split) is taken as it is."""
        return cls(agencies_ca_of(x509.load_pem_x509_certificates(Path(path).read_bytes())))

    def peer(self, der: bytes, agency_id: str) -> VerifiedPeer:
        key = (der, agency_id)
        peer = self._verified.get(key)
        now = datetime.datetime.now(datetime.UTC)
        if peer is None or now > peer.not_after:
            peer = verify_certificate(der, self.ca, agency_id, now=now)
            if len(self._verified) >= CACHE_ENTRIES:
                self._verified.clear()
            self._verified[key] = peer
        if self._revoked is not None and self._revoked(peer.serial):
            raise PermissionDenied(
                "PEER_CERTIFICATE_REVOKED",
                f"agency {agency_id!r}'s exchange certificate (serial {peer.serial}) is on "
                "the agencies' CA's revocation list: nothing is sealed to it or taken from it",
                {"agency_id": agency_id},
            )
        return peer


def agencies_ca_of(certs: Sequence[x509.Certificate]) -> x509.Certificate:
    """The one certificate of ``certs`` that is the agencies' CA (ValueError if none)."""
    agencies = [c for c in certs if ca_kind(c) == "agency"]
    if len(agencies) == 1:
        return agencies[0]
    if not agencies and len(certs) == 1 and ca_kind(certs[0]) is None:
        return certs[0]
    raise ValueError(
        f"holds {len(agencies)} agencies' CAs among {len(certs)} certificates; "
        f"name the one CA whose Name Constraints permit {CA_SUBTREES['agency']}"
    )


def certificate_der(pem: bytes) -> bytes:
    """An exchange certificate's DER from its PEM (as deployments keep it)."""
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


# ------------------------------------------------------------------ signatures


def _digest(sealed: bytes) -> str:
    return hashlib.sha256(sealed).hexdigest()


def query_context(requester: str, provider: str, info_kind: str, item: str, sealed: bytes) -> bytes:
    """What a requester signs for its sealed query (single) or queries (bulk)."""
    return sealing.exchange_info(
        "query-signature", requester, provider, info_kind, item, _digest(sealed)
    )


def answer_context(
    serial: int, requester: str, provider: str, info_kind: str, item: str, sealed: bytes
) -> bytes:
    """What a provider signs for a single exchange's sealed answer."""
    return sealing.exchange_info(
        "answer-signature", serial, requester, provider, info_kind, item, _digest(sealed)
    )


def bulk_answer_context(
    pairs: Iterable[tuple[int, int]],
    requester: str,
    provider: str,
    info_kind: str,
    item: str,
    sealed: bytes,
) -> bytes:
    """What a provider signs for a bulk call's sealed answers: every (index, serial)
    answered, bound as ``renkei.bulk.answer_info`` binds them."""
    return sealing.exchange_info(
        "bulk-answer-signature",
        bulk.answers_digest(pairs),
        requester,
        provider,
        info_kind,
        item,
        _digest(sealed),
    )


def sign(key: ed25519.Ed25519PrivateKey, context: bytes) -> bytes:
    return key.sign(context)


def check_signature(
    peer: VerifiedPeer, signature: bytes, context: bytes, *, reason: str, field: str
) -> None:
    """PERMISSION_DENIED ``reason`` unless ``signature`` is ``peer``'s over ``context``."""
    try:
        if len(signature) != SIGNATURE_BYTES:
            raise InvalidSignature
        peer.signing_key.verify(signature, context)
    except InvalidSignature:
        raise PermissionDenied(
            reason,
            f"{field} is missing or is not agency {peer.agency_id!r}'s signature "
            "over this exchange (checked with its exchange certificate)",
            {"field": field, "agency_id": peer.agency_id},
        ) from None
