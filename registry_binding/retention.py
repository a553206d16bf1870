"""Retention at the registry's binding party (R25): its consent log.

``consent_log`` rows attempted before the cutoff go, in small transactions by
id; a legal hold's serials name consent-log row ids here (``ConsentLogRow.id``:
an attempt has no hub serial). Each run that deleted anything writes a row of
``consent_log_purges`` naming the ids that went; each transaction writes one,
so the record holds even for a run cut short.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry_binding.store import consent_log
from renkei import retention
from renkei.db import UtcDateTime
from renkei.retention import HoldStore, PurgeReport, PurgeTarget, RetentionPolicy

STORE = "consent_log"

metadata = sa.MetaData()

purges = sa.Table(
    "consent_log_purges",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("purged_at", UtcDateTime(), nullable=False),
    sa.Column("cutoff", UtcDateTime(), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    # The consent_log ids that went, as JSON [[first, last], ...] (inclusive).
    sa.Column("id_ranges", sa.Text, nullable=False),
)


def purge_consent_log(
    engine: Engine,
    hold_store: HoldStore,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PurgeReport]:
    metadata.create_all(engine)
    cutoff = policy.cutoff(now)

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

    report = retention.purge(
        engine,
        PurgeTarget(consent_log, "attempted_at", "id", serial_column="id"),
        policy,
        now=now,
        store=STORE,
        holds=hold_store.in_force(),
        dry_run=dry_run,
        on_delete=record,
        sleep=sleep,
    )
    if report.deleted and not dry_run:
        report.logged = (
            f"consent_log_purges: ids {report.ranges_text()} ({report.deleted} rows,"
            f" {report.held} held), before {cutoff.isoformat()}"
        )
    return [report]
