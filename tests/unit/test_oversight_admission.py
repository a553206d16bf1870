"""``require_oversight``: the oversight body's certificate, and on a server the caller its
interceptor read against the CAs (``Trust``), must both be the oversight body."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from renkei.errors import PermissionDenied
from renkei.grpcutil.caller import reset_caller, set_caller
from renkei.grpcutil.oversight import OVERSIGHT, is_oversight, require_oversight
from renkei.pki import SAN_HUB, SAN_OVERSIGHT, SAN_PREFIX_AGENCY, PeerIdentity


def _pem(*uris: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


class _Context:
    """A servicer context's auth context, as grpc fills it for a TLS client."""

    def __init__(self, *uris: str, listed: bool = True) -> None:
        self._auth: dict[str, list[bytes]] = {}
        if uris:
            self._auth = {"transport_security_type": [b"ssl"], "x509_pem_cert": [_pem(*uris)]}
            if listed:
                self._auth["peer_uri"] = [u.encode() for u in uris]

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def _admitted(context: Any) -> bool:
    if is_oversight(context):
        require_oversight(context)
        return True
    with pytest.raises(PermissionDenied, match="oversight body") as refused:
        require_oversight(context)
    assert refused.value.reason == "CALLER_NOT_OVERSIGHT"
    return False


@pytest.mark.parametrize(
    "context",
    [
        _Context(),
        _Context(SAN_PREFIX_AGENCY + "city"),
        _Context(SAN_HUB),
        _Context("urn:renkei:service:oversight"),
        _Context("urn:renkei:oversightx"),
        _Context(SAN_OVERSIGHT, SAN_PREFIX_AGENCY + "city"),  # two parties: no one
    ],
    ids=["no certificate", "agency", "hub", "a service", "a lookalike", "two parties"],
)
def test_anyone_else_is_refused(context: Any) -> None:
    assert not _admitted(context)


def test_the_oversight_certificate_is_admitted_outside_a_server() -> None:
    assert _admitted(_Context(SAN_OVERSIGHT))
    assert _admitted(_Context(SAN_OVERSIGHT, listed=False))  # the URI read from the PEM


@pytest.mark.parametrize(
    ("read", "admitted"),
    [
        (OVERSIGHT, True),
        # The interceptor found the certificate came from another domain's CA: no one.
        (None, False),
        (PeerIdentity("agency", "city"), False),
    ],
)
def test_on_a_server_the_interceptors_caller_must_agree(
    read: PeerIdentity | None, admitted: bool
) -> None:
    token = set_caller(read)
    try:
        assert _admitted(_Context(SAN_OVERSIGHT)) is admitted
    finally:
        reset_caller(token)
