"""The portal's pages behind sign-in: やりとり履歴, one entry, its details, downloads, JSON.

Every page asks the hub with the person's own link code (``request[SESSION]``)
and checks what comes back (``portal.history``) before showing it; a page that
does not verify says so on every row. A serial that is not the person's is a
404 that says nothing more than a serial that does not exist (docs/portal.md).
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import grpc
import jinja2
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import x25519

from portal import report_csv, report_pdf
from portal.app_keys import APPLICATIONS, PERSONAL_LOG, SESSION, Application, Session
from portal.history import (
    JST,
    VERIFIER,
    HistoryPage,
    HistoryRow,
    HistoryVerifier,
    outcome_label,
    unverified,
)
from renkei.disclosure import Details, open_details
from renkei.errors import RenkeiError
from renkei.hub.v1 import personal_pb2
from renkei.pki import validate_agency_id

PAGE_SIZE = 50  # leaves per page of /history
HUB_PAGE_SIZE = 1000  # the most the hub answers at once
MAX_DOWNLOAD = 10_000  # leaves in one CSV or PDF (and scanned to find one entry)
MAX_TOKEN = 200
DEFAULT_FONT = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NOT_FOUND_TEXT = "お探しの記録は見つかりません。"
NO_VERIFIER_TEXT = "記録を検証する鍵がこのポータルに設定されていないため、検証できません。"
HUB_DOWN_TEXT = "いま記録を取り寄せられません。しばらくしてからもう一度お試しください。"
# An application for details is an exchange of this kind (protos/renkei/hub/v1/personal.proto):
# the person's own request, with no details of its own to apply for.
DISCLOSURE_INFO_KIND = "情報提供等記録開示"
ROLE_LABELS = {"requester": "照会機関", "provider": "提供機関"}
STATE_LABELS = {
    "PENDING": "受付済み（回答待ち）",
    "ANSWERED": "回答あり",
    "DEFERRED": "開示延期",
    "REFUSED": "開示されませんでした",
}


TEMPLATES = web.AppKey("page_templates", jinja2.Environment)
SEALING_KEY = web.AppKey("sealing_key", x25519.X25519PrivateKey)
FONT_PATH = web.AppKey("report_font", Path)


def templates(loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    """The pages' templates (portal/templates; base.html is the sign-in side's)."""
    env = jinja2.Environment(
        loader=loader or jinja2.PackageLoader("portal", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["jst"] = _jst
    env.globals["outcome_label"] = outcome_label
    return env


def routes(app: web.Application) -> None:
    """Adds the pages; the bootstrap sets VERIFIER and SEALING_KEY (and may set TEMPLATES)."""
    if TEMPLATES not in app:
        app[TEMPLATES] = templates()
    app.router.add_get("/history", history)
    app.router.add_get("/history.csv", history_csv)
    app.router.add_get("/history.pdf", history_pdf)
    app.router.add_get(r"/history/{serial:\d{1,18}}", entry_page)
    app.router.add_post(r"/history/{serial:\d{1,18}}/details", apply_details)
    app.router.add_get("/api/history", api_history)


# -- filters ------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None  # inclusive
    agency_id: str = ""
    errors: tuple[str, ...] = ()

    def request(self, link_code: str, page_size: int, token: str = "") -> Any:
        req = personal_pb2.ListPersonalEntriesRequest(
            link_code=link_code, agency_id=self.agency_id, page_size=page_size, page_token=token
        )
        if self.start is not None:
            req.start_time.FromDatetime(_midnight(self.start))
        if self.end is not None:
            req.end_time.FromDatetime(_midnight(self.end + timedelta(days=1)))
        return req

    def query(self, **more: str) -> str:
        """The filters as a query string (for links to other pages and downloads)."""
        q = {
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "agency": self.agency_id,
            **more,
        }
        return urlencode({k: v for k, v in q.items() if v})

    def describe(self) -> str:
        parts = []
        if self.start or self.end:
            start = self.start.isoformat() if self.start else ""
            end = self.end.isoformat() if self.end else ""
            parts.append(f"期間 {start}〜{end}")
        if self.agency_id:
            parts.append(f"機関 {self.agency_id}")
        return "、".join(parts) or "すべての記録"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST)


def filters(request: web.Request) -> Filters:
    """The filters the query names; a bad one is dropped and named in ``errors``."""
    errors: list[str] = []

    def day(name: str, label: str) -> date | None:
        raw = request.query.get(name, "").strip()
        if not raw:
            return None
        try:
            if not _DATE.fullmatch(raw):
                raise ValueError(raw)
            return date.fromisoformat(raw)
        except ValueError:
            errors.append(f"{label}は YYYY-MM-DD の形で入力してください。")
            return None

    start, end = day("from", "期間の開始日"), day("to", "期間の終了日")
    if start and end and start > end:
        errors.append("期間の開始日が終了日より後です。")
        start = end = None
    agency = request.query.get("agency", "").strip()
    if agency:
        try:
            validate_agency_id(agency)
        except ValueError:
            errors.append("機関コードの形が正しくありません。")
            agency = ""
    return Filters(start, end, agency, tuple(errors))


def _token(request: web.Request) -> str:
    token = request.query.get("page", "")
    if len(token) > MAX_TOKEN:
        raise web.HTTPBadRequest(text="ページの指定が正しくありません。")
    return token


# -- the hub ------------------------------------------------------------------


def _checked(
    request: web.Request, responses: list[personal_pb2.ListPersonalEntriesResponse]
) -> HistoryPage:
    """The hub's pages verified; without a verifier (no log keys configured) every row is
    shown as not verified, saying why."""
    verifier: HistoryVerifier | None = request.app.get(VERIFIER)
    if verifier is None:
        return unverified(responses, NO_VERIFIER_TEXT)
    return verifier.verify_many(responses)


def _session(request: web.Request) -> Session:
    session: Session = request[SESSION]
    return session


def _not_found(err: BaseException) -> bool:
    if isinstance(err, RenkeiError):
        return err.code == grpc.StatusCode.NOT_FOUND
    if isinstance(err, grpc.RpcError):
        code: Any = getattr(err, "code", None)
        return callable(code) and code() == grpc.StatusCode.NOT_FOUND
    return False


async def _list(
    request: web.Request, req: personal_pb2.ListPersonalEntriesRequest
) -> personal_pb2.ListPersonalEntriesResponse:
    """The hub's page; a 503 in words when the hub refuses or does not answer."""
    try:
        return await request.app[PERSONAL_LOG].list_entries(req)
    except (RenkeiError, grpc.RpcError):
        if request.path.startswith("/api/"):
            raise web.HTTPServiceUnavailable(
                text='{"error": "HUB_UNAVAILABLE"}', content_type="application/json"
            ) from None
        raise web.HTTPServiceUnavailable(text=HUB_DOWN_TEXT) from None


async def _pages(
    request: web.Request, f: Filters, *, limit: int = MAX_DOWNLOAD
) -> AsyncIterator[personal_pb2.ListPersonalEntriesResponse]:
    """The hub's pages for these filters, until the last or ``limit`` leaves."""
    link_code = _session(request).link_code
    token, seen = "", 0
    while True:
        size = min(HUB_PAGE_SIZE, limit - seen)
        response = await _list(request, f.request(link_code, size, token))
        seen += len(response.entries)
        yield response
        token = response.next_page_token
        if not token or seen >= limit or not response.entries:
            return


async def _download(request: web.Request, f: Filters) -> tuple[HistoryPage, bool]:
    """Every page (up to MAX_DOWNLOAD leaves) checked; True when the bound cut it short."""
    responses = [r async for r in _pages(request, f)]
    page = _checked(request, responses)
    return page, bool(page.next_page_token)


async def _find(request: web.Request, serial: int) -> HistoryRow | None:
    """The person's row of ``serial``, checked; None when their history has no such serial."""
    found: list[personal_pb2.ListPersonalEntriesResponse] = []
    async for response in _pages(request, Filters()):
        mine = [e for e in response.entries if e.serial == serial]
        if mine:
            found.append(
                personal_pb2.ListPersonalEntriesResponse(
                    entries=mine, checkpoint=response.checkpoint
                )
            )
        # Newest first: past the serial, nothing of it can follow.
        if response.entries and response.entries[-1].serial < serial:
            break
    if not found:
        return None
    rows = _checked(request, found).rows
    return rows[0] if rows else None


def _render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    session = _session(request)
    template = request.app[TEMPLATES].get_template(name)
    html = template.render(
        csrf_token=session.csrf_token, card_serial=session.card_serial, **context
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


# -- the history --------------------------------------------------------------


async def history(request: web.Request) -> web.Response:
    f = filters(request)
    token = _token(request)
    response = await _list(request, f.request(_session(request).link_code, PAGE_SIZE, token))
    page = _checked(request, [response])
    return _render(
        request,
        "history.html",
        page=page,
        filters=f,
        first_page=not token,
        next_query=f.query(page=page.next_page_token) if page.next_page_token else "",
        first_query=f.query(),
        download_query=f.query(),
    )


def _now(request: web.Request) -> datetime:
    return datetime.now(UTC)


async def history_csv(request: web.Request) -> web.Response:
    f = filters(request)
    page, cut = await _download(request, f)
    body = report_csv.render_history_csv(page, truncated_at=MAX_DOWNLOAD if cut else None)
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="history.csv"'},
    )


async def history_pdf(request: web.Request) -> web.Response:
    f = filters(request)
    page, cut = await _download(request, f)
    now = _now(request)
    footer = "マイポータル やりとり履歴"
    if cut:
        footer += f"（上限 {MAX_DOWNLOAD} 件まで）"
    body = await asyncio.to_thread(
        report_pdf.render_history_pdf,
        page,
        title="情報提供等記録（やりとり履歴）",
        subject_line=f"対象: {f.describe()}",
        generated_at=now,
        footer=footer,
        font_path=request.app.get(FONT_PATH, DEFAULT_FONT),
    )
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="history.pdf"'},
    )


# -- one entry and its details ------------------------------------------------


@dataclass(frozen=True)
class AgencyDetails:
    """One agency's part of the details section: what it keeps, the application, the answer."""

    agency_id: str
    agency_name: str
    role: str
    fields: str  # "(11) 提供された情報、(12) 利用目的" or "(11) 提供された情報"
    application: Application | None
    details: Details | None = None
    problem: str = ""

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.application.state, "") if self.application else ""


def _agencies(row: HistoryRow) -> list[tuple[str, str, str]]:
    """(agency id, name, role) of the exchange's requester and provider."""
    out = [(row.requester_id, row.requester_name, "requester")]
    if row.provider_id != row.requester_id:
        out.append((row.provider_id, row.provider_name, "provider"))
    return [a for a in out if a[0]]


def _state(response: personal_pb2.RequestDetailsResponse) -> str:
    name = personal_pb2.DetailsState.Name(response.state)
    return name.removeprefix("DETAILS_STATE_")


def _updated(
    app: Application, response: personal_pb2.RequestDetailsResponse, now: datetime
) -> Application:
    deferred_until = None
    note = app.note
    if response.HasField("deferral"):
        deferred_until = response.deferral.until.ToDatetime(tzinfo=UTC)
        note = response.deferral.legal_reason
    if response.refusal_reason:
        note = response.refusal_reason
    state = _state(response)
    return replace(
        app,
        state=state if state in STATE_LABELS else app.state,
        updated_at=now,
        sealed_details=response.sealed_details or app.sealed_details,
        request_serial=response.request_serial or app.request_serial,
        deferred_until=deferred_until or app.deferred_until,
        note=note,
    )


def _open(request: web.Request, application: Application) -> tuple[Details | None, str]:
    key = request.app.get(SEALING_KEY)
    if key is None:
        return None, "この窓口では詳細を開けません（封緘鍵が設定されていません）。"
    try:
        details = open_details(
            application.sealed_details,
            private_key=key,
            application_id=application.application_id,
            serial=application.serial,
            agency_id=application.agency_id,
        )
    except (RenkeiError, ValueError) as err:
        reason = getattr(err, "reason", type(err).__name__)
        return None, f"回答を開けませんでした（{reason}）。"
    return details, ""


async def _applications(request: web.Request, serial: int) -> dict[str, Application]:
    """The person's latest application per agency for this serial."""
    store = request.app[APPLICATIONS]
    mine = await asyncio.to_thread(store.of_person, _session(request).card_serial)
    latest: dict[str, Application] = {}
    for a in sorted(mine, key=lambda a: a.created_at):
        if a.serial == serial:
            latest[a.agency_id] = a
    return latest


async def _ask_again(request: web.Request, app: Application) -> Application:
    """A pending application's state as the hub tells it now (the agency may have answered)."""
    hub = request.app[PERSONAL_LOG]
    session = _session(request)
    try:
        response = await hub.request_details(
            personal_pb2.RequestDetailsRequest(
                link_code=session.link_code,
                serial=app.serial,
                agency_id=app.agency_id,
                application_id=app.application_id,
            )
        )
    except (RenkeiError, grpc.RpcError):
        return app  # the hub is not answering now; the page shows the state kept
    updated = _updated(app, response, _now(request))
    if updated != app:
        await asyncio.to_thread(request.app[APPLICATIONS].save, updated)
    return updated


async def entry_page(request: web.Request) -> web.Response:
    serial = int(request.match_info["serial"])
    row = await _find(request, serial)
    if row is None:
        raise web.HTTPNotFound(text=NOT_FOUND_TEXT)
    sections: list[AgencyDetails] = []
    own_application = row.info_kind == DISCLOSURE_INFO_KIND
    if not row.deferred and not own_application:
        applications = await _applications(request, serial)
        for agency_id, name, role in _agencies(row):
            app = applications.get(agency_id)
            if app is not None and app.state == "PENDING":
                app = await _ask_again(request, app)
            details, problem = None, ""
            if app is not None and app.state == "ANSWERED":
                details, problem = _open(request, app)
            fields = (
                "(11) 提供された情報、(12) 利用目的"
                if role == "requester"
                else "(11) 提供された情報"
            )
            sections.append(AgencyDetails(agency_id, name, role, fields, app, details, problem))
    return _render(
        request, "entry.html", row=row, sections=sections, own_application=own_application
    )


async def apply_details(request: web.Request) -> web.Response:
    serial = int(request.match_info["serial"])
    form = await request.post()
    agency_id = str(form.get("agency_id", ""))
    row = await _find(request, serial)
    if row is None:
        raise web.HTTPNotFound(text=NOT_FOUND_TEXT)
    if (
        row.deferred
        or row.info_kind == DISCLOSURE_INFO_KIND
        or agency_id not in {a for a, _, _ in _agencies(row)}
    ):
        raise web.HTTPBadRequest(text="この記録のこの機関には申請できません。")
    existing = (await _applications(request, serial)).get(agency_id)
    if existing is not None and existing.state != "REFUSED":
        raise web.HTTPSeeOther(f"/history/{serial}")
    session = _session(request)
    now = _now(request)
    application_id = secrets.token_urlsafe(24)  # 32 of [A-Za-z0-9_-]
    try:
        response = await request.app[PERSONAL_LOG].request_details(
            personal_pb2.RequestDetailsRequest(
                link_code=session.link_code,
                serial=serial,
                agency_id=agency_id,
                application_id=application_id,
            )
        )
    except (RenkeiError, grpc.RpcError) as err:
        if _not_found(err):
            raise web.HTTPNotFound(text=NOT_FOUND_TEXT) from None
        raise web.HTTPServiceUnavailable(
            text="いま申請を受け付けられません。しばらくしてからもう一度お試しください。"
        ) from None
    app = Application(
        application_id=application_id,
        card_serial=session.card_serial,
        serial=serial,
        agency_id=agency_id,
        state="PENDING",
        created_at=now,
        updated_at=now,
    )
    await asyncio.to_thread(request.app[APPLICATIONS].save, _updated(app, response, now))
    raise web.HTTPSeeOther(f"/history/{serial}")


# -- JSON ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def response_json(response: personal_pb2.ListPersonalEntriesResponse) -> dict[str, Any]:
    """A hub page as /api/history answers it (docs/portal.md): bytes as base64."""
    entries: list[dict[str, Any]] = []
    for e in response.entries:
        item: dict[str, Any] = {
            "serial": e.serial,
            "leaf_index": e.leaf_index,
            "entry": _b64(e.entry),
            "leaf_hash": _b64(e.leaf_hash),
            "inclusion_proof": [_b64(p) for p in e.inclusion_proof],
            "legal_basis_text": e.legal_basis_text,
            "requester_name": e.requester_name,
            "provider_name": e.provider_name,
            "deferral": None,
        }
        if e.HasField("deferral"):
            item["deferral"] = {
                "agency_id": e.deferral.agency_id,
                "until": e.deferral.until.ToDatetime(tzinfo=UTC).isoformat(),
                "legal_reason": e.deferral.legal_reason,
            }
        entries.append(item)
    return {
        "checkpoint": _b64(response.checkpoint),
        "entries": entries,
        "next_page_token": response.next_page_token,
    }


def response_from_json(doc: dict[str, Any]) -> personal_pb2.ListPersonalEntriesResponse:
    """The inverse of response_json (the counter's side); ValueError/KeyError when malformed."""
    response = personal_pb2.ListPersonalEntriesResponse(
        checkpoint=base64.b64decode(doc["checkpoint"], validate=True),
        next_page_token=str(doc.get("next_page_token", "")),
    )
    for item in _entries(doc["entries"]):
        pe = personal_pb2.PersonalEntry(
            serial=int(item["serial"]),
            leaf_index=int(item["leaf_index"]),
            entry=base64.b64decode(item["entry"], validate=True),
            leaf_hash=base64.b64decode(item["leaf_hash"], validate=True),
            inclusion_proof=[base64.b64decode(p, validate=True) for p in item["inclusion_proof"]],
            legal_basis_text=str(item.get("legal_basis_text", "")),
            requester_name=str(item.get("requester_name", "")),
            provider_name=str(item.get("provider_name", "")),
        )
        deferral = item.get("deferral")
        if deferral:
            pe.deferral.agency_id = str(deferral["agency_id"])
            pe.deferral.until.FromDatetime(datetime.fromisoformat(str(deferral["until"])))
            pe.deferral.legal_reason = str(deferral["legal_reason"])
        response.entries.append(pe)
    return response


def _entries(value: object) -> Iterable[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError("entries: not a list of objects")
    return value


async def api_history(request: web.Request) -> web.Response:
    f = filters(request)
    if f.errors:
        return web.json_response(
            {"error": "INVALID_FILTER", "messages": list(f.errors)}, status=400
        )
    try:
        size = int(request.query.get("page_size", str(HUB_PAGE_SIZE)))
    except ValueError:
        size = 0
    if not 1 <= size <= HUB_PAGE_SIZE:
        return web.json_response({"error": "INVALID_PAGE_SIZE"}, status=400)
    response = await _list(request, f.request(_session(request).link_code, size, _token(request)))
    return web.json_response(response_json(response))


def _jst(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
