"""Unit tests for renkei.pki: what init_pki writes, and how identities are read back.

The certificates are inspected with ``cryptography`` directly, so a mistake in
the builder (a missing EKU, a wrong SAN) fails here rather than as an opaque
TLS handshake error in the integration tests.
"""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ops import pki as ops_pki
from ops.pki import PkiLayout
from renkei import pki
from renkei.errors import RenkeiError
from renkei.files import atomic_write
from renkei.pki import PeerIdentity, TlsFiles

AGENCIES = ("city-001", "nta.tax", "mhlw_pension")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return ops_pki.init_pki(tmp_path_factory.mktemp("pki") / "ca", AGENCIES, common_name="test CA")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _all_files(layout: PkiLayout) -> list[TlsFiles]:
    return [layout.hub(), *(layout.agency(a) for a in AGENCIES)]


def _ca_of(layout: PkiLayout, party: str) -> x509.Certificate:
    return _cert(layout.ca(ops_pki.party_kind(party)).cert)


# ------------------------------------------------------------------ init_pki


def test_init_creates_expected_files(tmp_path: Path) -> None:
    root = tmp_path / "fresh" / "pki"  # parents are created too
    layout = ops_pki.init_pki(root, AGENCIES)
    assert layout.root == root
    assert layout.ca_cert == layout.roots == root / "roots.pem"
    assert layout.agencies_ca.key == root / "agencies-ca" / "ca.key"
    assert layout.hub() == TlsFiles(
        root / "roots.pem", root / "hub/tls/cert.pem", root / "hub/tls/key.pem", layout.crls
    )
    assert layout.agency("nta.tax").cert == root / "agencies" / "nta.tax" / "tls" / "cert.pem"
    expected = {
        f"{ca}/{f}"
        for ca in ("hub-ca", "agencies-ca", "services-ca", "oversight-ca")
        for f in ("ca.pem", "ca.key", "crl.pem")
    } | {"roots.pem", "hub/tls/key.pem", "hub/tls/cert.pem", "hub/tls/request.csr"}
    expected |= {f"oversight/tls/{f}" for f in ("key.pem", "cert.pem", "request.csr")}
    expected |= {
        f"agencies/{a}/tls/{f}" for a in AGENCIES for f in ("key.pem", "cert.pem", "request.csr")
    }
    found = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert found == expected  # in particular: no leftover temp files


def test_private_keys_are_0600(layout: PkiLayout) -> None:
    cas = [layout.ca(kind) for kind in ops_pki.CA_FOLDERS]
    keys = [*(ca.key for ca in cas), *(f.key for f in _all_files(layout))]
    assert {k: _mode(k) for k in keys} == {k: 0o600 for k in keys}
    assert {_mode(ca.cert) for ca in cas} == {0o644}


@pytest.mark.parametrize(
    ("kind", "subtree"),
    [
        ("hub", "hub.renkei.internal"),
        ("agency", ".agency.renkei.internal"),
        ("service", ".service.renkei.internal"),
    ],
)
def test_each_ca_is_constrained_to_its_domain(
    layout: PkiLayout, kind: pki.PartyKind, subtree: str
) -> None:
    ca = _cert(layout.ca(kind).cert)
    assert ca.subject == ca.issuer
    assert "test" in ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    ca.verify_directly_issued_by(ca)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign
    assert ku.crl_sign
    nc = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert nc.value.permitted_subtrees == [x509.DNSName(subtree)]
    assert pki.ca_kind(ca) == kind
    crl = x509.load_pem_x509_crl(layout.ca(kind).crl.read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0


def test_the_bundle_holds_the_three_cas(layout: PkiLayout) -> None:
    bundle = x509.load_pem_x509_certificates(layout.roots.read_bytes())
    kinds = ("hub", "agency", "service", "oversight")
    assert bundle == [_cert(layout.ca(kind).cert) for kind in kinds]


@pytest.mark.parametrize(
    ("party", "uri"),
    [("hub", pki.SAN_HUB), *((f"agency:{a}", pki.SAN_PREFIX_AGENCY + a) for a in AGENCIES)],
)
def test_leaf_certificates_name_their_party_only(layout: PkiLayout, party: str, uri: str) -> None:
    files = layout.files(party)
    ca, leaf = _ca_of(layout, party), _cert(files.cert)
    leaf.verify_directly_issued_by(ca)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    # No localhost, no loopback addresses: a certificate passes only as its party.
    assert san.get_values_for_type(x509.DNSName) == [pki.party_host(party)]
    assert san.get_values_for_type(x509.IPAddress) == []
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()


def test_second_init_refuses(layout: PkiLayout) -> None:
    before = layout.agencies_ca.key.read_bytes()
    with pytest.raises(FileExistsError, match=r"ca\.key already exists"):
        ops_pki.init_pki(layout.root, ["other"])
    assert layout.agencies_ca.key.read_bytes() == before
    assert not layout.agency("other").cert.exists()


def test_init_into_existing_empty_dir(tmp_path: Path) -> None:
    result = ops_pki.init_pki(tmp_path, [])
    assert result.hub_ca.key.is_file()
    assert result.hub().cert.is_file()


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", "-lead", ".hidden", "x" * 65, "ä", "a b"])
def test_invalid_agency_id_rejected(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "pki"
    with pytest.raises(ValueError, match="invalid agency id") as exc:
        ops_pki.init_pki(root, ["ok", bad])
    assert repr(bad) in str(exc.value)
    assert not root.exists()  # validated before anything is written
    with pytest.raises(ValueError, match="invalid agency id"):
        PkiLayout.at(root).agency(bad)


def test_longest_valid_agency_id(tmp_path: Path) -> None:
    longest = "A" + "b" * 63
    assert ops_pki.init_pki(tmp_path, [longest]).agency(longest).cert.is_file()


def test_bare_string_is_not_a_list_of_ids(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        ops_pki.init_pki(tmp_path, "city-001")


# ------------------------------------------------------------- load / issue


def test_load_pki_and_issue_agency(layout: PkiLayout) -> None:
    loaded = ops_pki.load_pki(layout.root)
    assert loaded == layout
    files = loaded.issue_agency("newcomer")
    assert files == layout.agency("newcomer")
    assert _mode(files.key) == 0o600
    leaf = _cert(files.cert)
    leaf.verify_directly_issued_by(_cert(layout.agencies_ca.cert))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        pki.SAN_PREFIX_AGENCY + "newcomer"
    ]


def test_issue_agency_overwrites(layout: PkiLayout) -> None:
    files = layout.issue_agency("rotating")
    first_serial, first_key = _cert(files.cert).serial_number, files.key.read_bytes()
    layout.issue_agency("rotating")
    assert _cert(files.cert).serial_number != first_serial
    assert files.key.read_bytes() != first_key
    assert _mode(files.key) == 0o600


def test_issued_leaf_never_outlives_ca(tmp_path: Path) -> None:
    short = ops_pki.init_pki(tmp_path, [], validity_days=1)
    leaf = _cert(short.issue_agency("late").cert)  # default 825 days, capped by the CA
    assert leaf.not_valid_after_utc <= _cert(short.agencies_ca.cert).not_valid_after_utc


def test_issue_agency_without_ca_key(tmp_path: Path) -> None:
    made = ops_pki.init_pki(tmp_path, [])
    made.agencies_ca.key.unlink()
    with pytest.raises(FileNotFoundError, match=r"no CA key"):
        ops_pki.load_pki(tmp_path).issue_agency("x")
    ops_pki.load_pki(tmp_path).issue_service("still-fine")  # the other CAs are untouched


def test_load_pki_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no CA bundle"):
        ops_pki.load_pki(tmp_path / "nowhere")


def test_invalid_validity(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="validity_days"):
        ops_pki.init_pki(tmp_path, [], validity_days=0)


# ------------------------------------------------------------ CSRs and CAs


def test_a_ca_signs_only_requests_of_its_domain(layout: PkiLayout, tmp_path: Path) -> None:
    csr = ops_pki.make_request(tmp_path / "hub", "hub").read_bytes()
    for kind in ("agency", "service"):
        with pytest.raises(ValueError, match="issues certificates for the"):
            ops_pki.sign_request(layout.ca(kind).load(), csr)
    cert = ops_pki.sign_request(layout.hub_ca.load(), csr)
    assert cert.issuer == _cert(layout.hub_ca.cert).subject


def test_the_ca_writes_only_the_partys_names(layout: PkiLayout) -> None:
    """Whatever else a request asks for (localhost, another party), the certificate has not."""
    key = ec.generate_private_key(ec.SECP256R1())
    greedy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(pki.SAN_PREFIX_AGENCY + "city-001"),
                    x509.DNSName("localhost"),
                    x509.DNSName("hub.renkei.internal"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert = ops_pki.sign_request(layout.agencies_ca.load(), greedy)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [
        x509.UniformResourceIdentifier(pki.SAN_PREFIX_AGENCY + "city-001"),
        x509.DNSName("city-001.agency.renkei.internal"),
    ]


def test_a_request_naming_two_parties_is_refused(layout: PkiLayout) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    two = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(pki.SAN_PREFIX_AGENCY + "a"),
                    x509.UniformResourceIdentifier(pki.SAN_PREFIX_AGENCY + "b"),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(ValueError, match="exactly one renkei party"):
        ops_pki.sign_request(layout.agencies_ca.load(), two)


def test_revoke_adds_to_the_signed_crl(tmp_path: Path) -> None:
    made = ops_pki.init_pki(tmp_path, ["city"])
    serial = _cert(made.agency("city").cert).serial_number
    assert ops_pki.revoke(made.agencies_ca, [serial]) == [serial]
    assert ops_pki.revoke(made.agencies_ca, [serial, 7]) == sorted([serial, 7])
    crl = x509.load_pem_x509_crl(made.agencies_ca.crl.read_bytes())
    assert crl.is_signature_valid(_cert(made.agencies_ca.cert).public_key())  # type: ignore[arg-type]
    assert {r.serial_number for r in crl} == {serial, 7}


# ------------------------------------------------------------ peer_identity


class _FakeContext:
    """Only what peer_identity touches; real contexts are exercised in integration."""

    def __init__(self, auth: dict[str, Any]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, Any]:
        return self._auth


def _identity(auth: dict[str, Any]) -> PeerIdentity | None:
    return pki.peer_identity(cast(grpc.ServicerContext, _FakeContext(auth)))


def test_peer_identity_from_peer_uri() -> None:
    auth = {
        "transport_security_type": [b"ssl"],
        "x509_pem_cert": [b"unused when peer_uri is present"],
        "peer_uri": [b"urn:example:other", b"urn:renkei:agency:city-001"],
    }
    assert _identity(auth) == PeerIdentity("agency", "city-001")
    auth["peer_uri"] = [b"urn:renkei:hub"]
    assert _identity(auth) == PeerIdentity("hub", "hub")


def test_peer_identity_falls_back_to_pem(layout: PkiLayout) -> None:
    pem = layout.agency("nta.tax").cert.read_bytes()
    # Values as plain bytes: the shape grpc-stubs claims for the sync context.
    auth = {"transport_security_type": b"ssl", "x509_pem_cert": pem}
    assert _identity(auth) == PeerIdentity("agency", "nta.tax")
    assert _identity(auth) == PeerIdentity("agency", "nta.tax")  # second call: cached
    assert pki._identity_from_pem.cache_info().hits >= 1


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"transport_security_type": [b"insecure"], "security_level": [b"TSI_SECURITY_NONE"]},
        {"transport_security_type": [b"ssl"]},  # TLS without a client certificate
        {"transport_security_type": [b"insecure"], "peer_uri": [b"urn:renkei:hub"]},
        {
            "transport_security_type": [b"ssl"],
            "x509_pem_cert": [b"x"],
            "peer_uri": [b"urn:renkei:hub", b"urn:renkei:agency:a"],  # ambiguous
        },
        {
            "transport_security_type": [b"ssl"],
            "x509_pem_cert": [b"x"],
            "peer_uri": [b"urn:renkei:agency:../etc"],  # not a valid agency id
        },
        {"transport_security_type": [b"ssl"], "x509_pem_cert": [b"not a pem"]},
    ],
)
def test_peer_identity_none(auth: dict[str, Any]) -> None:
    assert _identity(auth) is None


# ------------------------------------------------------------------- Trust


def _auth(pem: bytes) -> dict[str, Any]:
    return {"transport_security_type": [b"ssl"], "x509_pem_cert": [pem]}


def test_trust_knows_each_party_by_the_ca_of_its_kind(tmp_path: Path) -> None:
    made = ops_pki.init_pki(tmp_path, ["city"], services=["registry"])
    trust = pki.Trust(made.roots, made.crls)
    for party, identity in (
        ("hub", PeerIdentity("hub", "hub")),
        ("agency:city", PeerIdentity("agency", "city")),
        ("service:registry", PeerIdentity("service", "registry")),
    ):
        auth = _auth(made.files(party).cert.read_bytes())
        ctx = cast(grpc.ServicerContext, _FakeContext(auth))
        assert pki.peer_identity(ctx, trust) == identity


def test_trust_refuses_a_party_from_another_domains_ca(tmp_path: Path) -> None:
    made = ops_pki.init_pki(tmp_path, [])
    # The hub CA's operator signs a request for an agency, bypassing sign_request's check.
    csr = x509.load_pem_x509_csr(ops_pki.make_request(tmp_path / "x", "agency:city").read_bytes())
    hub_ca = made.hub_ca.load()
    forged = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(hub_ca.cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(hub_ca.cert.not_valid_before_utc)
        .not_valid_after(hub_ca.cert.not_valid_after_utc)
        .add_extension(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False
        )
        .sign(hub_ca.key, hashes.SHA256())
    )
    ctx = cast(grpc.ServicerContext, _FakeContext(_auth(ops_pki._cert_pem(forged))))
    assert pki.peer_identity(ctx) == PeerIdentity("agency", "city")  # without trust: as before
    assert pki.peer_identity(ctx, pki.Trust(made.roots)) is None


def test_trust_reloads_crls_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    made = ops_pki.init_pki(tmp_path, ["city"])
    now = [0.0]
    trust = pki.Trust(made.roots, made.crls, reload_seconds=5, clock=lambda: now[0])
    pem = made.agency("city").cert.read_bytes()
    ctx = cast(grpc.ServicerContext, _FakeContext(_auth(pem)))
    assert pki.peer_identity(ctx, trust) == PeerIdentity("agency", "city")
    good = made.agencies_ca.crl.read_bytes()
    ops_pki.revoke(made.agencies_ca, [x509.load_pem_x509_certificate(pem).serial_number])
    assert pki.peer_identity(ctx, trust) is not None  # not looked at again yet
    now[0] = 5.0
    with pytest.raises(RenkeiError) as refused:
        pki.peer_identity(ctx, trust)
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CERTIFICATE_REVOKED",
    )
    # A list signed by another key (the issuer's name copied) is refused at load.
    impostor = ops_pki.Ca(ec.generate_private_key(ec.SECP256R1()), made.agencies_ca.load().cert)
    atomic_write(made.agencies_ca.crl, ops_pki._crl_pem(impostor, ()), 0o644)
    now[0] = 10.0
    with pytest.raises(RenkeiError):
        pki.peer_identity(ctx, trust)
    # The CA's own empty list again: the certificate passes.
    atomic_write(made.agencies_ca.crl, good + b"\n", 0o644)
    now[0] = 15.0
    assert pki.peer_identity(ctx, trust) == PeerIdentity("agency", "city")


def test_a_tls_channel_must_name_its_peer(tmp_path: Path) -> None:
    from renkei.grpcutil.client import channel, peer_options

    made = ops_pki.init_pki(tmp_path, ["city"])
    with pytest.raises(ValueError, match="must name the party"):
        channel("127.0.0.1:1", made.agency("city"))
    assert peer_options("agency:city") == [
        ("grpc.ssl_target_name_override", "city.agency.renkei.internal")
    ]
