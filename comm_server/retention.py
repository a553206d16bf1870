"""Retention at a communication server (R25): its share of the log, its answer tickets.

``agency_log`` rows logged before the cutoff and not held (by serial) are
deleted in small transactions by id; their links in the share's chain
(``agency_log_chain``) stay, and each transaction records the ids it deleted
in ``agency_log_purges`` with the chain's head at that moment. So the chain
still verifies from the first remaining row (each row against its stored
predecessor), every signed head still matches, and ``renkei comm log verify
--own`` reports the purged rows as purged while it still catches an edit of
any remaining row. Answer tickets (``answer_tickets``) older than the cutoff
and not held go too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server import share_chain
from comm_server.store import agency_log, answer_tickets
from renkei import retention
from renkei.retention import HoldStore, PurgeReport, PurgeTarget, RetentionPolicy

STORE = "agency_log"
TICKETS = "answer_tickets"


def purge_comm(
    engine: Engine,
    hold_store: HoldStore,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PurgeReport]:
    """One purge run: the share of the log, then the answer tickets."""
    holds = hold_store.in_force()
    cutoff = policy.cutoff(now)

    def record(conn: sa.Connection, rows: Sequence[sa.Row[Any]]) -> None:
        head = share_chain.read_head(conn)
        ranges = retention.ranges_of(int(r[0]) for r in rows)
        conn.execute(
            share_chain.chain_purges.insert().values(
                purged_at=now,
                cutoff=cutoff,
                rows=len(rows),
                id_ranges=json.dumps([list(r) for r in ranges]),
                head_count=head.count,
                head_digest=head.digest,
            )
        )

    report = retention.purge(
        engine,
        PurgeTarget(agency_log, "logged_at", "id", serial_column="serial"),
        policy,
        now=now,
        store=STORE,
        holds=holds,
        dry_run=dry_run,
        on_delete=record,
        sleep=sleep,
    )
    if report.deleted and not dry_run:
        report.logged = (
            f"agency_log_purges: ids {report.ranges_text()} ({report.deleted} rows,"
            f" {report.held} held), before {cutoff.isoformat()}"
        )
    return [report, purge_tickets(engine, holds, policy, now=now, dry_run=dry_run, sleep=sleep)]


def purge_tickets(
    engine: Engine,
    holds: retention.Holds,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> PurgeReport:
    """Answer tickets made before the cutoff (keyed by ticket and role, so not by
    ``retention.purge``'s integer key): batch by batch, held serials left."""
    cutoff = policy.cutoff(now)
    report = PurgeReport(store=TICKETS, cutoff=cutoff, dry_run=dry_run)
    t = answer_tickets.c
    old = t.created_at < cutoff
    with engine.connect() as conn:
        if holds.serials:
            report.held = int(
                conn.scalar(
                    sa.select(sa.func.count()).where(old, t.serial.in_(sorted(holds.serials)))
                )
                or 0
            )
        if dry_run:
            report.deleted = int(
                conn.scalar(
                    sa.select(sa.func.count()).where(old, t.serial.not_in(sorted(holds.serials)))
                )
                or 0
            )
            return report
    while True:
        started = time.monotonic()
        with engine.begin() as conn:
            rows = conn.execute(
                sa.select(t.ticket, t.role)
                .where(old, t.serial.not_in(sorted(holds.serials)))
                .order_by(t.ticket, t.role)
                .limit(policy.batch_size)
            ).all()
            for ticket, role in rows:
                conn.execute(answer_tickets.delete().where(t.ticket == ticket, t.role == role))
        report.deleted += len(rows)
        if rows:
            report.batches += 1
        if len(rows) < policy.batch_size:
            return report
        rest = policy.rest_after(time.monotonic() - started)
        if rest > 0:
            sleep(rest)


def purged_id_ranges(conn: sa.Connection) -> list[tuple[int, int]]:
    """Every agency_log id range the purges recorded (for the share's verifier)."""
    if not sa.inspect(conn).has_table(share_chain.chain_purges.name):
        return []
    out: list[tuple[int, int]] = []
    for (text,) in conn.execute(sa.select(share_chain.chain_purges.c.id_ranges)):
        out += [(int(a), int(b)) for a, b in json.loads(text)]
    return sorted(out)
