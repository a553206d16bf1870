"""The portal's pages on aiohttp's test server, without the sign-in side.

A test middleware plays ``portal.web``'s part (a session for one person, a 403
for a POST without its CSRF token), a ``base.html`` of the tests' own stands in
for the sign-in side's (loaded through a ChoiceLoader ahead of the pages'
templates), and the applications live in a dict. Details are sealed here with
renkei.sealing and opened by ``open_test_details`` until renkei.disclosure
lands; then the helper switches to its seal/open_details.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import jinja2
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import x25519

from portal import pages
from portal.app_keys import APPLICATIONS, PERSONAL_LOG, SESSION, Application, Session
from portal.history import VERIFIER
from renkei import sealing
from support.personal_log import FakePersonalLog

TEST_BASE = (
    '<!doctype html><html lang="ja"><head><meta charset="utf-8">'
    "<title>{% block title %}{% endblock %}</title>{% block head %}{% endblock %}</head>"
    "<body><main>{% block content %}{% endblock %}</main></body></html>"
)
CSRF = "csrf-token-of-the-test-session"


@dataclass
class MemoryApplications:
    rows: dict[str, Application] = field(default_factory=dict)

    def save(self, application: Application) -> None:
        self.rows[application.application_id] = application

    def get(self, card_serial: str, application_id: str) -> Application | None:
        a = self.rows.get(application_id)
        return a if a is not None and a.card_serial == card_serial else None

    def of_person(self, card_serial: str) -> list[Application]:
        return [a for a in self.rows.values() if a.card_serial == card_serial]


@dataclass(frozen=True)
class DetailsForTests:
    """The fields of renkei.disclosure's Details."""

    serial: int
    agency_id: str
    role: str
    logged_at: datetime
    info_kind: str
    legal_basis_item: str
    counterpart_agency_id: str
    content: str
    purpose: str | None
    outcome: str
    answered_at: datetime


def _info(application_id: str, serial: int, agency_id: str) -> bytes:
    return sealing.exchange_info("test-details", application_id, serial, agency_id)


def seal_test_details(
    details: DetailsForTests, recipient: x25519.X25519PublicKey, application_id: str
) -> bytes:
    doc = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(details).items()}
    plain = json.dumps(doc, ensure_ascii=False).encode()
    return sealing.seal(plain, recipient, _info(application_id, details.serial, details.agency_id))


def open_test_details(
    sealed: bytes,
    *,
    private_key: x25519.X25519PrivateKey,
    application_id: str,
    serial: int,
    agency_id: str,
) -> DetailsForTests:
    plain = sealing.open_sealed(
        sealed, private_key, _info(application_id, serial, agency_id), field="sealed_details"
    )
    doc = json.loads(plain)
    for k in ("logged_at", "answered_at"):
        doc[k] = datetime.fromisoformat(doc[k])
    return DetailsForTests(**doc)


def session(link_code: str, card_serial: str = "1001") -> Session:
    return Session(
        session_id="s-1",
        card_serial=card_serial,
        link_code=link_code,
        csrf_token=CSRF,
        signed_in_at=datetime(2026, 4, 1, tzinfo=UTC),
    )


def pages_app(
    hub: FakePersonalLog,
    who: Session,
    applications: MemoryApplications | None = None,
    sealing_key: x25519.X25519PrivateKey | None = None,
) -> web.Application:
    @web.middleware
    async def signed_in(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request[SESSION] = who
        if request.method == "POST":
            form = await request.post()
            if form.get("csrf_token") != who.csrf_token:
                raise web.HTTPForbidden()
        return await handler(request)

    app = web.Application(middlewares=[signed_in])
    app[PERSONAL_LOG] = hub
    app[APPLICATIONS] = applications or MemoryApplications()
    app[VERIFIER] = hub.log.verifier()
    loader = jinja2.ChoiceLoader(
        [jinja2.DictLoader({"base.html": TEST_BASE}), jinja2.PackageLoader("portal", "templates")]
    )
    app[pages.TEMPLATES] = pages.templates(loader)
    if sealing_key is not None:
        app[pages.SEALING_KEY] = sealing_key
    opener: pages.DetailsOpener = open_test_details
    app[pages.DETAILS_OPENER] = opener
    pages.routes(app)
    return app
