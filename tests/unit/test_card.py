"""renkei/card.py: the card certificate, the sign-in challenge and their checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from renkei import card
from renkei.errors import FailedPrecondition, InvalidArgument, RenkeiError, Unauthenticated

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AUDIENCE = "portal"
MAX_AGE = timedelta(minutes=5)


class Card:
    def __init__(self, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = card.build_card_certificate(ca, ca_key, self.key.public_key(), NOW)
        self.der = self.cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return card.build_card_ca(NOW - timedelta(days=1))


def _verify(
    ca_cert: x509.Certificate,
    der: bytes,
    challenge: bytes,
    signature: bytes,
    *,
    crl: x509.CertificateRevocationList | None = None,
    now: datetime = NOW,
) -> card.CardIdentity:
    return card.verify_card(
        der,
        challenge,
        signature,
        card_ca=ca_cert,
        crl=crl,
        audience=AUDIENCE,
        now=now,
        max_age=MAX_AGE,
    )


def _reason(err: pytest.ExceptionInfo[RenkeiError]) -> str:
    return err.value.reason


def test_a_good_card_signs_in(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
    c = Card(*ca)
    _, challenge = card.new_challenge(AUDIENCE, NOW)
    crl = card.build_crl(ca[0], ca[1], [], NOW)
    got = _verify(ca[0], c.der, challenge, card.sign_challenge(c.key, challenge), crl=crl)
    assert got.serial == c.cert.serial_number
    assert got.not_after == c.cert.not_valid_after_utc
    # No personal data: only the fixed CN, and marked as a card certificate.
    assert c.cert.subject.rfc4514_string() == f"CN={card.CARD_SUBJECT_CN}"
    eku = c.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert card.CARD_EKU_OID in eku
    assert c.cert.not_valid_after_utc - c.cert.not_valid_before_utc >= timedelta(days=5 * 365)


def test_a_revoked_card_is_refused(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
    c = Card(*ca)
    _, challenge = card.new_challenge(AUDIENCE, NOW)
    crl = card.build_crl(ca[0], ca[1], [(c.cert.serial_number, NOW)], NOW)
    with pytest.raises(Unauthenticated) as err:
        _verify(ca[0], c.der, challenge, card.sign_challenge(c.key, challenge), crl=crl)
    assert _reason(err) == "CARD_REVOKED"


def test_a_crl_of_another_ca_or_expired_refuses_every_card(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    c = Card(*ca)
    _, challenge = card.new_challenge(AUDIENCE, NOW)
    signature = card.sign_challenge(c.key, challenge)
    other, other_key = card.build_card_ca(NOW)
    for crl, now in (
        (card.build_crl(other, other_key, [], NOW), NOW),
        (card.build_crl(ca[0], ca[1], [], NOW - timedelta(days=60)), NOW),
    ):
        with pytest.raises(FailedPrecondition) as err:
            _verify(ca[0], c.der, challenge, signature, crl=crl, now=now)
        assert _reason(err) == "CARD_CRL_INVALID"


def test_a_card_of_another_ca_is_refused(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    foreign = Card(*card.build_card_ca(NOW))
    _, challenge = card.new_challenge(AUDIENCE, NOW)
    with pytest.raises(Unauthenticated) as err:
        _verify(ca[0], foreign.der, challenge, card.sign_challenge(foreign.key, challenge))
    assert _reason(err) == "CARD_CERTIFICATE_INVALID"


def test_an_expired_card_and_a_non_card_certificate_are_refused(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    c = Card(*ca)
    _, challenge = card.new_challenge(AUDIENCE, NOW + timedelta(days=6 * 365))
    with pytest.raises(Unauthenticated) as err:
        _verify(
            ca[0],
            c.der,
            challenge,
            card.sign_challenge(c.key, challenge),
            now=NOW + timedelta(days=6 * 365),
        )
    assert _reason(err) == "CARD_CERTIFICATE_INVALID"
    # The CA's own certificate is not a card.
    ca_der = ca[0].public_bytes(serialization.Encoding.DER)
    _, challenge = card.new_challenge(AUDIENCE, NOW)
    with pytest.raises(Unauthenticated) as err:
        _verify(ca[0], ca_der, challenge, card.sign_challenge(ca[1], challenge))
    assert _reason(err) == "CARD_CERTIFICATE_INVALID"
    with pytest.raises(Unauthenticated) as err:
        _verify(ca[0], b"not a certificate", challenge, b"")
    assert _reason(err) == "CARD_CERTIFICATE_INVALID"


def test_another_audience_is_foreign(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    c = Card(*ca)
    _, challenge = card.new_challenge("other-portal", NOW)
    with pytest.raises(Unauthenticated) as err:
        _verify(ca[0], c.der, challenge, card.sign_challenge(c.key, challenge))
    assert _reason(err) == "CARD_CHALLENGE_FOREIGN"


@pytest.mark.parametrize("age", [timedelta(minutes=6), timedelta(minutes=-3)])
def test_an_old_or_future_challenge_is_stale(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], age: timedelta
) -> None:
    c = Card(*ca)
    _, challenge = card.new_challenge(AUDIENCE, NOW - age)
    with pytest.raises(Unauthenticated) as err:
        _verify(ca[0], c.der, challenge, card.sign_challenge(c.key, challenge))
    assert _reason(err) == "CARD_CHALLENGE_STALE"


def test_a_bad_signature_is_refused(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    c, other = Card(*ca), Card(*ca)
    _, challenge = card.new_challenge(AUDIENCE, NOW)
    for signature in (card.sign_challenge(other.key, challenge), b"", b"\x30\x00junk"):
        with pytest.raises(Unauthenticated) as err:
            _verify(ca[0], c.der, challenge, signature)
        assert _reason(err) == "CARD_SIGNATURE_INVALID"
    # Signed over another challenge.
    _, second = card.new_challenge(AUDIENCE, NOW)
    with pytest.raises(Unauthenticated) as err:
        _verify(ca[0], c.der, second, card.sign_challenge(c.key, challenge))
    assert _reason(err) == "CARD_SIGNATURE_INVALID"


def test_p1363_signatures_convert_both_ways(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    c = Card(*ca)
    _, challenge = card.new_challenge(AUDIENCE, NOW)
    der = card.sign_challenge(c.key, challenge)
    raw = card.der_to_p1363(der)
    assert len(raw) == 64
    assert card.p1363_to_der(raw) == der
    assert _verify(ca[0], c.der, challenge, card.p1363_to_der(raw)).serial == c.cert.serial_number
    with pytest.raises(Unauthenticated) as err:
        card.p1363_to_der(raw[:63])
    assert _reason(err) == "CARD_SIGNATURE_INVALID"


def test_challenges_round_trip_and_malformed_ones_are_refused() -> None:
    nonce = bytes(range(32))
    challenge = card.make_challenge(AUDIENCE, nonce, NOW)
    assert challenge.startswith(b"renkei-card-signin/v1\nportal\n")
    parsed = card.parse_challenge(challenge)
    assert (parsed.audience, parsed.nonce, parsed.issued_at) == (AUDIENCE, nonce, NOW)
    for bad in (
        b"",
        b"renkei-card-signin/v1\nportal\n",
        challenge + b"\nextra",
        challenge.replace(b"2026-12-01T09:00:00Z", b"2026-12-01 09:00"),
        b"renkei-card-signin/v1\nportal\nAAAA\n2026-12-01T09:00:00Z",
    ):
        with pytest.raises(InvalidArgument) as err:
            card.parse_challenge(bad)
        assert _reason(err) == "CARD_CHALLENGE_MALFORMED"
