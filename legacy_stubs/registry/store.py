"""The registry's database: current facts, every past version, and the change feed.

Tables (SQLAlchemy Core, SQLite or PostgreSQL):

``residents``
    One row per person: the current resident code, the four facts (name in
    kanji and kana, birth date, sex, address), status and date of death, and
    ``valid_from`` (the day the current facts took effect; NULL for rows from
    the initial load). ``person_id`` is an internal key that survives a code
    change; it never leaves the store.
``history``
    Every *past* version of a person's facts, closed by ``valid_to``; a change
    copies the current row here before updating it. The current version lives
    in ``residents``, so the initial load writes nothing here.
``changes``
    The register's change feed (what the binding party turns into each
    agency's feed, R14; ``legacy_stubs.registry.source`` serves it):
    ``seq`` (autoincrement, never reused), the resident code, the kind, the
    effective date, ``before`` and ``after`` (JSON, only what changed) and
    ``recorded_at``.

The initial load (``add_many``) writes no feed entries: it is the state the
feed starts from, not a change to it. Every change afterwards writes
``residents``, ``history`` and ``changes`` in one transaction: all or nothing.

Change transactions start by updating the single row of ``feed_lock``. That
serialises writers on both backends, so ``seq`` values commit in order and a
reader of ``changes_since`` never skips an entry that commits late (the
promise ``renkei.residents.ResidentSource`` makes); on SQLite
it also takes the write lock up front, so a transaction that has already read
never fails to upgrade to a writer.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.db import UtcDateTime
from renkei.errors import FailedPrecondition, NotFound, invalid_field
from renkei.residents import ResidentHistory

from . import resident_code as rc
from .model import (
    Address,
    Change,
    ChangeKind,
    Name,
    Resident,
    Sex,
    Status,
    Version,
    check_address,
    check_name,
)

JST = timezone(timedelta(hours=9), "JST")

metadata = sa.MetaData()

_Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _fact_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("name_kanji", sa.String(100), nullable=False),
        sa.Column("name_kana", sa.String(200), nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("sex", sa.String(1), nullable=False),
        sa.Column("prefecture", sa.String(10), nullable=False),
        sa.Column("municipality_code", sa.String(6), nullable=False),
        sa.Column("municipality", sa.String(50), nullable=False),
        sa.Column("town", sa.String(100), nullable=False),
        sa.Column("chome", sa.Integer, nullable=False),
        sa.Column("banchi", sa.Integer, nullable=False),
        sa.Column("go", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("died_on", sa.Date, nullable=True),
    ]


FACTS = tuple(c.name for c in _fact_columns())
FACTS_WITH_CODE = ("resident_code", *FACTS)

residents = sa.Table(
    "residents",
    metadata,
    sa.Column("person_id", _Id, primary_key=True, autoincrement=True),
    sa.Column("resident_code", sa.String(11), nullable=False),
    *_fact_columns(),
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.CheckConstraint("sex IN ('1', '2')", name="residents_sex"),
    sa.CheckConstraint("status IN ('alive', 'deceased')", name="residents_status"),
)
# A named index rather than a UNIQUE column constraint, so that a load into an
# empty table can drop it and build it once at the end: keeping it up to date
# row by row with random codes more than doubles the time of a million-row load.
residents_code_index = sa.Index(
    "ix_residents_resident_code", residents.c.resident_code, unique=True
)

history = sa.Table(
    "history",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("person_id", _Id, nullable=False, index=True),
    sa.Column("resident_code", sa.String(11), nullable=False, index=True),
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.Column("valid_to", sa.Date, nullable=False),
    *_fact_columns(),
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("seq", _Id, primary_key=True, autoincrement=True),
    sa.Column("resident_code", sa.String(11), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("effective_date", sa.Date, nullable=False, index=True),
    sa.Column("before", sa.JSON, nullable=False),
    sa.Column("after", sa.JSON, nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    # Without AUTOINCREMENT SQLite may hand out a deleted row's rowid again.
    sqlite_autoincrement=True,
)

feed_lock = sa.Table(
    "feed_lock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("changes_written", sa.BigInteger, nullable=False),
)


def _facts_row(r: Resident) -> dict[str, Any]:
    a = r.address
    return {
        "resident_code": r.resident_code,
        "name_kanji": r.name.kanji,
        "name_kana": r.name.kana,
        "birth_date": r.birth_date,
        "sex": r.sex,
        "prefecture": a.prefecture,
        "municipality_code": a.municipality_code,
        "municipality": a.municipality,
        "town": a.town,
        "chome": a.chome,
        "banchi": a.banchi,
        "go": a.go,
        "status": r.status,
        "died_on": r.died_on,
    }


def _sqlite_tuple(r: Resident) -> tuple[Any, ...]:
    a = r.address
    return (
        r.resident_code,
        r.name.kanji,
        r.name.kana,
        r.birth_date.isoformat(),
        r.sex,
        a.prefecture,
        a.municipality_code,
        a.municipality,
        a.town,
        a.chome,
        a.banchi,
        a.go,
        r.status,
        None if r.died_on is None else r.died_on.isoformat(),
    )


def _name(row: sa.RowMapping) -> Name:
    return Name(row["name_kanji"], row["name_kana"])


def _address(row: sa.RowMapping) -> Address:
    return Address(
        row["prefecture"],
        row["municipality_code"],
        row["municipality"],
        row["town"],
        row["chome"],
        row["banchi"],
        row["go"],
    )


def _resident(row: sa.RowMapping) -> Resident:
    return Resident(
        row["resident_code"],
        _name(row),
        row["birth_date"],
        cast(Sex, row["sex"]),
        _address(row),
        cast(Status, row["status"]),
        row["died_on"],
    )


def _version(row: sa.RowMapping, valid_to: date | None) -> Version:
    return Version(
        row["resident_code"],
        row["valid_from"],
        valid_to,
        _name(row),
        row["birth_date"],
        cast(Sex, row["sex"]),
        _address(row),
        cast(Status, row["status"]),
        row["died_on"],
    )


def _change(row: sa.RowMapping) -> Change:
    return Change(
        seq=int(row["seq"]),
        resident_code=row["resident_code"],
        kind=cast(ChangeKind, row["kind"]),
        effective_date=row["effective_date"],
        before=dict(row["before"]),
        after=dict(row["after"]),
        recorded_at=row["recorded_at"],
    )


def today_in_japan() -> date:
    return datetime.now(JST).date()


def _unknown(code: str) -> NotFound:
    return NotFound("RESIDENT_UNKNOWN", f"no resident with code {code}", {"field": "resident_code"})


class RegistryStore:
    """The mocked Juki-net register on one SQLAlchemy engine (tables made if missing)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)
        try:
            with engine.begin() as conn:
                if conn.execute(sa.select(feed_lock.c.id)).first() is None:
                    conn.execute(feed_lock.insert().values(id=1, changes_written=0))
        except sa.exc.IntegrityError:
            pass  # another process opened the same store at the same moment and made it

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- initial load ---------------------------------------------------------

    def add_many(
        self,
        people: Iterable[Resident],
        batch: int = 10_000,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Load residents in one transaction; how many. Writes no history and no feed.

        This is the trusted bulk path (the generator's output): values are not
        checked one by one, but a duplicate code fails the whole load. Into an
        empty table the code index is built once at the end. ``on_batch`` is
        told the size of each batch once it is written.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        total = 0
        with self._engine.begin() as conn:
            self._lock(conn)
            empty = conn.execute(sa.select(residents.c.person_id).limit(1)).first() is None
            if empty:
                residents_code_index.drop(conn)
            write = self._bulk_writer(conn)
            for rows in _batches(people, batch):
                write(rows)
                total += len(rows)
                if on_batch is not None:
                    on_batch(len(rows))
            if empty:
                residents_code_index.create(conn)
        return total

    def _bulk_writer(self, conn: sa.Connection) -> Callable[[list[Resident]], None]:
        if conn.dialect.name != "sqlite":
            insert = residents.insert()

            def execute_many(people: list[Resident]) -> None:
                conn.execute(insert, [_facts_row(r) for r in people])

            return execute_many
        # On SQLite, SQLAlchemy's per-row parameter processing took longer than
        # the inserts themselves (31 s against 14 s for a million rows, measured),
        # so plain tuples go straight to the driver. Dates become the text that
        # SQLAlchemy's SQLite Date type writes itself (YYYY-MM-DD), so reading
        # them back through SQLAlchemy is unchanged.
        columns = ", ".join(FACTS_WITH_CODE)
        marks = ", ".join("?" for _ in FACTS_WITH_CODE)
        sql = f"INSERT INTO residents ({columns}) VALUES ({marks})"

        def write(people: list[Resident]) -> None:
            conn.exec_driver_sql(sql, [_sqlite_tuple(r) for r in people])

        return write

    # -- reading --------------------------------------------------------------

    def get(self, resident_code: str) -> Resident | None:
        """The current record for that code (a deceased person's too), or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(residents).where(residents.c.resident_code == resident_code)
            ).first()
        return None if row is None else _resident(row._mapping)

    def sample(self, limit: int) -> list[Resident]:
        """Up to ``limit`` residents in resident-code order (for audits)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(residents).order_by(residents.c.resident_code).limit(limit)
            ).all()
        return [_resident(row._mapping) for row in rows]

    def exists(self, resident_code: str) -> bool:
        """Whether a record has that code now (False for a code since replaced)."""
        with self._engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(residents.c.person_id).where(
                        residents.c.resident_code == resident_code
                    )
                ).first()
                is not None
            )

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(residents)).scalar_one())

    def history(self, resident_code: str) -> list[Version]:
        """Every version of the person who has or once had this code, oldest first.

        The last one is the current version (``valid_to`` None). A code
        replaced by ``change_code`` still finds the person. Unknown: NotFound.
        """
        with self._engine.connect() as conn:
            person = conn.execute(
                sa.select(residents.c.person_id).where(residents.c.resident_code == resident_code)
            ).scalar()
            if person is None:
                person = conn.execute(
                    sa.select(history.c.person_id)
                    .where(history.c.resident_code == resident_code)
                    .limit(1)
                ).scalar()
            if person is None:
                raise _unknown(resident_code)
            past = conn.execute(
                sa.select(history).where(history.c.person_id == person).order_by(history.c.id)
            ).mappings()
            versions = [_version(row, row["valid_to"]) for row in past]
            current = (
                conn.execute(sa.select(residents).where(residents.c.person_id == person))
                .mappings()
                .one()
            )
            versions.append(_version(current, None))
        return versions

    def lookup(self, resident_codes: Collection[str]) -> dict[str, Resident]:
        """Current records by current code; unknown (or replaced) codes are left out."""
        wanted = sorted(set(resident_codes))
        found: dict[str, Resident] = {}
        with self._engine.connect() as conn:
            # In slices: a bound parameter per code, and SQLite allows only so many.
            for start in range(0, len(wanted), 1000):
                rows = conn.execute(
                    sa.select(residents).where(
                        residents.c.resident_code.in_(wanted[start : start + 1000])
                    )
                ).mappings()
                for row in rows:
                    found[row["resident_code"]] = _resident(row)
        return found

    def histories(self) -> Iterator[ResidentHistory]:
        """Every resident with their past versions (oldest first), in person order.

        ``history`` is read whole first (it holds only the past versions, far
        fewer rows than ``residents``), then ``residents`` is streamed: a
        million current rows are never all in memory at once. Rows are
        unpacked by position, not by name: the matcher reads every resident
        this way, and by name took half as long again (200,000 rows: 4.9 s
        against 3.3 s, measured on a loaded machine).
        """
        with self._engine.connect() as conn:
            past: dict[int, list[Version]] = {}
            for row in conn.execute(sa.select(history).order_by(history.c.id)).mappings():
                past.setdefault(row["person_id"], []).append(_version(row, row["valid_to"]))
            columns = [residents.c[c] for c in ("person_id", *FACTS_WITH_CODE)]
            rows = conn.execution_options(yield_per=10_000).execute(
                sa.select(*columns).order_by(residents.c.person_id)
            )
            for (
                person,
                code,
                kanji,
                kana,
                birth,
                sex,
                prefecture,
                municipality_code,
                municipality,
                town,
                chome,
                banchi,
                go,
                status,
                died_on,
            ) in rows:
                address = Address(
                    prefecture, municipality_code, municipality, town, chome, banchi, go
                )
                resident = Resident(code, Name(kanji, kana), birth, sex, address, status, died_on)
                yield ResidentHistory(resident, tuple(past.get(person, ())))

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Feed entries with ``seq`` greater than the given one, in seq order, at most ``limit``.

        Start from 0; pass the last ``seq`` you got to read the next page.
        """
        if limit < 1:
            raise invalid_field("limit", "must be at least 1")
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
            ).mappings()
            return [_change(row) for row in rows]

    def last_seq(self) -> int:
        """The newest feed entry's seq, 0 if there is none."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(changes.c.seq))).scalar() or 0)

    def latest_effective_date(self) -> date | None:
        """The latest effective date in the feed (None if the feed is empty)."""
        with self._engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(changes.c.effective_date))).scalar()
            return cast(date | None, value)

    def random_alive(self, rng: random.Random) -> Resident | None:
        """A living resident picked with ``rng``; the same one for the same rng and data.

        Looks up by the internal key rather than OFFSET, which would scan a
        million rows per pick. Not uniform once many have died, which a
        simulation does not mind.
        """
        with self._engine.connect() as conn:
            # Two queries: SQLite answers a lone min() or max() from the index
            # but scans the whole table for both in one SELECT.
            low = conn.execute(sa.select(sa.func.min(residents.c.person_id))).scalar()
            high = conn.execute(sa.select(sa.func.max(residents.c.person_id))).scalar()
            if low is None or high is None:
                return None
            start = rng.randint(int(low), int(high))
            alive = residents.c.status == "alive"
            for where in (residents.c.person_id >= start, residents.c.person_id < start):
                row = conn.execute(
                    sa.select(residents)
                    .where(where, alive)
                    .order_by(residents.c.person_id)
                    .limit(1)
                ).first()
                if row is not None:
                    return _resident(row._mapping)
        return None

    # -- changes --------------------------------------------------------------

    def record_birth(self, resident: Resident) -> Change:
        """Register a newborn (or any new resident) with a "birth" feed entry."""
        rc.validate(resident.resident_code)
        check_name(resident.name)
        check_address(resident.address)
        if resident.sex not in ("1", "2"):
            raise invalid_field("sex", 'must be "1" (male) or "2" (female)')
        if resident.status != "alive":
            raise invalid_field("status", "a new resident must be alive")
        with self._engine.begin() as conn:
            self._lock(conn)
            self._ensure_code_unused(conn, resident.resident_code)
            conn.execute(
                residents.insert().values(**_facts_row(resident), valid_from=resident.birth_date)
            )
            return self._append(
                conn,
                resident.resident_code,
                "birth",
                resident.birth_date,
                {},
                resident.to_dict(),
            )

    def move(self, resident_code: str, new_address: Address, effective: date) -> Change:
        """Record a move to ``new_address`` taking effect on ``effective`` (転居・転入)."""
        check_address(new_address, "new_address")
        with self._engine.begin() as conn:
            current = self._current_for_change(conn, resident_code, effective)
            old = _address(current)
            if old == new_address:
                raise invalid_field("new_address", "is the current address")
            self._close_version(conn, current, effective)
            conn.execute(
                residents.update()
                .where(residents.c.person_id == current["person_id"])
                .values(
                    prefecture=new_address.prefecture,
                    municipality_code=new_address.municipality_code,
                    municipality=new_address.municipality,
                    town=new_address.town,
                    chome=new_address.chome,
                    banchi=new_address.banchi,
                    go=new_address.go,
                    valid_from=effective,
                )
            )
            return self._append(
                conn,
                resident_code,
                "move",
                effective,
                {"address": old.to_dict()},
                {"address": new_address.to_dict()},
            )

    def change_name(self, resident_code: str, new_name: Name, effective: date) -> Change:
        """Record a new name (marriage, adoption, ...) taking effect on ``effective``."""
        check_name(new_name, "new_name")
        with self._engine.begin() as conn:
            current = self._current_for_change(conn, resident_code, effective)
            old = _name(current)
            if old == new_name:
                raise invalid_field("new_name", "is the current name")
            self._close_version(conn, current, effective)
            conn.execute(
                residents.update()
                .where(residents.c.person_id == current["person_id"])
                .values(name_kanji=new_name.kanji, name_kana=new_name.kana, valid_from=effective)
            )
            return self._append(
                conn,
                resident_code,
                "name_change",
                effective,
                {"name": old.to_dict()},
                {"name": new_name.to_dict()},
            )

    def record_death(self, resident_code: str, died_on: date) -> Change:
        """Record a death; the record stays (as 除票) with status "deceased"."""
        with self._engine.begin() as conn:
            current = self._current_for_change(conn, resident_code, died_on)
            self._close_version(conn, current, died_on)
            conn.execute(
                residents.update()
                .where(residents.c.person_id == current["person_id"])
                .values(status="deceased", died_on=died_on, valid_from=died_on)
            )
            return self._append(
                conn,
                resident_code,
                "death",
                died_on,
                {"status": "alive", "died_on": None},
                {"status": "deceased", "died_on": died_on.isoformat()},
            )

    def change_code(self, old: str, new: str, effective: date | None = None) -> Change:
        """Give the person a new resident code (R8); history keeps the old one.

        ``new`` must be valid and never used before. ``effective`` defaults to
        today in Japan.
        """
        rc.validate(old, "old")
        rc.validate(new, "new")
        if old == new:
            raise invalid_field("new", "is the current code")
        effective = today_in_japan() if effective is None else effective
        with self._engine.begin() as conn:
            current = self._current_for_change(conn, old, effective)
            self._ensure_code_unused(conn, new)
            self._close_version(conn, current, effective)
            conn.execute(
                residents.update()
                .where(residents.c.person_id == current["person_id"])
                .values(resident_code=new, valid_from=effective)
            )
            return self._append(
                conn,
                old,
                "code_change",
                effective,
                {"resident_code": old},
                {"resident_code": new},
            )

    # -- inside a change transaction ----------------------------------------

    def _lock(self, conn: sa.Connection) -> None:
        lock_feed(conn)

    def _current_for_change(
        self, conn: sa.Connection, resident_code: str, effective: date
    ) -> sa.RowMapping:
        if not isinstance(effective, date) or isinstance(effective, datetime):
            raise invalid_field("effective_date", "must be a date")
        self._lock(conn)
        row = conn.execute(
            sa.select(residents).where(residents.c.resident_code == resident_code)
        ).first()
        if row is None:
            raise _unknown(resident_code)
        current = row._mapping
        if current["status"] != "alive":
            raise FailedPrecondition(
                "RESIDENT_DECEASED",
                f"resident {resident_code} died on {current['died_on']}",
                {"field": "resident_code"},
            )
        since = current["valid_from"] or current["birth_date"]
        if effective < since:
            raise invalid_field(
                "effective_date", f"{effective} is before the current facts took effect ({since})"
            )
        return current

    def _ensure_code_unused(self, conn: sa.Connection, code: str) -> None:
        for table in (residents, history):
            used = conn.execute(
                sa.select(table.c.resident_code).where(table.c.resident_code == code).limit(1)
            ).first()
            if used is not None:
                raise FailedPrecondition(
                    "RESIDENT_CODE_IN_USE",
                    f"resident code {code} is or was in use",
                    {"field": "resident_code"},
                )

    def _close_version(self, conn: sa.Connection, current: sa.RowMapping, until: date) -> None:
        conn.execute(
            history.insert().values(
                person_id=current["person_id"],
                resident_code=current["resident_code"],
                valid_from=current["valid_from"],
                valid_to=until,
                **{name: current[name] for name in FACTS},
            )
        )

    def _append(
        self,
        conn: sa.Connection,
        resident_code: str,
        kind: ChangeKind,
        effective: date,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> Change:
        """Write the feed entry."""
        recorded_at = datetime.now(UTC)
        result = conn.execute(
            changes.insert().values(
                resident_code=resident_code,
                kind=kind,
                effective_date=effective,
                before=before,
                after=after,
                recorded_at=recorded_at,
            )
        )
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError("the database returned no seq for a change")
        return Change(int(key[0]), resident_code, kind, effective, before, after, recorded_at)


def lock_feed(conn: sa.Connection) -> None:
    """Serialise with every change transaction (see the module docstring)."""
    updated = conn.execute(
        feed_lock.update()
        .where(feed_lock.c.id == 1)
        .values(changes_written=feed_lock.c.changes_written + 1)
    ).rowcount
    if updated != 1:
        raise RuntimeError("registry feed_lock row is missing")


def _batches(people: Iterable[Resident], size: int) -> Iterator[list[Resident]]:
    iterator = iter(people)
    while rows := list(itertools.islice(iterator, size)):
        yield rows
