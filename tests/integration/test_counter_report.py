"""`renkei counter report` against a fake portal: sign in with a card, verify, print, log.

The fake portal is aiohttp's test server with the real /api/history
(portal.pages) behind a sign-in of the shape ops/counter.py speaks; it checks
the card's ECDSA signature over its challenge. The PDF is read back with
pdftotext; the request must be in the municipality's counter_requests.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine
from support.aio import LoopThread
from support.personal_log import FakePersonalLog, PersonLog
from support.portal_pages import MemoryApplications, session

from comm_server.counter_log import (
    FAILED,
    PRINTED,
    PRINTED_UNVERIFIED,
    REFUSED,
    CounterLog,
    CounterRequest,
)
from ops import cli, counter
from ops.counter import CounterReportRequest, counter_report
from portal import pages
from portal.app_keys import APPLICATIONS, PERSONAL_LOG, SESSION
from portal.history import VERIFIER
from renkei import db
from renkei.errors import PermissionDenied, Unauthenticated
from renkei.hub.v1 import personal_pb2

CITY = "yokohama-city"
ME = "link-of-the-card-holder"
STAFF = "staff_id,terminals,info_kinds,legal_basis_items,valid_from,valid_until,name\n"


def _card(tmp_path: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "card")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "card.key", tmp_path / "card.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, key, cert.serial_number


def sign(key: PrivateKeyTypes, challenge: bytes) -> bytes:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(challenge, ec.ECDSA(hashes.SHA256()))


def wrong(key: PrivateKeyTypes, challenge: bytes) -> bytes:
    """A well-formed signature over other bytes than the challenge."""
    return sign(key, challenge + b"!")


def fake_portal(hub: FakePersonalLog) -> web.Application:
    """The portal's JSON API as ops/counter.py expects it, /api/history the real one."""
    challenges: set[str] = set()
    sessions: set[str] = set()

    async def challenge(request: web.Request) -> web.Response:
        c = base64.b64encode(secrets.token_bytes(32)).decode()
        challenges.add(c)
        return web.json_response({"challenge": c})

    async def signin(request: web.Request) -> web.Response:
        doc = await request.json()
        cert = x509.load_pem_x509_certificate(doc["certificate"].encode())
        if doc["challenge"] not in challenges or doc["format"] != "p1363":
            raise web.HTTPUnauthorized()
        challenges.discard(doc["challenge"])
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        try:
            raw = base64.b64decode(doc["signature"])
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            if len(raw) != 64:
                raise InvalidSignature
            public.verify(
                encode_dss_signature(r, s),
                base64.b64decode(doc["challenge"]),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature:
            raise web.HTTPUnauthorized() from None
        sid = secrets.token_hex(16)
        sessions.add(sid)
        response = web.json_response({"csrf_token": "t"})
        response.set_cookie("session", sid, httponly=True, samesite="Strict")
        return response

    @web.middleware
    async def signed_in(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/api/signin"):
            if request.content_type != "application/json":  # as the real portal refuses
                raise web.HTTPForbidden()
        else:
            if request.cookies.get("session") not in sessions:
                raise web.HTTPUnauthorized()
            request[SESSION] = session(ME)
        return await handler(request)

    app = web.Application(middlewares=[signed_in])
    app[PERSONAL_LOG] = hub
    app[APPLICATIONS] = MemoryApplications()
    app[VERIFIER] = hub.log.verifier()
    app.router.add_post("/api/signin/challenge", challenge)
    app.router.add_post("/api/signin", signin)
    pages.routes(app)
    return app


def _log() -> PersonLog:
    log = PersonLog()
    log.exchange(ME, 1)
    log.exchange("someone-else", 2, info_kind="他人の情報")
    log.exchange(ME, 3, outcome="DENIED", at=datetime(2026, 5, 1, 1, tzinfo=UTC))
    for serial in range(4, 40):
        log.exchange(ME, serial)
    return log


def _config(tmp_path: Path, log: PersonLog, register: str) -> Path:
    (tmp_path / "staff.csv").write_text(STAFF + register, encoding="utf-8")
    text = (
        f'[comm]\nagency_id = "{CITY}"\nhub_endpoint = "127.0.0.1:1"\n'
        f'database_url = "sqlite:///{tmp_path}/comm.db"\nmaster_key = "file:m.key"\n'
        'insecure_development = true\nstaff_register = "staff.csv"\n[legacy]\nport = 5000\n'
        f'[log]\nhub_key = "{log.hub.verifier().verifier_key()}"\n'
        f'witness_keys = ["{log.witness.verifier().verifier_key()}"]\n'
    )
    path = tmp_path / "comm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _requests(tmp_path: Path) -> list[CounterRequest]:
    engine = db.create_engine(f"sqlite:///{tmp_path}/comm.db")
    try:
        return CounterLog(engine).all()
    finally:
        engine.dispose()


def _serve(loop: LoopThread, app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    loop.run(server.start_server())
    return server


def _request(
    tmp_path: Path, server: TestServer, config: Path, **kw: object
) -> CounterReportRequest:
    key, cert, _, _ = _card(tmp_path)
    fields: dict[str, object] = {
        "portal": str(server.make_url("")),
        "card_key": key,
        "card_cert": cert,
        "staff_id": "Y-0001",
        "terminal_id": "YOK-COUNTER-1",
        "comm_config": config,
        "out": tmp_path / "out" / "report.pdf",
        **kw,
    }
    return CounterReportRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_the_counter_prints_a_verified_report_and_logs_it(tmp_path: Path, loop: LoopThread) -> None:
    log = _log()
    hub = FakePersonalLog(log)
    server = _serve(loop, fake_portal(hub))
    try:
        config = _config(tmp_path, log, "Y-0001,YOK-COUNTER-1,*,*,,,窓口 太郎\n")
        request = _request(tmp_path, server, config)
        report = counter_report(request, sign=sign)
    finally:
        loop.run(server.close())
    assert report.outcome == PRINTED
    assert [r.serial for r in report.page.rows] == [*range(39, 3, -1), 3, 1]
    text = subprocess.run(
        ["pdftotext", "-layout", str(request.out), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    checkpoint = report.page.checkpoint
    assert checkpoint is not None
    assert checkpoint.root_hash_hex in text
    assert checkpoint.origin in text
    assert "日本年金機構" in text
    assert "拒否" in text
    assert "他人の情報" not in text
    assert "YOK-COUNTER-1" in text
    assert "Y-0001" in text
    assert report.card_serial in text
    assert "page 1 / " in text
    (row,) = _requests(tmp_path)
    assert (row.staff_id, row.terminal_id, row.card_serial) == (
        "Y-0001",
        "YOK-COUNTER-1",
        report.card_serial,
    )
    assert (row.entries_shown, row.checkpoint_size, row.outcome) == (38, checkpoint.size, PRINTED)


def test_the_period_goes_to_the_portal(tmp_path: Path, loop: LoopThread) -> None:
    log = _log()
    hub = FakePersonalLog(log)
    server = _serve(loop, fake_portal(hub))
    try:
        config = _config(tmp_path, log, "Y-0001,*,*,*,,,\n")
        request = _request(tmp_path, server, config, start=date(2026, 5, 1), end=date(2026, 5, 1))
        report = counter_report(request, sign=sign)
    finally:
        loop.run(server.close())
    assert [r.serial for r in report.page.rows] == [3]


def test_an_unregistered_staff_member_prints_nothing(tmp_path: Path, loop: LoopThread) -> None:
    log = _log()
    hub = FakePersonalLog(log)
    server = _serve(loop, fake_portal(hub))
    try:
        config = _config(tmp_path, log, "Y-0001,YOK-COUNTER-1,*,*,,,\n")
        request = _request(tmp_path, server, config, terminal_id="YOK-TAX-9")
        with pytest.raises(PermissionDenied) as err:
            counter_report(request, sign=sign)
        assert err.value.reason == "TERMINAL_NOT_PERMITTED"
        request = _request(tmp_path, server, config, staff_id="Y-9999")
        with pytest.raises(PermissionDenied) as err:
            counter_report(request, sign=sign)
        assert err.value.reason == "STAFF_NOT_REGISTERED"
    finally:
        loop.run(server.close())
    assert not request.out.exists()
    assert hub.list_calls == []
    assert [(r.outcome, r.reason) for r in _requests(tmp_path)] == [
        (REFUSED, "TERMINAL_NOT_PERMITTED"),
        (REFUSED, "STAFF_NOT_REGISTERED"),
    ]


def test_a_refused_card_is_logged(tmp_path: Path, loop: LoopThread) -> None:
    log = _log()
    server = _serve(loop, fake_portal(FakePersonalLog(log)))
    try:
        config = _config(tmp_path, log, "Y-0001,*,*,*,,,\n")
        with pytest.raises(Unauthenticated):
            counter_report(_request(tmp_path, server, config), sign=wrong)
    finally:
        loop.run(server.close())
    assert [(r.outcome, r.reason) for r in _requests(tmp_path)] == [
        (FAILED, "COUNTER_SIGNIN_REFUSED")
    ]


def test_a_history_that_does_not_verify_is_printed_as_such(
    tmp_path: Path, loop: LoopThread
) -> None:
    log = _log()

    def tamper(pe: personal_pb2.PersonalEntry) -> None:
        if pe.serial == 3 and pe.entry:
            pe.entry = pe.entry.replace(b"DENIED", b"OK")

    log.tamper = tamper
    server = _serve(loop, fake_portal(FakePersonalLog(log)))
    try:
        config = _config(tmp_path, log, "Y-0001,*,*,*,,,\n")
        request = _request(tmp_path, server, config)
        report = counter_report(request, sign=sign)
    finally:
        loop.run(server.close())
    assert report.outcome == PRINTED_UNVERIFIED
    assert {r.serial: r for r in report.page.rows}[3].verified is False
    assert _requests(tmp_path)[0].outcome == PRINTED_UNVERIFIED


def test_the_cli_without_a_portal_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # renkei.card signs in production; here the test's signer stands in for it.
    monkeypatch.setattr(counter, "_card_signer", lambda: sign)
    log = _log()
    config = _config(tmp_path, log, "Y-0001,*,*,*,,,\n")
    key, cert, _, _ = _card(tmp_path)
    argv = [
        "counter", "report", "--portal", "http://127.0.0.1:9", "--card-key", str(key),
        "--card-cert", str(cert), "--staff", "Y-0001", "--terminal", "T-1",
        "--comm-config", str(config), "--out", str(tmp_path / "r.pdf"),
    ]  # fmt: skip
    status = cli.main(argv)
    assert status == 1
    assert "UNAVAILABLE PORTAL_UNAVAILABLE" in capsys.readouterr().err
    assert [(r.outcome, r.reason) for r in _requests(tmp_path)] == [(FAILED, "PORTAL_UNAVAILABLE")]


def test_the_counter_log_on_each_database(engine: Engine) -> None:
    store = CounterLog(engine)
    at = datetime(2026, 4, 1, 1, tzinfo=UTC)
    store.record(CounterRequest(at, "Y-1", "T-1", "123456789", 12, 4096, PRINTED))
    store.record(CounterRequest(at, "Y-2", "T-1", "987", 0, None, REFUSED, "STAFF_NOT_REGISTERED"))
    rows = store.all()
    assert rows[0] == CounterRequest(at, "Y-1", "T-1", "123456789", 12, 4096, PRINTED, "")
    assert rows[1].checkpoint_size is None
    assert rows[1].reason == "STAFF_NOT_REGISTERED"


def test_the_cli_prints_where_the_pdf_went_and_the_checkpoint(
    tmp_path: Path,
    loop: LoopThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(counter, "_card_signer", lambda: sign)
    log = _log()
    server = _serve(loop, fake_portal(FakePersonalLog(log)))
    try:
        config = _config(tmp_path, log, "Y-0001,*,*,*,,,\n")
        key, cert, _, _ = _card(tmp_path)
        out = tmp_path / "r.pdf"
        argv = [
            "counter", "report", "--portal", str(server.make_url("")), "--card-key", str(key),
            "--card-cert", str(cert), "--staff", "Y-0001", "--terminal", "T-1",
            "--comm-config", str(config), "--out", str(out), "--from", "2026-04-01",
        ]  # fmt: skip
        status = cli.main(argv)
    finally:
        loop.run(server.close())
    printed = capsys.readouterr().out
    assert status == 0
    assert out.exists()
    assert f"report: {out} (38 exchanges" in printed
    size, _ = log.signed_checkpoint()
    assert f"checkpoint: {log.hub.name} size {size} root " in printed
