"""The witness's table, SQLAlchemy Core on SQLite or PostgreSQL: one row per log.

``advance`` is the compare-and-swap the spec asks for: an UPDATE guarded by the
size and root hash the request was checked against, or, for a log's first
checkpoint, an INSERT that the primary key lets only one request win. Both
backends settle a race in the statement itself (SQLite takes the write lock;
PostgreSQL re-checks the WHERE clause on the row it waited for), so the loser
sees no row changed and is told the size the winner stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.db import UtcDateTime
from witness.witness import Accepted

metadata = sa.MetaData()

checkpoints = sa.Table(
    "witness_checkpoints",
    metadata,
    sa.Column("origin", sa.String(1000), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    # The accepted note: the log's verified signatures and the witness's cosignature.
    sa.Column("checkpoint", sa.LargeBinary, nullable=False),
    sa.Column("accepted_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("size >= 0", name="witness_checkpoints_size"),
)


class WitnessStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def latest(self, origin: str) -> Accepted | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(checkpoints).where(checkpoints.c.origin == origin)).first()
        if row is None:
            return None
        return Accepted(
            row.origin, int(row.size), bytes(row.root_hash), bytes(row.checkpoint), row.accepted_at
        )

    def advance(self, old_size: int, old_root: bytes | None, new: Accepted) -> int | None:
        values = {
            "size": new.size,
            "root_hash": new.root_hash,
            "checkpoint": new.checkpoint,
            "accepted_at": new.accepted_at,
        }
        try:
            with self._engine.begin() as conn:
                if old_root is None:
                    conn.execute(checkpoints.insert().values(origin=new.origin, **values))
                    return None
                changed = conn.execute(
                    checkpoints.update()
                    .where(
                        checkpoints.c.origin == new.origin,
                        checkpoints.c.size == old_size,
                        checkpoints.c.root_hash == old_root,
                    )
                    .values(**values)
                ).rowcount
                if changed == 1:
                    return None
        except sa.exc.IntegrityError:
            pass  # another request stored the log's first checkpoint first
        now = self.latest(new.origin)
        return 0 if now is None else now.size

    def all(self) -> list[Accepted]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(checkpoints).order_by(checkpoints.c.origin)).all()
        return [
            Accepted(r.origin, int(r.size), bytes(r.root_hash), bytes(r.checkpoint), r.accepted_at)
            for r in rows
        ]
