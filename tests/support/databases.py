"""PostgreSQL for tests: is it there, and cleaning up the schemas a test made."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "RENKEI_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
_postgres_ok: bool | None = None


def postgres_reachable() -> bool:
    """Whether PostgreSQL answers; asked once per run, within 2 s."""
    global _postgres_ok
    if _postgres_ok is None:
        try:
            engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            engine.dispose()
            _postgres_ok = True
        except Exception:
            _postgres_ok = False
    return _postgres_ok


def drop_schemas(prefix: str) -> None:
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        names = conn.execute(
            sa.text("select nspname from pg_namespace where nspname like :p"),
            {"p": prefix + "%"},
        ).scalars()
        for name in list(names):
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


@contextmanager
def table_locked(engine: sa.engine.Engine, table: str) -> Iterator[None]:
    """Another connection holds ``table`` for writing until the block ends
    (SQLite: the whole database, ``BEGIN EXCLUSIVE``; PostgreSQL: ``LOCK TABLE``)."""
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("BEGIN EXCLUSIVE")
        else:
            cur.execute("BEGIN")
            cur.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        yield
        conn.rollback()
    finally:
        conn.close()
