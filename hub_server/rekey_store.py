"""Which agencies have re-keyed to which ID key version: the barrier of an ID-key rotation."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.db import UtcDateTime

metadata = sa.MetaData()

rekey_completions = sa.Table(
    "rekey_completions",
    metadata,
    sa.Column("agency_id", sa.String(64), primary_key=True),
    sa.Column("id_key_version", sa.Integer, primary_key=True),
    sa.Column("completed_at", UtcDateTime(), nullable=False),
)


class RekeyCompletions:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def record(self, agency_id: str, id_key_version: int, at: datetime) -> None:
        with self._engine.begin() as conn:
            exists = conn.execute(
                sa.select(rekey_completions.c.agency_id).where(
                    rekey_completions.c.agency_id == agency_id,
                    rekey_completions.c.id_key_version == id_key_version,
                )
            ).first()
            if exists is None:
                conn.execute(
                    rekey_completions.insert().values(
                        agency_id=agency_id, id_key_version=id_key_version, completed_at=at
                    )
                )

    def agencies_done(self, id_key_version: int) -> set[str]:
        with self._engine.connect() as conn:
            return set(
                conn.execute(
                    sa.select(rekey_completions.c.agency_id).where(
                        rekey_completions.c.id_key_version == id_key_version
                    )
                ).scalars()
            )
