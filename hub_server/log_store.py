"""The hub's share of the access log (R23 fields 1-6, R24) behind a small repository.

A row never holds a link code, a Number, a resident code or payload bytes. It
is keyed by ``person_key``, an HMAC of the ID code under the hub's log index
key, so a person's rows can be found later while the table alone reveals no
identifier.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.db import UtcDateTime
from renkei.group_commit import GroupCommit

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
    def apply(self, ops: list[LogOp]) -> list[int]: ...
    def row(self, serial: int) -> LogRow | None: ...
    def record_fetch(self, serial: int, outcome: str, reason: str) -> None: ...
    def fetches(self, serial: int) -> list[tuple[datetime, str, str]]: ...
    def begin_many(self, rows: list[tuple[LogEntry, str, str]]) -> list[int]: ...
    def finish_many(self, outcomes: list[tuple[int, str, str]]) -> None: ...
    def close(self) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class SqlHubLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # apply's own connection, kept between batches: no pool checkout and
        # ping per transaction. Only the log's writer thread calls apply.
        self._writer: sa.Connection | None = None
        metadata.create_all(engine)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def engine(self) -> Engine:
        return self._engine

    def begin(self, entry: LogEntry) -> int:
        return self._insert(entry, PENDING, "", None)

    def record(self, entry: LogEntry, outcome: str, reason: str) -> int:
        return self._insert(entry, outcome, reason, _now())

    def _insert(
        self, entry: LogEntry, outcome: str, reason: str, completed: datetime | None
    ) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                hub_log.insert().values(
                    **_entry_values(entry),
                    outcome=outcome,
                    reason=reason,
                    completed_at=completed,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish(self, serial: int, outcome: str, reason: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                hub_log.update()
                .where(hub_log.c.serial == serial, hub_log.c.outcome == PENDING)
                .values(outcome=outcome, reason=reason, completed_at=_now())
            )

    def apply(self, ops: list[LogOp]) -> list[int]:
        """Write ``ops`` in one transaction: serials for inserts, 0 for finishes.

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
        conn = self._writer
        if conn is None:
            conn = self._writer = self._engine.connect()
        try:
            with conn.begin():
                rows = conn.execute(_INSERT, inserts).scalars().all() if inserts else []
                if finishes:
                    conn.execute(_FINISH.values(completed_at=now), finishes)
        except Exception:
            # A connection that failed (the database restarted, say) is not reused.
            self.close()
            raise
        serials = iter(rows)
        return [0 if isinstance(op, Finish) else int(next(serials)) for op in ops]

    def begin_many(self, rows: list[tuple[LogEntry, str, str]]) -> list[int]:
        """Bulk queries: (entry, outcome, reason) rows in one transaction, serials in order.

        Outcome PENDING begins an exchange (completed later by ``finish_many``);
        any other outcome is a complete row (a person refused at the hub).
        """
        if not rows:
            return []
        now = _now()
        if self._engine.dialect.name == "sqlite":
            with self._engine.begin() as conn:
                return _insert_sqlite(conn, rows, now)
        params = [
            {
                **_entry_values(entry),
                "outcome": outcome,
                "reason": reason,
                "completed_at": None if outcome == PENDING else now,
            }
            for entry, outcome, reason in rows
        ]
        with self._engine.begin() as conn:
            result = conn.execute(
                hub_log.insert().returning(hub_log.c.serial, sort_by_parameter_order=True),
                params,
            )
            return [int(serial) for serial in result.scalars()]

    def finish_many(self, outcomes: list[tuple[int, str, str]]) -> None:
        """Complete many PENDING rows in one transaction, one statement per outcome."""
        groups: dict[tuple[str, str], list[int]] = {}
        for serial, outcome, reason in outcomes:
            groups.setdefault((outcome, reason), []).append(serial)
        now = _now()
        with self._engine.begin() as conn:
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

    def mark_interrupted(self) -> int:
        """Close rows a crash left pending: the exchange's outcome is unknown to the hub."""
        with self._engine.begin() as conn:
            result = conn.execute(
                hub_log.update()
                .where(hub_log.c.outcome == PENDING)
                .values(outcome=INTERRUPTED, reason="HUB_RESTARTED", completed_at=_now())
            )
            return int(result.rowcount)

    def rows_for_person(self, person_key: str) -> list[LogRow]:
        """The person's rows under every person key they have had (aliases, both ways)."""
        keys = self._aliases_of(person_key)
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

    def record_fetch(self, serial: int, outcome: str, reason: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                hub_log_fetches.insert().values(
                    serial=serial, logged_at=_now(), outcome=outcome, reason=reason
                )
            )

    def fetches(self, serial: int) -> list[tuple[datetime, str, str]]:
        """(logged at, outcome, reason) of each fetch of the exchange's answer, in order."""
        f = hub_log_fetches.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(f.logged_at, f.outcome, f.reason).where(f.serial == serial).order_by(f.id)
            ).all()
        return [(r.logged_at, r.outcome, r.reason) for r in rows]

    def rows(self, limit: int = 1000) -> list[LogRow]:
        return self._select(sa.select(hub_log).order_by(hub_log.c.serial).limit(limit))

    def _select(self, query: sa.Select[tuple[object, ...]]) -> list[LogRow]:
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query).mappings()]


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


class AsyncHubLog:
    """Runs the repository off the event loop, committing queued writes together.

    Each caller still waits until its own row is durable; what changes is that
    writes arriving while a commit is in flight share the next commit (group
    commit), so a busy hub pays one fsync per batch rather than one per row.
    An idle hub commits each write at once: nothing waits for a batch to fill.
    """

    def __init__(self, repo: HubLogRepository, *, max_batch: int = 512) -> None:
        self.repo = repo
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-log")
        self._writes = GroupCommit(repo.apply, self._pool, max_batch=max_batch)

    async def begin(self, entry: LogEntry) -> int:
        return await self._writes.submit(Begin(entry))

    async def record(self, entry: LogEntry, outcome: str, reason: str) -> int:
        return await self._writes.submit(Record(entry, outcome, reason))

    async def finish(self, serial: int, outcome: str, reason: str) -> None:
        await self._writes.submit(Finish(serial, outcome, reason))

    async def begin_many(self, rows: list[tuple[LogEntry, str, str]]) -> list[int]:
        """Rows durable together, serials in order; PENDING rows are completed later.

        One row (a single relay's) shares the group commit with every other
        exchange in flight; a bulk request's rows get a transaction of their own.
        """
        if len(rows) == 1:
            ((entry, outcome, reason),) = rows
            op = Begin(entry) if outcome == PENDING else Record(entry, outcome, reason)
            return [await self._writes.submit(op)]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.repo.begin_many, rows)

    async def finish_many(self, outcomes: list[tuple[int, str, str]]) -> None:
        """Complete PENDING rows: one through the group commit, many in one transaction."""
        if len(outcomes) == 1:
            ((serial, outcome, reason),) = outcomes
            await self._writes.submit(Finish(serial, outcome, reason))
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.repo.finish_many, outcomes)

    async def add_aliases(self, pairs: list[tuple[str, str]]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.repo.add_aliases, pairs)

    async def row(self, serial: int) -> LogRow | None:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.repo.row, serial)

    async def fetches(self, serial: int) -> list[tuple[datetime, str, str]]:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.repo.fetches, serial
        )

    async def record_fetch(self, serial: int, outcome: str, reason: str) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._pool, self.repo.record_fetch, serial, outcome, reason
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.repo.close()
