"""Agencies following the people they bound (R14, R20): handles and each agency's feed.

When ``MatchRecords`` binds a record, the binding party mints a random handle
for that agency and that person (``subscribe``) and answers it with the sealed
ID code. The handle is the only name the agency and the binding party share
for the person in the feed: it is not a resident code, not an ID code, and
another agency's handle for the same person is another random value, so two
agencies cannot join their records by it (R2).

The agencies' feed is computed here from the register's change feed
(``ResidentSource.changes_since``) and this party's own subscriptions, in
this party's own store (``store``):

* ``catch_up`` applies the register's changes after ``feed_state.applied_seq``
  in seq order: a "move", "name_change" or "death" of a followed person
  queues one entry per following agency; a "code_change" rewrites the
  subscriptions' resident code (the person stays followed) and is never
  queued, as an agency never knows a resident code; "birth" concerns nobody
  yet. Each page is one transaction that also advances ``applied_seq``, so
  every change is queued exactly once, also across processes.
* ``subscribe`` catches up, then, in one transaction, finishes catching up
  and mints the handles with one "subscribed" entry each. A change the
  register records after that is queued for the new subscriber; one recorded
  before is not, and the "subscribed" entry carries its result anyway.
* ``list_changes`` catches up, then reads the agency's queue after a cursor
  (the last entry id it applied) and joins each entry to the person's facts
  as the register holds them NOW: an agency that applies entries in order
  ends with the current facts.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import sqlalchemy as sa

from registry_binding.store import BindingStore, deliveries, feed_state, lock, subscriptions
from renkei.errors import invalid_field
from renkei.residents import Resident, ResidentSource

SUBSCRIBED = "subscribed"
QUEUED = frozenset({"move", "name_change", "death"})
MAX_PAGE = 1000
FEED_PAGE = 1000
"""Register changes applied per transaction."""
JST = timezone(timedelta(hours=9), "JST")


def new_handle() -> str:
    """24 URL-safe characters from 18 random bytes (never all digits, unlike a code)."""
    while True:
        handle = secrets.token_urlsafe(18)
        if not handle.isdigit():
            return handle


def today_in_japan() -> date:
    return datetime.now(JST).date()


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
    """Handles and queues in the binding store, fed by the register (module docstring)."""

    def __init__(self, store: BindingStore, source: ResidentSource) -> None:
        self._store = store
        self._source = source

    # -- the register's feed into the queues --------------------------------------------

    def catch_up(self) -> dict[str, str]:
        """Apply every register change not applied yet; the code changes met (old -> new)."""
        renamed: dict[str, str] = {}
        while self._source.changes_since(self._store.applied_seq(), 1):
            with self._store.engine.begin() as conn:
                _, more, codes = self._apply_page(conn, lock(conn))
            renamed.update(codes)
            if not more:
                break
        return renamed

    def _apply_page(self, conn: sa.Connection, after: int) -> tuple[int, bool, dict[str, str]]:
        """Apply one page after ``after`` under the lock: (applied seq, more?, code changes)."""
        page = self._source.changes_since(after, FEED_PAGE)
        if not page:
            return after, False, {}
        s = subscriptions.c
        followers: dict[str, list[tuple[str, str]]] = {}
        codes = sorted({c.resident_code for c in page})
        for start in range(
            0, len(codes), 500
        ):  # a bound parameter per code: stay well below limits
            rows = conn.execute(
                sa.select(s.resident_code, s.agency_id, s.handle)
                .where(s.resident_code.in_(codes[start : start + 500]))
                .order_by(s.created_at, s.handle)
            )
            for code, agency, handle in rows:
                followers.setdefault(code, []).append((agency, handle))
        queued: list[dict[str, object]] = []
        renamed: dict[str, str] = {}
        for change in page:
            if change.kind == "code_change":
                new = str(change.after["resident_code"])
                renamed[change.resident_code] = new
                moved = followers.pop(change.resident_code, [])
                if moved:
                    followers.setdefault(new, []).extend(moved)
                    conn.execute(
                        subscriptions.update()
                        .where(s.resident_code == change.resident_code)
                        .values(resident_code=new)
                    )
            elif change.kind in QUEUED:
                queued.extend(
                    {
                        "agency_id": agency,
                        "handle": handle,
                        "kind": change.kind,
                        "effective_date": change.effective_date,
                    }
                    for agency, handle in followers.get(change.resident_code, ())
                )
        if queued:
            conn.execute(deliveries.insert(), queued)  # in order: the queues' order
        applied = page[-1].seq
        conn.execute(feed_state.update().where(feed_state.c.id == 1).values(applied_seq=applied))
        return applied, len(page) == FEED_PAGE, renamed

    # -- agencies ----------------------------------------------------------------------

    def subscribe(self, agency_id: str, resident_codes: Sequence[str]) -> list[str]:
        """The agency's handle for each resident (minted if new), in order.

        A code not (or no longer) in the register gets "" (the caller binds
        nothing without a handle).
        """
        if not resident_codes:
            return []
        self.catch_up()
        now = datetime.now(UTC)
        today = today_in_japan()
        with self._store.engine.begin() as conn:
            applied = lock(conn)
            present = self._source.lookup(set(resident_codes))
            # Whatever the register recorded up to the look-up is applied before
            # minting: a code changed since is followed under its new code.
            renamed: dict[str, str] = {}
            more = True
            while more:
                applied, more, codes = self._apply_page(conn, applied)
                renamed.update(codes)
            current = {code: _follow(renamed, code) for code in resident_codes if code in present}
            s = subscriptions.c
            known = dict(
                conn.execute(
                    sa.select(s.resident_code, s.handle).where(
                        s.agency_id == agency_id, s.resident_code.in_(set(current.values()))
                    )
                ).all()
            )
            handles: list[str] = []
            minted: list[tuple[str, str]] = []
            for code in resident_codes:
                now_code = current.get(code)
                if now_code is None:
                    handles.append("")
                    continue
                if now_code not in known:
                    known[now_code] = new_handle()
                    minted.append((known[now_code], now_code))
                handles.append(known[now_code])
            # One statement a table for the whole batch (in order: the queue's order).
            if minted:
                conn.execute(
                    subscriptions.insert(),
                    [
                        {"handle": h, "agency_id": agency_id, "resident_code": c, "created_at": now}
                        for h, c in minted
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
        self.catch_up()
        d, s = deliveries.c, subscriptions.c
        query = (
            sa.select(d.id, d.handle, d.kind, d.effective_date, s.resident_code)
            .join(subscriptions, s.handle == d.handle)
            .where(d.agency_id == agency_id, d.id > after)
            .order_by(d.id)
            .limit(limit + 1)
        )
        while True:
            with self._store.engine.connect() as conn:
                rows = conn.execute(query).all()
            codes = {r.resident_code for r in rows[:limit]}
            facts = self._source.lookup(codes)
            # A code the register changed after the catch-up: apply it and read again.
            if codes <= facts.keys() or not self.catch_up():
                break
        entries = [
            FeedEntry(int(r.id), r.handle, r.kind, r.effective_date, facts[r.resident_code])
            for r in rows[:limit]
            if r.resident_code in facts  # as the join to the register's rows did
        ]
        return entries, (entries[-1].id if entries else after), len(rows) > limit

    def handles(self, agency_id: str | None = None) -> dict[str, list[str]]:
        """Agency -> its handles (for audits)."""
        return self._store.handles(agency_id)


def _follow(renamed: dict[str, str], code: str) -> str:
    """The code ``code`` became through the code changes in ``renamed`` (chains followed)."""
    seen = {code}
    while code in renamed:
        code = renamed[code]
        if code in seen:  # a register that reuses codes would loop; never follow one twice
            break
        seen.add(code)
    return code
