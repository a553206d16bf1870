"""Exchange certificates: issued from an agency's CSR by the agencies' CA, verified by peers
(renkei.exchange_cert, ops.pki.sign_exchange_csr); exchange signatures."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from support.exchange_certs import FakeAgenciesCa

from comm_server.keys import OwnKeys
from ops.pki import init_pki, sign_exchange_csr
from renkei import exchange_cert, sealing
from renkei.errors import PermissionDenied
from renkei.exchange_cert import SEALING_KEY_OID, ExchangeVerifier, verify_certificate
from renkei.pki import key_usage

CITY = "141003"


def _reason(err: pytest.ExceptionInfo[PermissionDenied]) -> tuple[str, str]:
    return err.value.reason, err.value.message


def test_a_certificate_binds_the_agencys_own_keys() -> None:
    ca = FakeAgenciesCa.new()
    keys, der = ca.agency(CITY)
    peer = verify_certificate(der, ca.cert, CITY)
    assert peer.agency_id == CITY
    assert sealing.public_key_bytes(peer.sealing_key) == sealing.public_key_bytes(keys.sealing)
    assert peer.signing_key == keys.signing.public_key()
    cert = x509.load_der_x509_certificate(der)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.key_agreement, usage.key_cert_sign) == (
        True,
        False,
        False,
    )
    assert (usage.key_encipherment, usage.content_commitment) == (False, False)
    extension = cert.extensions.get_extension_for_oid(SEALING_KEY_OID)
    assert not extension.critical
    assert extension.value.value == b"\x04\x20" + sealing.public_key_bytes(keys.sealing)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:renkei:agency:{CITY}"]


def test_a_certificate_of_another_ca_is_refused() -> None:
    _, der = FakeAgenciesCa.new("the hub operator's own CA").agency(CITY)
    with pytest.raises(PermissionDenied) as err:
        verify_certificate(der, FakeAgenciesCa.new().cert, CITY)
    assert err.value.reason == "PEER_CERTIFICATE_INVALID"
    assert "not issued by the agencies' CA" in err.value.message


def test_a_certificate_naming_another_agency_is_refused() -> None:
    ca = FakeAgenciesCa.new()
    _, der = ca.agency("nenkin")
    with pytest.raises(PermissionDenied) as err:
        verify_certificate(der, ca.cert, CITY)
    assert _reason(err)[0] == "PEER_CERTIFICATE_INVALID"
    assert "names another party" in err.value.message


def test_an_expired_or_not_yet_valid_certificate_is_refused() -> None:
    ca = FakeAgenciesCa.new()
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    _, der = ca.agency(CITY, days=10, not_before=long_ago)
    with pytest.raises(PermissionDenied) as err:
        verify_certificate(der, ca.cert, CITY)
    assert "not valid at this time" in err.value.message
    _, fresh = ca.agency(CITY)
    with pytest.raises(PermissionDenied):
        verify_certificate(
            fresh, ca.cert, CITY, now=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        )


def test_a_tampered_certificate_is_refused() -> None:
    ca = FakeAgenciesCa.new()
    _, der = ca.agency(CITY)
    key = sealing.public_key_bytes(sealing.generate_private_key())
    at = der.index(b"\x04\x20") + 2  # the sealing key inside the extension
    tampered = der[:at] + key + der[at + 32 :]
    with pytest.raises(PermissionDenied) as err:
        verify_certificate(tampered, ca.cert, CITY)
    assert "not issued by the agencies' CA" in err.value.message
    for bad in (b"", b"not a certificate"):
        with pytest.raises(PermissionDenied):
            verify_certificate(bad, ca.cert, CITY)


def _self_built(ca: FakeAgenciesCa, *, with_sealing_key: bool, signing: bool = True) -> bytes:
    """A certificate the CA signed without the extension (or without digitalSignature)."""
    key = ed25519.Ed25519PrivateKey.generate()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:renkei:agency:{CITY}")]
            ),
            critical=False,
        )
    )
    usage = key_usage(cert_sign=False)
    if not signing:
        usage = x509.KeyUsage(False, False, False, False, True, False, False, False, False)
    builder = builder.add_extension(usage, critical=True)
    if with_sealing_key:
        builder = builder.add_extension(
            exchange_cert.sealing_key_extension(
                sealing.public_key_bytes(sealing.generate_private_key())
            ),
            critical=False,
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_a_certificate_without_the_sealing_key_or_not_for_signing_is_refused() -> None:
    ca = FakeAgenciesCa.new()
    verify_certificate(_self_built(ca, with_sealing_key=True), ca.cert, CITY)  # the control
    with pytest.raises(PermissionDenied) as err:
        verify_certificate(_self_built(ca, with_sealing_key=False), ca.cert, CITY)
    assert f"lacks the extension {SEALING_KEY_OID.dotted_string}" in err.value.message
    with pytest.raises(PermissionDenied) as err:
        verify_certificate(_self_built(ca, with_sealing_key=True, signing=False), ca.cert, CITY)
    assert "not for signing" in err.value.message


def test_the_ca_signs_only_a_csr_that_names_the_agency_and_verifies() -> None:
    ca = FakeAgenciesCa.new()
    keys = OwnKeys(sealing.generate_private_key(), ed25519.Ed25519PrivateKey.generate())
    csr = exchange_cert.build_csr(CITY, keys.signing, sealing.public_key_bytes(keys.sealing))
    with pytest.raises(ValueError, match="does not name agency"):
        sign_exchange_csr(ca.key, ca.cert, csr, "nenkin")
    cert = sign_exchange_csr(ca.key, ca.cert, csr, CITY)
    assert cert.public_key() == keys.signing.public_key()


def test_the_verifier_caches_per_certificate_and_agency() -> None:
    ca = FakeAgenciesCa.new()
    _, der = ca.agency(CITY)
    verifier = ca.verifier()
    assert verifier.peer(der, CITY) is verifier.peer(der, CITY)
    with pytest.raises(PermissionDenied):
        verifier.peer(der, "nenkin")  # the cache is per agency too


def test_signatures_bind_the_exchange() -> None:
    ca = FakeAgenciesCa.new()
    keys, der = ca.agency(CITY)
    peer = verify_certificate(der, ca.cert, CITY)
    context = exchange_cert.query_context(CITY, "nenkin", "kind", "一", b"sealed")
    signature = exchange_cert.sign(keys.signing, context)
    exchange_cert.check_signature(peer, signature, context, reason="R", field="f")
    others = [
        exchange_cert.query_context(CITY, "nenkin", "kind", "一", b"sealed!"),
        exchange_cert.query_context(CITY, "mhlw", "kind", "一", b"sealed"),
        exchange_cert.answer_context(1, CITY, "nenkin", "kind", "一", b"sealed"),
        exchange_cert.bulk_answer_context([(0, 1)], CITY, "nenkin", "kind", "一", b"sealed"),
    ]
    for other in others:
        with pytest.raises(PermissionDenied) as err:
            exchange_cert.check_signature(peer, signature, other, reason="R", field="f")
        assert err.value.reason == "R"
    with pytest.raises(PermissionDenied):
        exchange_cert.check_signature(peer, b"", context, reason="R", field="f")


def test_the_verifier_takes_only_the_agencies_ca_from_a_bundle(tmp_path: Path) -> None:
    """A comm server whose [tls] ca_cert is roots.pem (every domain's CA) must trust
    exchange certificates of the agencies' CA alone: the hub's CA certifying a
    sealing key is what finding 1 is about."""
    pki = init_pki(tmp_path / "pki", ["141003"])
    verifier = ExchangeVerifier.from_pem_file(pki.roots)
    assert verifier.ca == pki.agencies_ca.load().cert
    hub_and_services = tmp_path / "two.pem"
    hub_and_services.write_bytes(pki.hub_ca.cert.read_bytes() + pki.services_ca.cert.read_bytes())
    with pytest.raises(ValueError, match="agencies' CAs"):
        ExchangeVerifier.from_pem_file(hub_and_services)
    with pytest.raises(ValueError, match="agencies' CAs"):
        ExchangeVerifier.from_pem_file(pki.hub_ca.cert)
