"""portal.pages on aiohttp's test server: history, filters, one entry, details, downloads, JSON.

The hub is a fake over a real tree (support/personal_log.py); the sign-in side
is a test middleware (support/portal_pages.py). PDFs are read back with
Debian's pdftotext.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from support.personal_log import FakePersonalLog, PersonLog
from support.portal_pages import (
    CSRF,
    MemoryApplications,
    pages_app,
    session,
)

from portal import pages
from portal.history import VERIFIER
from renkei import sealing
from renkei.disclosure import Details, seal_details
from renkei.errors import Unavailable
from renkei.hub.v1 import personal_pb2

ME, OTHER = "link-me", "link-other"
Client = TestClient[web.Request, web.Application]


def _log() -> PersonLog:
    log = PersonLog()
    log.exchange(ME, 1)
    log.exchange(OTHER, 2, requester="C-WELFARE", info_kind="他人の情報")
    log.exchange(
        ME,
        3,
        requester="C-WELFARE",
        provider="A-TAX",
        outcome="DENIED",
        reason="PERSON_NOT_FOUND",
        at=datetime(2026, 5, 10, 3, 0, tzinfo=UTC),
    )
    log.exchange(ME, 4, at=datetime(2026, 6, 1, 3, 0, tzinfo=UTC))
    return log


def _run(app: web.Application, test: Callable[[Client], Awaitable[None]]) -> None:
    async def go() -> None:
        async with TestClient(TestServer(app)) as client:
            await test(client)

    asyncio.run(asyncio.wait_for(go(), 60))


def _text(page: str) -> str:
    return html.unescape(page)


def test_history_shows_only_the_persons_rows_verified() -> None:
    hub = FakePersonalLog(_log())

    async def test(c: Client) -> None:
        r = await c.get("/history")
        assert r.status == 200
        body = _text(await r.text())
        for serial in (1, 3, 4):
            assert f'href="/history/{serial}"' in body
        assert 'href="/history/2"' not in body
        assert "他人の情報" not in body
        assert body.index('"/history/4"') < body.index('"/history/3"') < body.index('"/history/1"')
        assert "検証済み" in body
        assert "拒否" in body
        assert "該当者なし" in body
        assert '<th scope="col">通番</th>' in body
        assert "<caption>" in body
        assert '<label for="from">' in body
        assert 'href="/static/history.css"' in body
        assert " style=" not in body
        assert "<script" not in body
        assert hub.log.signed_checkpoint()[1].decode().split("\n")[0] in body

    _run(pages_app(hub, session(ME)), test)


def test_filters_go_to_the_hub_and_bad_ones_are_named() -> None:
    hub = FakePersonalLog(_log())

    async def test(c: Client) -> None:
        body = _text(await (await c.get("/history?from=2026-05-01&to=2026-05-31")).text())
        assert '"/history/3"' in body
        assert '"/history/4"' not in body
        assert '"/history/1"' not in body
        req = hub.list_calls[-1]
        assert req.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 4, 30, 15, tzinfo=UTC)
        assert req.end_time.ToDatetime(tzinfo=UTC) == datetime(2026, 5, 31, 15, tzinfo=UTC)
        body = _text(await (await c.get("/history?agency=C-WELFARE")).text())
        assert '"/history/3"' in body
        assert '"/history/1"' not in body
        body = _text(await (await c.get("/history?from=yesterday&agency=../x")).text())
        assert "YYYY-MM-DD" in body
        assert "機関コードの形" in body
        assert hub.list_calls[-1].agency_id == ""
        assert not hub.list_calls[-1].HasField("start_time")

    _run(pages_app(hub, session(ME)), test)


def test_paging_follows_the_hubs_token() -> None:
    log = PersonLog()
    for serial in range(1, 61):
        log.exchange(ME, serial)
    hub = FakePersonalLog(log)

    async def test(c: Client) -> None:
        body = _text(await (await c.get("/history")).text())
        assert '"/history/60"' in body
        assert "次のページへ" in body
        assert '"/history/30"' not in body
        body = _text(await (await c.get("/history?page=50")).text())
        assert '"/history/30"' in body
        assert "最初のページへ" in body

    _run(pages_app(hub, session(ME)), test)


def test_an_unverified_page_says_so() -> None:
    log = _log()

    def tamper(pe: personal_pb2.PersonalEntry) -> None:
        if pe.serial == 1 and pe.entry:
            pe.entry = pe.entry.replace(b"A-TAX", b"A-TAY")

    log.tamper = tamper
    hub = FakePersonalLog(log)

    async def test(c: Client) -> None:
        body = _text(await (await c.get("/history")).text())
        assert "検証失敗" in body
        assert "ハッシュ値と一致しません" in body

    _run(pages_app(hub, session(ME)), test)
    other = PersonLog()  # a checkpoint signed by another hub key than the trusted one
    app = pages_app(hub, session(ME))
    app[VERIFIER] = other.verifier()

    async def refused(c: Client) -> None:
        body = _text(await (await c.get("/history")).text())
        assert "この一覧は検証できませんでした" in body
        assert "検証済み" not in body.split("</h2>")[1]

    _run(app, refused)


def test_another_persons_serial_is_a_bare_404() -> None:
    hub = FakePersonalLog(_log())

    async def test(c: Client) -> None:
        theirs = await c.get("/history/2")
        nobody = await c.get("/history/999")
        assert theirs.status == nobody.status == 404
        assert await theirs.text() == await nobody.text() == pages.NOT_FOUND_TEXT
        applied = await c.post(
            "/history/2/details", data={"agency_id": "C-WELFARE", "csrf_token": CSRF}
        )
        assert applied.status == 404
        assert await applied.text() == pages.NOT_FOUND_TEXT
        assert hub.details_calls == []
        mine = await c.get("/history/3")
        assert mine.status == 200
        assert "川崎市 福祉課" in _text(await mine.text())

    _run(pages_app(hub, session(ME)), test)


def test_a_deferred_entry_shows_when_it_will_be_shown_and_nothing_else() -> None:
    log = _log()
    log.defer(3, datetime(2027, 3, 31, 15, tzinfo=UTC), "刑事訴訟法に基づく捜査のため")
    hub = FakePersonalLog(log)

    async def test(c: Client) -> None:
        listing = _text(await (await c.get("/history")).text())
        assert "開示延期中: 2027-04-01 00:00 から表示されます" in listing
        assert "刑事訴訟法に基づく捜査のため" in listing
        entry = _text(await (await c.get("/history/3")).text())
        assert "2027-04-01 00:00 から表示されます" in entry
        assert "川崎市" not in entry
        assert "C-WELFARE" not in entry
        assert "申請する" not in entry
        r = await c.post("/history/3/details", data={"agency_id": "A-TAX", "csrf_token": CSRF})
        assert r.status == 400
        assert hub.details_calls == []

    _run(pages_app(hub, session(ME)), test)


def test_details_pending_then_answered_and_opened() -> None:
    hub = FakePersonalLog(_log())
    key = sealing.generate_private_key()
    apps = MemoryApplications()

    async def test(c: Client) -> None:
        entry = _text(await (await c.get("/history/1")).text())
        assert "横浜市 税務課 に詳細を申請する" in entry
        assert "日本年金機構 に詳細を申請する" in entry
        assert f'name="csrf_token" value="{CSRF}"' in entry
        no_csrf = await c.post("/history/1/details", data={"agency_id": "A-TAX"})
        assert no_csrf.status == 403
        hub.answers = [
            personal_pb2.RequestDetailsResponse(
                state=personal_pb2.DETAILS_STATE_PENDING, request_serial=77
            )
        ]
        r = await c.post(
            "/history/1/details",
            data={"agency_id": "A-TAX", "csrf_token": CSRF},
            allow_redirects=False,
        )
        assert r.status == 303
        assert r.headers["Location"] == "/history/1"
        (app,) = apps.rows.values()
        assert app.state == "PENDING"
        assert app.request_serial == 77
        assert app.card_serial == "1001"
        assert 16 <= len(app.application_id) <= 64
        asked = hub.details_calls[-1]
        assert (asked.link_code, asked.serial, asked.agency_id) == (ME, 1, "A-TAX")
        assert asked.application_id == app.application_id
        entry = _text(await (await c.get("/history/1")).text())
        assert "受付済み（回答待ち）" in entry
        assert len(hub.details_calls) == 2
        assert hub.details_calls[-1].application_id == app.application_id

        details = Details(
            serial=1,
            agency_id="A-TAX",
            role="requester",
            logged_at=datetime(2026, 4, 1, 0, 31, tzinfo=UTC),
            info_kind="年金給付関係情報",
            legal_basis_item="二十七",
            counterpart_agency_id="B-PENSION",
            content="年金額 1,234,000 円",
            purpose="市民税の賦課のため",
            outcome="OK",
            answered_at=datetime(2026, 4, 2, 1, 0, tzinfo=UTC),
        )
        sealed = seal_details(
            details, recipient=key.public_key(), application_id=app.application_id
        )
        hub.answers = [
            personal_pb2.RequestDetailsResponse(
                state=personal_pb2.DETAILS_STATE_ANSWERED, sealed_details=sealed, request_serial=77
            )
        ]
        entry = _text(await (await c.get("/history/1")).text())
        assert "回答あり" in entry
        assert "年金額 1,234,000 円" in entry
        assert "市民税の賦課のため" in entry
        assert "2026-04-02 10:00" in entry
        assert apps.rows[app.application_id].state == "ANSWERED"
        calls = len(hub.details_calls)
        await c.get("/history/1")
        assert len(hub.details_calls) == calls  # answered: the hub is not asked again
        again = await c.post(
            "/history/1/details",
            data={"agency_id": "A-TAX", "csrf_token": CSRF},
            allow_redirects=False,
        )
        assert again.status == 303
        assert len(apps.rows) == 1
        bad = await c.post(
            "/history/1/details", data={"agency_id": "C-WELFARE", "csrf_token": CSRF}
        )
        assert bad.status == 400

    _run(pages_app(hub, session(ME), apps, key), test)


def test_details_that_do_not_open_say_so() -> None:
    hub = FakePersonalLog(_log())
    apps = MemoryApplications()
    hub.answers = [
        personal_pb2.RequestDetailsResponse(
            state=personal_pb2.DETAILS_STATE_ANSWERED, sealed_details=b"\x00" * 80
        )
    ]

    async def test(c: Client) -> None:
        await c.post("/history/4/details", data={"agency_id": "B-PENSION", "csrf_token": CSRF})
        entry = _text(await (await c.get("/history/4")).text())
        assert "回答を開けませんでした" in entry

    _run(pages_app(hub, session(ME), apps, sealing.generate_private_key()), test)


def test_refused_and_deferred_applications() -> None:
    hub = FakePersonalLog(_log())
    apps = MemoryApplications()

    async def test(c: Client) -> None:
        hub.answers = [
            personal_pb2.RequestDetailsResponse(
                state=personal_pb2.DETAILS_STATE_REFUSED, refusal_reason="保存期間の経過"
            )
        ]
        await c.post("/history/4/details", data={"agency_id": "A-TAX", "csrf_token": CSRF})
        d = personal_pb2.Deferral(agency_id="B-PENSION", legal_reason="調査中")
        d.until.FromDatetime(datetime(2027, 1, 1, tzinfo=UTC))
        hub.answers = [
            personal_pb2.RequestDetailsResponse(
                state=personal_pb2.DETAILS_STATE_DEFERRED, deferral=d
            )
        ]
        await c.post("/history/4/details", data={"agency_id": "B-PENSION", "csrf_token": CSRF})
        entry = _text(await (await c.get("/history/4")).text())
        assert "開示されませんでした" in entry
        assert "保存期間の経過" in entry
        assert "開示延期" in entry
        assert "調査中" in entry
        assert "2027-01-01 09:00 から開示" in entry

    _run(pages_app(hub, session(ME), apps), test)


def test_csv_download() -> None:
    hub = FakePersonalLog(_log())

    async def test(c: Client) -> None:
        r = await c.get("/history.csv?agency=A-TAX")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/csv")
        raw = await r.read()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert rows[0][0] == "通番"
        assert rows[0][11] == "検証"
        assert [row[0] for row in rows[1:]] == ["4", "3", "1"]
        assert rows[2][9] == "拒否"
        assert rows[2][11] == "検証済み"

    _run(pages_app(hub, session(ME)), test)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_download_holds_the_entries_and_the_checkpoint(tmp_path: Path) -> None:
    hub = FakePersonalLog(_log())

    async def test(c: Client) -> None:
        r = await c.get("/history.pdf")
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/pdf"
        (tmp_path / "h.pdf").write_bytes(await r.read())

    _run(pages_app(hub, session(ME)), test)
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "h.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    root = (
        hub.log.verifier()
        .verify(hub.log.list(personal_pb2.ListPersonalEntriesRequest(link_code=ME)))
        .checkpoint
    )
    assert root is not None
    assert root.root_hash_hex in text
    assert "日本年金機構" in text
    assert "拒否" in text
    assert "検証済み" in text
    assert "page 1 / 1" in text
    assert "マイポータル" in text
    assert "他人の情報" not in text


def test_api_history_round_trips_for_the_counter() -> None:
    log = _log()
    log.defer(3, datetime(2027, 1, 1, tzinfo=UTC), "調査中")
    hub = FakePersonalLog(log)

    async def test(c: Client) -> None:
        r = await c.get("/api/history?page_size=3")
        assert r.status == 200
        doc = await r.json()
        assert doc["next_page_token"]
        assert len(doc["entries"]) == 3
        rest = await (await c.get(f"/api/history?page={doc['next_page_token']}")).json()
        responses = [pages.response_from_json(doc), pages.response_from_json(rest)]
        page = log.verifier().verify_many(responses)
        assert [r.serial for r in page.rows] == [4, 3, 1]
        assert page.verified
        assert page.rows[1].deferral is not None
        assert (await c.get("/api/history?page_size=5000")).status == 400
        assert (await c.get("/api/history?from=x")).status == 400

    _run(pages_app(hub, session(ME)), test)


@pytest.mark.skipif(
    not (Path(pages.__file__).parent / "templates" / "base.html").exists(),
    reason="the sign-in side's base.html is not merged yet",
)
def test_the_pages_render_in_the_portals_own_base() -> None:
    hub = FakePersonalLog(_log())
    app = pages_app(hub, session(ME))
    app[pages.TEMPLATES] = pages.templates()  # portal/templates alone, its base.html

    async def test(c: Client) -> None:
        body = _text(await (await c.get("/history")).text())
        assert 'lang="ja"' in body
        assert 'href="/static/history.css"' in body
        assert '"/history/4"' in body
        assert "検証済み" in body

    _run(app, test)


def test_a_hub_that_does_not_answer_is_a_503_in_words() -> None:
    hub = FakePersonalLog(_log())

    async def down(request: personal_pb2.ListPersonalEntriesRequest) -> NoReturn:
        raise Unavailable("HUB_UNAVAILABLE", "the hub is down")

    hub.list_entries = down  # type: ignore[method-assign]

    async def test(c: Client) -> None:
        page = await c.get("/history")
        assert page.status == 503
        assert await page.text() == pages.HUB_DOWN_TEXT
        assert (await c.get("/history/1")).status == 503
        api = await c.get("/api/history")
        assert api.status == 503
        assert (await api.json())["error"] == "HUB_UNAVAILABLE"

    _run(pages_app(hub, session(ME)), test)


def test_without_the_log_keys_nothing_is_shown_as_verified() -> None:
    app = pages_app(FakePersonalLog(_log()), session(ME))
    del app[VERIFIER]

    async def test(c: Client) -> None:
        for path in ("/history", "/history/1"):
            body = _text(await (await c.get(path)).text())
            assert pages.NO_VERIFIER_TEXT in body
            assert "検証失敗" in body
            assert "✓" not in body

    _run(app, test)


def test_an_application_of_ones_own_has_no_details_to_apply_for() -> None:
    log = _log()
    log.exchange(ME, 5, requester="portal", provider="A-TAX", info_kind=pages.DISCLOSURE_INFO_KIND)
    hub = FakePersonalLog(log)

    async def test(c: Client) -> None:
        entry = _text(await (await c.get("/history/5")).text())
        assert "あなたが申請した情報提供等記録の開示" in entry
        assert "申請する" not in entry
        r = await c.post("/history/5/details", data={"agency_id": "A-TAX", "csrf_token": CSRF})
        assert r.status == 400
        assert hub.details_calls == []

    _run(pages_app(hub, session(ME)), test)
