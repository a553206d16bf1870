"""Readers of the hub's log after a purge (R25), the legal-hold service, ``[retention]``.

A leaf purged at the hub keeps its hash: an agency's verify job still proves
its own copy, and the hub's answer ENTRY_PURGED is no problem (while an entry
withheld without a purge still is); a bundle says "purged", not "missing".
Only the oversight body's certificate may set, release or list holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import test_log_verify
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from support.log_fakes import FakeHubLog
from test_log_verify import MISSING, World

from comm_server.log_commands import bundle_of
from comm_server.log_receipts import LogReceipt
from renkei import db
from renkei.config_util import ConfigError
from renkei.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from renkei.grpcutil.oversight import require_oversight
from renkei.legal_hold_service import LegalHoldServicer
from renkei.oversight.v1 import oversight_pb2
from renkei.pki import SAN_OVERSIGHT
from renkei.retention import HoldStore, RetentionPolicy, retention_policy
from renkei.tlog.bundle import Bundle, verify_bundle

NOW = datetime(2033, 4, 1, 4, 0, tzinfo=UTC)


class PurgingHubLog(FakeHubLog):
    """The hub after a purge: the leaves' hashes kept, their entries refused as purged."""

    def __init__(self) -> None:
        super().__init__()
        self.purged: set[int] = set()

    async def entries(self, indices: Sequence[int]) -> list[LogReceipt]:
        gone = [i for i in indices if i in self.purged]
        if gone:
            raise FailedPrecondition("ENTRY_PURGED", f"leaf {gone[0]}: purged")
        return await super().entries(indices)


def test_a_purged_entry_is_no_problem_and_a_withheld_one_still_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(test_log_verify, "FakeHubLog", PurgingHubLog)
    world = World()
    log = world.log
    assert isinstance(log, PurgingHubLog)
    ours = sorted(r.leaf_index for r in asyncio.run(world.store.unverified(log.size)))
    log.purged = {ours[0], ours[1]}
    log.withhold(ours[2])
    report = world.run()
    assert [p.kind for p in report.problems] == [MISSING]
    assert str(ours[2]) in report.problems[0].text
    proven = {e.leaf_index: e for e in report.entries}
    assert proven[ours[0]].purged
    assert proven[ours[0]].inclusion  # still proven: the hash is the tree's
    assert not proven[ours[2]].purged
    bundle = Bundle.from_json(bundle_of(report).to_json())
    assert [e.purged for e in bundle.entries if e.leaf_index in log.purged] == [True, True]
    checked = verify_bundle(bundle, log.signer.verifier(), [log.witness.verifier()])
    assert [p for p in checked.problems if "serves no copy" in p] == [
        p for p in checked.problems if f"leaf {ours[2]})" in p
    ]


# -- LegalHoldService ----------------------------------------------------------------


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
def test_only_the_oversight_certificate_is_admitted(context: Any, tmp_path: Path) -> None:
    holds = HoldStore(db.create_engine(db.sqlite_url(str(tmp_path / "h.db"))))
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


def test_the_oversight_body_sets_lists_and_releases_holds(tmp_path: Path) -> None:
    holds = HoldStore(db.create_engine(db.sqlite_url(str(tmp_path / "h.db"))), persons=True)
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
    hold: oversight_pb2.LegalHold, reason: str, tmp_path: Path
) -> None:
    holds = HoldStore(db.create_engine(db.sqlite_url(str(tmp_path / "h.db"))))  # not the hub
    servicer = LegalHoldServicer(holds, lambda: NOW)
    with pytest.raises(InvalidArgument) as refused:
        asyncio.run(servicer.SetLegalHold(oversight_pb2.SetLegalHoldRequest(hold=hold), OVERSIGHT))  # type: ignore[arg-type]
    assert refused.value.reason == reason
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_the_retention_table_is_read_strictly() -> None:
    where = Path("hub.toml")
    assert retention_policy({}, where) == RetentionPolicy()
    assert RetentionPolicy().days == 2557
    got = retention_policy(
        {"retention": {"days": 30, "batch_size": 500, "pause_seconds": 0.1, "every_seconds": 3600}},
        where,
    )
    assert got == RetentionPolicy(30, 500, 0.1, 3600.0)
    for bad, says in (
        ({"days": "2557"}, "days: must be an integer"),
        ({"days": 0}, "days: must be an integer from 1"),
        ({"batch_size": 50_000}, "batch_size: must be an integer from 1 to 5000"),
        ({"every_seconds": -1}, "every_seconds: must be a number >= 0"),
        ({"dayz": 1}, "unknown keys ['dayz']"),
    ):
        with pytest.raises(ConfigError, match=r"hub\.toml: \[retention\]") as err:
            retention_policy({"retention": bad}, where)
        assert says in str(err.value)
