"""Database engines: a SQLite file by default, any SQLAlchemy URL by configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def sqlite_url(path: str) -> str:
    return f"sqlite:///{path}"


def create_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine whose commits are durable when they return.

    SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power
    loss); PostgreSQL keeps its default ``synchronous_commit=on``. ``schema``
    (PostgreSQL only) puts every table of this engine in its own schema, which
    lets several parties, or several tests, share one database apart.
    """
    connect_args: dict[str, Any] = {}
    if url.startswith("sqlite"):
        connect_args["check_same_thread"] = False
        connect_args["timeout"] = 30
    elif schema is not None:
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
        connect_args["options"] = f"-csearch_path={schema}"
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    elif schema is not None:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    SQLite keeps no time zone: values are stored as naive UTC and read back
    with UTC attached, so the same instant never reads as two times.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
