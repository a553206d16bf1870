"""What the verify job keeps: the last checkpoint it trusted, its status, the receipts.

``hub_log_trusted`` holds one row, the hub's latest checkpoint that this server
checked (signatures, consistency with the one before, every receipt below
its size proven): the start of the next run's consistency proof, so that a
hub rewriting or rolling back what this agency once saw is caught.
``hub_log_verify_status`` holds one row for ``renkei comm log status`` and
for the alarms: the last run, the size trusted, how many problems were found
in all and the last one. Both live in the communication server's database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server.log_receipts import ShareReceipt, hub_log_receipts
from comm_server.log_receipts import metadata as receipts_metadata
from renkei import db

metadata = sa.MetaData()
_ONE = 1  # the single row's key

hub_log_trusted = sa.Table(
    "hub_log_trusted",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    # The signed note as served: hub signature and cosignatures, for proof bundles.
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("trusted_at", db.UtcDateTime(), nullable=False),
)

hub_log_verify_status = sa.Table(
    "hub_log_verify_status",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_run_at", db.UtcDateTime(), nullable=False),
    sa.Column("trusted_size", sa.BigInteger, nullable=False),
    # Problems found in all runs (a counter that only grows), and in the last one.
    sa.Column("problems_found", sa.BigInteger, nullable=False),
    sa.Column("last_run_problems", sa.Integer, nullable=False),
    sa.Column("last_problem", sa.Text, nullable=True),
    sa.Column("last_problem_at", db.UtcDateTime(), nullable=True),
)


@dataclass(frozen=True, slots=True)
class Trusted:
    size: int
    root_hash: bytes
    note: bytes
    trusted_at: datetime


@dataclass(frozen=True, slots=True)
class Status:
    last_run_at: datetime
    trusted_size: int
    problems_found: int
    last_run_problems: int
    last_problem: str | None
    last_problem_at: datetime | None


class VerifyStore(Protocol):
    """The verify job's storage (``SqlVerifyStore``; an in-memory one in tests)."""

    async def trusted(self) -> Trusted | None: ...

    async def unverified(self, below: int, *, whole: bool = False) -> list[ShareReceipt]:
        """The receipts not yet verified whose leaf index is below ``below``, in leaf order;
        with ``whole``, every receipt below it, verified before or not (a full audit)."""
        ...

    async def passed(self, leaves: Sequence[int], trusted: Trusted) -> None:
        """All checked: mark these receipts verified, trust ``trusted`` (one transaction)."""
        ...

    async def record_run(self, at: datetime, trusted_size: int, problems: Sequence[str]) -> None:
        """The status row after a run; ``problems`` are added to the counter."""
        ...

    async def status(self) -> Status | None: ...


def create_tables(engine: Engine) -> None:
    receipts_metadata.create_all(engine)
    metadata.create_all(engine)


class SqlVerifyStore:
    """``VerifyStore`` on the communication server's database, off the event loop."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        create_tables(engine)

    async def trusted(self) -> Trusted | None:
        return await asyncio.to_thread(self._trusted)

    def _trusted(self) -> Trusted | None:
        t = hub_log_trusted.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(hub_log_trusted).where(t.id == _ONE)).first()
        if row is None:
            return None
        return Trusted(int(row.size), bytes(row.root_hash), row.note.encode(), row.trusted_at)

    async def unverified(self, below: int, *, whole: bool = False) -> list[ShareReceipt]:
        return await asyncio.to_thread(self._unverified, below, whole)

    def _unverified(self, below: int, whole: bool) -> list[ShareReceipt]:
        r = hub_log_receipts.c
        query = sa.select(hub_log_receipts).where(r.leaf_index < below).order_by(r.leaf_index)
        if not whole:
            query = query.where(r.verified_at.is_(None))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            ShareReceipt(
                int(x.leaf_index), int(x.serial), x.role, bytes(x.entry), x.received_at, None
            )
            for x in rows
        ]

    def all_receipts(self) -> list[ShareReceipt]:
        """Every receipt kept, in leaf order (tests and audits)."""
        r = hub_log_receipts.c
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(hub_log_receipts).order_by(r.leaf_index)).all()
        return [
            ShareReceipt(
                int(x.leaf_index),
                int(x.serial),
                x.role,
                bytes(x.entry),
                x.received_at,
                x.verified_at,
            )
            for x in rows
        ]

    async def passed(self, leaves: Sequence[int], trusted: Trusted) -> None:
        await asyncio.to_thread(self._passed, list(leaves), trusted)

    def _passed(self, leaves: list[int], trusted: Trusted) -> None:
        r = hub_log_receipts.c
        values = {
            "size": trusted.size,
            "root_hash": trusted.root_hash,
            "note": trusted.note.decode(),
            "trusted_at": trusted.trusted_at,
        }
        with self._engine.begin() as conn:
            for start in range(0, len(leaves), 1000):
                conn.execute(
                    hub_log_receipts.update()
                    .where(r.leaf_index.in_(leaves[start : start + 1000]))
                    .values(verified_at=trusted.trusted_at)
                )
            done = conn.execute(
                hub_log_trusted.update().where(hub_log_trusted.c.id == _ONE).values(**values)
            )
            if not done.rowcount:
                conn.execute(hub_log_trusted.insert().values(id=_ONE, **values))

    async def record_run(self, at: datetime, trusted_size: int, problems: Sequence[str]) -> None:
        await asyncio.to_thread(self._record_run, at, trusted_size, list(problems))

    def _record_run(self, at: datetime, trusted_size: int, problems: list[str]) -> None:
        s = hub_log_verify_status.c
        with self._engine.begin() as conn:
            found = conn.execute(
                sa.select(s.problems_found).where(s.id == _ONE).with_for_update()
            ).scalar()
            values: dict[str, object] = {
                "last_run_at": at,
                "trusted_size": trusted_size,
                "last_run_problems": len(problems),
                "problems_found": int(found or 0) + len(problems),
            }
            if problems:
                values.update(last_problem=problems[-1], last_problem_at=at)
            if found is None:
                conn.execute(hub_log_verify_status.insert().values(id=_ONE, **values))
            else:
                conn.execute(hub_log_verify_status.update().where(s.id == _ONE).values(**values))

    async def status(self) -> Status | None:
        return await asyncio.to_thread(self._status)

    def _status(self) -> Status | None:
        s = hub_log_verify_status.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(hub_log_verify_status).where(s.id == _ONE)).first()
        if row is None:
            return None
        return Status(
            row.last_run_at,
            int(row.trusted_size),
            int(row.problems_found),
            int(row.last_run_problems),
            row.last_problem,
            row.last_problem_at,
        )
