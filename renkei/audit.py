"""Scanning a party's store for identifiers it must not hold.

The hub may hold ID-code hashes and log metadata only (R9, R22). This reads
every text and binary column of every table, and for SQLite also the raw
database and WAL files (deleted rows and free pages included), and reports
which forbidden values occur.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class Finding:
    label: str
    value: str
    where: str


def _row_texts(engine: Engine) -> Iterable[tuple[str, bytes]]:
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    if value is None:
                        continue
                    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
                    yield f"{table.name}.{column.name}", raw


def _sqlite_files(engine: Engine) -> list[Path]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return []
    base = Path(database)
    return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-journal")) if p.exists()]


def scan(engine: Engine, forbidden: Mapping[str, Iterable[str | bytes]]) -> list[Finding]:
    needles = [
        (label, v if isinstance(v, bytes) else v.encode("utf-8"))
        for label, values in forbidden.items()
        for v in values
        if v
    ]
    findings: list[Finding] = []
    haystacks: list[tuple[str, bytes]] = list(_row_texts(engine))
    haystacks += [(str(p), p.read_bytes()) for p in _sqlite_files(engine)]
    for where, raw in haystacks:
        for label, needle in needles:
            if needle in raw:
                findings.append(Finding(label, needle.decode("utf-8", "replace"), where))
    return findings
