"""The hub log's record: append-only entries, the Merkle tree over them, its checkpoints.

``hub_log_entries`` holds every entry (renkei.tlog.entry) under its leaf index,
never updated, deleted only by a retention purge (hub_server.retention: the
leaf's hash stays, the leaf is listed in ``hub_log_purged_leaves``);
``hub_log_hashes`` the tree's node hashes (RFC 9162, numbered as Go's sumdb
numbers them, renkei.tlog.merkle.stored_hash_index);
``hub_log_tree`` its size; ``hub_log_checkpoints`` every checkpoint the hub
signed, with the cosignatures it got. Entries and hashes are written in the
transaction that writes the rows they record (log_store.SqlHubLog.apply), so
the tree never runs ahead of, or behind, what is durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.db import UtcDateTime
from renkei.tlog import merkle

metadata = sa.MetaData()

_BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")

entries = sa.Table(
    "hub_log_entries",
    metadata,
    sa.Column("leaf_index", _BIGINT, primary_key=True, autoincrement=False),
    sa.Column("serial", sa.BigInteger, nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    # Who may read the entry (its requester and its provider), and whose it is.
    sa.Column("requester_agency_id", sa.String(64), nullable=False),
    sa.Column("provider_agency_id", sa.String(64), nullable=False),
    # Not indexed: a person's rows are found in hub_log (the query index), and each
    # index on this table costs every entry of the hot path.
    sa.Column("person_key", sa.String(64), nullable=True),
    sa.Column("entry", sa.LargeBinary, nullable=False),
)

hashes = sa.Table(
    "hub_log_hashes",
    metadata,
    sa.Column("id", _BIGINT, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

tree = sa.Table(
    "hub_log_tree",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

checkpoints = sa.Table(
    "hub_log_checkpoints",
    metadata,
    sa.Column("id", _BIGINT, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False, index=True),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("witnessed", sa.Boolean, nullable=False),
    sa.Column("signed_at", UtcDateTime(), nullable=False),
)

# Leaves whose entries were purged under retention (hub_server.retention): their
# hashes stay in hub_log_hashes, so every proof and checkpoint still verifies.
purged_leaves = sa.Table(
    "hub_log_purged_leaves",
    metadata,
    sa.Column("first_leaf", _BIGINT, primary_key=True, autoincrement=False),
    sa.Column("last_leaf", sa.BigInteger, nullable=False),
    sa.Column("purged_at", UtcDateTime(), nullable=False),
)

# Hash ids per IN (...) list: under SQLite's and PostgreSQL's parameter limits.
_IN_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Leaf:
    """An entry to append: its bytes and what the table indexes it by."""

    serial: int
    kind: str
    requester: str
    provider: str
    person_key: str | None
    entry: bytes


@dataclass(frozen=True, slots=True)
class StoredEntry:
    leaf_index: int
    serial: int
    requester: str
    provider: str
    entry: bytes


class SqlHashStore:
    """A merkle.HashStore over ``hub_log_hashes``, read through one connection or the engine."""

    def __init__(self, bind: Engine | sa.Connection) -> None:
        self._bind = bind

    def get_hashes(self, coords: Sequence[merkle.Coord]) -> list[bytes]:
        ids = [merkle.stored_hash_index(level, index) for level, index in coords]
        found: dict[int, bytes] = {}
        wanted = sorted(set(ids))
        if isinstance(self._bind, sa.Connection):
            self._read(self._bind, wanted, found)
        else:
            with self._bind.connect() as conn:
                self._read(conn, wanted, found)
        out = []
        for (level, index), at in zip(coords, ids, strict=True):
            h = found.get(at)
            if h is None:
                raise KeyError(f"no hash stored at level {level}, index {index}")
            out.append(h)
        return out

    @staticmethod
    def _read(conn: sa.Connection, ids: list[int], into: dict[int, bytes]) -> None:
        for start in range(0, len(ids), _IN_CHUNK):
            rows = conn.execute(
                sa.select(hashes.c.id, hashes.c.hash).where(
                    hashes.c.id.in_(ids[start : start + _IN_CHUNK])
                )
            )
            into.update((int(i), bytes(h)) for i, h in rows)

    def put_hashes(self, nodes: Sequence[merkle.Node]) -> None:
        if not isinstance(self._bind, sa.Connection):
            raise TypeError("hashes are written only in the writer's transaction")
        if nodes:
            _insert_rows(
                self._bind,
                "hub_log_hashes (id, hash)",
                [(merkle.stored_hash_index(lv, i), h) for lv, i, h in nodes],
            )


def _insert_rows(conn: sa.Connection, into: str, rows: list[tuple[object, ...]]) -> None:
    """One executemany at the driver: per row, a fifth of what SQLAlchemy's own costs.

    The hot path of every batch (an entry and about two hashes per row); the
    values are plain ints, strings and bytes that both drivers take as they are.
    """
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * len(rows[0]))
    conn.exec_driver_sql(f"INSERT INTO {into} VALUES ({marks})", rows)


class TreeWriter:
    """The tree's right edge, kept by the log's one writer between transactions.

    ``append`` runs inside the writer's transaction; ``committed`` or ``failed``
    follows it. After a failure the edge is read again from the store, which
    holds exactly what the last committed transaction left.
    """

    def __init__(self) -> None:
        self._range: merkle.CompactRange | None = None
        self._pending: merkle.CompactRange | None = None
        # (size, root) of the last committed tree: read by other threads, one reference.
        self.head: tuple[int, bytes] = (0, merkle.EMPTY_ROOT)

    def load(self, conn: sa.Connection) -> None:
        size = conn.scalar(sa.select(tree.c.size).where(tree.c.id == 1))
        if size is None:
            conn.execute(tree.insert().values(id=1, size=0))
            size = 0
        self._range = merkle.CompactRange.from_store(SqlHashStore(conn), int(size))
        self.head = (self._range.size, self._range.root())

    def append(self, conn: sa.Connection, leaves: Sequence[Leaf]) -> int:
        """Writes the entries and their nodes; returns the first leaf index."""
        if self._range is None:
            self.load(conn)
        assert self._range is not None
        grown = merkle.CompactRange(None, self._range.size, self._range.edge)
        first = grown.size
        nodes = grown.append(merkle.leaf_hash(leaf.entry) for leaf in leaves)
        _insert_rows(
            conn,
            "hub_log_entries (leaf_index, serial, kind, requester_agency_id,"
            " provider_agency_id, person_key, entry)",
            [
                (
                    first + i,
                    leaf.serial,
                    leaf.kind,
                    leaf.requester,
                    leaf.provider,
                    leaf.person_key,
                    leaf.entry,
                )
                for i, leaf in enumerate(leaves)
            ],
        )
        SqlHashStore(conn).put_hashes(nodes)
        conn.execute(tree.update().where(tree.c.id == 1).values(size=grown.size))
        self._pending = grown
        return first

    def committed(self) -> None:
        if self._pending is not None:
            self._range, self._pending = self._pending, None
            self.head = (self._range.size, self._range.root())

    def failed(self) -> None:
        self._range = self._pending = None


class TreeReader:
    """What the hub serves from the record: proofs, tiles, entries, checkpoints."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.store = SqlHashStore(engine)

    def size(self) -> int:
        with self._engine.connect() as conn:
            size = conn.scalar(sa.select(tree.c.size).where(tree.c.id == 1))
        return int(size or 0)

    def root(self, size: int) -> bytes:
        return merkle.stored_root(self.store, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.stored_inclusion_proof(self.store, index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return merkle.stored_consistency_proof(self.store, old_size, new_size)

    def hash_tile(self, level: int, index: int, width: int) -> bytes:
        return merkle.tile_hashes(self.store, level, index, width)

    def entries(self, leaf_indices: Sequence[int]) -> dict[int, StoredEntry]:
        c = entries.c
        found: dict[int, StoredEntry] = {}
        wanted = sorted(set(leaf_indices))
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                rows = conn.execute(
                    sa.select(
                        c.leaf_index, c.serial, c.requester_agency_id, c.provider_agency_id, c.entry
                    ).where(c.leaf_index.in_(wanted[start : start + _IN_CHUNK]))
                )
                for r in rows:
                    found[int(r.leaf_index)] = StoredEntry(
                        int(r.leaf_index),
                        int(r.serial),
                        r.requester_agency_id,
                        r.provider_agency_id,
                        bytes(r.entry),
                    )
        return found

    def purged(self, leaf_indices: Sequence[int]) -> set[int]:
        """Those of ``leaf_indices`` whose entries were purged under retention."""
        if not leaf_indices:
            return set()
        low, high = min(leaf_indices), max(leaf_indices)
        p = purged_leaves.c
        with self._engine.connect() as conn:
            spans = conn.execute(
                sa.select(p.first_leaf, p.last_leaf).where(p.first_leaf <= high, p.last_leaf >= low)
            ).all()
        return {i for i in leaf_indices for a, b in spans if a <= i <= b}

    def entry_range(self, start: int, count: int) -> list[bytes]:
        """Entries ``start`` to ``start + count - 1`` in order, a purged one as empty
        bytes (its hash is still the tree's); KeyError naming a missing one."""
        got = self.entries(range(start, start + count))
        missing = [i for i in range(start, start + count) if i not in got]
        purged = self.purged(missing)
        if gone := [i for i in missing if i not in purged]:
            raise KeyError(f"no entry at leaf index {gone[0]}")
        return [got[i].entry if i in got else b"" for i in range(start, start + count)]

    def latest_checkpoint(self, *, witnessed: bool = False) -> tuple[int, str] | None:
        """(size, note) of the newest checkpoint (with ``witnessed``, the newest cosigned one)."""
        c = checkpoints.c
        query = sa.select(c.size, c.note).order_by(c.id.desc()).limit(1)
        if witnessed:
            query = query.where(c.witnessed.is_(True))
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row.size), row.note)

    def save_checkpoint(self, size: int, note: str, witnessed: bool) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                checkpoints.insert().values(
                    size=size, note=note, witnessed=witnessed, signed_at=datetime.now(UTC)
                )
            )
