"""The oversight body reads a communication server's share of the log and the registry's
consent log (issue 15, R24, R27), over mutual TLS, with its own certificate only.

Each service runs as the servers run it (``start_server``: the one interceptor, the CAs'
``Trust``) on a store on SQLite and PostgreSQL, with rows written through the stores.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from google.protobuf import timestamp_pb2
from sqlalchemy.engine import Engine
from support.aio import LoopThread
from support.refusals import Refusal, refusal_of

from comm_server import keys as comm_keys
from comm_server.binding.person_facts import FeedItem, PersonFacts, PersonFactsStore
from comm_server.oversight_share import AgencyLogReader, AgencyLogServicer, pseudonym
from comm_server.store import CommStore, LogRecord
from ops import pki as ops_pki
from registry_binding.consent import Consent, ConsentAttempt, ConsentLog
from registry_binding.consent_share import ConsentLogReader, ConsentLogServicer
from renkei.files import atomic_write
from renkei.grpcutil.client import channel
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.keystore import KeyStore
from renkei.keystore.master import AesGcmMasterKey
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.pki import SAN_OVERSIGHT, TlsFiles

CITY, PENSION = "141003", "nenkin"
T0 = datetime(2027, 4, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ops_pki.PkiLayout:
    return ops_pki.init_pki(tmp_path_factory.mktemp("pki"), [CITY, PENSION], services=["registry"])


def _ts(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _record(i: int, serial: int | None, person: str | None, role: str = "requester") -> LogRecord:
    return LogRecord(
        serial=serial,
        role=role,
        logged_at=T0 + timedelta(minutes=i),
        counterpart_agency_id=PENSION,
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id=person,
        staff_id=f"S-{i}",
        terminal_id="T-1",
        content=f'{{"row": {i}, "名前": "内容"}}',
        purpose="賦課" if role == "requester" else None,
        outcome="OK" if serial else "DENIED",
        reason="" if serial else "NO_RULE",
    )


# Seven rows: L-1 twice (the feed knows their municipality), L-2 (unknown to the feed),
# one refused before a serial, one without a person, one provider row.
ROWS = [
    _record(0, 1, "L-1"),
    _record(1, 2, "L-2"),
    _record(2, None, "L-1"),
    _record(3, 3, None),
    _record(4, 4, "L-1", role="provider"),
    _record(5, 5, "L-3"),
    _record(6, 6, "L-2"),
]


def _facts(municipality: str) -> PersonFacts:
    return PersonFacts(
        "moved",
        "2027-01-01",
        "名",
        "メイ",
        "1980-01-01",
        "1",
        "住所",
        municipality,
        "市",
        False,
        None,
    )


@dataclass
class Share:
    port: int
    key: bytes


async def _serve(tls: TlsFiles, register: Callable[[grpc.aio.Server], None]) -> ServerHandle:
    return await start_server(
        name="oversight-test", bind="127.0.0.1:0", tls=tls, register=register, services=()
    )


@pytest.fixture
def share(loop: LoopThread, engine: Engine, pki: ops_pki.PkiLayout) -> Iterator[Share]:
    store = CommStore(engine)
    store.append_logs(ROWS)
    facts = PersonFactsStore(engine)
    facts.remember_handle("L-1", "h-1")
    facts.remember_handle("L-3", "h-3")
    facts.apply([FeedItem("h-1", _facts("011002")), FeedItem("h-3", _facts("141003"))], "c-1")
    key_store = KeyStore(engine, AesGcmMasterKey(os.urandom(32), "test"))
    comm_keys.provision(key_store)
    key = comm_keys.pseudonym_key(key_store)
    servicer = AgencyLogServicer(AgencyLogReader(engine, key), CITY)

    def register(server: grpc.aio.Server) -> None:
        oversight_pb2_grpc.add_AgencyLogServiceServicer_to_server(servicer, server)

    handle = loop.run(_serve(pki.agency(CITY), register))
    yield Share(handle.port, key)
    loop.run(handle.stop(0))


async def _read_share(
    port: int, tls: TlsFiles, request: oversight_pb2.ReadAgencyLogRequest
) -> list[list[oversight_pb2.AgencyLogRow]]:
    async with channel(f"127.0.0.1:{port}", tls, peer=f"agency:{CITY}") as ch:
        stub: Any = oversight_pb2_grpc.AgencyLogServiceStub(ch)
        responses: AsyncIterator[oversight_pb2.ReadAgencyLogResponse] = stub.ReadAgencyLog(
            request, timeout=10
        )
        return [list(r.rows) async for r in responses]


def _batches(
    loop: LoopThread, share: Share, pki: ops_pki.PkiLayout, **fields: Any
) -> list[list[oversight_pb2.AgencyLogRow]]:
    request = oversight_pb2.ReadAgencyLogRequest(**fields)
    return loop.run(_read_share(share.port, pki.oversight(), request))


def _rows(loop: LoopThread, share: Share, pki: ops_pki.PkiLayout, **fields: Any) -> list[int]:
    return [r.id for batch in _batches(loop, share, pki, **fields) for r in batch]


def _refusal(loop: LoopThread, coro: Any) -> Refusal:
    try:
        loop.run(coro)
    except grpc.aio.AioRpcError as err:
        return refusal_of(err)
    raise AssertionError("the read was not refused")


def test_every_row_in_id_order_as_the_oversight_body_sees_it(
    loop: LoopThread, share: Share, pki: ops_pki.PkiLayout
) -> None:
    [rows] = _batches(loop, share, pki)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert len(rows) == len(ROWS)
    by_staff = {r.staff_id: r for r in rows}
    first = by_staff["S-0"]
    assert (first.serial, first.role, first.agency_id) == (1, oversight_pb2.ROLE_REQUESTER, CITY)
    assert (first.counterpart_agency_id, first.info_kind) == (PENSION, "年金給付関係情報")
    assert (first.legal_basis_item, first.purpose, first.outcome) == ("二十七", "賦課", "OK")
    assert first.logged_at.ToDatetime(tzinfo=UTC) == T0
    assert first.content_sha256 == hashlib.sha256(ROWS[0].content.encode()).digest()
    assert first.person == hmac.new(share.key, b"L-1", hashlib.sha256).hexdigest()
    # The same person is the same pseudonym; the pseudonym is not the local id.
    assert by_staff["S-2"].person == by_staff["S-4"].person == first.person
    assert by_staff["S-1"].person == by_staff["S-6"].person != first.person
    assert "L-1" not in first.person
    assert by_staff["S-3"].person == ""  # no person on the row
    refused = by_staff["S-2"]
    assert (refused.serial, refused.outcome, refused.reason) == (0, "DENIED", "NO_RULE")
    assert by_staff["S-4"].role == oversight_pb2.ROLE_PROVIDER
    assert by_staff["S-4"].purpose == ""
    # The municipality as the agency's feed knows it; empty for whom the feed told nothing.
    assert [by_staff[f"S-{i}"].person_municipality for i in range(7)] == [
        "011002",
        "",
        "011002",
        "",
        "011002",
        "141003",
        "",
    ]


def test_batches_of_the_asked_size(loop: LoopThread, share: Share, pki: ops_pki.PkiLayout) -> None:
    sizes = [len(b) for b in _batches(loop, share, pki, batch_size=3)]
    assert sizes == [3, 3, 1]
    assert [len(b) for b in _batches(loop, share, pki, batch_size=7)] == [7]
    assert [len(b) for b in _batches(loop, share, pki, batch_size=5000)] == [7]
    all_ids = _rows(loop, share, pki)
    assert _rows(loop, share, pki, batch_size=2) == all_ids
    for size in (5001, -1):
        refusal = _refusal(
            loop,
            _read_share(
                share.port, pki.oversight(), oversight_pb2.ReadAgencyLogRequest(batch_size=size)
            ),
        )
        assert (refusal.code, refusal.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
        )
        assert refusal.metadata["field"] == "batch_size"


def test_ranges_by_time_and_by_serial(
    loop: LoopThread, share: Share, pki: ops_pki.PkiLayout
) -> None:
    ids = {r.staff_id: r.id for b in _batches(loop, share, pki) for r in b}

    def staff(**bounds: Any) -> list[str]:
        by_id = {v: k for k, v in ids.items()}
        got = _rows(loop, share, pki, range=oversight_pb2.ReadRange(**bounds), batch_size=2)
        return [by_id[i] for i in got]

    minute = timedelta(minutes=1)
    assert staff(start_time=_ts(T0 + 2 * minute), end_time=_ts(T0 + 4 * minute)) == ["S-2", "S-3"]
    assert staff(start_time=_ts(T0 + 5 * minute)) == ["S-5", "S-6"]
    # A bound on a whole second and one just past it (SQLite keeps both forms of time).
    just_after = T0 + 2 * minute + timedelta(microseconds=1)
    assert staff(start_time=_ts(just_after), end_time=_ts(T0 + 4 * minute)) == ["S-3"]
    assert staff(end_time=_ts(just_after), start_time=_ts(T0 + 2 * minute)) == ["S-2"]
    assert staff(end_time=_ts(T0 + minute)) == ["S-0"]
    assert staff(start_time=_ts(T0), end_time=_ts(T0)) == []  # half-open: empty
    # Serials: a start leaves out the row without one; an end alone keeps it (serial 0).
    assert staff(start_serial=2, end_serial=4) == ["S-1", "S-3"]
    assert staff(start_serial=5) == ["S-5", "S-6"]
    assert staff(end_serial=2) == ["S-0", "S-2"]
    assert staff(start_serial=1, end_time=_ts(T0 + 3 * minute)) == ["S-0", "S-1"]


@pytest.mark.parametrize(
    ("bounds", "field"),
    [
        ({"start_time": _ts(T0), "end_time": _ts(T0 - timedelta(seconds=1))}, "range.end_time"),
        ({"start_serial": 5, "end_serial": 4}, "range.end_serial"),
        ({"start_serial": -1}, "range.start_serial"),
        ({"end_time": timestamp_pb2.Timestamp(seconds=2**40)}, "range.end_time"),
    ],
)
def test_a_bad_range_is_invalid_field_naming_it(
    loop: LoopThread, share: Share, pki: ops_pki.PkiLayout, bounds: dict[str, Any], field: str
) -> None:
    request = oversight_pb2.ReadAgencyLogRequest(range=oversight_pb2.ReadRange(**bounds))
    refusal = _refusal(loop, _read_share(share.port, pki.oversight(), request))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert refusal.metadata["field"] == field


def test_only_the_oversight_certificate_reads_the_share(
    loop: LoopThread, share: Share, pki: ops_pki.PkiLayout
) -> None:
    request = oversight_pb2.ReadAgencyLogRequest()
    for tls in (pki.agency(CITY), pki.agency(PENSION), pki.hub(), pki.service("registry")):
        refusal = _refusal(loop, _read_share(share.port, tls, request))
        assert (refusal.code, refusal.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_OVERSIGHT",
        ), tls.cert


def _forged_oversight(pki: ops_pki.PkiLayout, folder: Path) -> TlsFiles:
    """What the agencies' CA could sign by hand: the oversight body's URI beside one of
    its own DNS names, which its Name Constraints let through the handshake."""
    ca = pki.agencies_ca.load()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    sans = [x509.UniformResourceIdentifier(SAN_OVERSIGHT), x509.DNSName("x.agency.renkei.internal")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "forged")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    files = TlsFiles(pki.roots, folder / "cert.pem", folder / "key.pem")
    atomic_write(files.key, ops_pki.key_pem(key), 0o600)
    atomic_write(files.cert, ops_pki._cert_pem(cert), 0o644)
    return files


def test_the_oversight_uri_from_another_ca_is_refused(
    loop: LoopThread, share: Share, pki: ops_pki.PkiLayout, tmp_path: Path
) -> None:
    forged = _forged_oversight(pki, tmp_path)
    refusal = _refusal(loop, _read_share(share.port, forged, oversight_pb2.ReadAgencyLogRequest()))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_OVERSIGHT",
    )


def test_the_pseudonym_key_is_made_on_first_use_and_kept(engine: Engine) -> None:
    # A store from before issue 15: no pseudonym key until the first read needs one.
    store = KeyStore(engine, AesGcmMasterKey(os.urandom(32), "test"))
    assert store.versions(comm_keys.PSEUDONYM) == []
    key = comm_keys.pseudonym_key(store)
    assert len(key) == 32
    assert comm_keys.pseudonym_key(store) == key
    assert pseudonym(key, "L-1") == hmac.new(key, b"L-1", hashlib.sha256).hexdigest()
    assert pseudonym(key, None) == pseudonym(key, "") == ""


# ---------------------------------------------------------------- the consent log


def _attempt(i: int, outcome: str, answered: str, reason: str) -> ConsentAttempt:
    consent = Consent(f"C-{i}", "person", "", T0, "口座開設", b"\x01" * 32)
    return ConsentAttempt(
        f"{i:032x}",
        "agency:bank",
        T0 + timedelta(minutes=i),
        f"X-{i}",
        consent if outcome != "refused" else None,
        outcome,  # type: ignore[arg-type]
        answered,
        reason,
        "12345678901" if outcome == "matched" else None,
    )


ATTEMPTS = [
    _attempt(0, "matched", "MATCHED", "current facts equal"),
    _attempt(1, "no_exact_match", "NO_EXACT_MATCH", "ambiguous: two residents"),
    _attempt(2, "refused", "CALLER_NOT_PRIVATE_BODY", "CALLER_NOT_PRIVATE_BODY: only ..."),
]


@pytest.fixture
def consent_port(loop: LoopThread, engine: Engine, pki: ops_pki.PkiLayout) -> Iterator[int]:
    log = ConsentLog(engine)
    for attempt in ATTEMPTS:
        log.append(attempt)
    servicer = ConsentLogServicer(ConsentLogReader(engine))

    def register(server: grpc.aio.Server) -> None:
        oversight_pb2_grpc.add_ConsentLogServiceServicer_to_server(servicer, server)

    handle = loop.run(_serve(pki.service("registry"), register))
    yield handle.port
    loop.run(handle.stop(0))


async def _read_consent(
    port: int, tls: TlsFiles, request: oversight_pb2.ReadConsentLogRequest
) -> list[list[oversight_pb2.ConsentLogRow]]:
    async with channel(f"127.0.0.1:{port}", tls, peer="service:registry") as ch:
        stub: Any = oversight_pb2_grpc.ConsentLogServiceStub(ch)
        return [list(r.rows) async for r in stub.ReadConsentLog(request, timeout=10)]


def test_the_consent_log_as_the_oversight_body_reads_it(
    loop: LoopThread, consent_port: int, pki: ops_pki.PkiLayout
) -> None:
    read = loop.run(
        _read_consent(
            consent_port, pki.oversight(), oversight_pb2.ReadConsentLogRequest(batch_size=2)
        )
    )
    assert [len(b) for b in read] == [2, 1]
    rows = [r for b in read for r in b]
    assert [r.attempt_id for r in rows] == [a.attempt_id for a in ATTEMPTS]
    matched, none, refused = rows
    assert (matched.caller, matched.consent_id, matched.giver) == ("agency:bank", "C-0", "person")
    assert (matched.purpose, matched.outcome, matched.matched) == ("口座開設", "MATCHED", True)
    assert matched.attempted_at.ToDatetime(tzinfo=UTC) == T0
    assert (none.outcome, none.matched, none.reason) == (
        "NO_EXACT_MATCH",
        False,
        "ambiguous: two residents",
    )
    assert (refused.outcome, refused.answered, refused.consent_id) == (
        "CALLER_NOT_PRIVATE_BODY",
        "CALLER_NOT_PRIVATE_BODY",
        "",
    )
    # Nothing that names the person: no local id, no resident code in any field.
    assert "12345678901" not in str(rows)
    assert "X-0" not in str(rows)
    since = oversight_pb2.ReadRange(start_time=_ts(T0 + timedelta(minutes=1)))
    later = loop.run(
        _read_consent(
            consent_port, pki.oversight(), oversight_pb2.ReadConsentLogRequest(range=since)
        )
    )
    assert [r.attempt_id for b in later for r in b] == [a.attempt_id for a in ATTEMPTS[1:]]


def test_the_consent_log_refuses_others_and_serials(
    loop: LoopThread, consent_port: int, pki: ops_pki.PkiLayout
) -> None:
    request = oversight_pb2.ReadConsentLogRequest()
    for tls in (pki.agency(CITY), pki.hub(), pki.service("registry")):
        refusal = _refusal(loop, _read_consent(consent_port, tls, request))
        assert (refusal.code, refusal.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_OVERSIGHT",
        )
    for bounds, field in (
        ({"start_serial": 1}, "range.start_serial"),
        ({"end_serial": 9}, "range.end_serial"),
        ({"start_time": _ts(T0), "end_time": _ts(T0 - timedelta(1))}, "range.end_time"),
    ):
        bad = oversight_pb2.ReadConsentLogRequest(range=oversight_pb2.ReadRange(**bounds))
        refusal = _refusal(loop, _read_consent(consent_port, pki.oversight(), bad))
        assert (refusal.reason, refusal.metadata["field"]) == ("INVALID_FIELD", field)
    too_big = oversight_pb2.ReadConsentLogRequest(batch_size=5001)
    refusal = _refusal(loop, _read_consent(consent_port, pki.oversight(), too_big))
    assert (refusal.reason, refusal.metadata["field"]) == ("INVALID_FIELD", "batch_size")
