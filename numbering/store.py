"""The numbering agency's tables (R8), with SQLAlchemy Core on SQLite or PostgreSQL.

- ``numbers``: every Number ever issued, active or retired. Rows are never
  deleted, so the primary key alone guarantees a Number is never issued twice,
  not even after it was retired (R11).
- ``conversion``: the code-conversion table, resident code -> current Number.
  Only the numbering agency holds it (R8); it is the one place a Number meets
  a resident code.
- ``events``: what happened, in order: issues, Number changes, resident-code
  changes. A resident code that was changed away stays retired for ever.

Every public method is one transaction: a refusal or a failure writes nothing.
Checks that depend on the tables (is this Number active, is that code taken)
run inside the transaction. On SQLite a write transaction takes the write lock
first (BEGIN IMMEDIATE), so its checks and writes are one step. On PostgreSQL
(READ COMMITTED) the constraints and guarded UPDATEs settle races: the loser's
transaction fails or matches no row, is rolled back whole, and runs again to
see who won; a bulk batch locks the conversion table against other writers
first, so that single issues cannot make it lose again and again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.db import UtcDateTime
from renkei.errors import FailedPrecondition, NotFound

metadata = sa.MetaData()

ACTIVE: Final = "active"
RETIRED: Final = "retired"
ISSUE: Final = "issue"
CHANGE: Final = "change"
RESIDENT_CODE_CHANGE: Final = "resident_code_change"

numbers = sa.Table(
    "numbers",
    metadata,
    sa.Column("number", sa.String(12), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("retired_at", UtcDateTime(), nullable=True),
    sa.Column("retire_reason", sa.String(200), nullable=True),
    sa.CheckConstraint("status in ('active', 'retired')", name="numbers_status"),
    # SQLite: one B-tree keyed by the Number instead of a rowid table plus an
    # index on it; the random keys make every extra B-tree costly in bulk.
    sqlite_with_rowid=False,
)

conversion = sa.Table(
    "conversion",
    metadata,
    sa.Column("resident_code", sa.String(11), primary_key=True),
    sa.Column(
        "number", sa.String(12), sa.ForeignKey("numbers.number"), nullable=False, unique=True
    ),
    sqlite_with_rowid=False,
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    # The person's resident code after the event.
    sa.Column("resident_code", sa.String(11), nullable=False, index=True),
    sa.Column("old_number", sa.String(12), nullable=True),
    sa.Column("new_number", sa.String(12), nullable=True),
    sa.Column("old_resident_code", sa.String(11), nullable=True, index=True),
    sa.Column("at", UtcDateTime(), nullable=False),
)

# Bound parameters per IN (...) list: well under every backend's limit.
_IN_CHUNK = 2000
# SQLite page cache for a bulk batch (KiB): the random-keyed B-trees of a
# million Numbers then stay in memory instead of spilling mid-transaction.
_BULK_CACHE_KIB = 256 * 1024
# Writers that lose a race on a unique constraint try again this many times.
_RACE_RETRIES = 3

Draw = Callable[[], str]


class _Raced(Exception):
    """A guarded UPDATE matched no row: a concurrent writer changed it first."""


class NumberSpaceExhausted(RuntimeError):
    """The number source kept giving taken Numbers: it is broken, not unlucky.

    With 10^11 candidates and a CSPRNG, even a hundred million Numbers issued
    leave each draw a 99.9 % chance of being free.
    """


@dataclass(frozen=True)
class Current:
    number: str
    issued_at: datetime


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    resident_code: str
    old_number: str | None
    new_number: str | None
    old_resident_code: str | None
    at: datetime


@dataclass(frozen=True)
class NumberRow:
    number: str
    status: str
    issued_at: datetime
    retired_at: datetime | None
    retire_reason: str | None


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]


class NumberingStore:
    def __init__(self, engine: Engine, *, max_draws: int = 32) -> None:
        self._engine = engine
        self._max_draws = max_draws
        metadata.create_all(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def _retrying(self, work: Callable[[Connection], Any], *, bulk: bool = False) -> Any:
        for attempt in range(_RACE_RETRIES + 1):
            try:
                with self._engine.begin() as conn:
                    _lock_for_writing(conn, bulk=bulk)
                    return work(conn)
            except (sa.exc.IntegrityError, _Raced):
                # Another writer took the resident code or the Number first;
                # a fresh transaction sees what it wrote and decides again.
                if attempt == _RACE_RETRIES:
                    raise
        raise AssertionError("unreachable")

    # -- issuing -------------------------------------------------------------

    def issue(self, resident_code: str, draw: Draw, at: datetime) -> tuple[Current, bool]:
        """The resident's current Number, issuing one first if there is none."""

        def work(conn: Connection) -> tuple[Current, bool]:
            current = _current(conn, resident_code)
            if current is not None:
                return current, False
            _refuse_retired_code(conn, resident_code, "resident_code")
            number = self._free_number(conn, draw)
            conn.execute(numbers.insert().values(number=number, status=ACTIVE, issued_at=at))
            conn.execute(conversion.insert().values(resident_code=resident_code, number=number))
            conn.execute(
                events.insert().values(
                    kind=ISSUE, resident_code=resident_code, new_number=number, at=at
                )
            )
            return Current(number, at), True

        result: tuple[Current, bool] = self._retrying(work)
        return result

    def issue_many(self, resident_codes: Sequence[str], draw: Draw, at: datetime) -> int:
        """Number every code that has none yet, in one transaction; returns how many.

        Codes that already have a Number are skipped, so a bulk run that
        stopped half-way can simply be run again.
        """
        codes = list(dict.fromkeys(resident_codes))

        def work(conn: Connection) -> int:
            taken = _existing(conn, conversion.c.resident_code, codes)
            todo = [c for c in codes if c not in taken]
            if not todo:
                return 0
            retired = _existing(conn, events.c.old_resident_code, todo)
            if retired:
                code = min(retired)
                raise _retired_code(code, "resident_codes")
            fresh = self._free_numbers(conn, len(todo), draw)
            pairs = sorted(zip(todo, fresh, strict=True))
            when = _bound(conn, numbers.c.issued_at, at)
            # Rows in key order: each B-tree page is visited once per batch.
            _insert_many(
                conn,
                numbers,
                ("number", "status", "issued_at"),
                sorted((n, ACTIVE, when) for n in fresh),
            )
            _insert_many(conn, conversion, ("resident_code", "number"), pairs)
            _insert_many(
                conn,
                events,
                ("kind", "resident_code", "new_number", "at"),
                [(ISSUE, c, n, when) for c, n in pairs],
            )
            return len(todo)

        count: int = self._retrying(work, bulk=True)
        return count

    def _free_number(self, conn: Connection, draw: Draw) -> str:
        for _ in range(self._max_draws):
            candidate = draw()
            taken = conn.execute(
                sa.select(numbers.c.number).where(numbers.c.number == candidate)
            ).first()
            if taken is None:  # never issued, active or retired
                return candidate
        raise NumberSpaceExhausted(f"{self._max_draws} draws in a row were taken Numbers")

    def _free_numbers(self, conn: Connection, count: int, draw: Draw) -> list[str]:
        chosen: dict[str, None] = {}  # ordered set
        for _ in range(self._max_draws):
            # Exactly as many draws as are missing: a repeat within the batch
            # is dropped and leaves a gap for the next round, so even a source
            # stuck on one value ends in NumberSpaceExhausted, not a hang.
            candidates: list[str] = []
            for _ in range(count - len(chosen)):
                n = draw()
                if n not in chosen:
                    chosen[n] = None
                    candidates.append(n)
            for n in _existing(conn, numbers.c.number, candidates):
                del chosen[n]
            if len(chosen) == count:
                return list(chosen)
        raise NumberSpaceExhausted(f"{self._max_draws} rounds of draws left taken Numbers")

    # -- changes -------------------------------------------------------------

    def change_number(self, number: str, reason: str, draw: Draw, at: datetime) -> Current:
        """Retire ``number`` and give its holder a fresh one (R11)."""

        def work(conn: Connection) -> Current:
            # The guarded UPDATE is the lock: of two concurrent changes of the
            # same Number, only one sees it active.
            retired = conn.execute(
                numbers.update()
                .where(numbers.c.number == number, numbers.c.status == ACTIVE)
                .values(status=RETIRED, retired_at=at, retire_reason=reason)
            ).rowcount
            if retired != 1:
                _refuse_inactive_number(conn, number)
            fresh = self._free_number(conn, draw)
            conn.execute(numbers.insert().values(number=fresh, status=ACTIVE, issued_at=at))
            moved = conn.execute(
                conversion.update().where(conversion.c.number == number).values(number=fresh)
            ).rowcount
            if moved != 1:
                raise _Raced(number)
            code = conn.execute(
                sa.select(conversion.c.resident_code).where(conversion.c.number == fresh)
            ).scalar_one()
            conn.execute(
                events.insert().values(
                    kind=CHANGE, resident_code=code, old_number=number, new_number=fresh, at=at
                )
            )
            return Current(fresh, at)

        result: Current = self._retrying(work)
        return result

    def change_resident_code(self, old: str, new: str, at: datetime) -> str:
        """Move the Number from ``old`` to ``new``; the person keeps it (R8).

        Repeating a change that already happened returns the Number again, so
        a caller may retry after a lost answer.
        """

        def work(conn: Connection) -> str:
            current = _current(conn, old)
            if current is None:
                done = conn.execute(
                    sa.select(events.c.seq).where(
                        events.c.kind == RESIDENT_CODE_CHANGE,
                        events.c.old_resident_code == old,
                        events.c.resident_code == new,
                    )
                ).first()
                now = _current(conn, new)
                if done is not None and now is not None:
                    return now.number
                _refuse_retired_code(conn, old, "old_resident_code")
                raise NotFound(
                    "RESIDENT_HAS_NO_NUMBER",
                    "old_resident_code: no Number was issued for this resident code",
                    {"field": "old_resident_code"},
                )
            if _current(conn, new) is not None:
                raise FailedPrecondition(
                    "RESIDENT_CODE_IN_USE",
                    "new_resident_code: that resident code already has a Number",
                    {"field": "new_resident_code"},
                )
            _refuse_retired_code(conn, new, "new_resident_code")
            moved = conn.execute(
                conversion.update()
                .where(conversion.c.resident_code == old, conversion.c.number == current.number)
                .values(resident_code=new)
            ).rowcount
            if moved != 1:
                raise _Raced(old)
            conn.execute(
                events.insert().values(
                    kind=RESIDENT_CODE_CHANGE,
                    resident_code=new,
                    old_resident_code=old,
                    new_number=current.number,
                    at=at,
                )
            )
            return current.number

        number: str = self._retrying(work)
        return number

    # -- reading -------------------------------------------------------------

    def lookup_number(self, resident_code: str) -> Current:
        with self._engine.connect() as conn:
            current = _current(conn, resident_code)
            if current is None:
                _refuse_retired_code(conn, resident_code, "resident_code")
                raise NotFound(
                    "RESIDENT_HAS_NO_NUMBER",
                    "resident_code: no Number was issued for this resident code",
                    {"field": "resident_code"},
                )
            return current

    def lookup_resident_code(self, number: str) -> str:
        with self._engine.connect() as conn:
            code = conn.execute(
                sa.select(conversion.c.resident_code).where(conversion.c.number == number)
            ).scalar()
            if code is None:
                _refuse_inactive_number(conn, number)
            return str(code)

    def number_row(self, number: str) -> NumberRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(numbers).where(numbers.c.number == number)).first()
        return None if row is None else NumberRow(**row._mapping)

    def history(self, resident_code: str) -> list[Event]:
        """Every event of the person who has or had ``resident_code``, oldest first."""
        with self._engine.connect() as conn:
            codes = _person_codes(conn, resident_code)
            rows = conn.execute(
                sa.select(events).where(events.c.resident_code.in_(codes)).order_by(events.c.seq)
            ).all()
        return [Event(**r._mapping) for r in rows]

    def count_numbers(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(numbers)).scalar_one())


# ------------------------------------------------------------------ helpers


def _lock_for_writing(conn: Connection, *, bulk: bool) -> None:
    if conn.dialect.name == "sqlite":
        if bulk:
            conn.exec_driver_sql(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
        # pysqlite would BEGIN (deferred) only at the first write, after our
        # checks had read; take the write lock before them instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif bulk and conn.dialect.name == "postgresql":
        # Self-exclusive, and blocks other writers of the table (not readers).
        conn.exec_driver_sql("LOCK TABLE conversion IN SHARE ROW EXCLUSIVE MODE")


def _current(conn: Connection, resident_code: str) -> Current | None:
    row = conn.execute(
        sa.select(numbers.c.number, numbers.c.issued_at)
        .join(conversion, conversion.c.number == numbers.c.number)
        .where(conversion.c.resident_code == resident_code)
    ).first()
    return None if row is None else Current(row.number, row.issued_at)


def _bound(conn: Connection, column: sa.Column[Any], value: object) -> object:
    """``value`` as the driver takes it for ``column`` (its type's bind processing, once)."""
    # The dialect's own implementation: the generic type would leave SQLite's
    # string formatting to the driver's default adapter, a different format.
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return value if process is None else process(value)


def _insert_many(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """executemany straight to the driver: the bulk batch's hot loop.

    SQLAlchemy's per-row parameter processing cost more than the database's
    own work here. Values must be driver-ready: plain strings, and values
    already passed through ``_bound``.
    """
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(table.c[c].name for c in columns)  # KeyError on a typo
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([mark] * len(columns))})"
    conn.exec_driver_sql(sql, list(rows))


def _existing(conn: Connection, column: sa.Column[str], values: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(values):
        found.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
    return found


def _retired_code(code: str, field: str) -> FailedPrecondition:
    return FailedPrecondition(
        "RESIDENT_CODE_RETIRED",
        f"{field}: resident code {code} was replaced by another and is not used again",
        {"field": field},
    )


def _refuse_retired_code(conn: Connection, code: str, field: str) -> None:
    replaced = conn.execute(
        sa.select(events.c.seq).where(events.c.old_resident_code == code).limit(1)
    ).first()
    if replaced is not None:
        raise _retired_code(code, field)


def _refuse_inactive_number(conn: Connection, number: str) -> NoReturn:
    """Raise why ``number`` is not an active Number: never issued, or retired."""
    status = conn.execute(sa.select(numbers.c.status).where(numbers.c.number == number)).scalar()
    if status is None:
        raise NotFound(
            "NUMBER_UNKNOWN", "number: no such Number was ever issued", {"field": "number"}
        )
    raise FailedPrecondition(
        "NUMBER_RETIRED",
        "number: this Number was changed and is no longer valid",
        {"field": "number"},
    )


def _person_codes(conn: Connection, resident_code: str) -> list[str]:
    """``resident_code`` and every code linked to it by resident-code changes, both ways."""
    codes = {resident_code}
    frontier = {resident_code}
    while frontier:
        rows = conn.execute(
            sa.select(events.c.resident_code, events.c.old_resident_code).where(
                events.c.kind == RESIDENT_CODE_CHANGE,
                sa.or_(
                    events.c.resident_code.in_(frontier),
                    events.c.old_resident_code.in_(frontier),
                ),
            )
        ).all()
        linked = {c for r in rows for c in (r.resident_code, r.old_resident_code)}
        frontier = linked - codes
        codes |= linked
    return sorted(codes)
