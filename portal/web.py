"""The portal's HTTP side: security middlewares, sign-in routes, error pages.

Every response carries the security headers (``SECURITY_HEADERS``) and, but
for ``/static/``, ``Cache-Control: no-store``. Every path but the public ones
(``PUBLIC``) needs a session: without one a page answers 303 to /signin and
``/api/*`` 401 JSON. Every unsafe method (POST, PUT, PATCH, DELETE) needs
the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``), else 403; the sign-in API, which has no session yet, needs
``Content-Type: application/json`` instead (a cross-site form cannot send
that) and, from a browser, an ``Origin`` of the portal itself. Sign-in is
rate limited per client address and overall (429 with ``Retry-After``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import jinja2
from aiohttp import web

from portal.app_keys import SESSION, Session
from portal.config import PortalConfig
from portal.ratelimit import TokenBuckets
from portal.sessions import COOKIE, Sessions
from portal.signin import SignIn
from renkei.errors import RenkeiError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SIGNIN = web.AppKey("signin", SignIn)
SESSIONS = web.AppKey("sessions", Sessions)
CONFIG = web.AppKey("portal_config", PortalConfig)
RATE = web.AppKey("signin_rate", TokenBuckets)
SIGNIN_TEMPLATES = web.AppKey("signin_templates", jinja2.Environment)

STATIC = Path(__file__).parent / "static"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGNIN_API = frozenset({"/api/signin/challenge", "/api/signin"})
PUBLIC = frozenset({"/signin", "/favicon.ico", *SIGNIN_API})
MAX_SIGNIN_BODY = 16 * 1024
# Any request body: forms and JSON are small; nothing is uploaded to the portal.
MAX_BODY = 256 * 1024

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

# What the person is told, in Japanese, per refusal.
_ERROR_PAGES = {
    400: ("リクエストが正しくありません", "入力内容を確かめて、もう一度お試しください。"),
    403: ("この操作はできません", "ページを読み込み直してから、もう一度お試しください。"),
    404: ("ページが見つかりません", "お探しのページは存在しないか、表示できません。"),
    405: ("この操作はできません", "このページではその操作を受け付けていません。"),
    429: ("アクセスが集中しています", "しばらく待ってから、もう一度お試しください。"),
}
_SIGNIN_MESSAGES = {
    "CARD_CERTIFICATE_INVALID": "カードの証明書が有効ではありません。",
    "CARD_REVOKED": "このカードの証明書は失効しています。",
    "CARD_SIGNATURE_INVALID": "カードの鍵と証明書が一致しません。",
    "CARD_CHALLENGE_STALE": "時間が経ちすぎました。もう一度ログインしてください。",
    "CARD_CHALLENGE_FOREIGN": "このポータル向けのログイン要求ではありません。",
    "CARD_CHALLENGE_MALFORMED": "ログイン要求の形式が正しくありません。",
}


_SIGNIN_STATUS = {grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.INVALID_ARGUMENT: 400}


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("portal", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[SIGNIN_TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _json_error(status: int, reason: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": reason, "message": message}, status=status, headers=headers or None
    )


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _error_page(request: web.Request, status: int, **headers: str) -> web.Response:
    heading, message = _ERROR_PAGES.get(
        status, ("エラーが発生しました", "もう一度お試しください。")
    )
    if _is_api(request):
        return _json_error(status, f"HTTP_{status}", message, **headers)
    session: Session | None = request.get(SESSION)
    response = _render(
        request,
        "error.html",
        status=status,
        heading=heading,
        message=message,
        link="/history" if session else "/signin",
        link_text="やりとり履歴へ" if session else "ログインへ",
        csrf_token=session.csrf_token if session else "",
    )
    response.headers.update(headers)
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The headers on every response, and refusals as Japanese pages (or JSON for /api/)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status not in _ERROR_PAGES:
            _secure(request, exc)  # redirects and the like go out as raised
            raise
        response = _error_page(
            request,
            exc.status,
            **{k: v for k, v in exc.headers.items() if k in ("Retry-After", "Allow")},
        )
    _secure(request, response)
    return response


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


async def _csrf_token_of(request: web.Request) -> str:
    header = request.headers.get("X-CSRF-Token", "")
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # cached: the handler reads it again for free
        value = form.get("csrf_token", "")
        return value if isinstance(value, str) else ""
    return ""


@web.middleware
async def sessions_and_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``request[SESSION]`` from the cookie; refuses what needs a session or a token."""
    if request.path.startswith("/static/") and request.method in ("GET", "HEAD"):
        return await handler(request)  # the same files for everyone: no session to look up
    session = await request.app[SESSIONS].find(request.cookies.get(COOKIE, ""))
    if session is not None:
        request[SESSION] = session
    public = request.path in PUBLIC
    if request.method in UNSAFE:
        origin = request.headers.get("Origin")
        # "null": what browsers send for a form under Referrer-Policy no-referrer; the
        # CSRF token (or, for sign-in, the JSON content type) still decides.
        if origin not in (None, "null", request.app[CONFIG].origin):
            raise web.HTTPForbidden(reason="foreign origin")
        if request.path in SIGNIN_API:
            if request.content_type != "application/json":
                raise web.HTTPForbidden(reason="the sign-in API takes application/json only")
        elif session is not None:
            token = await _csrf_token_of(request)
            if not token or not secrets.compare_digest(token, session.csrf_token):
                raise web.HTTPForbidden(reason="CSRF token missing or wrong")
        elif not public:
            return _no_session(request)
    elif session is None and not public:
        return _no_session(request)
    return await handler(request)


def _no_session(request: web.Request) -> web.StreamResponse:
    if _is_api(request):
        return _json_error(401, "NO_SESSION", "ログインしてください。")
    raise web.HTTPSeeOther("/signin")


def _rate_limited(request: web.Request) -> None:
    wait = request.app[RATE].take(request.remote or "unknown")
    if wait > 0:
        raise web.HTTPTooManyRequests(headers={"Retry-After": str(max(1, math.ceil(wait)))})


# -- routes -----------------------------------------------------------------


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/history")


async def signin_page(request: web.Request) -> web.StreamResponse:
    if SESSION in request:
        raise web.HTTPSeeOther("/history")
    return _render(request, "signin.html", csrf_token="")


async def api_challenge(request: web.Request) -> web.StreamResponse:
    _rate_limited(request)
    challenge, expires = await request.app[SIGNIN].challenge()
    return web.json_response(
        {
            "challenge": base64.b64encode(challenge).decode("ascii"),
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
        }
    )


def _field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise web.HTTPBadRequest(reason=f"{key} missing")
    return value


async def api_signin(request: web.Request) -> web.StreamResponse:
    _rate_limited(request)
    if request.content_length is not None and request.content_length > MAX_SIGNIN_BODY:
        return _json_error(413, "TOO_LARGE", "リクエストが大きすぎます。")
    raw = await request.read()  # bounded by the app's client_max_size as well
    if len(raw) > MAX_SIGNIN_BODY:
        return _json_error(413, "TOO_LARGE", "リクエストが大きすぎます。")
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
        certificate = _field(body, "certificate")
        challenge = base64.b64decode(_field(body, "challenge"), validate=True)
        signature = base64.b64decode(_field(body, "signature"), validate=True)
    except (ValueError, binascii.Error, web.HTTPBadRequest):
        return _json_error(
            400,
            "MALFORMED_SIGNIN",
            "certificate (PEM), challenge (base64) and signature (base64) are needed",
        )
    try:
        session = await request.app[SIGNIN].sign_in(certificate, challenge, signature)
    except RenkeiError as err:
        log.info("sign-in refused: %s", err.reason)
        # The card's or the request's fault, or the portal's side (its CRL, the registry, the hub).
        status = _SIGNIN_STATUS.get(err.code, 503)
        message = _SIGNIN_MESSAGES.get(
            err.reason, "ただいまログインできません。時間をおいてお試しください。"
        )
        return _json_error(status, err.reason, message)
    response = web.json_response({"next": "/history", "csrf_token": session.csrf_token})
    response.set_cookie(
        COOKIE,
        session.session_id,
        max_age=int(request.app[SESSIONS].lifetime.total_seconds()),
        path="/",
        secure=True,
        httponly=True,
        samesite="Strict",
    )
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    session: Session | None = request.get(SESSION)
    if session is not None:
        await request.app[SESSIONS].end(session.session_id)
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    raise response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/signin", signin_page)
    app.router.add_post("/api/signin/challenge", api_challenge)
    app.router.add_post("/api/signin", api_signin)
    app.router.add_post("/signout", signout)
    app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
