"""Placeholder for the portal's pages (history, CSV, PDF, details), written in another branch.

Until that branch is merged, ``/history`` says only that the person is signed
in; it shows no entry and claims no verification.
"""

from __future__ import annotations

from aiohttp import web

from portal.app_keys import SESSION, Session

_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>やりとり履歴 | マイポータル</title><link rel="stylesheet" href="/static/portal.css"></head>
<body><main id="main"><h1>やりとり履歴</h1>
<p id="signed-in">ログインしました（カード {serial}）。履歴の表示はまだ準備中です。</p>
<form method="post" action="/signout"><input type="hidden" name="csrf_token" value="{csrf}">
<button type="submit" class="button">ログアウト</button></form></main></body></html>
"""


async def _history(request: web.Request) -> web.StreamResponse:
    session: Session = request[SESSION]
    html = _PAGE.format(serial=session.card_serial, csrf=session.csrf_token)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def routes(app: web.Application) -> None:
    """Adds the pages' routes (placeholder: ``/history`` only)."""
    app.router.add_get("/history", _history)
