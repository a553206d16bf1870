"""Agencies following the people they bound (R14, R20): handles and each agency's queue.

When ``MatchRecords`` binds a record, the registry mints a random handle for
that agency and that person (``subscribe``) and answers it with the sealed ID
code. The handle is the only name the agency and the registry share for the
person in the feed: it is not a resident code, not an ID code, and another
agency's handle for the same person is another random value, so two agencies
cannot join their records by it (R2).

Each new subscription queues one "subscribed" entry, and every later change to
the person (``RegistryStore._append``, same transaction) queues one entry per
following agency. ``list_changes`` reads an agency's queue after a cursor (the
last entry id it applied) and joins each entry to the person's facts as they
are NOW: an agency that applies entries in order ends with the current facts,
and a change that lands between matching and subscribing is never lost (the
"subscribed" entry, read later, carries it). Code changes are not queued: an
agency never knows a resident code.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa

from renkei.errors import invalid_field

from .model import Resident
from .store import (
    RegistryStore,
    _resident,
    deliveries,
    lock_feed,
    residents,
    subscriptions,
    today_in_japan,
)

SUBSCRIBED = "subscribed"
MAX_PAGE = 1000


def new_handle() -> str:
    """24 URL-safe characters from 18 random bytes (never all digits, unlike a code)."""
    while True:
        handle = secrets.token_urlsafe(18)
        if not handle.isdigit():
            return handle


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry of an agency's queue, with the person's facts as they are now."""

    id: int
    handle: str
    kind: str
    """"subscribed", "move", "name_change" or "death"."""
    effective_date: date
    resident: Resident


class Subscriptions:
    """Handles and queues, in the register's own database (see the module docstring)."""

    def __init__(self, store: RegistryStore) -> None:
        self._store = store

    def subscribe(self, agency_id: str, resident_codes: Sequence[str]) -> list[str]:
        """The agency's handle for each resident (minted if new), in order.

        One transaction, serialised with changes. A code not (or no longer) in
        the register gets "" (the caller binds nothing without a handle).
        """
        if not resident_codes:
            return []
        now = datetime.now(UTC)
        today = today_in_japan()
        with self._store.engine.begin() as conn:
            lock_feed(conn)
            people = dict(
                conn.execute(
                    sa.select(residents.c.resident_code, residents.c.person_id).where(
                        residents.c.resident_code.in_(set(resident_codes))
                    )
                ).all()
            )
            known = dict(
                conn.execute(
                    sa.select(subscriptions.c.person_id, subscriptions.c.handle).where(
                        subscriptions.c.agency_id == agency_id,
                        subscriptions.c.person_id.in_(set(people.values())),
                    )
                ).all()
            )
            handles: list[str] = []
            minted: list[tuple[str, int]] = []
            for code in resident_codes:
                person = people.get(code)
                if person is None:
                    handles.append("")
                    continue
                if person not in known:
                    known[person] = new_handle()
                    minted.append((known[person], person))
                handles.append(known[person])
            # One statement a table for the whole batch (in order: the queue's order).
            if minted:
                conn.execute(
                    subscriptions.insert(),
                    [
                        {"handle": h, "agency_id": agency_id, "person_id": p, "created_at": now}
                        for h, p in minted
                    ],
                )
                conn.execute(
                    deliveries.insert(),
                    [
                        {
                            "agency_id": agency_id,
                            "handle": h,
                            "kind": SUBSCRIBED,
                            "effective_date": today,
                        }
                        for h, _ in minted
                    ],
                )
        return handles

    def list_changes(
        self, agency_id: str, after: int, limit: int
    ) -> tuple[list[FeedEntry], int, bool]:
        """(entries after ``after``, the cursor to resume from, whether more wait)."""
        if not 1 <= limit <= MAX_PAGE:
            raise invalid_field("page_size", f"must be 1 to {MAX_PAGE}")
        if after < 0:
            raise invalid_field("cursor", "is not a cursor this registry gave")
        d, s = deliveries.c, subscriptions.c
        query = (
            sa.select(d.id, d.handle, d.kind, d.effective_date, residents)
            .join(subscriptions, s.handle == d.handle)
            .join(residents, residents.c.person_id == s.person_id)
            .where(d.agency_id == agency_id, d.id > after)
            .order_by(d.id)
            .limit(limit + 1)
        )
        with self._store.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        entries = [
            FeedEntry(int(r["id"]), r["handle"], r["kind"], r["effective_date"], _resident(r))
            for r in rows[:limit]
        ]
        return entries, (entries[-1].id if entries else after), len(rows) > limit

    def handles(self, agency_id: str | None = None) -> dict[str, list[str]]:
        """Agency -> its handles (for audits)."""
        query = sa.select(subscriptions.c.agency_id, subscriptions.c.handle)
        if agency_id is not None:
            query = query.where(subscriptions.c.agency_id == agency_id)
        out: dict[str, list[str]] = {}
        with self._store.engine.connect() as conn:
            for agency, handle in conn.execute(query):
                out.setdefault(agency, []).append(handle)
        return out
