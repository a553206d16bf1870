"""The portal's pages on aiohttp's test server, without the sign-in side.

A test middleware plays ``portal.web``'s part (a session for one person, a 403
for a POST without its CSRF token), a ``base.html`` of the tests' own stands in
for the sign-in side's (loaded through a ChoiceLoader ahead of the pages'
templates), and the applications live in a dict. Tests seal details with
renkei.disclosure.seal_details, as an agency does; the pages open them with its
open_details and the sealing key given here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jinja2
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import x25519

from portal import pages
from portal.app_keys import APPLICATIONS, PERSONAL_LOG, SESSION, Application, Session
from portal.history import VERIFIER
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
    pages.routes(app)
    return app
