"""The oversight body as a party of its own (issue 15): its CA, its certificate, its name.

Its CA is constrained to ``oversight.renkei.internal`` alone, sits in
roots.pem with its CRL, and ``Trust`` knows a certificate naming
``urn:renkei:oversight`` only when that CA issued it.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from ops import pki as ops_pki
from ops.pki import PkiLayout
from renkei import pki
from renkei.pki import SAN_OVERSIGHT, SAN_PREFIX_AGENCY, PeerIdentity, Trust

CITY = "141003"
OVERSIGHT = PeerIdentity("oversight", "oversight")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return ops_pki.init_pki(tmp_path_factory.mktemp("pki"), [CITY], common_name="test")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verifier(layout: PkiLayout) -> verification.ClientVerifier:
    roots = x509.load_pem_x509_certificates(layout.roots.read_bytes())
    return (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .time(datetime.datetime.now(datetime.UTC))
        .build_client_verifier()
    )


def _forge(layout: PkiLayout, ca: ops_pki.CaFiles, sans: list[x509.GeneralName]) -> bytes:
    """A certificate the CA's operator could sign by hand, past ``sign_request``'s checks."""
    loaded = ca.load()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "forged")]))
        .issuer_name(loaded.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(pki.key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(loaded.key.public_key()),
            critical=False,
        )
        .sign(loaded.key, hashes.SHA256())
    )
    return ops_pki._cert_pem(cert)


def test_the_oversight_party_has_its_own_name_uri_and_kind() -> None:
    assert pki.party_host("oversight") == "oversight.renkei.internal"
    assert pki.party_of_uri(SAN_OVERSIGHT) == "oversight"
    assert ops_pki.party_kind("oversight") == "oversight"
    assert ops_pki.party_uri("oversight") == SAN_OVERSIGHT
    assert pki.CA_SUBTREES["oversight"] == "oversight.renkei.internal"
    with pytest.raises(ValueError, match="oversight"):
        pki.party_host("oversight:someone")


def test_init_makes_the_oversight_ca_in_the_bundle_with_its_crl(layout: PkiLayout) -> None:
    ca = _cert(layout.oversight_ca.cert)
    assert layout.oversight_ca.folder == layout.root / "oversight-ca"
    assert pki.ca_kind(ca) == "oversight"
    nc = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert nc.value.permitted_subtrees == [x509.DNSName("oversight.renkei.internal")]
    assert ca in x509.load_pem_x509_certificates(layout.roots.read_bytes())
    assert layout.oversight_ca.crl in layout.crls
    crl = x509.load_pem_x509_crl(layout.oversight_ca.crl.read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]


def test_the_oversight_certificate_verifies_against_roots(layout: PkiLayout) -> None:
    files = layout.oversight()
    assert files.cert == layout.root / "oversight" / "tls" / "cert.pem"
    leaf = _cert(files.cert)
    leaf.verify_directly_issued_by(_cert(layout.oversight_ca.cert))
    verified = _verifier(layout).verify(leaf, [])
    assert x509.UniformResourceIdentifier(SAN_OVERSIGHT) in (verified.subjects or [])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["oversight.renkei.internal"]
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "oversight"
    assert Trust(layout.roots, layout.crls).check(files.cert.read_bytes(), OVERSIGHT) == OVERSIGHT


def test_the_oversight_ca_signs_only_the_oversight_body(layout: PkiLayout, tmp_path: Path) -> None:
    csr = ops_pki.make_request(tmp_path / "city", f"agency:{CITY}").read_bytes()
    with pytest.raises(ValueError, match="oversight only"):
        ops_pki.sign_request(layout.oversight_ca.load(), csr)
    # And no other CA signs the oversight body.
    mine = ops_pki.make_request(tmp_path / "oversight", "oversight").read_bytes()
    assert ops_pki.requested_party(x509.load_pem_x509_csr(mine)) == "oversight"
    for kind in ("hub", "agency", "service"):
        with pytest.raises(ValueError, match="not for 'oversight'"):
            ops_pki.sign_request(layout.ca(kind).load(), mine)  # type: ignore[arg-type]


def test_an_agency_name_from_the_oversight_ca_is_refused(layout: PkiLayout) -> None:
    # Its Name Constraints: an agency's DNS name from this CA fails path validation.
    named = _forge(
        layout,
        layout.oversight_ca,
        [
            x509.UniformResourceIdentifier(SAN_PREFIX_AGENCY + CITY),
            x509.DNSName(pki.party_host(f"agency:{CITY}")),
        ],
    )
    with pytest.raises(verification.VerificationError):
        _verifier(layout).verify(x509.load_pem_x509_certificate(named), [])
    # The URI alone (no DNS name to constrain): Trust knows it is not the agencies' CA.
    trust = Trust(layout.roots, layout.crls)
    bare = _forge(
        layout, layout.oversight_ca, [x509.UniformResourceIdentifier(SAN_PREFIX_AGENCY + CITY)]
    )
    assert trust.check(bare, PeerIdentity("agency", CITY)) is None


def test_no_other_ca_makes_the_oversight_body(layout: PkiLayout) -> None:
    trust = Trust(layout.roots, layout.crls)
    for kind in ("hub", "agency", "service"):
        forged = _forge(layout, layout.ca(kind), [x509.UniformResourceIdentifier(SAN_OVERSIGHT)])  # type: ignore[arg-type]
        assert trust.check(forged, OVERSIGHT) is None, kind


def test_a_revoked_oversight_certificate_is_refused(tmp_path: Path) -> None:
    from renkei.errors import Unauthenticated

    root = tmp_path / "pki"
    fresh = ops_pki.init_pki(root, [CITY])
    pem = fresh.oversight().cert.read_bytes()
    ops_pki.revoke(fresh.oversight_ca, [_cert(fresh.oversight().cert).serial_number])
    with pytest.raises(Unauthenticated, match="revocation list"):
        Trust(fresh.roots, fresh.crls, reload_seconds=0).check(pem, OVERSIGHT)
