"""Which resident codes exist: the resident registry's side, read by the numbering agency.

The numbering agency issues a Number only for a resident code the registry
knows (R8). In a deployment it reads the registry's ``residents`` table,
read-only, from ``registry_database_url``; the registry owns that table and
its check-digit scheme.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# A lightweight table clause: the numbering agency never creates or alters it.
_residents = sa.table("residents", sa.column("resident_code", sa.String(11)))
_IN_CHUNK = 2000
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # as renkei.db accepts


class StaticResidentDirectory:
    """A fixed set of resident codes (tests, the benchmark)."""

    def __init__(self, codes: Iterable[str]) -> None:
        self._codes = frozenset(codes)

    def exists(self, resident_code: str) -> bool:
        return resident_code in self._codes

    def existing(self, resident_codes: Sequence[str]) -> set[str]:
        return set(self._codes.intersection(resident_codes))


class SqlResidentDirectory:
    """The registry's ``residents(resident_code)`` table, only ever read."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    def exists(self, resident_code: str) -> bool:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(sa.literal(1))
                .select_from(_residents)
                .where(_residents.c.resident_code == resident_code)
                .limit(1)
            ).first()
        return row is not None

    def existing(self, resident_codes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._engine.connect() as conn:
            for i in range(0, len(resident_codes), _IN_CHUNK):
                chunk = resident_codes[i : i + _IN_CHUNK]
                found.update(
                    str(c)
                    for c in conn.execute(
                        sa.select(_residents.c.resident_code).where(
                            _residents.c.resident_code.in_(chunk)
                        )
                    ).scalars()
                )
        return found


def read_only_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine that cannot write: the registry's data is not ours to change.

    Unlike ``renkei.db.create_engine`` it creates no schema and sets no
    journal mode; SQLite connections run with ``query_only``, PostgreSQL
    sessions with ``default_transaction_read_only``.
    """
    connect_args: dict[str, Any] = {}
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": 30}
    else:
        options = "-cdefault_transaction_read_only=on"
        if schema is not None:
            if not _SCHEMA_RE.fullmatch(schema):
                raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
            options += f" -csearch_path={schema}"
        connect_args = {"options": options}
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _query_only)
    return engine


def _query_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.close()
