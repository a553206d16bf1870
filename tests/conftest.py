"""Shared fixtures: which databases to run on, and the in-process topology."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from support.aio import LoopThread
from support.databases import POSTGRES_URL, drop_schemas, postgres_reachable

from renkei import db


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    """An event loop in a thread for grpc.aio servers and clients (see support/aio.py)."""
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str | None, str]]:
    """(URL or None for SQLite files, a schema prefix unique to this use)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield None, prefix
        return
    if not postgres_reachable():
        pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432")
    yield POSTGRES_URL, prefix
    drop_schemas(prefix)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty database for one test: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        eng = db.create_engine(db.sqlite_url(str(tmp_path / "test.db")))
        yield eng
        eng.dispose()
        return
    if not postgres_reachable():
        pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432")
    schema = f"t{uuid.uuid4().hex[:12]}"
    eng = db.create_engine(POSTGRES_URL, schema=schema)
    yield eng
    eng.dispose()
    drop_schemas(schema)
