"""The agency's stores: its correspondence table (R15) and its share of the access log (R24).

Requester rows hold (7) staff, (9) terminal, (11) content and (12) purpose;
provider rows hold (8) staff, (10) terminal and (11) content. Both carry the
hub's serial number, so the three shares of one exchange join on it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from comm_server import log_receipts, log_trust, share_chain
from comm_server.config import CommConfig
from comm_server.log_receipts import ShareReceipt
from renkei import db
from renkei.errors import FailedPrecondition, Unavailable
from renkei.group_commit import GroupCommit
from renkei.keystore import KeyStore, load_master_key
from renkei.logs import event

metadata = sa.MetaData()

correspondence = sa.Table(
    "correspondence",
    metadata,
    sa.Column("local_person_id", sa.String(64), primary_key=True),
    sa.Column("link_code", sa.String(128), nullable=False, unique=True),
    sa.Column("key_version", sa.Integer, nullable=False),
    sa.Column("bound_at", db.UtcDateTime(), nullable=False),
    # During a re-key (R11): the same person's code under the newest key version,
    # found by the provider side at once, presented as requester after promotion.
    sa.Column("next_link_code", sa.String(128), nullable=True, unique=True),
    sa.Column("next_key_version", sa.Integer, nullable=True),
    # The ID key version behind the code (not the ID code: the hub says which).
    sa.Column("id_key_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("next_id_key_version", sa.Integer, nullable=True),
    # After promotion: the code it replaced, still what the hub may send
    # during the window while other parties catch up.
    sa.Column("previous_link_code", sa.String(128), nullable=True, unique=True),
)

agency_log = sa.Table(
    "agency_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("serial", sa.BigInteger, nullable=True, index=True),
    sa.Column("role", sa.String(16), nullable=False),  # requester | provider
    sa.Column("logged_at", db.UtcDateTime(), nullable=False),
    sa.Column("counterpart_agency_id", sa.String(64), nullable=False),
    sa.Column("info_kind", sa.String(200), nullable=False),
    sa.Column("legal_basis_item", sa.String(32), nullable=False),
    sa.Column("local_person_id", sa.String(64), nullable=True, index=True),
    sa.Column("staff_id", sa.String(64), nullable=False),
    sa.Column("terminal_id", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("purpose", sa.String(400), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    # What the outcome alone does not say, e.g. how late a discarded answer came.
    sa.Column("detail", sa.String(400), nullable=True),
)

# Answer-later exchanges (docs/architecture.md): the provider keeps the legacy
# system's ticket, the requester what it needs to open and log the answer.
# A row lives from the first half of the exchange to the fetch; no payload.
answer_tickets = sa.Table(
    "answer_tickets",
    metadata,
    sa.Column("ticket", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),  # requester | provider
    sa.Column("serial", sa.BigInteger, nullable=False, index=True),
    sa.Column("counterpart_agency_id", sa.String(64), nullable=False),
    sa.Column("info_kind", sa.String(200), nullable=False),
    sa.Column("legal_basis_item", sa.String(32), nullable=False),
    sa.Column("local_person_id", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(400), nullable=True),
    sa.Column("legacy_ticket", sa.String(400), nullable=True),
    sa.Column("created_at", db.UtcDateTime(), nullable=False),
)


# Values per IN (...) list: well under SQLite's and PostgreSQL's bound-parameter limits.
_IN_CHUNK = 1000


@dataclass(frozen=True)
class LogRecord:
    serial: int | None
    role: str
    logged_at: datetime
    counterpart_agency_id: str
    info_kind: str
    legal_basis_item: str
    local_person_id: str | None
    staff_id: str
    terminal_id: str
    content: str
    purpose: str | None
    outcome: str
    reason: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class NewBinding:
    """One row for ``CommStore.bind_many``."""

    local_person_id: str
    link_code: str
    key_version: int
    id_key_version: int = 1


_LOG_COLUMNS = tuple(c.name for c in agency_log.columns if c.name != "id")
# _insert_logs_sqlite builds its tuples in this order.
assert tuple(f.name for f in fields(LogRecord)) == _LOG_COLUMNS, "agency_log and LogRecord differ"
# A column the chain does not encode would be a column anyone could edit unseen.
assert share_chain.COLUMNS == _LOG_COLUMNS, "agency_log and share_chain.COLUMNS differ"
_SQLITE_INSERT_LOG = (
    f"INSERT INTO agency_log ({', '.join(_LOG_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_LOG_COLUMNS))})"
)


def _insert_logs_sqlite(conn: sa.Connection, records: list[LogRecord]) -> None:
    """``append_logs`` on SQLite: one raw executemany of tuples, in order, then their links.

    SQLAlchemy's executemany processes every parameter of every row; here the
    only column needing conversion, ``logged_at``, is converted once per
    distinct time (a bulk query's rows share one).
    """
    to_db = agency_log.c.logged_at.type.bind_processor(conn.dialect)

    # Then sqlite3's own adapter, as it would run on every row: once per distinct time here.
    def convert(value: object) -> object:
        return sqlite3.adapt(value if to_db is None else to_db(value), sqlite3.PrepareProtocol)

    stamped: dict[datetime, object] = {}
    rows: list[tuple[object, ...]] = []
    for r in records:
        logged = stamped.get(r.logged_at)
        if logged is None:
            logged = stamped[r.logged_at] = convert(r.logged_at)
        rows.append(
            (
                r.serial,
                r.role,
                logged,
                r.counterpart_agency_id,
                r.info_kind,
                r.legal_basis_item,
                r.local_person_id,
                r.staff_id,
                r.terminal_id,
                r.content,
                r.purpose,
                r.outcome,
                r.reason,
                r.detail,
            )
        )
    conn.exec_driver_sql(_SQLITE_INSERT_LOG, rows)
    # This transaction holds the write lock since the insert: the rows took the ids
    # after the largest one, in order (a rowid table without AUTOINCREMENT).
    last = int(conn.exec_driver_sql("SELECT max(id) FROM agency_log").scalar_one())
    ids = range(last - len(records) + 1, last + 1)
    share_chain.extend_sqlite(conn, ids, [_chain_values(r) for r in records])


def _chain_values(r: LogRecord) -> tuple[object, ...]:
    return (
        r.serial,
        r.role,
        r.logged_at,
        r.counterpart_agency_id,
        r.info_kind,
        r.legal_basis_item,
        r.local_person_id,
        r.staff_id,
        r.terminal_id,
        r.content,
        r.purpose,
        r.outcome,
        r.reason,
        r.detail,
    )


@dataclass(frozen=True)
class Ticket:
    ticket: str
    role: str
    serial: int
    counterpart_agency_id: str
    info_kind: str
    legal_basis_item: str
    local_person_id: str
    purpose: str | None
    legacy_ticket: str | None
    created_at: datetime


class CommStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)
        log_trust.create_tables(engine)  # the hub's log receipts, the verify job's state
        share_chain.metadata.create_all(engine)
        try:
            with engine.begin() as conn:
                share_chain.ensure_head(conn, agency_log)
        except sa.exc.IntegrityError:
            pass  # another process opening the same store started the chain first

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- correspondence table ----------------------------------------------

    def bind(
        self,
        local_person_id: str,
        link_code: str,
        key_version: int,
        at: datetime,
        id_key_version: int = 1,
    ) -> bool:
        """Record a binding; False if it was already there. Refuses a conflicting one."""
        args = (local_person_id, link_code, key_version, at, id_key_version)
        try:
            return self._bind(*args)
        except sa.exc.IntegrityError:
            # A concurrent binding won the race; judge ours against what it wrote.
            return self._bind(*args)

    def _bind(
        self,
        local_person_id: str,
        link_code: str,
        key_version: int,
        at: datetime,
        id_key_version: int,
    ) -> bool:
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(correspondence.c.local_person_id, correspondence.c.link_code).where(
                    sa.or_(
                        correspondence.c.local_person_id == local_person_id,
                        correspondence.c.link_code == link_code,
                    )
                )
            ).first()
            if row is not None:
                if row.local_person_id == local_person_id and row.link_code == link_code:
                    return False
                if row.local_person_id == local_person_id:
                    raise FailedPrecondition(
                        "LOCAL_PERSON_ALREADY_BOUND",
                        f"local person {local_person_id!r} is bound to another link code",
                        {"local_person_id": local_person_id},
                    )
                raise FailedPrecondition(
                    "LINK_CODE_ALREADY_BOUND",
                    f"that person is already bound to local person {row.local_person_id!r}",
                    {"local_person_id": local_person_id},
                )
            conn.execute(
                correspondence.insert().values(
                    local_person_id=local_person_id,
                    link_code=link_code,
                    key_version=key_version,
                    id_key_version=id_key_version,
                    bound_at=at,
                )
            )
            return True

    def bind_many(
        self,
        rows: Sequence[NewBinding],
        at: datetime,
        *,
        then: Callable[[Connection, list[str]], None] | None = None,
    ) -> list[bool | FailedPrecondition]:
        """``bind`` for many rows in ONE transaction: per row True (bound now), False
        (already bound to that code) or the refusal ``bind`` would raise for it.

        ``then(conn, local ids bound now or before)`` runs in the same
        transaction (the caller's rows that must be written with the bindings).
        """
        if not rows:
            return []
        try:
            return self._bind_many(rows, at, then)
        except sa.exc.IntegrityError:
            # A concurrent binding won a race; judge ours against what it wrote.
            return self._bind_many(rows, at, then)

    def _bind_many(
        self,
        rows: Sequence[NewBinding],
        at: datetime,
        then: Callable[[Connection, list[str]], None] | None,
    ) -> list[bool | FailedPrecondition]:
        c = correspondence.c
        with self._engine.begin() as conn:
            existing = conn.execute(
                sa.select(c.local_person_id, c.link_code).where(
                    sa.or_(
                        c.local_person_id.in_({r.local_person_id for r in rows}),
                        c.link_code.in_({r.link_code for r in rows}),
                    )
                )
            ).all()
            by_local = {r.local_person_id: r.link_code for r in existing}
            by_code = {r.link_code: r.local_person_id for r in existing}
            results: list[bool | FailedPrecondition] = []
            inserts: list[dict[str, object]] = []
            for r in rows:
                local, code = r.local_person_id, r.link_code
                have = by_local.get(local)
                if have == code:
                    results.append(False)
                elif have is not None:
                    results.append(
                        FailedPrecondition(
                            "LOCAL_PERSON_ALREADY_BOUND",
                            f"local person {local!r} is bound to another link code",
                            {"local_person_id": local},
                        )
                    )
                elif code in by_code:
                    results.append(
                        FailedPrecondition(
                            "LINK_CODE_ALREADY_BOUND",
                            f"that person is already bound to local person {by_code[code]!r}",
                            {"local_person_id": local},
                        )
                    )
                else:
                    by_local[local], by_code[code] = code, local
                    inserts.append(
                        {
                            "local_person_id": local,
                            "link_code": code,
                            "key_version": r.key_version,
                            "id_key_version": r.id_key_version,
                            "bound_at": at,
                        }
                    )
                    results.append(True)
            if inserts:
                conn.execute(correspondence.insert(), inserts)
            if then is not None:
                bound = [
                    r.local_person_id
                    for r, done in zip(rows, results, strict=True)
                    if isinstance(done, bool)
                ]
                then(conn, bound)
        return results

    def bound_among(self, local_person_ids: Iterable[str]) -> set[str]:
        """Which of these local persons are bound (one query)."""
        wanted = set(local_person_ids)
        if not wanted:
            return set()
        c = correspondence.c
        with self._engine.connect() as conn:
            return {
                str(v)
                for v in conn.execute(
                    sa.select(c.local_person_id).where(c.local_person_id.in_(wanted))
                ).scalars()
            }

    def link_code_for(self, local_person_id: str) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(correspondence.c.link_code).where(
                    correspondence.c.local_person_id == local_person_id
                )
            ).scalar()
            return None if value is None else str(value)

    def local_person_for(self, link_code: str) -> str | None:
        c = correspondence.c
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(c.local_person_id).where(
                    sa.or_(
                        c.link_code == link_code,
                        c.next_link_code == link_code,
                        c.previous_link_code == link_code,
                    )
                )
            ).scalar()
            return None if value is None else str(value)

    def link_codes_for(self, local_person_ids: list[str]) -> dict[str, str]:
        """Bulk queries: local number -> link code, for those that are bound."""
        c = correspondence.c
        found: dict[str, str] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(local_person_ids), _IN_CHUNK):
                chunk = local_person_ids[start : start + _IN_CHUNK]
                rows = conn.execute(
                    sa.select(c.local_person_id, c.link_code).where(c.local_person_id.in_(chunk))
                ).all()
                found.update((r.local_person_id, r.link_code) for r in rows)
        return found

    def local_persons_for(self, link_codes: list[str]) -> dict[str, str]:
        """Bulk provide: link code (current, next or previous) -> local number, where bound.

        Current codes first, on their own index; only the codes left over (during a
        re-key window) are looked for among next and previous ones.
        """
        c = correspondence.c
        found: dict[str, str] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(link_codes), _IN_CHUNK):
                chunk = link_codes[start : start + _IN_CHUNK]
                rows = conn.execute(
                    sa.select(c.link_code, c.local_person_id).where(c.link_code.in_(chunk))
                )
                found.update((r[0], r[1]) for r in rows)
            rest = [code for code in link_codes if code not in found]
            for start in range(0, len(rest), _IN_CHUNK):
                chunk = rest[start : start + _IN_CHUNK]
                wanted = set(chunk)
                for r in conn.execute(
                    sa.select(c.local_person_id, c.next_link_code, c.previous_link_code).where(
                        sa.or_(c.next_link_code.in_(chunk), c.previous_link_code.in_(chunk))
                    )
                ):
                    for code in (r.next_link_code, r.previous_link_code):
                        if code in wanted:
                            found[code] = r.local_person_id
        return found

    def all_link_codes(self) -> list[str]:
        """Every link code the table holds, current, next and previous (for audits)."""
        c = correspondence.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.link_code, c.next_link_code, c.previous_link_code)
            ).all()
        return [code for row in rows for code in row if code]

    # -- re-keying (R11) ----------------------------------------------------

    def rekey_pending(
        self, below_version: int, after: str = "", limit: int = 500, below_id_version: int = 0
    ) -> tuple[list[tuple[str, str]], str | None]:
        """The next ``limit`` rows after ``after`` in id order: those not yet re-keyed to
        ``below_version`` (and ``below_id_version``) as (local id, link code), and the last
        id scanned (None: end).

        The scan walks the primary key only, so each batch costs the same however
        far the job has gone (a filter on the nullable columns would let the
        planner pick their index and sort the whole table every time).
        """
        c = correspondence.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    c.local_person_id,
                    c.link_code,
                    c.next_link_code,
                    c.key_version,
                    c.id_key_version,
                )
                .where(c.local_person_id > after)
                .order_by(c.local_person_id)
                .limit(limit)
            ).all()
        pending = [
            (r.local_person_id, r.link_code)
            for r in rows
            if r.next_link_code is None
            and (r.key_version < below_version or r.id_key_version < below_id_version)
        ]
        return pending, (rows[-1].local_person_id if rows else None)

    def rekey_counts(self, below_version: int, below_id_version: int = 0) -> tuple[int, int]:
        """(rows, rows still to re-key) for a re-key to ``below_version``."""
        c = correspondence.c
        with self._engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(correspondence)).scalar()
            todo = conn.execute(
                sa.select(sa.func.count()).where(
                    c.next_link_code.is_(None),
                    sa.or_(c.key_version < below_version, c.id_key_version < below_id_version),
                )
            ).scalar()
        return int(total or 0), int(todo or 0)

    def store_next(
        self, rows: list[tuple[str, str, str]], version: int, id_version: int = 1
    ) -> int:
        """Record (local id, old code, new code) in one transaction; rows written."""
        if not rows:
            return 0
        c = correspondence.c
        statement = (
            correspondence.update()
            .where(c.local_person_id == sa.bindparam("lid"), c.link_code == sa.bindparam("old"))
            .values(
                next_link_code=sa.bindparam("new"),
                next_key_version=version,
                next_id_key_version=id_version,
            )
        )
        with self._engine.begin() as conn:
            result = conn.execute(
                statement, [{"lid": lid, "old": old, "new": new} for lid, old, new in rows]
            )
        return result.rowcount if result.rowcount >= 0 else len(rows)

    def promote(self) -> int:
        """Present the re-keyed codes from now on, keeping the old ones findable."""
        c = correspondence.c
        with self._engine.begin() as conn:
            return int(
                conn.execute(
                    correspondence.update()
                    .where(c.next_link_code.is_not(None))
                    .values(
                        previous_link_code=c.link_code,
                        link_code=c.next_link_code,
                        key_version=c.next_key_version,
                        id_key_version=c.next_id_key_version,
                        next_link_code=None,
                        next_key_version=None,
                        next_id_key_version=None,
                    )
                ).rowcount
            )

    # -- the agency's share of the log -------------------------------------

    def append_log(self, record: LogRecord, receipts: Sequence[ShareReceipt] = ()) -> None:
        self.append_logs([record], receipts)

    def append_logs(self, records: list[LogRecord], receipts: Sequence[ShareReceipt] = ()) -> None:
        """Every row in one transaction, in order, with its link in the share's chain
        (``share_chain``): all durable, or none (bulk queries, and the group commit of
        single rows); the hub's log receipts of those exchanges with them."""
        if not records and not receipts:
            return
        with self._engine.begin() as conn:
            if records and conn.dialect.name == "sqlite":
                _insert_logs_sqlite(conn, records)
            elif records:
                share_chain.append_postgres(conn, [_chain_values(r) for r in records])
            log_receipts.write_receipts(conn, receipts)

    def log_rows(self, limit: int = 1000) -> list[LogRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(agency_log).order_by(agency_log.c.id).limit(limit)
            ).mappings()
            return [LogRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    # -- answer-later tickets ------------------------------------------------

    def add_ticket(self, ticket: Ticket) -> None:
        with self._engine.begin() as conn:
            conn.execute(answer_tickets.insert().values(**ticket.__dict__))

    def ticket(self, role: str, ticket: str) -> Ticket | None:
        t = answer_tickets.c
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(answer_tickets).where(t.role == role, t.ticket == ticket))
                .mappings()
                .first()
            )
        return None if row is None else Ticket(**row)

    def take_ticket(self, role: str, ticket: str) -> bool:
        """Remove a ticket; False if it was gone already (a concurrent fetch won)."""
        t = answer_tickets.c
        with self._engine.begin() as conn:
            result = conn.execute(answer_tickets.delete().where(t.role == role, t.ticket == ticket))
        return bool(result.rowcount)


_log = logging.getLogger("comm_server.store")
T = TypeVar("T")


# A row the database refused (full, unreachable, an I/O error): the refusal, by role.
_LOG_UNAVAILABLE = {
    "requester": "REQUESTER_LOG_UNAVAILABLE",
    "provider": "PROVIDER_LOG_UNAVAILABLE",
}


def _log_unavailable(role: str, err: sa.exc.SQLAlchemyError) -> Unavailable:
    """UNAVAILABLE with the role's reason, not the driver's error as INTERNAL."""
    cause = type(getattr(err, "orig", None) or err).__name__
    return Unavailable(
        _LOG_UNAVAILABLE.get(role, "REQUESTER_LOG_UNAVAILABLE"),
        f"this agency's share of the log refused the exchange's row ({cause})",
    )


class AsyncCommStore:
    """The store's blocking calls, run on a small pool off the event loop.

    Log rows are group-committed (``renkei.group_commit``): ``append_log``
    returns once the row is durable, but rows appended while a commit is in
    flight share the next transaction, so a busy server pays one commit per
    batch rather than one per exchange (docs/benchmarks.md).

    A row the database refuses (full, unreachable) is refused to the caller as
    ``<ROLE>_LOG_UNAVAILABLE`` and kept, as that refusal (what the caller was
    told, with no content), and written again every ``retry_every`` seconds
    until the database takes it: this agency's share loses no exchange.
    """

    def __init__(
        self,
        store: CommStore,
        workers: int = 1,
        *,
        max_batch: int = 512,
        retry_every: float = 1.0,
    ) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="comm-store")

        def write(items: list[tuple[LogRecord, Sequence[ShareReceipt]]]) -> list[None]:
            store.append_logs([r for r, _ in items], [x for _, rs in items for x in rs])
            return [None] * len(items)

        self._logs = GroupCommit(write, self._pool, max_batch=max_batch)
        self._retry_every = retry_every
        # Refused rows, as refusals, still to be written; the hub's receipts with them.
        self.unwritten: list[LogRecord] = []
        self.unwritten_receipts: list[ShareReceipt] = []
        self._rewriter: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def append_log(self, record: LogRecord, receipts: Sequence[ShareReceipt] = ()) -> None:
        """This agency's share of the log: durable when this returns."""
        try:
            await self._logs.submit((record, receipts))
        except sa.exc.SQLAlchemyError as err:
            raise self._kept([record], err, receipts) from err

    # The exchange pipelines' port (comm_server.ports.ExchangeStore).

    async def append_logs(
        self, records: list[LogRecord], receipts: Sequence[ShareReceipt] = ()
    ) -> None:
        """A bulk exchange's rows, one per person, in one transaction of their own."""
        try:
            await self.run(self.store.append_logs, records, receipts)
        except sa.exc.SQLAlchemyError as err:
            raise self._kept(records, err, receipts) from err

    def _kept(
        self,
        records: list[LogRecord],
        err: sa.exc.SQLAlchemyError,
        receipts: Sequence[ShareReceipt] = (),
    ) -> Unavailable:
        refusal = _log_unavailable(records[0].role if records else "", err)
        self.unwritten += [
            replace(r, outcome="UNAVAILABLE", reason=refusal.reason, content="") for r in records
        ]
        self.unwritten_receipts += receipts
        if self._rewriter is None or self._rewriter.done():
            self._rewriter = asyncio.get_running_loop().create_task(self._write_unwritten())
        return refusal

    async def _write_unwritten(self) -> None:
        told = False  # one line per outage, not one per retry
        while self.unwritten or self.unwritten_receipts:
            batch, receipts = list(self.unwritten), list(self.unwritten_receipts)
            try:
                await self.run(self.store.append_logs, batch, receipts)
            except sa.exc.SQLAlchemyError as err:
                if not told:
                    event(
                        _log,
                        "log rows the database refused are kept and retried",
                        logging.ERROR,
                        rows=len(batch),
                        error=type(getattr(err, "orig", None) or err).__name__,
                    )
                    told = True
                await asyncio.sleep(self._retry_every)
                continue
            del self.unwritten[: len(batch)]
            del self.unwritten_receipts[: len(receipts)]
        if told:
            event(_log, "kept log rows written; this agency's share is whole again")

    async def flush(self) -> None:
        """Return once the kept rows are written (tests)."""
        if self._rewriter is not None:
            await asyncio.shield(self._rewriter)

    async def link_code_for(self, local_person_id: str) -> str | None:
        return await self.run(self.store.link_code_for, local_person_id)

    async def link_codes_for(self, local_person_ids: list[str]) -> dict[str, str]:
        return await self.run(self.store.link_codes_for, local_person_ids)

    async def local_person_for(self, link_code: str) -> str | None:
        return await self.run(self.store.local_person_for, link_code)

    async def local_persons_for(self, link_codes: list[str]) -> dict[str, str]:
        return await self.run(self.store.local_persons_for, link_codes)

    async def add_ticket(self, ticket: Ticket) -> None:
        await self.run(self.store.add_ticket, ticket)

    async def ticket(self, role: str, ticket: str) -> Ticket | None:
        return await self.run(self.store.ticket, role, ticket)

    async def take_ticket(self, role: str, ticket: str) -> bool:
        return await self.run(self.store.take_ticket, role, ticket)

    def close(self) -> None:
        if self._rewriter is not None:
            self._rewriter.cancel()
        self._pool.shutdown(wait=True)
        if self.unwritten or self.unwritten_receipts:
            # A last try; the rows are lost only if the database is still gone.
            try:
                self.store.append_logs(self.unwritten, self.unwritten_receipts)
                self.unwritten.clear()
                self.unwritten_receipts.clear()
            except sa.exc.SQLAlchemyError:
                event(
                    _log,
                    "log rows the database refused are lost at this stop",
                    logging.ERROR,
                    rows=len(self.unwritten),
                )


def open_store(config: CommConfig) -> AsyncCommStore:
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    return AsyncCommStore(CommStore(engine), workers=1 if engine.dialect.name == "sqlite" else 4)


def open_key_store(config: CommConfig, store: AsyncCommStore | None = None) -> KeyStore:
    """The agency's key store, in the same database as its other tables."""
    engine = (
        store.store.engine
        if store is not None
        else db.create_engine(config.database_url, schema=config.database_schema)
    )
    return KeyStore(engine, load_master_key(config.master_key))
