"""The hash chain over this agency's share of the log (issue 14, item 6).

Rows of ``agency_log`` are only ever inserted (an answer-later completion, a
refused row written again after an outage: each is a row of its own), so the
chain is one link per row, in insert order, written in the row's transaction:

    digest(i) = SHA-256(LINK_TAG || digest(i-1) || encode_row(row i))

Link ``i`` is the share's row ``i`` counted from 1; rows that predate the chain
(a store made before it) are rows 1..P, not linked, and the chain starts from
``genesis(P, last id among them)``. The one-row ``agency_log_chain_head`` holds
the tip (count, digest, last row id): on PostgreSQL a transaction locks it
before inserting, so ids and links follow one order however many transactions
run at once; on SQLite the first insert takes the database's write lock.

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
    # Not unique: SQLite hands a deleted tail's ids out again, and the chain must
    # still take the new rows (the verifier reports the deletion).
    sa.Column("log_id", sa.BigInteger, nullable=False, index=True),
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


def _dumps(doc: list[object]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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


def read_head(conn: Connection, *, for_update: bool = False) -> Head:
    query = sa.select(
        chain_head.c.predating,
        chain_head.c.predating_last_id,
        chain_head.c.count,
        chain_head.c.digest,
        chain_head.c.last_log_id,
    ).where(chain_head.c.id == _HEAD_ID)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise LookupError("agency_log_chain_head holds no head: the chain was never started")
    return Head(int(row[0]), int(row[1]), int(row[2]), bytes(row[3]), int(row[4]))


def lock_head(conn: Connection) -> Head | None:
    """PostgreSQL: the head, its row held until commit, read before any id is drawn so
    that concurrent transactions insert and chain one after the other. SQLite: None
    (there the insert itself takes the write lock; ``extend`` reads the head after it)."""
    if conn.dialect.name == "sqlite":
        return None
    return read_head(conn, for_update=True)


def extend(
    conn: Connection,
    ids: Sequence[int],
    rows: Sequence[Sequence[object]],
    head: Head | None = None,
) -> None:
    """Link rows just inserted in this transaction (ids in insert order, each row's
    COLUMNS values) after ``head`` (``lock_head``'s), then move the head: one pass,
    one executemany."""
    if not ids:
        return
    if head is None:
        head = read_head(conn)
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
    digests = chain(head.digest, encoded)
    first = head.count + 1
    links = [(first + i, log_id, d) for i, (log_id, d) in enumerate(zip(ids, digests, strict=True))]
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "INSERT INTO agency_log_chain (position, log_id, digest) VALUES (?, ?, ?)", links
        )
    else:
        conn.execute(
            chain_links.insert(), [{"position": p, "log_id": i, "digest": d} for p, i, d in links]
        )
    conn.execute(
        chain_head.update()
        .where(chain_head.c.id == _HEAD_ID)
        .values(
            count=head.count + len(ids),
            digest=digests[-1],
            last_log_id=max(head.last_log_id, *ids),
        )
    )
