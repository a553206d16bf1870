"""The hash chain over this agency's share of the log (issue 14, item 6).

Rows of ``agency_log`` are only ever inserted (an answer-later completion, a
refused row written again after an outage: each is a row of its own), so the
chain is one link per row, in insert order, written in the row's transaction:

    digest(i) = SHA-256(LINK_TAG || digest(i-1) || encode_row(row i))

Link ``i`` is the share's row ``i`` counted from 1; rows that predate the chain
(a store made before it) are rows 1..P, not linked, and the chain starts from
``genesis(P, last id among them)``. The one-row ``agency_log_chain_head`` holds
the tip (count, digest, last row id): on PostgreSQL a transaction locks it
before it draws ids, so ids and links follow one order however many
transactions run at once; on SQLite the first insert takes the database's
write lock, and the head is read after it.

The row encoding is a JSON array in a fixed column order, led by a version:
a JSON array is unambiguous (no field can run into the next), Python's C
encoder makes it cheap, and a new column means a new version, never a
silent change of what old links commit to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from renkei.db import UtcDateTime

ENCODING_VERSION = 1
LINK_TAG = b"renkei agency log share link v1\x00"
GENESIS_TAG = b"renkei agency log share genesis v1\x00"
DIGEST_BYTES = 32

COLUMNS = (
    "serial",
    "role",
    "logged_at",
    "counterpart_agency_id",
    "info_kind",
    "legal_basis_item",
    "local_person_id",
    "staff_id",
    "terminal_id",
    "content",
    "purpose",
    "outcome",
    "reason",
    "detail",
)
"""Every column of ``agency_log`` but ``id``, in the order ``encode_row`` takes them
(comm_server.store asserts they are the table's)."""

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_LOGGED_AT = COLUMNS.index("logged_at")

metadata = sa.MetaData()

chain_links = sa.Table(
    "agency_log_chain",
    metadata,
    # The row's place in the share, counted from 1 (rows that predate the chain included).
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    # Neither unique (SQLite hands a deleted tail's ids out again, and the chain must
    # still take the new rows; the verifier reports the deletion) nor indexed (the
    # verifier reads every link; an index would be one more page for every commit).
    sa.Column("log_id", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.LargeBinary(DIGEST_BYTES), nullable=False),
)

chain_head = sa.Table(
    "agency_log_chain_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    # Rows 1..predating came before the chain; ids up to predating_last_id are theirs.
    sa.Column("predating", sa.BigInteger, nullable=False),
    sa.Column("predating_last_id", sa.BigInteger, nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),  # rows of the share, predating included
    sa.Column("digest", sa.LargeBinary(DIGEST_BYTES), nullable=False),
    sa.Column("last_log_id", sa.BigInteger, nullable=False),
)

# Rows purged under retention (comm_server.retention), one row per purge
# transaction, written in it: their links stay, so the chain verifies from the
# first remaining row, and the verifier reports their rows as purged, not missing.
chain_purges = sa.Table(
    "agency_log_purges",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("purged_at", UtcDateTime(), nullable=False),
    sa.Column("cutoff", UtcDateTime(), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    # The agency_log ids that went, as JSON [[first, last], ...] (inclusive).
    sa.Column("id_ranges", sa.Text, nullable=False),
    # The chain's head when they went: its row count and digest.
    sa.Column("head_count", sa.BigInteger, nullable=False),
    sa.Column("head_digest", sa.LargeBinary(DIGEST_BYTES), nullable=False),
)

_HEAD_ID = 1


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's tip: ``count`` rows of the share, the last one's link ``digest``."""

    predating: int
    predating_last_id: int
    count: int
    digest: bytes
    last_log_id: int


def genesis(predating: int, predating_last_id: int) -> bytes:
    """The digest the first link chains from: it names where the chain starts."""
    return hashlib.sha256(
        GENESIS_TAG + predating.to_bytes(8, "big") + predating_last_id.to_bytes(8, "big")
    ).digest()


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def encode_row(log_id: int, values: Sequence[object]) -> bytes:
    """The canonical bytes of one row: [version, id, the COLUMNS in order] as compact
    JSON, UTF-8, ``logged_at`` as ``TIME_FORMAT`` in UTC, a NULL as ``null``."""
    doc: list[object] = [ENCODING_VERSION, log_id, *values]
    at = doc[2 + _LOGGED_AT]
    if isinstance(at, datetime):
        doc[2 + _LOGGED_AT] = format_time(at)
    return _dumps(doc)


# One encoder, made once: json.dumps with options builds a new one on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _dumps(doc: list[object]) -> bytes:
    return _ENCODER.encode(doc).encode("utf-8")


def encode_rows(ids: Sequence[int], rows: Sequence[Sequence[object]]) -> list[bytes]:
    """``encode_row`` of each, each distinct time formatted once (a bulk query's rows
    share one)."""
    stamped: dict[object, str] = {}
    encoded: list[bytes] = []
    for log_id, values in zip(ids, rows, strict=True):
        doc: list[object] = [ENCODING_VERSION, log_id, *values]
        at = doc[2 + _LOGGED_AT]
        text = stamped.get(at)
        if text is None and isinstance(at, datetime):
            text = stamped[at] = format_time(at)
        if text is not None:
            doc[2 + _LOGGED_AT] = text
        encoded.append(_dumps(doc))
    return encoded


def link(previous: bytes, encoded_row: bytes) -> bytes:
    return hashlib.sha256(LINK_TAG + previous + encoded_row).digest()


def chain(previous: bytes, encoded_rows: Sequence[bytes]) -> list[bytes]:
    """The links of consecutive rows after ``previous``, in one pass."""
    sha256, tag = hashlib.sha256, LINK_TAG
    out: list[bytes] = []
    for encoded in encoded_rows:
        previous = sha256(tag + previous + encoded).digest()
        out.append(previous)
    return out


# -- in the row's transaction --------------------------------------------------


def ensure_head(conn: Connection, log_table: sa.Table) -> None:
    """Start the chain if the store has none: the rows already there predate it."""
    if conn.execute(sa.select(chain_head.c.id)).first() is not None:
        return
    count, last = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(log_table.c.id), 0))
    ).one()
    count, last = int(count), int(last)
    conn.execute(
        chain_head.insert().values(
            id=_HEAD_ID,
            predating=count,
            predating_last_id=last,
            count=count,
            digest=genesis(count, last),
            last_log_id=last,
        )
    )


# Built once: building a statement costs more than running it (the hot path).
_READ_HEAD = sa.select(
    chain_head.c.predating,
    chain_head.c.predating_last_id,
    chain_head.c.count,
    chain_head.c.digest,
    chain_head.c.last_log_id,
).where(chain_head.c.id == _HEAD_ID)
# PostgreSQL: a batch's rows and links as arrays, and the head's move, one statement.
_PG_TYPES = {"serial": "bigint", "logged_at": "timestamptz"}  # the others: text
_PG_APPEND = sa.text(
    "WITH new_rows AS (INSERT INTO agency_log (id, "
    + ", ".join(COLUMNS)
    + ") SELECT * FROM unnest(CAST(:ids AS bigint[]), "
    + ", ".join(f"CAST(:c{i} AS {_PG_TYPES.get(c, 'text')}[])" for i, c in enumerate(COLUMNS))
    + ")), new_links AS (INSERT INTO agency_log_chain (position, log_id, digest)"
    " SELECT * FROM unnest(CAST(:positions AS bigint[]), CAST(:ids AS bigint[]),"
    " CAST(:digests AS bytea[])))"
    " UPDATE agency_log_chain_head SET count = :new_count, digest = :new_digest,"
    f" last_log_id = :new_last WHERE id = {_HEAD_ID}"
)
# The ids are drawn in the outer query's projection, which has no row before the
# CTE's locked one: never before the lock is held.
_LOCK_HEAD_AND_DRAW_IDS = sa.text(
    "WITH head AS MATERIALIZED (SELECT predating, predating_last_id, count, digest,"
    f" last_log_id FROM agency_log_chain_head WHERE id = {_HEAD_ID} FOR UPDATE)"
    " SELECT head.*, nextval(pg_get_serial_sequence('agency_log', 'id'))"
    " FROM head CROSS JOIN generate_series(1, :n)"
)
# SQLite's path goes to the driver directly, as comm_server.store's inserts do.
_SQLITE_READ_HEAD = (
    "SELECT predating, predating_last_id, count, digest, last_log_id"
    f" FROM agency_log_chain_head WHERE id = {_HEAD_ID}"
)
_SQLITE_MOVE_HEAD = (
    f"UPDATE agency_log_chain_head SET count = ?, digest = ?, last_log_id = ? WHERE id = {_HEAD_ID}"
)
_SQLITE_INSERT_LINKS = "INSERT INTO agency_log_chain (position, log_id, digest) VALUES (?, ?, ?)"


def read_head(conn: Connection) -> Head:
    if conn.dialect.name == "sqlite":
        row = conn.exec_driver_sql(_SQLITE_READ_HEAD).first()
    else:
        row = conn.execute(_READ_HEAD).first()
    if row is None:
        raise LookupError("agency_log_chain_head holds no head: the chain was never started")
    return Head(int(row[0]), int(row[1]), int(row[2]), bytes(row[3]), int(row[4]))


def lock_head_and_draw_ids(conn: Connection, n: int) -> tuple[Head, list[int]]:
    """PostgreSQL: the head, its row held until commit, and ``n`` ids for new
    ``agency_log`` rows drawn only once it is held (one round trip): concurrent
    transactions insert and chain one after the other, ids in the chain's order.
    (SQLite needs none of this: its insert takes the write lock.)"""
    rows = conn.execute(_LOCK_HEAD_AND_DRAW_IDS, {"n": n}).all()
    if not rows:
        raise LookupError("agency_log_chain_head holds no head: the chain was never started")
    first = rows[0]
    head = Head(int(first[0]), int(first[1]), int(first[2]), bytes(first[3]), int(first[4]))
    return head, sorted(int(r[5]) for r in rows)


def extend_sqlite(conn: Connection, ids: Sequence[int], rows: Sequence[Sequence[object]]) -> None:
    """SQLite: link rows just inserted in this transaction (ids in insert order, each
    row's COLUMNS values) after the head, read now (the insert took the write lock),
    then move the head: one pass, one executemany."""
    if not ids:
        return
    head = read_head(conn)
    digests = chain(head.digest, encode_rows(ids, rows))
    count, last = head.count + len(ids), max(head.last_log_id, *ids)
    links = list(zip(range(head.count + 1, count + 1), ids, digests, strict=True))
    conn.exec_driver_sql(_SQLITE_INSERT_LINKS, links)
    conn.exec_driver_sql(_SQLITE_MOVE_HEAD, (count, digests[-1], last))


def append_postgres(conn: Connection, rows: Sequence[Sequence[object]]) -> None:
    """PostgreSQL: insert rows (each row's COLUMNS values) into ``agency_log`` with
    their links, in two round trips: the head locked and the ids drawn, then the
    rows, the links and the head's move in one statement."""
    if not rows:
        return
    for values in rows:
        at = values[_LOGGED_AT]
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC times only")
    head, ids = lock_head_and_draw_ids(conn, len(rows))
    digests = chain(head.digest, encode_rows(ids, rows))
    count = head.count + len(ids)
    params: dict[str, object] = {f"c{i}": [v[i] for v in rows] for i in range(len(COLUMNS))}
    params.update(
        ids=ids,
        positions=list(range(head.count + 1, count + 1)),
        digests=digests,
        new_count=count,
        new_digest=digests[-1],
        new_last=max(head.last_log_id, *ids),
    )
    conn.execute(_PG_APPEND, params)
