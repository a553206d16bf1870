"""The portal on loopback HTTPS with a fake hub and registry: sign-in with a card and the
security measures (sessions, CSRF, headers, revocation, rate limits), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from support.aio import LoopThread
from support.portal_env import (
    CardAuthority,
    DemoCard,
    FakeHub,
    FakeRegistry,
    card_authority,
    peers,
    portal_config,
)

from portal.bootstrap import PortalServer, start
from portal.config import PortalConfig, RateLimits
from portal.store import PortalStore
from renkei import card, db


@dataclass
class Reply:
    status: int
    headers: Any
    text: str
    cookies: SimpleCookie

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Env:
    loop: LoopThread
    server: PortalServer
    config: PortalConfig
    ca: CardAuthority
    registry: FakeRegistry
    hub: FakeHub

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        cookie: str = "",
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        async def go() -> Reply:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE  # the test's self-signed web certificate
            sent = dict(headers or {})
            if cookie:
                sent["Cookie"] = f"__Host-session={cookie}"
            async with (
                aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client,
                client.request(
                    method,
                    self.base + path,
                    json=json,
                    data=data,
                    headers=sent,
                    ssl=tls,
                    allow_redirects=False,
                ) as r,
            ):
                jar: SimpleCookie = SimpleCookie()
                for value in r.headers.getall("Set-Cookie", []):
                    jar.load(value)
                return Reply(r.status, r.headers, await r.text(), jar)

        return self.loop.run(go(), timeout=30)

    def signin_body(self, c: DemoCard, *, challenge: bytes | None = None) -> dict[str, str]:
        if challenge is None:
            issued = self.request("POST", "/api/signin/challenge", json={})
            assert issued.status == 200, issued.text
            challenge = base64.b64decode(issued.json()["challenge"])
        signature = card.der_to_p1363(card.sign_challenge(c.key, challenge))
        return {
            "certificate": c.pem,
            "challenge": base64.b64encode(challenge).decode(),
            "signature": base64.b64encode(signature).decode(),
        }

    def sign_in(self, c: DemoCard) -> tuple[str, str]:
        """(session cookie value, CSRF token)."""
        r = self.request("POST", "/api/signin", json=self.signin_body(c))
        assert r.status == 200, r.text
        return r.cookies["__Host-session"].value, r.json()["csrf_token"]


def _env(
    loop: LoopThread, tmp_path: Path, database: tuple[str | None, str], **limits: Any
) -> Iterator[Env]:
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path, ca, database, limits=RateLimits(**limits))
    both, registry, hub = peers(ca)
    server = loop.run(start(config, both))
    yield Env(loop, server, config, ca, registry, hub)
    loop.run(server.stop())


@pytest.fixture
def env(loop: LoopThread, tmp_path: Path, database: tuple[str | None, str]) -> Iterator[Env]:
    yield from _env(loop, tmp_path, database, per_client_burst=1000, overall_burst=1000)


def test_sign_in_binds_each_time_and_keeps_only_serial_and_link_code(env: Env) -> None:
    alice = env.ca.issue("alice")
    r = env.request("POST", "/api/signin", json=env.signin_body(alice))
    assert r.status == 200, r.text
    assert r.json()["next"] == "/history"
    morsel = r.cookies["__Host-session"]
    assert morsel["httponly"]
    assert morsel["secure"]
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert not morsel["domain"]
    page = env.request("GET", "/history", cookie=morsel.value)
    assert page.status == 200
    assert alice.serial in page.text
    assert (env.registry.calls, env.hub.issued) == (1, 1)
    # Signing in again binds the card again (so a key rotation at the hub reaches the
    # portal at the next sign-in: portal/rekey.py); one row per card all the same.
    env.sign_in(alice)
    assert (env.registry.calls, env.hub.issued) == (2, 2)
    engine = db.create_engine(env.config.database_url, schema=env.config.database_schema)
    store = PortalStore(engine)
    link = store.link_code(alice.serial)
    assert link is not None
    assert link.startswith("LC-")
    with store.engine.connect() as conn:
        kept = conn.execute(sa.text("select count(*) from portal_persons")).scalar_one()
    assert kept == 1
    # The session id itself is not stored, only its hash.
    assert store.session(morsel.value, datetime.now(UTC)) is not None
    with store.engine.connect() as conn:
        stored = [tuple(row) for row in conn.execute(sa.text("select * from portal_sessions"))]
    assert all(morsel.value not in map(str, row) for row in stored)
    store.engine.dispose()


def test_no_session_redirects_pages_and_refuses_the_api(env: Env) -> None:
    page = env.request("GET", "/history")
    assert (page.status, page.headers["Location"]) == (303, "/signin")
    api = env.request("GET", "/api/history")
    assert api.status == 401
    assert api.json()["error"] == "NO_SESSION"
    assert env.request("GET", "/history", cookie="forged-session-id").status == 303
    assert env.request("POST", "/signout", data={"csrf_token": "x"}).status == 303


def test_security_headers_are_on_every_response(env: Env) -> None:
    alice = env.ca.issue("alice")
    cookie, _ = env.sign_in(alice)
    for path, status, kwargs in (
        ("/signin", 200, {}),
        ("/history", 303, {}),
        ("/history", 200, {"cookie": cookie}),
        ("/no-such-page", 404, {"cookie": cookie}),
        ("/static/portal.css", 200, {}),
    ):
        r = env.request("GET", path, **kwargs)
        assert r.status == status, path
        h = r.headers
        assert "default-src 'self'" in h["Content-Security-Policy"]
        assert "script-src 'self';" in h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert "unsafe-inline" not in h["Content-Security-Policy"]
        assert h["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["X-Frame-Options"] == "DENY"
        if not path.startswith("/static/"):
            assert h["Cache-Control"] == "no-store"
    missing = env.request("GET", "/no-such-page", cookie=cookie)
    assert "ページが見つかりません" in missing.text
    assert 'lang="ja"' in missing.text
    # The sign-in page loads its script from a file: nothing inline for the CSP to allow.
    signin = env.request("GET", "/signin").text
    assert '<script src="/static/signin.js"' in signin
    assert "<script>" not in signin
    assert 'for="card-key"' in signin
    assert 'for="card-cert"' in signin


def test_unsafe_methods_need_the_sessions_csrf_token(env: Env) -> None:
    alice, bob = env.ca.issue("alice"), env.ca.issue("bob")
    cookie, token = env.sign_in(alice)
    _, bobs_token = env.sign_in(bob)
    missing = env.request("POST", "/signout", cookie=cookie, data={})
    assert missing.status == 403
    assert "この操作はできません" in missing.text
    others = env.request("POST", "/signout", cookie=cookie, data={"csrf_token": bobs_token})
    assert others.status == 403
    assert (
        env.request("POST", "/signout", cookie=cookie, headers={"X-CSRF-Token": "wrong"}).status
        == 403
    )
    # Still signed in after the refusals; the right token signs out.
    assert env.request("GET", "/history", cookie=cookie).status == 200
    foreign = env.request(
        "POST",
        "/signout",
        cookie=cookie,
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    # Browsers send Origin "null" for a form under Referrer-Policy no-referrer: the token decides.
    out = env.request(
        "POST", "/signout", cookie=cookie, data={"csrf_token": token}, headers={"Origin": "null"}
    )
    assert (out.status, out.headers["Location"]) == (303, "/signin")
    assert out.cookies["__Host-session"].value == ""
    assert env.request("GET", "/history", cookie=cookie).status == 303


def test_the_sign_in_api_refuses_foreign_origins_and_forms(env: Env) -> None:
    alice = env.ca.issue("alice")
    foreign = env.request(
        "POST",
        "/api/signin",
        json=env.signin_body(alice),
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    form = env.request("POST", "/api/signin/challenge", data={"x": "1"})
    assert form.status == 403
    same = env.request(
        "POST", "/api/signin", json=env.signin_body(alice), headers={"Origin": env.config.origin}
    )
    assert same.status == 200


def test_bad_cards_and_replays_are_refused(env: Env) -> None:
    alice, mallory = env.ca.issue("alice"), env.ca.issue("mallory")
    env.sign_in(alice)
    env.ca.revoke(alice)
    revoked = env.request("POST", "/api/signin", json=env.signin_body(alice))
    assert (revoked.status, revoked.json()["error"]) == (401, "CARD_REVOKED")
    assert "失効" in revoked.json()["message"]
    assert "__Host-session" not in revoked.cookies
    # Another card's key over this card's certificate.
    body = env.signin_body(mallory)
    body["certificate"] = env.ca.issue("carol").pem
    wrong = env.request("POST", "/api/signin", json=body)
    assert wrong.json()["error"] == "CARD_SIGNATURE_INVALID"
    # A card of another CA.
    stranger = card_authority(env.ca.folder.parent / "other-ca").issue("stranger")
    assert (
        env.request("POST", "/api/signin", json=env.signin_body(stranger)).json()["error"]
        == "CARD_CERTIFICATE_INVALID"
    )
    # A challenge signs in once; one the portal did not hand out never does.
    body = env.signin_body(mallory)
    assert env.request("POST", "/api/signin", json=body).status == 200
    replay = env.request("POST", "/api/signin", json=body)
    assert (replay.status, replay.json()["error"]) == (401, "CARD_CHALLENGE_STALE")
    _, own = card.new_challenge("portal", datetime.now(UTC))
    made_up = env.request("POST", "/api/signin", json=env.signin_body(mallory, challenge=own))
    assert made_up.json()["error"] == "CARD_CHALLENGE_STALE"
    _, elsewhere = card.new_challenge("other-portal", datetime.now(UTC))
    foreign = env.request("POST", "/api/signin", json=env.signin_body(mallory, challenge=elsewhere))
    assert foreign.json()["error"] == "CARD_CHALLENGE_FOREIGN"
    malformed = env.request("POST", "/api/signin", json={"certificate": "x"})
    assert (malformed.status, malformed.json()["error"]) == (400, "MALFORMED_SIGNIN")
    large = env.request("POST", "/api/signin", json={"certificate": "x" * 20_000})
    assert (large.status, large.json()["error"]) == (413, "TOO_LARGE")


@pytest.fixture
def limited(loop: LoopThread, tmp_path: Path) -> Iterator[Env]:
    yield from _env(
        loop,
        tmp_path,
        (None, "rate"),
        per_client_per_minute=1.0,
        per_client_burst=3,
        overall_per_minute=60.0,
        overall_burst=100,
    )


def test_sign_in_is_rate_limited(limited: Env) -> None:
    statuses = [limited.request("POST", "/api/signin/challenge", json={}).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = limited.request("POST", "/api/signin/challenge", json={})
    assert r.status == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"] == "HTTP_429"
    # Pages other than sign-in are not limited.
    assert limited.request("GET", "/signin").status == 200


def test_the_config_file_loads(tmp_path: Path) -> None:
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path, ca, (None, "cfg"))
    file = tmp_path / "portal.toml"
    file.write_text(
        f"""
[portal]
listen = "{config.listen}"
public_url = "{config.public_url}/"
database_url = "sqlite:///{{config_dir}}/portal.db"
master_key = "file:master.key"
session_minutes = 15
[web_tls]
cert = "web/web.pem"
key = "web/web.key"
[hub]
endpoint = "127.0.0.1:50051"
[registry]
endpoint = "127.0.0.1:50071"
[cards]
ca_cert = "card-ca/ca.pem"
crl = "card-ca/crl.pem"
[rate_limit]
per_client_burst = 2
""",
        encoding="utf-8",
    )
    loaded = PortalConfig.load(file)
    assert loaded.origin == config.public_url
    assert loaded.card_crl == tmp_path / "card-ca" / "crl.pem"
    assert loaded.database_url == f"sqlite:///{tmp_path}/portal.db"
    assert replace(loaded.rate_limits) == RateLimits(per_client_burst=2)
    assert loaded.session_minutes == 15
    assert loaded.agency_id == "portal"
    assert loaded.master_key == config.master_key


def test_expired_sessions_and_challenges_are_swept(tmp_path: Path) -> None:
    from datetime import timedelta

    store = PortalStore(db.create_engine(db.sqlite_url(str(tmp_path / "p.db"))))
    now = datetime.now(UTC)
    store.add_challenge("old", now - timedelta(seconds=1))
    store.add_challenge("new", now + timedelta(minutes=5))
    store.add_session("gone", "1", "t", now - timedelta(hours=1), now - timedelta(seconds=1))
    store.add_session("kept", "2", "t", now, now + timedelta(minutes=30))
    assert store.expire(now) == 2
    assert not store.use_challenge("old", now)
    assert store.use_challenge("new", now)
    assert store.session("gone", now) is None
    assert store.session("kept", now) is not None
    store.engine.dispose()


def test_an_unusable_crl_refuses_every_card_as_the_portals_fault(env: Env) -> None:
    alice = env.ca.issue("alice")
    env.ca.crl_file.write_text("not a CRL")
    r = env.request("POST", "/api/signin", json=env.signin_body(alice))
    assert (r.status, r.json()["error"]) == (503, "CARD_CRL_INVALID")
    env.ca.crl_file.unlink()
    r = env.request("POST", "/api/signin", json=env.signin_body(alice))
    assert (r.status, r.json()["error"]) == (503, "CARD_CRL_INVALID")
    env.ca.write_crl()
    assert env.request("POST", "/api/signin", json=env.signin_body(alice)).status == 200
