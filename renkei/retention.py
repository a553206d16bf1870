"""Retention (R25): how long each log share is kept, legal holds, the batched purge.

Every party's store keeps its log rows for ``RetentionPolicy.days`` (7 years,
2557 days, by default; ``[retention]`` in each party's config) and then
deletes them, in small transactions by primary-key range, so that traffic
goes on while a year of rows goes. A legal hold (set by the oversight body,
``LegalHoldService``) names serials, or at the hub a person, whose rows are
kept until the hold is released.

The table's newest row is always kept: SQLite hands the ids of a deleted tail
out again, and a log's ids (a serial, a chain's row id) must never name two rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei import config_util
from renkei.db import UtcDateTime
from renkei.errors import InvalidArgument, NotFound
from renkei.logs import event

DEFAULT_DAYS = 2557  # 7 years of 365 days and two leap days
DEFAULT_BATCH_SIZE = 1000
DEFAULT_BUSY_SHARE = 0.2
MAX_BATCH_SIZE = 5000
HOLD_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_HOLD_REASON = 400
MAX_HOLD_SERIALS = 10_000


@dataclass(frozen=True)
class RetentionPolicy:
    """``[retention]``: ``days`` kept, rows per purge transaction, the pause between
    two of them, the share of the time a purge may be busy, and how often the
    server's own job purges (0: it does not)."""

    days: int = DEFAULT_DAYS
    batch_size: int = DEFAULT_BATCH_SIZE
    pause_seconds: float = 0.0
    every_seconds: float = 0.0
    # After a batch that took t, the purge rests t * (1 - share) / share (at least
    # pause_seconds): it never holds the database or the server's cores more than this
    # share of the time, so traffic goes on beside it (docs/benchmarks.md, issue 15).
    busy_share: float = DEFAULT_BUSY_SHARE

    def rest_after(self, busy: float) -> float:
        """How long to rest after a batch that took ``busy`` seconds."""
        return max(self.pause_seconds, busy * (1.0 - self.busy_share) / self.busy_share)

    def cutoff(self, now: datetime) -> datetime:
        """Rows logged before this are past their period."""
        if now.tzinfo is None:
            raise ValueError("naive datetime: give aware UTC times")
        return now.astimezone(UTC) - timedelta(days=self.days)


def _share(section: Mapping[str, Any], where: str) -> float:
    share = config_util.number(section, "busy_share", where, DEFAULT_BUSY_SHARE)
    if not 0.0 < share <= 1.0:
        raise config_util.ConfigError(f"{where} busy_share: {share} is not in (0, 1]")
    return share


def retention_policy(data: Mapping[str, Any], path: Path) -> RetentionPolicy:
    """The ``[retention]`` table of a party's config (every key optional)."""
    section = config_util.table(data, "retention", path)
    where = f"{path}: [retention]"
    known = {"days", "batch_size", "pause_seconds", "every_seconds", "busy_share"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise config_util.ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return RetentionPolicy(
        days=config_util.integer(section, "days", where, DEFAULT_DAYS, minimum=1, maximum=100_000),
        batch_size=config_util.integer(
            section, "batch_size", where, DEFAULT_BATCH_SIZE, minimum=1, maximum=MAX_BATCH_SIZE
        ),
        pause_seconds=config_util.number(section, "pause_seconds", where, 0.0, positive=False),
        every_seconds=config_util.number(section, "every_seconds", where, 0.0, positive=False),
        busy_share=_share(section, where),
    )


# -- legal holds -----------------------------------------------------------------

holds_metadata = sa.MetaData()

legal_holds = sa.Table(
    "legal_holds",
    holds_metadata,
    sa.Column("hold_id", sa.String(64), primary_key=True),
    # The hub's person key (hub entries' "person"); the hub only.
    sa.Column("person", sa.String(64), nullable=True),
    sa.Column("reason", sa.String(MAX_HOLD_REASON), nullable=False),
    sa.Column("set_at", UtcDateTime(), nullable=False),
)

legal_hold_serials = sa.Table(
    "legal_hold_serials",
    holds_metadata,
    sa.Column("hold_id", sa.String(64), primary_key=True),
    sa.Column("serial", sa.BigInteger, primary_key=True, autoincrement=False),
)


@dataclass(frozen=True)
class LegalHold:
    hold_id: str
    serials: tuple[int, ...] = ()
    person: str = ""
    reason: str = ""
    set_at: datetime | None = None


@dataclass(frozen=True)
class Holds:
    """What every hold in force names, for one purge run."""

    serials: frozenset[int] = frozenset()
    persons: frozenset[str] = frozenset()


def check_hold(hold: LegalHold, *, persons: bool) -> None:
    """INVALID_ARGUMENT naming what is wrong with a hold to set (``persons``: the hub)."""
    if not HOLD_ID_RE.fullmatch(hold.hold_id):
        raise InvalidArgument(
            "HOLD_ID_INVALID", "hold_id: 1 to 64 of [A-Za-z0-9_.:-]", {"field": "hold.hold_id"}
        )
    if not hold.serials and not hold.person:
        raise InvalidArgument(
            "HOLD_NAMES_NOTHING", "a hold names serials, or a person", {"field": "hold.serials"}
        )
    if hold.person and not persons:
        raise InvalidArgument(
            "HOLD_PERSON_HUB_ONLY",
            "a hold by person (the hub's person key) is set at the hub only",
            {"field": "hold.person"},
        )
    if len(hold.person) > 64:
        raise InvalidArgument(
            "HOLD_PERSON_INVALID", "person: at most 64 characters", {"field": "hold.person"}
        )
    if len(hold.serials) > MAX_HOLD_SERIALS or any(s <= 0 for s in hold.serials):
        raise InvalidArgument(
            "HOLD_SERIALS_INVALID",
            f"serials: 1 to {MAX_HOLD_SERIALS} positive serials",
            {"field": "hold.serials"},
        )
    if len(hold.reason) > MAX_HOLD_REASON:
        raise InvalidArgument(
            "HOLD_REASON_TOO_LONG",
            f"reason: at most {MAX_HOLD_REASON} characters",
            {"field": "hold.reason"},
        )


class HoldStore:
    """The legal holds of one party's store (SQLite or PostgreSQL), tables made if missing.

    A hold set again under its id replaces the earlier one.
    """

    def __init__(self, engine: Engine, *, persons: bool = False) -> None:
        self._engine = engine
        self.persons = persons  # may a hold name a person here (the hub)?
        holds_metadata.create_all(engine)

    def set(self, hold: LegalHold, now: datetime) -> LegalHold:
        check_hold(hold, persons=self.persons)
        serials = sorted(set(hold.serials))
        with self._engine.begin() as conn:
            conn.execute(
                legal_hold_serials.delete().where(legal_hold_serials.c.hold_id == hold.hold_id)
            )
            conn.execute(legal_holds.delete().where(legal_holds.c.hold_id == hold.hold_id))
            conn.execute(
                legal_holds.insert().values(
                    hold_id=hold.hold_id, person=hold.person or None, reason=hold.reason, set_at=now
                )
            )
            if serials:
                conn.execute(
                    legal_hold_serials.insert(),
                    [{"hold_id": hold.hold_id, "serial": s} for s in serials],
                )
        return LegalHold(hold.hold_id, tuple(serials), hold.person, hold.reason, now)

    def release(self, hold_id: str) -> None:
        """NOT_FOUND (HOLD_NOT_FOUND) for a hold that is not set; INVALID_ARGUMENT
        (HOLD_ID_INVALID) for an id no hold can have (never echoed back: it is unbounded)."""
        if not HOLD_ID_RE.fullmatch(hold_id):
            raise InvalidArgument(
                "HOLD_ID_INVALID", "hold_id: 1 to 64 of [A-Za-z0-9_.:-]", {"field": "hold_id"}
            )
        with self._engine.begin() as conn:
            conn.execute(legal_hold_serials.delete().where(legal_hold_serials.c.hold_id == hold_id))
            gone = conn.execute(legal_holds.delete().where(legal_holds.c.hold_id == hold_id))
            if gone.rowcount == 0:
                raise NotFound("HOLD_NOT_FOUND", f"no legal hold {hold_id!r} is set here")

    def list(self) -> list[LegalHold]:
        with self._engine.connect() as conn:
            serials: dict[str, list[int]] = {}
            for hold_id, serial in conn.execute(
                sa.select(legal_hold_serials.c.hold_id, legal_hold_serials.c.serial).order_by(
                    legal_hold_serials.c.hold_id, legal_hold_serials.c.serial
                )
            ):
                serials.setdefault(hold_id, []).append(int(serial))
            rows = conn.execute(sa.select(legal_holds).order_by(legal_holds.c.hold_id)).all()
        return [
            LegalHold(
                r.hold_id, tuple(serials.get(r.hold_id, ())), r.person or "", r.reason, r.set_at
            )
            for r in rows
        ]

    def in_force(self) -> Holds:
        holds = self.list()
        return Holds(
            frozenset(s for h in holds for s in h.serials),
            frozenset(h.person for h in holds if h.person),
        )


# -- the batched purge -----------------------------------------------------------


@dataclass
class PurgeReport:
    """What one purge of one table did (or, with ``dry_run``, would do)."""

    store: str
    cutoff: datetime
    deleted: int = 0
    held: int = 0
    batches: int = 0
    # Primary-key ranges deleted, first and last inclusive.
    ranges: list[tuple[int, int]] = field(default_factory=list)
    # Rows deleted with them in other tables (the hub's entries, say), by table.
    also: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    # What the store logged of the purge ("" when nothing went, or on a dry run).
    logged: str = ""

    def add_range(self, first: int, last: int) -> None:
        if self.ranges and self.ranges[-1][1] + 1 >= first:
            self.ranges[-1] = (self.ranges[-1][0], max(last, self.ranges[-1][1]))
        else:
            self.ranges.append((first, last))

    def ranges_text(self, limit: int = 8) -> str:
        """``1-500, 502-900`` (the first ``limit`` ranges, then how many more)."""
        shown = [f"{a}-{b}" if a != b else str(a) for a, b in self.ranges[:limit]]
        if len(self.ranges) > limit:
            shown.append(f"and {len(self.ranges) - limit} more ranges")
        return ", ".join(shown) or "none"


def ranges_of(keys: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted keys as (first, last) runs of consecutive values."""
    out: list[tuple[int, int]] = []
    for k in sorted(keys):
        if out and out[-1][1] + 1 == k:
            out[-1] = (out[-1][0], k)
        elif not out or out[-1][1] != k:
            out.append((k, k))
    return out


# In the batch's transaction, before its rows are deleted: what goes with them.
OnDelete = Callable[[sa.Connection, Sequence[sa.Row[Any]]], None]


@dataclass(frozen=True)
class PurgeTarget:
    """A table to purge: its integer primary key, the time its rows were logged, and
    the columns holds name (a serial; at the hub, a person key)."""

    table: sa.Table
    time_column: str
    key_column: str
    serial_column: str | None = None
    person_column: str | None = None
    # Rows never purged whatever their age (an exchange still in flight, say).
    keep: sa.ColumnElement[bool] | None = None


def purge(
    engine: Engine,
    target: PurgeTarget,
    policy: RetentionPolicy,
    *,
    now: datetime,
    store: str,
    holds: Holds = Holds(),
    dry_run: bool = False,
    on_delete: OnDelete | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
) -> PurgeReport:
    """Delete ``target``'s rows logged before ``policy.cutoff(now)`` and not held, in
    transactions of ``policy.batch_size`` rows by ascending key, pausing
    ``policy.rest_after`` the batch's time (through ``sleep``) between two; ``stop`` ends the run
    between batches. The table's newest row is kept (module docstring)."""
    table = target.table
    key = table.c[target.key_column]
    cutoff = policy.cutoff(now)
    report = PurgeReport(store=store, cutoff=cutoff, dry_run=dry_run)
    columns = [key]
    for name in (target.serial_column, target.person_column):
        if name is not None:
            columns.append(table.c[name])
    with engine.connect() as conn:
        top = conn.scalar(sa.select(sa.func.max(key)))
    if top is None:
        return report
    after: int | None = None
    while not stop():
        started = time.monotonic()
        query = sa.select(*columns).where(table.c[target.time_column] < cutoff, key < top)
        if after is not None:
            query = query.where(key > after)
        if target.keep is not None:
            query = query.where(sa.not_(target.keep))
        query = query.order_by(key).limit(policy.batch_size)
        with engine.begin() as conn:
            rows = conn.execute(query).all()
            if not rows:
                break
            after = int(rows[-1][0])
            doomed = [r for r in rows if not _held(r, target, holds)]
            report.held += len(rows) - len(doomed)
            if doomed and not dry_run:
                if on_delete is not None:
                    on_delete(conn, doomed)
                ids = [int(r[0]) for r in doomed]
                conn.execute(table.delete().where(key.in_(ids)))
            for first, last in ranges_of(int(r[0]) for r in doomed):
                report.add_range(first, last)
            report.deleted += len(doomed)
            report.batches += 1
        if len(rows) < policy.batch_size:
            break
        rest = policy.rest_after(time.monotonic() - started)
        if rest > 0:
            sleep(rest)
    return report


def _held(row: sa.Row[Any], target: PurgeTarget, holds: Holds) -> bool:
    at = 1
    if target.serial_column is not None:
        if row[at] is not None and int(row[at]) in holds.serials:
            return True
        at += 1
    return target.person_column is not None and row[at] is not None and row[at] in holds.persons


# -- the servers' scheduled job --------------------------------------------------

_log = logging.getLogger("renkei.retention")


def log_report(report: PurgeReport) -> None:
    event(
        _log,
        "retention purge",
        store=report.store,
        cutoff=report.cutoff.isoformat(),
        deleted=report.deleted,
        held=report.held,
        batches=report.batches,
        ranges=report.ranges_text(),
        **report.also,
    )


async def run_every(
    purge_once: Callable[[], Sequence[PurgeReport]],
    every: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """The server's retention job: ``purge_once`` on a thread of its own (its batches
    are small transactions, so traffic goes on) every ``every`` seconds, each report
    logged; a failed run is logged and tried again at the next."""
    while True:
        await sleep(every)
        try:
            for report in await asyncio.to_thread(purge_once):
                if report.deleted or report.held:
                    log_report(report)
        except Exception:
            _log.exception("retention purge failed; trying again at the next run")


def schedule(
    policy: RetentionPolicy, purge_once: Callable[[], Sequence[PurgeReport]]
) -> asyncio.Task[None] | None:
    """``run_every`` as a task when ``[retention] every_seconds`` is set (cancel it at stop)."""
    if policy.every_seconds <= 0:
        return None
    return asyncio.get_running_loop().create_task(run_every(purge_once, policy.every_seconds))
