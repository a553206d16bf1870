"""The person's card (a model of JPKI's 利用者証明用電子証明書) and its sign-in challenge.

A card CA, run by the registry side, issues each resident an ECDSA P-256 key
and a certificate that carries no personal data: the subject is only the CN
``CARD_SUBJECT_CN``, the serial is random, and the extended key usage
``CARD_EKU_OID`` marks it as a card certificate (so no other certificate of
the same CA, or of any CA, signs a person in). Validity: five years.

Sign-in: a party (the portal) hands out a challenge naming itself (the
audience), a random nonce and the time; the card key signs it; the party and
the registry's ``BindCard`` both check it with ``verify_card``. The same
signed challenge is good at both, and only for that audience and a short time.
Browsers (WebCrypto) sign in IEEE P1363 form (r||s); ``p1363_to_der`` turns
that into the DER form ``verify_card`` takes.

Kernel: the registry's binding party, the portal and the counter use it.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from renkei.errors import FailedPrecondition, InvalidArgument, Unauthenticated
from renkei.exchange_cert import RENKEI_ARC

# Arc .2 of renkei's private arc (renkei/exchange_cert.py): a card user certificate.
CARD_EKU_OID = x509.ObjectIdentifier(RENKEI_ARC + ".2")
CARD_SUBJECT_CN = "利用者証明用電子証明書"
CARD_CA_CN = "renkei card CA (利用者証明用電子証明書 発行者)"
CARD_VALIDITY = timedelta(days=5 * 365)
CARD_CA_VALIDITY = timedelta(days=10 * 365)
CRL_VALIDITY = timedelta(days=30)
CHALLENGE_PREFIX = b"renkei-card-signin/v1\n"
NONCE_BYTES = 32
MAX_CHALLENGE_BYTES = 512
# Clocks differ a little between the party that issued a challenge and one that checks it.
CLOCK_SKEW = timedelta(minutes=2)
_P256_BYTES = 32
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class CardIdentity:
    """What a verified card tells: its certificate's serial and when it ends."""

    serial: int
    not_after: datetime


@dataclass(frozen=True, slots=True)
class Challenge:
    audience: str
    nonce: bytes
    issued_at: datetime


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_challenge(audience: str, nonce: bytes, issued_at: datetime) -> bytes:
    """``renkei-card-signin/v1\\n<audience>\\n<base64url nonce>\\n<UTC time, seconds>``."""
    if not audience or "\n" in audience:
        raise ValueError("the audience must be one non-empty line")
    if len(nonce) < 16:
        raise ValueError("the nonce must be at least 16 bytes")
    when = issued_at.astimezone(UTC).strftime(_TIME_FORMAT)
    return CHALLENGE_PREFIX + f"{audience}\n{_b64url(nonce)}\n{when}".encode()


def new_challenge(audience: str, now: datetime) -> tuple[bytes, bytes]:
    """(a fresh random nonce, the challenge made of it)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, make_challenge(audience, nonce, now)


def parse_challenge(challenge: bytes) -> Challenge:
    """The challenge's parts; InvalidArgument ``CARD_CHALLENGE_MALFORMED`` if it is not one."""

    def bad(why: str) -> InvalidArgument:
        return InvalidArgument("CARD_CHALLENGE_MALFORMED", f"not a sign-in challenge: {why}")

    if len(challenge) > MAX_CHALLENGE_BYTES or not challenge.startswith(CHALLENGE_PREFIX):
        raise bad("wrong prefix or too long")
    try:
        audience, nonce_text, when = challenge[len(CHALLENGE_PREFIX) :].decode().split("\n")
        nonce = _unb64url(nonce_text)
        issued_at = datetime.strptime(when, _TIME_FORMAT).replace(tzinfo=UTC)
    except (UnicodeDecodeError, ValueError, binascii.Error):
        raise bad("three lines of audience, nonce and time expected") from None
    if not audience or len(nonce) < 16 or make_challenge(audience, nonce, issued_at) != challenge:
        raise bad("not in canonical form")
    return Challenge(audience, nonce, issued_at)


def sign_challenge(key: ec.EllipticCurvePrivateKey, challenge: bytes) -> bytes:
    """The card's signature: ECDSA P-256 SHA-256, DER (for the counter and tests)."""
    return key.sign(challenge, ec.ECDSA(hashes.SHA256()))


def p1363_to_der(signature: bytes) -> bytes:
    """WebCrypto's raw r||s (64 bytes for P-256) as a DER ECDSA signature."""
    if len(signature) != 2 * _P256_BYTES:
        raise Unauthenticated(
            "CARD_SIGNATURE_INVALID", f"a P-256 raw signature is 64 bytes, not {len(signature)}"
        )
    r = int.from_bytes(signature[:_P256_BYTES], "big")
    s = int.from_bytes(signature[_P256_BYTES:], "big")
    return encode_dss_signature(r, s)


def der_to_p1363(signature: bytes) -> bytes:
    """A DER ECDSA P-256 signature as raw r||s (what a browser would send)."""
    r, s = decode_dss_signature(signature)
    return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")


def _certificate(cert_der: bytes, card_ca: x509.Certificate, now: datetime) -> x509.Certificate:
    def invalid(why: str) -> Unauthenticated:
        return Unauthenticated("CARD_CERTIFICATE_INVALID", f"not a valid card certificate: {why}")

    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise invalid("not a DER certificate") from None
    try:
        cert.verify_directly_issued_by(card_ca)
    except (ValueError, TypeError, InvalidSignature):
        raise invalid("not issued by the card CA") from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise invalid(f"valid {cert.not_valid_before_utc} to {cert.not_valid_after_utc} only")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise invalid("no extended key usage") from None
    if CARD_EKU_OID not in eku:
        raise invalid("not marked as a card certificate")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise invalid("not an ECDSA P-256 key")
    return cert


def _check_crl(
    cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    card_ca: x509.Certificate,
    now: datetime,
) -> None:
    ca_key = card_ca.public_key()
    if (
        not isinstance(ca_key, ec.EllipticCurvePublicKey)
        or crl.issuer != card_ca.subject
        or not crl.is_signature_valid(ca_key)
    ):
        raise FailedPrecondition(
            "CARD_CRL_INVALID", "the card CA's revocation list does not verify"
        )
    if crl.next_update_utc is not None and crl.next_update_utc < now:
        raise FailedPrecondition(
            "CARD_CRL_INVALID", f"the card CA's revocation list expired {crl.next_update_utc}"
        )
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        raise Unauthenticated("CARD_REVOKED", f"card {cert.serial_number} is revoked")


def verify_card(
    cert_der: bytes,
    challenge: bytes,
    signature: bytes,
    *,
    card_ca: x509.Certificate,
    crl: x509.CertificateRevocationList | None,
    audience: str,
    now: datetime,
    max_age: timedelta,
) -> CardIdentity:
    """The card that signed ``challenge`` for ``audience`` within ``max_age`` of ``now``.

    Checks, in order: the certificate (the card CA's, valid now, a card
    certificate), the revocation list (when given; one that does not verify
    or has expired refuses every card: fail closed), the signature (DER),
    then the challenge's audience and age. Raises Unauthenticated with a
    ``CARD_*`` reason, or InvalidArgument ``CARD_CHALLENGE_MALFORMED``.
    """
    cert = _certificate(cert_der, card_ca, now)
    if crl is not None:
        _check_crl(cert, crl, card_ca, now)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # _certificate checked it
    try:
        key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise Unauthenticated(
            "CARD_SIGNATURE_INVALID", "the signature is not the card's over this challenge"
        ) from None
    parsed = parse_challenge(challenge)
    if parsed.audience != audience:
        raise Unauthenticated(
            "CARD_CHALLENGE_FOREIGN",
            f"the challenge was made for {parsed.audience!r}, not {audience!r}",
        )
    if not now - max_age <= parsed.issued_at <= now + CLOCK_SKEW:
        raise Unauthenticated(
            "CARD_CHALLENGE_STALE", f"the challenge of {parsed.issued_at} is too old or early"
        )
    return CardIdentity(cert.serial_number, cert.not_valid_after_utc)


# Issuing (the registry side's card CA, ops and tests).


def build_card_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new card CA: a P-256 key and its self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CARD_CA_CN)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CARD_CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def build_card_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    *,
    serial: int | None = None,
    validity: timedelta = CARD_VALIDITY,
) -> x509.Certificate:
    """A card certificate for ``public_key``: no personal data, a random serial."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CARD_SUBJECT_CN)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([CARD_EKU_OID, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def build_crl(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    revoked: Iterable[tuple[int, datetime]],
    now: datetime,
) -> x509.CertificateRevocationList:
    """The card CA's revocation list of ``(serial, revoked at)``, valid ``CRL_VALIDITY``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + CRL_VALIDITY)
    )
    for serial, at in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(at.astimezone(UTC))
            .build()
        )
    return builder.sign(ca_key, hashes.SHA256())


class CardTrust:
    """The card CA's certificate and its revocation list, the list re-read when its file changes.

    A missing list file refuses every card (``CARD_CRL_INVALID``): the card
    CA always writes one, so its absence is a deployment fault, not a clean bill.
    """

    def __init__(self, ca_cert: Path, crl: Path | None) -> None:
        self.ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        self._crl_path = crl
        self._crl: x509.CertificateRevocationList | None = None
        self._mtime: int | None = None

    def crl(self) -> x509.CertificateRevocationList | None:
        if self._crl_path is None:
            return None
        try:
            mtime = self._crl_path.stat().st_mtime_ns
        except FileNotFoundError:
            raise FailedPrecondition(
                "CARD_CRL_INVALID", f"the card CA's revocation list {self._crl_path} is missing"
            ) from None
        if mtime != self._mtime:
            try:
                self._crl = x509.load_pem_x509_crl(self._crl_path.read_bytes())
            except ValueError:
                raise FailedPrecondition(
                    "CARD_CRL_INVALID", f"{self._crl_path} is not a PEM revocation list"
                ) from None
            self._mtime = mtime
        return self._crl

    def verify(
        self,
        cert_der: bytes,
        challenge: bytes,
        signature: bytes,
        *,
        audience: str,
        now: datetime,
        max_age: timedelta,
    ) -> CardIdentity:
        """``verify_card`` against this CA and its current revocation list."""
        return verify_card(
            cert_der,
            challenge,
            signature,
            card_ca=self.ca,
            crl=self.crl(),
            audience=audience,
            now=now,
            max_age=max_age,
        )
