"""Signed-in sessions: a random id in the ``__Host-session`` cookie, its hash in the store."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from portal.app_keys import Session
from portal.store import PortalStore

COOKIE = "__Host-session"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Sessions:
    def __init__(
        self,
        store: PortalStore,
        lifetime: timedelta,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self.lifetime = lifetime
        self._clock = clock

    async def start(self, card_serial: str, link_code: str) -> Session:
        """A new session for the card (its id is the cookie's value)."""
        now = self._clock()
        session = Session(
            session_id=secrets.token_urlsafe(32),
            card_serial=card_serial,
            link_code=link_code,
            csrf_token=secrets.token_urlsafe(32),
            signed_in_at=now,
        )
        await asyncio.to_thread(
            self._store.add_session,
            session.session_id,
            card_serial,
            session.csrf_token,
            now,
            now + self.lifetime,
        )
        return session

    async def find(self, session_id: str) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        found = await asyncio.to_thread(self._store.session, session_id, self._clock())
        if found is None:
            return None
        card_serial, csrf_token, created = found
        link_code = await asyncio.to_thread(self._store.link_code, card_serial)
        if link_code is None:
            return None
        return Session(session_id, card_serial, link_code, csrf_token, created)

    async def end(self, session_id: str) -> None:
        await asyncio.to_thread(self._store.end_session, session_id)
