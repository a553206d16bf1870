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
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ops import pki as ops_pki
from ops.pki import PkiLayout
from renkei import pki
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


# ------------------------------------------------------------------ init_pki


def test_init_creates_expected_files(tmp_path: Path) -> None:
    root = tmp_path / "fresh" / "pki"  # parents are created too
    layout = ops_pki.init_pki(root, AGENCIES)
    assert layout.root == root
    assert layout.ca_cert == root / "ca.pem"
    assert layout.ca_key == root / "ca.key"
    assert layout.hub() == TlsFiles(root / "ca.pem", root / "hub.pem", root / "hub.key")
    assert layout.agency("nta.tax").cert == root / "agencies" / "nta.tax.pem"
    expected = {"ca.pem", "ca.key", "hub.pem", "hub.key"} | {
        f"agencies/{a}.{ext}" for a in AGENCIES for ext in ("pem", "key")
    }
    found = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert found == expected  # in particular: no leftover temp files


def test_private_keys_are_0600(layout: PkiLayout) -> None:
    keys = [layout.ca_key, *(f.key for f in _all_files(layout))]
    assert {k: _mode(k) for k in keys} == {k: 0o600 for k in keys}
    assert _mode(layout.ca_cert) == 0o644


def test_ca_certificate(layout: PkiLayout) -> None:
    ca = _cert(layout.ca_cert)
    assert ca.subject == ca.issuer
    assert ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "test CA"
    ca.verify_directly_issued_by(ca)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign


@pytest.mark.parametrize(
    ("party", "uri"),
    [(None, pki.SAN_HUB), *((a, pki.SAN_PREFIX_AGENCY + a) for a in AGENCIES)],
)
def test_leaf_certificates(layout: PkiLayout, party: str | None, uri: str) -> None:
    files = layout.hub() if party is None else layout.agency(party)
    ca, leaf = _cert(layout.ca_cert), _cert(files.cert)
    leaf.verify_directly_issued_by(ca)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    host = pki.party_host("hub" if party is None else f"agency:{party}")
    assert san.get_values_for_type(x509.DNSName) == [host, "localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()


def test_second_init_refuses(layout: PkiLayout) -> None:
    before = layout.ca_key.read_bytes()
    with pytest.raises(FileExistsError, match=r"ca\.key already exists"):
        ops_pki.init_pki(layout.root, ["other"])
    assert layout.ca_key.read_bytes() == before
    assert not layout.agency("other").cert.exists()


def test_init_into_existing_empty_dir(tmp_path: Path) -> None:
    result = ops_pki.init_pki(tmp_path, [])
    assert result.ca_key.is_file()
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
    leaf.verify_directly_issued_by(_cert(layout.ca_cert))
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
    assert leaf.not_valid_after_utc <= _cert(short.ca_cert).not_valid_after_utc


def test_issue_agency_without_ca_key(tmp_path: Path) -> None:
    made = ops_pki.init_pki(tmp_path, [])
    made.ca_key.unlink()
    with pytest.raises(FileNotFoundError, match=r"no CA key"):
        ops_pki.load_pki(tmp_path).issue_agency("x")


def test_load_pki_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no CA certificate"):
        ops_pki.load_pki(tmp_path / "nowhere")


def test_invalid_validity(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="validity_days"):
        ops_pki.init_pki(tmp_path, [], validity_days=0)


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
