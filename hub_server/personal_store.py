"""What the portal's calls read and write at the hub (issue 15), on SQL.

Reads: a person's exchanges from ``hub_log`` (by ``person_key``, every key
the person has had through ``person_key_aliases``), then every leaf of those
serials from ``hub_log_entries`` (its ``serial`` index). A page costs one
index range of the person's rows, newest first, plus one IN lookup of leaves:
on SQLite through the existing ``person_key`` index (it holds the serial, the
rowid), on PostgreSQL through ``ix_hub_log_person_serial`` (person_key,
serial), the one index the portal adds to the log's write path.

Writes, in two tables of their own: ``hub_disclosure_deferrals`` (an agency's
deferral of one exchange's disclosure, one per serial and agency) and
``hub_details_applications`` (the portal's applications for details, under
the portal's application id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub_server.log_store import hub_log, person_keys, person_serial_index
from hub_server.log_store import metadata as log_metadata
from hub_server.log_tree import TreeReader, entries
from renkei.db import UtcDateTime
from renkei.tlog import entry as tlog_entry
from renkei.tlog import merkle

metadata = sa.MetaData()
_BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
MAX_LEGAL_REASON = 400

deferrals = sa.Table(
    "hub_disclosure_deferrals",
    metadata,
    sa.Column("serial", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("agency_id", sa.String(64), primary_key=True),
    sa.Column("until", UtcDateTime(), nullable=False),
    sa.Column("legal_reason", sa.String(MAX_LEGAL_REASON), nullable=False),
    sa.Column("set_at", UtcDateTime(), nullable=False),
)

applications = sa.Table(
    "hub_details_applications",
    metadata,
    sa.Column("application_id", sa.String(64), primary_key=True),
    sa.Column("portal_agency_id", sa.String(64), nullable=False),
    sa.Column("person_key", sa.String(64), nullable=False),
    sa.Column("serial", sa.BigInteger, nullable=False),
    sa.Column("agency_id", sa.String(64), nullable=False),
    # The hub's serial of the application's own exchange.
    sa.Column("request_serial", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# The leaves that belong to an exchange (a purge entry belongs to none).
_EXCHANGE_KINDS = (tlog_entry.EXCHANGE, tlog_entry.OUTCOME, tlog_entry.FETCH)
# Serials per IN (...) list: under SQLite's and PostgreSQL's parameter limits.
_IN_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Exchange:
    """One exchange's row in the hub's log, as the portal's calls need it."""

    serial: int
    logged_at: datetime
    legal_basis_item: str
    requester: str
    provider: str
    person_key: str | None


@dataclass(frozen=True, slots=True)
class PersonLeaf:
    """One leaf of a person's exchange."""

    exchange: Exchange
    leaf_index: int
    kind: str
    entry: bytes


@dataclass(frozen=True, slots=True)
class Deferral:
    serial: int
    agency_id: str
    until: datetime
    legal_reason: str


@dataclass(frozen=True, slots=True)
class Application:
    application_id: str
    portal_agency_id: str
    person_key: str
    serial: int
    agency_id: str
    request_serial: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A page of a person's leaves, newest first; ``before`` is (serial, leaf index), exclusive."""

    person_keys: frozenset[str]
    before: tuple[int, int] | None = None
    start: datetime | None = None
    end: datetime | None = None
    agency_id: str = ""
    limit: int = 100


class SqlPersonalStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # The log's tables are the log's (SqlHubLog makes them, the tree's only when on).
        log_metadata.create_all(engine)
        metadata.create_all(engine)
        # A log made before the index existed gets it here (create_all adds none to a table).
        person_serial_index.create(engine, checkfirst=True)

    # -- the person -----------------------------------------------------------

    def person_keys(self, person_key: str) -> frozenset[str]:
        """Every person key the person has had (ID-key rotations), both ways."""
        return frozenset(person_keys(self._engine, person_key))

    def exchange(self, serial: int) -> Exchange | None:
        c = hub_log.c
        with self._engine.connect() as conn:
            row = conn.execute(_exchange_columns().where(c.serial == serial)).first()
        return None if row is None else _exchange(row)

    def page(self, query: PageQuery) -> list[PersonLeaf]:
        """Up to ``limit + 1`` leaves (one more tells the caller there is a next page)."""
        c = hub_log.c
        select = _exchange_columns().where(c.person_key.in_(sorted(query.person_keys)))
        if query.start is not None:
            select = select.where(c.logged_at >= query.start)
        if query.end is not None:
            select = select.where(c.logged_at < query.end)
        if query.agency_id:
            select = select.where(
                sa.or_(
                    c.requester_agency_id == query.agency_id,
                    c.provider_agency_id == query.agency_id,
                )
            )
        want = query.limit + 1
        found: list[PersonLeaf] = []
        upper = None if query.before is None else query.before[0]
        # An exchange has two leaves or more (begun, then its outcome) unless it was
        # refused at once: half as many serials as leaves usually fill the page.
        serials = want // 2 + 1
        with self._engine.connect() as conn:
            while len(found) < want:
                batch = select if upper is None else select.where(c.serial <= upper)
                rows = conn.execute(batch.order_by(c.serial.desc()).limit(serials)).all()
                if not rows:
                    break
                found += self._leaves(conn, [_exchange(r) for r in rows], query.before)
                if len(rows) < serials:
                    break
                upper = int(rows[-1].serial) - 1
                serials = want - len(found)  # each has a leaf at least: enough to fill it
        return found[:want]

    @staticmethod
    def _leaves(
        conn: sa.Connection, exchanges: list[Exchange], before: tuple[int, int] | None
    ) -> list[PersonLeaf]:
        by_serial = {x.serial: x for x in exchanges}
        e = entries.c
        rows = conn.execute(
            sa.select(e.serial, e.leaf_index, e.kind, e.entry).where(
                e.serial.in_(sorted(by_serial)), e.kind.in_(_EXCHANGE_KINDS)
            )
        ).all()
        out = [
            PersonLeaf(by_serial[int(r.serial)], int(r.leaf_index), r.kind, bytes(r.entry))
            for r in rows
            if before is None or (int(r.serial), int(r.leaf_index)) < before
        ]
        out.sort(key=lambda leaf: (leaf.exchange.serial, leaf.leaf_index), reverse=True)
        return out

    # -- deferrals --------------------------------------------------------------

    def defer(self, deferral: Deferral, now: datetime) -> None:
        """The agency's deferral of the serial, replacing any it set before."""
        d = deferrals.c
        with self._engine.begin() as conn:
            conn.execute(
                deferrals.delete().where(
                    d.serial == deferral.serial, d.agency_id == deferral.agency_id
                )
            )
            conn.execute(
                deferrals.insert().values(
                    serial=deferral.serial,
                    agency_id=deferral.agency_id,
                    until=deferral.until,
                    legal_reason=deferral.legal_reason,
                    set_at=now,
                )
            )

    def deferrals_in_force(self, serials: Iterable[int], now: datetime) -> dict[int, Deferral]:
        """Per serial, the deferral in force at ``now`` that lasts longest."""
        d = deferrals.c
        wanted = sorted(set(serials))
        out: dict[int, Deferral] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                rows = conn.execute(
                    sa.select(d.serial, d.agency_id, d.until, d.legal_reason).where(
                        d.serial.in_(wanted[start : start + _IN_CHUNK]), d.until > now
                    )
                )
                for r in rows:
                    got = Deferral(int(r.serial), r.agency_id, r.until, r.legal_reason)
                    known = out.get(got.serial)
                    if known is None or (got.until, got.agency_id) > (known.until, known.agency_id):
                        out[got.serial] = got
        return out

    # -- applications -----------------------------------------------------------

    def application(self, application_id: str) -> Application | None:
        a = applications.c
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(applications).where(a.application_id == application_id)
            ).first()
        if row is None:
            return None
        return Application(
            row.application_id,
            row.portal_agency_id,
            row.person_key,
            int(row.serial),
            row.agency_id,
            int(row.request_serial),
            row.created_at,
        )

    def add_application(self, application: Application) -> bool:
        """False when the application id is taken already (nothing written)."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    applications.insert().values(
                        application_id=application.application_id,
                        portal_agency_id=application.portal_agency_id,
                        person_key=application.person_key,
                        serial=application.serial,
                        agency_id=application.agency_id,
                        request_serial=application.request_serial,
                        created_at=application.created_at,
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True


def _exchange_columns() -> sa.Select[tuple[object, ...]]:
    c = hub_log.c
    return sa.select(
        c.serial,
        c.logged_at,
        c.legal_basis_item,
        c.requester_agency_id,
        c.provider_agency_id,
        c.person_key,
    )


def _exchange(r: sa.Row[tuple[object, ...]]) -> Exchange:
    m = r._mapping
    return Exchange(
        int(m["serial"]),
        m["logged_at"],
        m["legal_basis_item"],
        m["requester_agency_id"],
        m["provider_agency_id"],
        m["person_key"],
    )


class SqlProofs:
    """Inclusion proofs of many leaves against one tree size, their hashes read in one query.

    The coordinates a proof needs do not depend on the hashes' values, so a
    first pass with stand-in hashes learns them all, one read fetches them,
    and a second pass builds the proofs (renkei.tlog.merkle, unchanged).
    """

    def __init__(self, reader: TreeReader) -> None:
        self._reader = reader

    def latest_witnessed(self) -> tuple[int, str] | None:
        return self._reader.latest_checkpoint(witnessed=True)

    def inclusion_proofs(self, indices: Sequence[int], size: int) -> dict[int, list[bytes]]:
        wanted = [i for i in indices if i < size]
        if not wanted:
            return {}
        recorder = _Recorder()
        for index in wanted:
            merkle.stored_inclusion_proof(recorder, index, size)
        got = self._reader.store.get_hashes(sorted(recorder.coords))
        known = _Known(dict(zip(sorted(recorder.coords), got, strict=True)))
        return {i: merkle.stored_inclusion_proof(known, i, size) for i in wanted}


class _Recorder:
    """A merkle.HashStore that notes what is asked and answers with stand-ins."""

    def __init__(self) -> None:
        self.coords: set[merkle.Coord] = set()

    def get_hashes(self, coords: Sequence[merkle.Coord]) -> list[bytes]:
        self.coords.update(coords)
        return [bytes(32)] * len(coords)

    def put_hashes(self, nodes: Sequence[merkle.Node]) -> None:
        raise TypeError("read only")


class _Known:
    def __init__(self, hashes: dict[merkle.Coord, bytes]) -> None:
        self._hashes = hashes

    def get_hashes(self, coords: Sequence[merkle.Coord]) -> list[bytes]:
        return [self._hashes[c] for c in coords]

    def put_hashes(self, nodes: Sequence[merkle.Node]) -> None:
        raise TypeError("read only")
