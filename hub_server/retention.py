"""Retention at the hub (R25): its log rows past their period go, the tree's hashes stay.

A purge deletes, in small transactions by serial, ``hub_log`` rows logged
before the cutoff (never one still PENDING, never one a legal hold names by
serial or by person key, aliases included), with their ``hub_log_fetches``
and the bytes of their entries in the verifiable log (``hub_log_entries``,
every kind but ``purge``). The tree's node hashes are kept, so every
inclusion and consistency proof, and every checkpoint signed before, still
verifies; the purged leaves are listed in ``hub_log_purged_leaves``, and a
reader asking for one is told it was purged (ENTRY_PURGED; an empty entry in
a tile's bundle). Each run that deleted anything appends ONE ``purge`` entry
through the tree's one writer, naming what went:

    serial: the first serial purged; requester, provider: "";
    outcome: "PURGED"; reason: "retention <days> days, before <cutoff>:
    serials <ranges> (<n> rows, <h> held), leaves <ranges> (<m> entries),
    <f> fetches"
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub_server import log_tree
from hub_server.log_store import (
    PENDING,
    AsyncHubLog,
    SqlHubLog,
    hub_log,
    hub_log_fetches,
    person_key_aliases,
)
from hub_server.log_tree import Leaf
from renkei import retention
from renkei.retention import Holds, HoldStore, PurgeReport, PurgeTarget, RetentionPolicy
from renkei.tlog import entry as tlog_entry
from renkei.tlog.entry import Receipt

STORE = "hub_log"
_IN_CHUNK = 1000


def holds_with_aliases(engine: Engine, holds: Holds) -> Holds:
    """The holds, each held person under every person key they have had."""
    if not holds.persons:
        return holds
    a = person_key_aliases.c
    keys, frontier = set(holds.persons), set(holds.persons)
    with engine.connect() as conn:
        while frontier:
            linked = conn.execute(
                sa.select(a.old_key, a.new_key).where(
                    sa.or_(a.old_key.in_(frontier), a.new_key.in_(frontier))
                )
            ).all()
            frontier = {k for row in linked for k in row} - keys
            keys |= frontier
    return Holds(holds.serials, frozenset(keys))


def purge_hub(
    log: SqlHubLog,
    hold_store: HoldStore,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dry_run: bool = False,
    append: Callable[[Leaf], Receipt] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PurgeReport:
    """One purge run of the hub's log. ``append`` writes the purge entry through the
    tree's one writer (the running hub's writer thread); by default ``log`` itself."""
    engine = log.engine
    tree = log.tree is not None and sa.inspect(engine).has_table(log_tree.entries.name)
    holds = holds_with_aliases(engine, hold_store.in_force())
    leaves: list[int] = []
    counts = {"hub_log_entries": 0, "hub_log_fetches": 0}

    def with_rows(conn: sa.Connection, rows: Sequence[sa.Row[Any]]) -> None:
        serials = [int(r[0]) for r in rows]
        e = log_tree.entries.c
        for start in range(0, len(serials), _IN_CHUNK):
            chunk = serials[start : start + _IN_CHUNK]
            if tree:
                found = [
                    int(i)
                    for i in conn.execute(
                        sa.select(e.leaf_index).where(
                            e.serial.in_(chunk), e.kind != tlog_entry.PURGE
                        )
                    ).scalars()
                ]
                if found:
                    conn.execute(log_tree.entries.delete().where(e.leaf_index.in_(found)))
                    conn.execute(
                        log_tree.purged_leaves.insert(),
                        [
                            {"first_leaf": a, "last_leaf": b, "purged_at": now}
                            for a, b in retention.ranges_of(found)
                        ],
                    )
                    leaves.extend(found)
                    counts["hub_log_entries"] += len(found)
            gone = conn.execute(hub_log_fetches.delete().where(hub_log_fetches.c.serial.in_(chunk)))
            counts["hub_log_fetches"] += gone.rowcount

    target = PurgeTarget(
        hub_log,
        time_column="logged_at",
        key_column="serial",
        serial_column="serial",
        person_column="person_key",
        keep=hub_log.c.outcome == PENDING,
    )
    report = retention.purge(
        engine,
        target,
        policy,
        now=now,
        store=STORE,
        holds=holds,
        dry_run=dry_run,
        on_delete=None if dry_run else with_rows,
        sleep=sleep,
    )
    report.also = dict(counts)
    if dry_run or not report.deleted:
        return report
    text = purge_text(report, policy, retention.ranges_of(leaves), counts)
    report.logged = text
    if log.tree is not None:
        leaf = purge_leaf(report.ranges[0][0], now, text)
        receipt = (append or log.append_purge)(leaf)
        if receipt.leaf_index is not None:
            report.logged = f"purge entry at leaf {receipt.leaf_index}: {text}"
    return report


def purge_text(
    report: PurgeReport,
    policy: RetentionPolicy,
    leaves: list[tuple[int, int]],
    counts: dict[str, int],
) -> str:
    leaf_report = PurgeReport(report.store, report.cutoff, ranges=leaves)
    return (
        f"retention {policy.days} days, before {report.cutoff.isoformat()}:"
        f" serials {report.ranges_text()} ({report.deleted} rows, {report.held} held),"
        f" leaves {leaf_report.ranges_text()} ({counts['hub_log_entries']} entries),"
        f" {counts['hub_log_fetches']} fetches"
    )


def purge_leaf(first_serial: int, now: datetime, text: str) -> Leaf:
    entry = tlog_entry.Entry(
        kind=tlog_entry.PURGE,
        serial=first_serial,
        logged_at=now,
        requester="",
        provider="",
        salt=tlog_entry.new_salt(),
        outcome="PURGED",
        reason=text,
    )
    return Leaf(first_serial, tlog_entry.PURGE, "", "", None, entry.encode())


def purge_on_writer(
    log: AsyncHubLog, hold_store: HoldStore, policy: RetentionPolicy
) -> PurgeReport:
    """The running hub's purge (a thread of its own): the purge entry through the log's
    writer thread, in turn with the traffic's writes."""
    repo = log.repo
    if not isinstance(repo, SqlHubLog):
        raise TypeError("the hub's retention purge needs its SQL log")
    return purge_hub(
        repo,
        hold_store,
        policy,
        now=datetime.now(UTC),
        append=lambda leaf: log.on_writer(repo.append_purge, leaf).result(),
    )
