"""An agency's deferral of one exchange's disclosure to the person (HubService.DeferDisclosure).

Only the exchange's requester or provider may defer it; anyone else hears
the same NOT_FOUND as for a serial the hub does not have, so nothing is
learnt about exchanges that are not the caller's. A later call replaces the
caller's deferral; an ``until`` in the past lifts it. A deferral is in force
while any of the exchange's deferrals lasts (hub_server/personal.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from hub_server.directory import Agency
from hub_server.personal import PersonalStore
from hub_server.personal_store import MAX_LEGAL_REASON, Deferral
from renkei import validate
from renkei.errors import NotFound
from renkei.logs import event

_log = logging.getLogger("hub_server.deferral")


class DeferralDesk:
    def __init__(self, store: PersonalStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    async def defer(
        self, caller: Agency, serial: int, until: datetime, legal_reason: str
    ) -> Deferral:
        validate.text("legal_reason", legal_reason, max_chars=MAX_LEGAL_REASON)
        exchange = await asyncio.to_thread(self._store.exchange, serial) if serial > 0 else None
        if exchange is None or caller.agency_id not in (exchange.requester, exchange.provider):
            raise NotFound(
                "EXCHANGE_UNKNOWN",
                f"no exchange with serial {serial} of the caller's",
                {"field": "serial"},
            )
        deferral = Deferral(serial, caller.agency_id, until, legal_reason)
        now = self._clock()
        await asyncio.to_thread(self._store.defer, deferral, now)
        event(
            _log,
            "disclosure deferred" if until > now else "deferral lifted",
            serial=serial,
            agency_id=caller.agency_id,
            until=until.isoformat(),
        )
        return deferral
