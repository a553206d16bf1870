"""The hub's log receipts in this agency's share: where the hub's tree holds our exchanges.

With each answer the hub says where its log holds the exchange (its serial, the
entry's leaf index, the bytes the leaf commits to, salt included); a provider
hears the same with each call. They are kept in ``hub_log_receipts``, written in
the transaction of the exchange's own log rows, so that the verify job
(``comm_server.log_verify``) can later prove each one is in the hub's signed
tree and unchanged there. A receipt that is not what it claims (not an entry,
another exchange's, an entry this agency is no party to) is dropped with a
WARNING rather than refusing the exchange: the hub's answer itself was good.
An answer without receipts (an older hub, or its tree off) simply leaves none.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from renkei import db
from renkei.log.v1 import log_pb2
from renkei.logs import event
from renkei.tlog import receipt_proto
from renkei.tlog.entry import KINDS, MAX_ENTRY_BYTES, VERSION

REQUESTER = "requester"
PROVIDER = "provider"
# The column is a signed 64-bit integer; the hub's uint64 indices stay far below.
MAX_LEAF_INDEX = (1 << 63) - 1
# Values per IN (...) list, well under SQLite's and PostgreSQL's parameter limits.
_IN_CHUNK = 1000

_log = logging.getLogger("comm_server.log_receipts")

metadata = sa.MetaData()

hub_log_receipts = sa.Table(
    "hub_log_receipts",
    metadata,
    sa.Column("leaf_index", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("serial", sa.BigInteger, nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),  # requester | provider
    sa.Column("entry", sa.LargeBinary, nullable=False),
    sa.Column("received_at", db.UtcDateTime(), nullable=False),
    # Set by the verify job once the entry was proven in a trusted checkpoint.
    sa.Column("verified_at", db.UtcDateTime(), nullable=True),
)


@dataclass(frozen=True, slots=True)
class LogReceipt:
    """A receipt as the hub gives it (renkei.log.v1.LogReceipt)."""

    serial: int
    leaf_index: int
    entry: bytes

    @classmethod
    def from_proto(cls, msg: log_pb2.LogReceipt) -> LogReceipt:
        return cls(msg.serial, msg.leaf_index, bytes(msg.entry))


def from_protos(msgs: Iterable[log_pb2.LogReceipt]) -> tuple[LogReceipt, ...]:
    """The receipts given; an unset message (no entry: the tree off) is none."""
    return tuple(LogReceipt.from_proto(m) for m in msgs if m.entry)


def from_refusal(metadata: Mapping[str, str], serial: int) -> LogReceipt | None:
    """The exchange entry a refused single exchange names, or None (none named, or not
    readable: then a WARNING, and the refusal is handled as it is)."""
    # The keys the hub's refusal names them under (hub_server.relay_modes).
    leaf = metadata.get(receipt_proto.REFUSAL_LEAF_KEY)
    entry = metadata.get(receipt_proto.REFUSAL_ENTRY_KEY)
    if leaf is None or entry is None:
        return None
    try:
        return LogReceipt(serial, int(leaf), base64.b64decode(entry, validate=True))
    except (ValueError, binascii.Error):
        event(
            _log,
            "a refusal's log receipt cannot be read; none is kept",
            logging.WARNING,
            serial=serial,
        )
        return None


@dataclass(frozen=True, slots=True)
class ShareReceipt:
    """A receipt as this agency keeps it."""

    leaf_index: int
    serial: int
    role: str
    entry: bytes
    received_at: datetime
    verified_at: datetime | None = None


def problem(receipt: LogReceipt, serial: int, agency_id: str) -> str | None:
    """What is wrong with a receipt for exchange ``serial`` of this agency, or None.

    One ``json.loads`` (a few µs, paid per person of a bulk exchange); the full
    check of the entry's one canonical encoding (``Entry.decode``, ten times
    that) is the verify job's, off the exchange's path, before it proves it.
    """
    if not 0 <= receipt.leaf_index <= MAX_LEAF_INDEX:
        return f"leaf index {receipt.leaf_index} is out of range"
    if receipt.serial != serial:
        return f"it names serial {receipt.serial}, not the exchange's {serial}"
    if len(receipt.entry) > MAX_ENTRY_BYTES:
        return f"its entry is {len(receipt.entry)} bytes, more than {MAX_ENTRY_BYTES}"
    try:
        doc = json.loads(receipt.entry)
    except ValueError as err:  # UnicodeDecodeError is one too
        return f"its entry is not a log entry (not JSON: {err})"
    if not isinstance(doc, dict) or doc.get("v") != VERSION or doc.get("kind") not in KINDS:
        return "its entry is not a log entry (no version or kind of one)"
    got, requester, provider = doc.get("serial"), doc.get("requester"), doc.get("provider")
    if got != serial or type(got) is not int:
        return f"its entry is serial {got!r}'s, not the exchange's {serial}"
    if agency_id not in (requester, provider):
        return f"its entry is between {requester!r} and {provider!r}, not {agency_id!r}"
    return None


def accept(
    receipts: Iterable[LogReceipt],
    *,
    serial: int,
    agency_id: str,
    role: str,
    received_at: datetime,
) -> list[ShareReceipt]:
    """The good receipts of exchange ``serial``, to keep; a WARNING for each bad one."""
    kept: list[ShareReceipt] = []
    for r in receipts:
        if not r.entry:  # an unset receipt: nothing to keep, nothing wrong
            continue
        why = problem(r, serial, agency_id)
        if why is not None:
            event(
                _log,
                "a log receipt from the hub is not kept",
                logging.WARNING,
                serial=serial,
                leaf_index=r.leaf_index,
                role=role,
                problem=why,
            )
            continue
        kept.append(ShareReceipt(r.leaf_index, serial, role, r.entry, received_at))
    return kept


def write_receipts(conn: Connection, receipts: Sequence[ShareReceipt]) -> None:
    """Insert in the caller's transaction; one already kept is skipped, never an error.

    The same leaf can come twice (an agency asking itself is both sides of an
    exchange); refusing the second would refuse the exchange's log rows with it.
    A second copy with other bytes is evidence against the hub: WARNING, and the
    first one kept (the verify job proves it or finds it wrong).
    """
    if not receipts:
        return
    wanted: dict[int, ShareReceipt] = {}
    for r in receipts:
        wanted.setdefault(r.leaf_index, r)
    t = hub_log_receipts.c
    indices = list(wanted)
    for start in range(0, len(indices), _IN_CHUNK):
        chunk = indices[start : start + _IN_CHUNK]
        for leaf, entry in conn.execute(
            sa.select(t.leaf_index, t.entry).where(t.leaf_index.in_(chunk))
        ):
            mine = wanted.pop(int(leaf))
            if bytes(entry) != mine.entry:
                event(
                    _log,
                    "the hub gave two different entries for one leaf; the first is kept",
                    logging.WARNING,
                    serial=mine.serial,
                    leaf_index=mine.leaf_index,
                )
    if wanted:
        conn.execute(
            _insert_or_skip(conn),
            [
                {
                    "leaf_index": r.leaf_index,
                    "serial": r.serial,
                    "role": r.role,
                    "entry": r.entry,
                    "received_at": r.received_at,
                    "verified_at": None,
                }
                for r in wanted.values()
            ],
        )


def _insert_or_skip(conn: Connection) -> sa.Insert:
    """A concurrent writer of the same leaf (read above as absent) is no error either."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(hub_log_receipts).on_conflict_do_nothing(
            index_elements=["leaf_index"]
        )
    if conn.dialect.name == "sqlite":
        return sqlite.insert(hub_log_receipts).on_conflict_do_nothing(index_elements=["leaf_index"])
    return hub_log_receipts.insert()
