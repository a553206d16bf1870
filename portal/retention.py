"""Retention at the portal (R25): its persons' applications for details.

``portal_applications`` rows made before the cutoff go, in small transactions
by id. A legal hold's serials name hub serials: an application is held when
the exchange it applied about (``serial``) or its own exchange at the hub
(``request_serial``) is held. Each transaction that deleted rows writes one
row of ``portal_purges`` naming the ids that went, so the record holds even
for a run cut short. Sessions and challenges expire on their own
(``PortalStore.expire``); ``portal_persons`` is no log and is kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from portal.store import applications, metadata, purges
from renkei import retention
from renkei.retention import HoldStore, PurgeReport, PurgeTarget, RetentionPolicy

STORE = "portal_applications"


def purge_applications(
    engine: Engine,
    hold_store: HoldStore,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
) -> list[PurgeReport]:
    """Deletes the applications made before ``policy.cutoff(now)`` and not held."""
    metadata.create_all(engine)
    cutoff = policy.cutoff(now)
    holds = hold_store.in_force()

    def record(conn: sa.Connection, rows: Sequence[sa.Row[Any]]) -> None:
        ranges = retention.ranges_of(int(r[0]) for r in rows)
        conn.execute(
            purges.insert().values(
                purged_at=now,
                cutoff=cutoff,
                rows=len(rows),
                id_ranges=json.dumps([list(r) for r in ranges]),
            )
        )

    # The application's own exchange held keeps it too (the purge reads one serial column).
    keep = applications.c.request_serial.in_(sorted(holds.serials)) if holds.serials else None
    report = retention.purge(
        engine,
        PurgeTarget(applications, "created_at", "id", serial_column="serial", keep=keep),
        policy,
        now=now,
        store=STORE,
        holds=holds,
        dry_run=dry_run,
        on_delete=record,
        sleep=sleep,
        stop=stop,
    )
    if keep is not None:
        report.held += _kept_for_own_exchange(engine, keep, holds.serials, cutoff)
    if report.deleted and not dry_run:
        report.logged = (
            f"portal_purges: ids {report.ranges_text()} ({report.deleted} rows,"
            f" {report.held} held), before {cutoff.isoformat()}"
        )
    return [report]


def _kept_for_own_exchange(
    engine: Engine, keep: sa.ColumnElement[bool], serials: frozenset[int], cutoff: datetime
) -> int:
    """The rows past their period that ``keep`` held and the purge did not count."""
    with engine.connect() as conn:
        count = conn.scalar(
            sa.select(sa.func.count())
            .select_from(applications)
            .where(
                applications.c.created_at < cutoff,
                keep,
                applications.c.serial.not_in(sorted(serials)),
            )
        )
    return int(count or 0)
