"""LegalHoldService (R25): only the oversight body's certificate may set, release or list
holds; holds are kept on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Engine

from renkei.errors import InvalidArgument, NotFound, PermissionDenied
from renkei.grpcutil.oversight import require_oversight
from renkei.legal_hold_service import LegalHoldServicer
from renkei.oversight.v1 import oversight_pb2
from renkei.pki import SAN_OVERSIGHT
from renkei.retention import HoldStore

NOW = datetime(2033, 4, 1, 4, 0, tzinfo=UTC)


def _cert_pem(uri: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2036, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


class _Context:
    """What grpc tells a servicer of the connection: its auth context."""

    def __init__(self, uri: str | None, *, listed: bool = True) -> None:
        self._auth: dict[str, list[bytes]] = {}
        if uri is not None:
            self._auth = {
                "transport_security_type": [b"ssl"],
                "x509_pem_cert": [_cert_pem(uri)],
            }
            if listed:
                self._auth["peer_uri"] = [uri.encode()]

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


OVERSIGHT = _Context(SAN_OVERSIGHT)


@pytest.mark.parametrize(
    "context",
    [
        _Context(None),
        _Context("urn:renkei:agency:city"),
        _Context("urn:renkei:hub"),
        _Context("urn:renkei:service:oversight"),
        _Context("urn:renkei:oversightx"),
    ],
    ids=["no certificate", "agency", "hub", "a service", "a lookalike"],
)
def test_only_the_oversight_certificate_is_admitted(context: Any, engine: Engine) -> None:
    holds = HoldStore(engine)
    servicer = LegalHoldServicer(holds, lambda: NOW)
    request = oversight_pb2.SetLegalHoldRequest(
        hold=oversight_pb2.LegalHold(hold_id="h", serials=[1])
    )
    for call, req in (
        (servicer.SetLegalHold, request),
        (servicer.ReleaseLegalHold, oversight_pb2.ReleaseLegalHoldRequest(hold_id="h")),
        (servicer.ListLegalHolds, oversight_pb2.ListLegalHoldsRequest()),
    ):
        with pytest.raises(PermissionDenied) as refused:
            asyncio.run(call(req, context))  # type: ignore[operator]
        assert refused.value.reason == "CALLER_NOT_OVERSIGHT"
    assert holds.list() == []


def test_the_oversight_body_sets_lists_and_releases_holds(engine: Engine) -> None:
    holds = HoldStore(engine, persons=True)
    servicer = LegalHoldServicer(holds, lambda: NOW)
    for context in (OVERSIGHT, _Context(SAN_OVERSIGHT, listed=False)):  # URI read from the PEM
        require_oversight(context)  # type: ignore[arg-type]
    hold = oversight_pb2.LegalHold(hold_id="case-1", serials=[7, 3, 7], person="pk", reason="why")
    asyncio.run(servicer.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold), OVERSIGHT))  # type: ignore[arg-type]
    listed = asyncio.run(servicer.ListLegalHolds(oversight_pb2.ListLegalHoldsRequest(), OVERSIGHT))  # type: ignore[arg-type]
    (got,) = listed.holds
    assert (got.hold_id, list(got.serials), got.person, got.reason) == (
        "case-1",
        [3, 7],
        "pk",
        "why",
    )
    assert got.set_at.ToDatetime(tzinfo=UTC) == NOW
    assert holds.in_force().serials == {3, 7}
    assert holds.in_force().persons == {"pk"}
    release = oversight_pb2.ReleaseLegalHoldRequest(hold_id="case-1")
    asyncio.run(servicer.ReleaseLegalHold(release, OVERSIGHT))  # type: ignore[arg-type]
    assert holds.list() == []
    with pytest.raises(NotFound) as unknown:
        asyncio.run(servicer.ReleaseLegalHold(release, OVERSIGHT))  # type: ignore[arg-type]
    assert unknown.value.reason == "HOLD_NOT_FOUND"


@pytest.mark.parametrize(
    ("hold", "reason"),
    [
        (oversight_pb2.LegalHold(hold_id="", serials=[1]), "HOLD_ID_INVALID"),
        (oversight_pb2.LegalHold(hold_id="a b", serials=[1]), "HOLD_ID_INVALID"),
        (oversight_pb2.LegalHold(hold_id="h"), "HOLD_NAMES_NOTHING"),
        (oversight_pb2.LegalHold(hold_id="h", person="pk"), "HOLD_PERSON_HUB_ONLY"),
        (oversight_pb2.LegalHold(hold_id="h", serials=[0]), "HOLD_SERIALS_INVALID"),
        (
            oversight_pb2.LegalHold(hold_id="h", serials=[1], reason="x" * 401),
            "HOLD_REASON_TOO_LONG",
        ),
    ],
)
def test_a_hold_that_cannot_be_set_is_refused(
    hold: oversight_pb2.LegalHold, reason: str, engine: Engine
) -> None:
    holds = HoldStore(engine)  # not the hub
    servicer = LegalHoldServicer(holds, lambda: NOW)
    with pytest.raises(InvalidArgument) as refused:
        asyncio.run(servicer.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold), OVERSIGHT))  # type: ignore[arg-type]
    assert refused.value.reason == reason
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
