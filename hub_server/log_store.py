"""The hub's share of the access log (R23 fields 1-6, R24) behind a small repository.

A row never holds a link code, a Number, a resident code or payload bytes. It
is keyed by ``person_key``, an HMAC of the ID code under the hub's log index
key, so a person's rows can be found later while the table alone reveals no
identifier.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub_server.log_tree import Leaf, TreeWriter
from hub_server.log_tree import metadata as tree_metadata
from renkei.db import UtcDateTime
from renkei.errors import RenkeiError, Unavailable
from renkei.group_commit import GroupCommit
from renkei.logs import event
from renkei.tlog import entry as tlog_entry
from renkei.tlog.entry import Receipt

_log = logging.getLogger("hub_server.log_store")
R = TypeVar("R")

metadata = sa.MetaData()

hub_log = sa.Table(
    "hub_log",
    metadata,
    sa.Column("serial", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("logged_at", UtcDateTime(), nullable=False),
    sa.Column("legal_basis_item", sa.String(32), nullable=False),
    sa.Column("requester_agency_id", sa.String(64), nullable=False),
    sa.Column("provider_agency_id", sa.String(64), nullable=False),
    sa.Column("info_kind", sa.String(200), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("person_key", sa.String(64), nullable=True, index=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("completed_at", UtcDateTime(), nullable=True),
)

# A person's exchanges newest first (the portal's history, hub_server/personal_store.py):
# PostgreSQL would otherwise walk the primary key backwards to fill a page. SQLite's
# person_key index holds the serial (its rowid) already.
person_serial_index = sa.Index(
    "ix_hub_log_person_serial", hub_log.c.person_key, hub_log.c.serial
).ddl_if(dialect="postgresql")

# After an ID-key rotation a person's ID code, and so their person key,
# changes; each pair recorded here keeps their earlier rows findable.
person_key_aliases = sa.Table(
    "person_key_aliases",
    metadata,
    sa.Column("old_key", sa.String(64), primary_key=True),
    sa.Column("new_key", sa.String(64), nullable=False, index=True),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)

# Answer-later (docs/architecture.md): each fetch of a pending exchange's
# answer, under the exchange's serial; the hub_log row is the first half.
hub_log_fetches = sa.Table(
    "hub_log_fetches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("serial", sa.BigInteger, nullable=False, index=True),
    sa.Column("logged_at", UtcDateTime(), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
)

PENDING = "PENDING"
ANSWER_PENDING = "ANSWER_PENDING"
OK = "OK"
DENIED = "DENIED"
INTERRUPTED = "INTERRUPTED"
# Serials per IN (...) list: well under SQLite's and PostgreSQL's bound-parameter limits.
_IN_CHUNK = 2000


@dataclass(frozen=True)
class LogEntry:
    logged_at: datetime
    legal_basis_item: str
    requester_agency_id: str
    provider_agency_id: str
    info_kind: str
    policy_version: str
    person_key: str | None


@dataclass(frozen=True)
class LogRow:
    serial: int
    entry: LogEntry
    outcome: str
    reason: str
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Begin:
    entry: LogEntry


@dataclass(frozen=True, slots=True)
class Record:
    entry: LogEntry
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    serial: int
    outcome: str
    reason: str


LogOp = Begin | Record | Finish


class HubLogRepository(Protocol):
    def begin(self, entry: LogEntry) -> int: ...
    def finish(self, serial: int, outcome: str, reason: str) -> None: ...
    def record(self, entry: LogEntry, outcome: str, reason: str) -> int: ...
    def rows_for_person(self, person_key: str) -> list[LogRow]: ...
    def add_aliases(self, pairs: list[tuple[str, str]]) -> None: ...
    def rows(self, limit: int = 1000) -> list[LogRow]: ...
    def mark_interrupted(self) -> int: ...
    def apply(self, ops: list[LogOp]) -> list[Receipt]: ...
    def row(self, serial: int) -> LogRow | None: ...
    def record_fetch(self, serial: int, outcome: str, reason: str) -> Receipt: ...
    def fetches(self, serial: int) -> list[tuple[datetime, str, str]]: ...
    def begin_many(self, rows: list[tuple[LogEntry, str, str]]) -> list[Receipt]: ...
    def finish_many(self, outcomes: list[tuple[int, str, str]]) -> list[Receipt]: ...
    def close(self) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class SqlHubLog:
    """The hub's log on SQL: the rows (the query index) and, with ``tree``, the record.

    With the tree on, every write also appends its entries (renkei.tlog.entry)
    and their Merkle nodes in the same transaction (log_tree), and returns
    their receipts; an outcome is an entry of its own naming its serial.
    """

    def __init__(self, engine: Engine, *, tree: bool = True) -> None:
        self._engine = engine
        # The writer's own connection, kept between batches: no pool checkout and
        # ping per transaction. Only the log's writer thread writes.
        self._writer: sa.Connection | None = None
        self.tree = TreeWriter() if tree else None
        # Requester and provider of the exchanges begun and not yet finished,
        # for their outcome entries without a read (a miss reads the row).
        self._parties: dict[int, tuple[str, str]] = {}
        metadata.create_all(engine)
        if tree:
            tree_metadata.create_all(engine)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def engine(self) -> Engine:
        return self._engine

    def begin(self, entry: LogEntry) -> int:
        return self.apply([Begin(entry)])[0].serial

    def record(self, entry: LogEntry, outcome: str, reason: str) -> int:
        return self.apply([Record(entry, outcome, reason)])[0].serial

    def finish(self, serial: int, outcome: str, reason: str) -> None:
        self.apply([Finish(serial, outcome, reason)])

    def _write(self, work: Callable[[sa.Connection], R]) -> R:
        """``work`` in one transaction on the writer's connection, the tree kept in step."""
        conn = self._writer
        if conn is None:
            conn = self._writer = self._engine.connect()
        try:
            with conn.begin():
                result = work(conn)
        except Exception:
            # A connection that failed (the database restarted, say) is not reused.
            self.close()
            if self.tree is not None:
                self.tree.failed()
            raise
        if self.tree is not None:
            self.tree.committed()
        return result

    def apply(self, ops: list[LogOp]) -> list[Receipt]:
        """Write ``ops`` in one transaction: a receipt per op, in order.

        The hot path of every linkage, so each kind of op is one executemany of
        a statement built once. Inserts keep their order (serials follow the
        queue); a finish never names a row inserted in the same batch, since its
        caller waited for that row to be durable first.
        """
        now = _now()
        inserts: list[dict[str, object]] = []
        finishes: list[dict[str, object]] = []
        for op in ops:
            if isinstance(op, Finish):
                finishes.append(
                    {"b_serial": op.serial, "b_outcome": op.outcome, "b_reason": op.reason}
                )
            elif isinstance(op, Begin):
                inserts.append(_insert_values(op.entry, PENDING, "", None))
            else:
                inserts.append(_insert_values(op.entry, op.outcome, op.reason, now))

        def write(conn: sa.Connection) -> list[Receipt]:
            serials = [int(s) for s in conn.execute(_INSERT, inserts).scalars()] if inserts else []
            if self.tree is None:
                if finishes:
                    conn.execute(_FINISH.values(completed_at=now), finishes)
                it = iter(serials)
                return [Receipt(op.serial if isinstance(op, Finish) else next(it)) for op in ops]
            parties = self._finishing(conn, [op.serial for op in ops if isinstance(op, Finish)])
            if finishes:
                conn.execute(_FINISH.values(completed_at=now), finishes)
            it = iter(serials)
            leaves: list[Leaf | int] = []
            for op in ops:
                if isinstance(op, Finish):
                    found = parties.pop(op.serial, None)  # a serial finished twice: one entry
                    leaves.append(
                        op.serial
                        if found is None
                        else _outcome_leaf(op.serial, found, now, op.outcome, op.reason)
                    )
                elif isinstance(op, Begin):
                    leaves.append(_exchange_leaf(next(it), op.entry, PENDING, ""))
                else:
                    leaves.append(_exchange_leaf(next(it), op.entry, op.outcome, op.reason))
            return self._append(conn, leaves)

        receipts = self._write(write)
        if self.tree is not None:
            for op, receipt in zip(ops, receipts, strict=True):
                if isinstance(op, Begin):
                    self._parties[receipt.serial] = (
                        op.entry.requester_agency_id,
                        op.entry.provider_agency_id,
                    )
        return receipts

    def _finishing(self, conn: sa.Connection, serials: list[int]) -> dict[int, tuple[str, str]]:
        """(requester, provider) of each serial still PENDING, for its outcome entry."""
        parties: dict[int, tuple[str, str]] = {}
        missed: list[int] = []
        for serial in serials:
            known = self._parties.pop(serial, None)
            if known is None:
                missed.append(serial)
            else:
                parties[serial] = known
        c = hub_log.c
        for start in range(0, len(missed), _IN_CHUNK):
            rows = conn.execute(
                sa.select(c.serial, c.requester_agency_id, c.provider_agency_id).where(
                    c.serial.in_(missed[start : start + _IN_CHUNK]), c.outcome == PENDING
                )
            )
            parties.update((int(r[0]), (r[1], r[2])) for r in rows)
        return parties

    def _append(self, conn: sa.Connection, leaves: list[Leaf | int]) -> list[Receipt]:
        """Appends the leaves to the tree; an int stands for a write with no entry."""
        assert self.tree is not None
        real = [leaf for leaf in leaves if isinstance(leaf, Leaf)]
        at = self.tree.append(conn, real) if real else 0
        receipts: list[Receipt] = []
        for leaf in leaves:
            if isinstance(leaf, Leaf):
                receipts.append(Receipt(leaf.serial, at, leaf.entry))
                at += 1
            else:
                receipts.append(Receipt(leaf))
        return receipts

    def begin_many(self, rows: list[tuple[LogEntry, str, str]]) -> list[Receipt]:
        """Bulk queries: (entry, outcome, reason) rows in one transaction, receipts in order.

        Outcome PENDING begins an exchange (completed later by ``finish_many``);
        any other outcome is a complete row (a person refused at the hub).
        """
        if not rows:
            return []
        now = _now()

        def write(conn: sa.Connection) -> list[Receipt]:
            if self._engine.dialect.name == "sqlite":
                serials = _insert_sqlite(conn, rows, now)
            else:
                params = [
                    {
                        **_entry_values(entry),
                        "outcome": outcome,
                        "reason": reason,
                        "completed_at": None if outcome == PENDING else now,
                    }
                    for entry, outcome, reason in rows
                ]
                result = conn.execute(
                    hub_log.insert().returning(hub_log.c.serial, sort_by_parameter_order=True),
                    params,
                )
                serials = [int(serial) for serial in result.scalars()]
            if self.tree is None:
                return [Receipt(s) for s in serials]
            return self._append(
                conn,
                [
                    _exchange_leaf(serial, entry, outcome, reason)
                    for serial, (entry, outcome, reason) in zip(serials, rows, strict=True)
                ],
            )

        receipts = self._write(write)
        if self.tree is not None:
            for receipt, (entry, outcome, _) in zip(receipts, rows, strict=True):
                if outcome == PENDING:
                    self._parties[receipt.serial] = (
                        entry.requester_agency_id,
                        entry.provider_agency_id,
                    )
        return receipts

    def finish_many(self, outcomes: list[tuple[int, str, str]]) -> list[Receipt]:
        """Complete many PENDING rows in one transaction, one statement per outcome."""
        groups: dict[tuple[str, str], list[int]] = {}
        for serial, outcome, reason in outcomes:
            groups.setdefault((outcome, reason), []).append(serial)
        now = _now()

        def write(conn: sa.Connection) -> list[Receipt]:
            parties = (
                self._finishing(conn, [serial for serial, _, _ in outcomes])
                if self.tree is not None
                else {}
            )
            for (outcome, reason), serials in groups.items():
                for start in range(0, len(serials), _IN_CHUNK):
                    conn.execute(
                        hub_log.update()
                        .where(
                            hub_log.c.serial.in_(serials[start : start + _IN_CHUNK]),
                            hub_log.c.outcome == PENDING,
                        )
                        .values(outcome=outcome, reason=reason, completed_at=now)
                    )
            if self.tree is None:
                return [Receipt(serial) for serial, _, _ in outcomes]
            leaves: list[Leaf | int] = []
            for serial, outcome, reason in outcomes:
                found = parties.pop(serial, None)  # a serial named twice gets one entry
                leaves.append(
                    serial if found is None else _outcome_leaf(serial, found, now, outcome, reason)
                )
            return self._append(conn, leaves)

        return self._write(write)

    def mark_interrupted(self) -> int:
        """Close rows a crash left pending: the exchange's outcome is unknown to the hub."""
        c = hub_log.c

        def write(conn: sa.Connection) -> int:
            pending = conn.execute(
                sa.select(c.serial, c.requester_agency_id, c.provider_agency_id)
                .where(c.outcome == PENDING)
                .order_by(c.serial)
            ).all()
            if not pending:
                return 0
            now = _now()
            conn.execute(
                hub_log.update()
                .where(c.outcome == PENDING)
                .values(outcome=INTERRUPTED, reason="HUB_RESTARTED", completed_at=now)
            )
            if self.tree is not None:
                self._append(
                    conn,
                    [
                        _outcome_leaf(int(r[0]), (r[1], r[2]), now, INTERRUPTED, "HUB_RESTARTED")
                        for r in pending
                    ],
                )
            return len(pending)

        return self._write(write)

    def rows_for_person(self, person_key: str) -> list[LogRow]:
        """The person's rows under every person key they have had (aliases, both ways)."""
        keys = person_keys(self._engine, person_key)
        return self._select(
            sa.select(hub_log).where(hub_log.c.person_key.in_(keys)).order_by(hub_log.c.serial)
        )

    def add_aliases(self, pairs: list[tuple[str, str]]) -> None:
        """Record (old person key, new person key) pairs; a pair already there is kept."""
        if not pairs:
            return
        a = person_key_aliases.c
        with self._engine.begin() as conn:
            known = set(
                conn.execute(
                    sa.select(a.old_key).where(a.old_key.in_([old for old, _ in pairs]))
                ).scalars()
            )
            fresh = {old: new for old, new in pairs if old not in known and old != new}
            if fresh:
                conn.execute(
                    person_key_aliases.insert(),
                    [{"old_key": o, "new_key": n, "recorded_at": _now()} for o, n in fresh.items()],
                )

    def _aliases_of(self, person_key: str) -> set[str]:
        a = person_key_aliases.c
        keys, frontier = {person_key}, {person_key}
        with self._engine.connect() as conn:
            while frontier:
                linked = conn.execute(
                    sa.select(a.old_key, a.new_key).where(
                        sa.or_(a.old_key.in_(frontier), a.new_key.in_(frontier))
                    )
                ).all()
                frontier = {k for row in linked for k in row} - keys
                keys |= frontier
        return keys

    def row(self, serial: int) -> LogRow | None:
        rows = self._select(sa.select(hub_log).where(hub_log.c.serial == serial))
        return rows[0] if rows else None

    def record_fetch(self, serial: int, outcome: str, reason: str) -> Receipt:
        now = _now()

        def write(conn: sa.Connection) -> Receipt:
            conn.execute(
                hub_log_fetches.insert().values(
                    serial=serial, logged_at=now, outcome=outcome, reason=reason
                )
            )
            if self.tree is None:
                return Receipt(serial)
            c = hub_log.c
            parties = conn.execute(
                sa.select(c.requester_agency_id, c.provider_agency_id).where(c.serial == serial)
            ).first()
            if parties is None:
                return Receipt(serial)
            leaf = _leaf(
                tlog_entry.FETCH,
                serial,
                now,
                parties[0],
                parties[1],
                outcome=outcome,
                reason=reason,
            )
            (receipt,) = self._append(conn, [leaf])
            return receipt

        return self._write(write)

    def fetches(self, serial: int) -> list[tuple[datetime, str, str]]:
        """(logged at, outcome, reason) of each fetch of the exchange's answer, in order."""
        f = hub_log_fetches.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(f.logged_at, f.outcome, f.reason).where(f.serial == serial).order_by(f.id)
            ).all()
        return [(r.logged_at, r.outcome, r.reason) for r in rows]

    def append_purge(self, leaf: Leaf) -> Receipt:
        """Retention's purge entry (hub_server.retention), through the tree's one writer."""
        if self.tree is None:
            return Receipt(leaf.serial)
        return self._write(lambda conn: self._append(conn, [leaf])[0])

    def rows(self, limit: int = 1000) -> list[LogRow]:
        return self._select(sa.select(hub_log).order_by(hub_log.c.serial).limit(limit))

    def _select(self, query: sa.Select[tuple[object, ...]]) -> list[LogRow]:
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query).mappings()]


def person_keys(engine: Engine, person_key: str) -> set[str]:
    """Every person key the person has had (ID-key rotations), following aliases both ways."""
    a = person_key_aliases.c
    keys, frontier = {person_key}, {person_key}
    with engine.connect() as conn:
        while frontier:
            linked = conn.execute(
                sa.select(a.old_key, a.new_key).where(
                    sa.or_(a.old_key.in_(frontier), a.new_key.in_(frontier))
                )
            ).all()
            frontier = {k for row in linked for k in row} - keys
            keys |= frontier
    return keys


def _entry_values(entry: LogEntry) -> dict[str, object]:
    return {
        "logged_at": entry.logged_at,
        "legal_basis_item": entry.legal_basis_item,
        "requester_agency_id": entry.requester_agency_id,
        "provider_agency_id": entry.provider_agency_id,
        "info_kind": entry.info_kind,
        "policy_version": entry.policy_version,
        "person_key": entry.person_key,
    }


def _leaf(
    kind: str,
    serial: int,
    at: datetime,
    requester: str,
    provider: str,
    *,
    person_key: str | None = None,
    item: str = "",
    info_kind: str = "",
    policy_version: str = "",
    outcome: str = "",
    reason: str = "",
) -> Leaf:
    entry = tlog_entry.Entry(
        kind=kind,
        serial=serial,
        logged_at=at,
        requester=requester,
        provider=provider,
        salt=tlog_entry.new_salt(),
        legal_basis_item=item,
        info_kind=info_kind,
        policy_version=policy_version,
        person=person_key or "",
        outcome=outcome,
        reason=reason,
    )
    return Leaf(serial, kind, requester, provider, person_key, entry.encode())


def _exchange_leaf(serial: int, entry: LogEntry, outcome: str, reason: str) -> Leaf:
    """An exchange as it began (PENDING), or complete when it was refused at once."""
    return _leaf(
        tlog_entry.EXCHANGE,
        serial,
        entry.logged_at,
        entry.requester_agency_id,
        entry.provider_agency_id,
        person_key=entry.person_key,
        item=entry.legal_basis_item,
        info_kind=entry.info_kind,
        policy_version=entry.policy_version,
        outcome=outcome,
        reason=reason,
    )


def _outcome_leaf(
    serial: int, parties: tuple[str, str], at: datetime, outcome: str, reason: str
) -> Leaf:
    return _leaf(
        tlog_entry.OUTCOME, serial, at, parties[0], parties[1], outcome=outcome, reason=reason
    )


_BULK_COLUMNS = (
    "logged_at",
    "legal_basis_item",
    "requester_agency_id",
    "provider_agency_id",
    "info_kind",
    "policy_version",
    "person_key",
    "outcome",
    "reason",
    "completed_at",
)
# Rows per multi-row INSERT: 10,000 bound values, under SQLite's limit of 32,766.
_SQLITE_ROWS_PER_INSERT = 1000


def _insert_sqlite(
    conn: sa.Connection, rows: list[tuple[LogEntry, str, str]], now: datetime
) -> list[int]:
    """``begin_many`` on SQLite: multi-row INSERT ... RETURNING, built directly.

    Half the cost per row of SQLAlchemy's insertmanyvalues, which processes
    every parameter of every row; here the timestamps, shared by all rows, are
    converted once. SQLite gives each row of one INSERT the next rowid in
    VALUES order, so the serials sorted are the rows' serials in order.
    """
    to_db = hub_log.c.logged_at.type.bind_processor(conn.dialect)

    # Then sqlite3's own adapter, as it would run on every row: once per distinct time here.
    def convert(value: object) -> object:
        return sqlite3.adapt(value if to_db is None else to_db(value), sqlite3.PrepareProtocol)

    done = convert(now)
    stamped: dict[datetime, object] = {}
    columns = ", ".join(_BULK_COLUMNS)
    serials: list[int] = []
    for start in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
        chunk = rows[start : start + _SQLITE_ROWS_PER_INSERT]
        values: list[object] = []
        for entry, outcome, reason in chunk:
            logged = stamped.get(entry.logged_at)
            if logged is None:
                logged = stamped[entry.logged_at] = convert(entry.logged_at)
            values += (
                logged,
                entry.legal_basis_item,
                entry.requester_agency_id,
                entry.provider_agency_id,
                entry.info_kind,
                entry.policy_version,
                entry.person_key,
                outcome,
                reason,
                None if outcome == PENDING else done,
            )
        marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        result = conn.exec_driver_sql(
            f"INSERT INTO hub_log ({columns}) VALUES {marks} RETURNING serial", tuple(values)
        )
        serials += sorted(int(serial) for serial in result.scalars())
    return serials


def _insert_values(
    entry: LogEntry, outcome: str, reason: str, completed: datetime | None
) -> dict[str, object]:
    return {
        **_entry_values(entry),
        "outcome": outcome,
        "reason": reason,
        "completed_at": completed,
    }


# The two statements of every linkage, built once; SQLAlchemy caches their compiled form.
_INSERT = hub_log.insert().returning(hub_log.c.serial, sort_by_parameter_order=True)
_FINISH = (
    hub_log.update()
    .where(hub_log.c.serial == sa.bindparam("b_serial"), hub_log.c.outcome == PENDING)
    .values(outcome=sa.bindparam("b_outcome"), reason=sa.bindparam("b_reason"))
)


def _row(r: sa.RowMapping) -> LogRow:
    return LogRow(
        serial=int(r["serial"]),
        entry=LogEntry(
            logged_at=r["logged_at"],
            legal_basis_item=r["legal_basis_item"],
            requester_agency_id=r["requester_agency_id"],
            provider_agency_id=r["provider_agency_id"],
            info_kind=r["info_kind"],
            policy_version=r["policy_version"],
            person_key=r["person_key"],
        ),
        outcome=r["outcome"],
        reason=r["reason"],
        completed_at=r["completed_at"],
    )


# A row whose exchange ended before the provider was asked: the caller went away
# while its PENDING row was being written, or the log did not confirm it in time.
CANCELLED = "CANCELLED"
NOT_RELAYED = "NOT_RELAYED"
UNAVAILABLE = "UNAVAILABLE"
LOG_UNAVAILABLE = "HUB_LOG_UNAVAILABLE"
# Without a deadline of the caller's, a log write is given this long.
WRITE_CEILING_SECONDS = 2.0


class Outage:
    """Logs a run of log failures once: the first with its traceback, then a summary
    line at most every ``every`` seconds while it lasts, and one line when it ends.

    Used on the event loop's thread only.
    """

    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self.since: float | None = None
        self._failures = 0
        self._reported_at = 0.0

    def failed(self, what: str, err: BaseException | None = None) -> None:
        now = self._clock()
        self._failures += 1
        if self.since is None:
            self.since = self._reported_at = now
            _log.error(
                "hub log unavailable: %s",
                what,
                exc_info=(type(err), err, err.__traceback__) if err is not None else None,
            )
        elif now - self._reported_at >= self.every:
            self._reported_at = now
            event(
                _log,
                "hub log still unavailable",
                logging.WARNING,
                seconds=round(now - self.since, 1),
                failures=self._failures,
                last=what,
            )

    def recovered(self) -> None:
        if self.since is not None:
            seconds = round(self._clock() - self.since, 1)
            event(_log, "hub log recovered", seconds=seconds, failures=self._failures)
            self.since, self._failures = None, 0


def log_unavailable(what: str) -> Unavailable:
    return Unavailable(LOG_UNAVAILABLE, f"the hub cannot write its log: {what}")


class AsyncHubLog:
    """Runs the repository off the event loop, committing queued writes together.

    Each caller still waits until its own row is durable; what changes is that
    writes arriving while a commit is in flight share the next commit (group
    commit), so a busy hub pays one fsync per batch rather than one per row.
    An idle hub commits each write at once: nothing waits for a batch to fill.

    Failures fail closed and leave no row PENDING behind (ports.HubLog): a
    write that fails or is not durable within its timeout raises UNAVAILABLE
    ``HUB_LOG_UNAVAILABLE``. A PENDING row written for a caller who is gone is
    closed (``CANCELLED``/``NOT_RELAYED``, or ``UNAVAILABLE``/``HUB_LOG_UNAVAILABLE``
    after a timeout); an outcome that could not be written is kept and written
    again every ``retry_every`` seconds until the database takes it. Rows still
    PENDING when the hub stops are marked INTERRUPTED at its next start.
    """

    def __init__(
        self,
        repo: HubLogRepository,
        *,
        max_batch: int = 512,
        retry_every: float = 1.0,
        report_every: float = 30.0,
    ) -> None:
        self.repo = repo
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-log")
        self._writes = GroupCommit(
            repo.apply,
            self._pool,
            max_batch=max_batch,
            droppable=self._droppable,
            orphaned=self._orphaned,
        )
        self.outage = Outage(report_every)
        self._retry_every = retry_every
        # Outcomes to write when the database is back: serial -> (outcome, reason).
        self.unfinished: dict[int, tuple[str, str]] = {}
        # Fetches of answers already passed on (single-use tickets), to log when it is back.
        self.unrecorded_fetches: list[tuple[int, str, str]] = []
        self._finisher: asyncio.Task[None] | None = None
        self._expired: set[int] = set()  # id() of Begin ops whose waiter timed out

    async def begin(self, entry: LogEntry) -> int:
        return (await self._writes.submit(Begin(entry))).serial

    async def record(self, entry: LogEntry, outcome: str, reason: str) -> int:
        return (await self._writes.submit(Record(entry, outcome, reason))).serial

    async def finish(self, serial: int, outcome: str, reason: str) -> None:
        await self._writes.submit(Finish(serial, outcome, reason))

    async def begin_many(
        self, rows: list[tuple[LogEntry, str, str]], timeout: float = WRITE_CEILING_SECONDS
    ) -> list[Receipt]:
        """Rows durable together, their receipts in order; PENDING rows are completed later.

        One row (a single relay's) shares the group commit with every other
        exchange in flight; a bulk request's rows get a transaction of their own.
        """
        if len(rows) != 1:
            return await self._begin_bulk(rows, timeout)
        ((entry, outcome, reason),) = rows
        op = Begin(entry) if outcome == PENDING else Record(entry, outcome, reason)
        done = self._writes.submit(op)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, self._expire, op, done)
        try:
            receipt = await done
        except asyncio.CancelledError:
            if done.cancelled():
                if _own_timeout():
                    self.outage.failed(f"a row was not durable within {timeout:.3f} s")
                    raise log_unavailable("the database did not answer in time") from None
                raise  # the caller went away; _orphaned closes the row once it is written
            if done.exception() is None and isinstance(op, Begin):
                # Written just as the caller went away: nobody will complete it.
                self._later({done.result().serial: (CANCELLED, NOT_RELAYED)})
            raise
        except Exception as err:
            self.outage.failed("a row was refused", err)
            raise log_unavailable(str(err)) from err
        finally:
            timer.cancel()
        if self.outage.since is not None:
            self.outage.recovered()
        return [receipt]

    async def _begin_bulk(
        self, rows: list[tuple[LogEntry, str, str]], timeout: float
    ) -> list[Receipt]:
        if not rows:
            return []
        job = self._pool.submit(self.repo.begin_many, rows)
        try:
            async with asyncio.timeout(timeout):
                receipts = await asyncio.shield(asyncio.wrap_future(job))
        except (TimeoutError, asyncio.CancelledError) as err:
            timed_out = isinstance(err, TimeoutError)
            if not job.cancel():  # already running: close its PENDING rows once written
                close = (UNAVAILABLE, LOG_UNAVAILABLE) if timed_out else (CANCELLED, NOT_RELAYED)
                job.add_done_callback(self._close_when_written(rows, close))
            if timed_out:
                self.outage.failed(f"{len(rows)} rows were not durable within {timeout:.3f} s")
                raise log_unavailable("the database did not answer in time") from None
            raise
        except Exception as err:
            self.outage.failed(f"{len(rows)} rows were refused", err)
            raise log_unavailable(str(err)) from err
        if self.outage.since is not None:
            self.outage.recovered()
        return receipts

    def _close_when_written(
        self, rows: list[tuple[LogEntry, str, str]], close: tuple[str, str]
    ) -> Callable[[Future[list[Receipt]]], None]:
        loop = asyncio.get_running_loop()

        def closing(job: Future[list[Receipt]]) -> None:  # on the log's thread, or here
            if job.cancelled() or job.exception() is not None:
                return  # nothing was written
            pending = {
                r.serial: close
                for r, (_, outcome, _) in zip(job.result(), rows, strict=True)
                if outcome == PENDING
            }
            loop.call_soon_threadsafe(self._later, pending)

        return closing

    async def finish_many(
        self, outcomes: list[tuple[int, str, str]], timeout: float = WRITE_CEILING_SECONDS
    ) -> list[Receipt]:
        """Complete PENDING rows: one through the group commit, many in one transaction.

        The outcomes are written whether or not the caller still waits: a
        cancelled caller's are written all the same, and ones the database
        refused or did not take in time are kept and written when it is back.
        """
        if len(outcomes) != 1:
            return await self._finish_bulk(outcomes, timeout)
        ((serial, outcome, reason),) = outcomes
        op = Finish(serial, outcome, reason)
        done = self._writes.submit(op)
        timer = asyncio.get_running_loop().call_later(timeout, self._expire, op, done)
        try:
            receipt = await done
        except asyncio.CancelledError:
            if done.cancelled():
                # Still queued or in flight: _orphaned keeps it if its batch fails.
                if _own_timeout():
                    self.outage.failed(f"an outcome was not durable within {timeout:.3f} s")
                    raise log_unavailable("the database did not answer in time") from None
            elif done.exception() is not None:
                self._later({serial: (outcome, reason)})
            raise
        except Exception as err:
            self._later({serial: (outcome, reason)})
            self.outage.failed("an outcome was refused", err)
            raise log_unavailable(str(err)) from err
        finally:
            timer.cancel()
        if self.outage.since is not None:
            self.outage.recovered()
        return [receipt]

    async def _finish_bulk(
        self, outcomes: list[tuple[int, str, str]], timeout: float
    ) -> list[Receipt]:
        if not outcomes:
            return []
        job = self._pool.submit(self.repo.finish_many, outcomes)
        try:
            async with asyncio.timeout(timeout):
                receipts = await asyncio.shield(asyncio.wrap_future(job))  # it must land
        except (TimeoutError, asyncio.CancelledError) as err:
            loop = asyncio.get_running_loop()
            later = {s: (o, r) for s, o, r in outcomes}

            def keep_if_failed(job: Future[list[Receipt]]) -> None:
                if job.exception() is not None:
                    loop.call_soon_threadsafe(self._later, later)

            job.add_done_callback(keep_if_failed)
            if isinstance(err, TimeoutError):
                self.outage.failed(f"{len(outcomes)} outcomes were not durable in {timeout:.3f} s")
                raise log_unavailable("the database did not answer in time") from None
            raise
        except Exception as err:
            self._later({s: (o, r) for s, o, r in outcomes})
            self.outage.failed(f"{len(outcomes)} outcomes were refused", err)
            raise log_unavailable(str(err)) from err
        if self.outage.since is not None:
            self.outage.recovered()
        return receipts

    # -- what callers who went away left behind ------------------------------

    def _expire(self, op: LogOp, done: asyncio.Future[Receipt]) -> None:
        """The waiter's timeout: noted before the write is let go, so _orphaned knows why."""
        if not done.done():
            if isinstance(op, Begin):
                self._expired.add(id(op))
            done.cancel()

    def _droppable(self, op: LogOp) -> bool:
        """A Begin nobody waits for is never written; outcomes and complete rows are."""
        if isinstance(op, Begin):
            self._expired.discard(id(op))
            return True
        return False

    def _orphaned(self, gone: list[tuple[LogOp, Receipt | Exception]]) -> None:
        closes: dict[int, tuple[str, str]] = {}
        failure: Exception | None = None
        for op, result in gone:
            timed_out = id(op) in self._expired
            self._expired.discard(id(op))
            if isinstance(result, Exception):
                failure = result
                if isinstance(op, Finish):
                    closes[op.serial] = (op.outcome, op.reason)
            elif isinstance(op, Begin):
                closes[result.serial] = (
                    (UNAVAILABLE, LOG_UNAVAILABLE) if timed_out else (CANCELLED, NOT_RELAYED)
                )
        if failure is not None:
            self.outage.failed("a batch of rows was refused", failure)
        if closes:
            self._later(closes)

    def _later(self, closes: dict[int, tuple[str, str]]) -> None:
        """Write these outcomes in the background, again and again until they are durable."""
        self.unfinished.update(closes)
        self._keep_writing()

    def _keep_writing(self) -> None:
        """The background writer of kept outcomes and fetches, started if it is not running."""
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.get_running_loop().create_task(self._finish_unfinished())

    async def _finish_unfinished(self) -> None:
        loop = asyncio.get_running_loop()
        while self.unfinished or self.unrecorded_fetches:
            batch = dict(self.unfinished)
            fetches = list(self.unrecorded_fetches)
            try:
                for fetch in fetches:
                    await loop.run_in_executor(self._pool, self.repo.record_fetch, *fetch)
                    self.unrecorded_fetches.remove(fetch)
                if batch:
                    await loop.run_in_executor(
                        self._pool,
                        self.repo.finish_many,
                        [(s, o, r) for s, (o, r) in batch.items()],
                    )
            except Exception as err:
                left = len(self.unfinished) + len(self.unrecorded_fetches)
                self.outage.failed(f"{left} rows are still to be written", err)
                await asyncio.sleep(self._retry_every)
                continue
            for serial, outcome in batch.items():
                if self.unfinished.get(serial) == outcome:
                    del self.unfinished[serial]
            self.outage.recovered()

    async def flush(self) -> None:
        """Return once every write so far is done and every kept outcome written (tests)."""
        while True:
            await self._writes.drained()
            # The log's one thread runs jobs in order: once this one ran, so did
            # every earlier one, and their callbacks are queued on the loop.
            await asyncio.wrap_future(self._pool.submit(lambda: None))
            await asyncio.sleep(0)
            if self._finisher is None or self._finisher.done():
                return
            await asyncio.shield(self._finisher)

    # -- the rest -------------------------------------------------------------

    async def _call(
        self, what: str, fn: Callable[..., R], *args: object, timeout: float = WRITE_CEILING_SECONDS
    ) -> R:
        job = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        try:
            async with asyncio.timeout(timeout):
                result = await asyncio.shield(job)  # a write let go still lands, or fails alone
        except TimeoutError:
            self.outage.failed(f"{what}: no answer within {timeout:.3f} s")
            raise log_unavailable("the database did not answer in time") from None
        except Exception as err:
            self.outage.failed(what, err)
            raise log_unavailable(str(err)) from err
        if self.outage.since is not None:
            self.outage.recovered()
        return result

    def on_writer(self, fn: Callable[..., R], *args: object) -> Future[R]:
        """``fn`` on the log's one writer thread, in turn with the writes (retention)."""
        return self._pool.submit(fn, *args)

    async def add_aliases(self, pairs: list[tuple[str, str]]) -> None:
        await self._call("person-key aliases were refused", self.repo.add_aliases, pairs)

    async def row(self, serial: int, timeout: float = WRITE_CEILING_SECONDS) -> LogRow | None:
        return await self._call("a row could not be read", self.repo.row, serial, timeout=timeout)

    async def fetches(
        self, serial: int, timeout: float = WRITE_CEILING_SECONDS
    ) -> list[tuple[datetime, str, str]]:
        return await self._call(
            "fetches could not be read", self.repo.fetches, serial, timeout=timeout
        )

    async def record_fetch(
        self,
        serial: int,
        outcome: str,
        reason: str,
        timeout: float = WRITE_CEILING_SECONDS,
        *,
        keep: bool = False,
    ) -> Receipt | None:
        """Log a fetch of an exchange's answer. With ``keep``, a fetch the database
        does not take in time is kept and written when it is back (None), instead of raised."""
        try:
            return await self._call(
                "a fetch was refused",
                self.repo.record_fetch,
                serial,
                outcome,
                reason,
                timeout=timeout,
            )
        except RenkeiError:
            if not keep:
                raise
            self.unrecorded_fetches.append((serial, outcome, reason))
            self._keep_writing()
            return None

    def close(self) -> None:
        if self._finisher is not None:
            self._finisher.cancel()
        self._pool.shutdown(wait=True)
        if self.unfinished or self.unrecorded_fetches:
            try:
                for fetch in self.unrecorded_fetches:
                    self.repo.record_fetch(*fetch)
                self.unrecorded_fetches.clear()
                self.repo.finish_many([(s, o, r) for s, (o, r) in self.unfinished.items()])
                self.unfinished.clear()
            except Exception:
                event(
                    _log,
                    "hub log rows left PENDING; they are marked INTERRUPTED at the next start",
                    logging.ERROR,
                    rows=len(self.unfinished),
                )
        self.repo.close()


def _own_timeout() -> bool:
    """Was the awaited write let go by its own timeout (not by cancelling the caller)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0
