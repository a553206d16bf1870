"""What the log share's hash chain costs on the insert path, per row.

    python -m ops.bench.share_chain [--rows N] [--database-url URL]

Rows go through ``CommStore.append_logs`` as the exchange pipelines write
them: in bulk batches (one transaction of ``--batch`` rows) and one row per
transaction, best of ``--repeat`` runs, each with the chain and with
``append_logs`` as it was before the chain (the same inserts, no head, no
links). Also the chain's CPU work alone (encode and hash, no database).
SQLite by default (a temporary file, WAL, ``synchronous=FULL``); PostgreSQL
with ``--database-url`` (a schema of its own, dropped afterwards). Not a
test: it prints microseconds per row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from comm_server import share_chain
from comm_server import store as store_module
from comm_server.log_receipts import ShareReceipt
from comm_server.store import CommStore, LogRecord, agency_log
from renkei import db

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


def _records(n: int, start: int = 0) -> list[LogRecord]:
    at = NOW + timedelta(seconds=start)  # a bulk query's rows share one time
    return [
        LogRecord(
            serial=start + i,
            role="provider",
            logged_at=at,
            counterpart_agency_id="141003",
            info_kind="年金給付関係情報",
            legal_basis_item="二十七",
            local_person_id=f"P{start + i:08d}",
            staff_id="auto-responder",
            terminal_id="comm-nenkin",
            content='{"年金種別":"老齢基礎年金","年金額":780000}',
            purpose=None,
            outcome="OK",
            reason="",
        )
        for i in range(n)
    ]


@contextmanager
def _engine(url: str | None) -> Iterator[sa.engine.Engine]:
    if url is None:
        with tempfile.TemporaryDirectory(prefix="share-chain-bench-") as tmp:
            engine = db.create_engine(db.sqlite_url(str(Path(tmp) / "comm.db")))
            try:
                yield engine
            finally:
                engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = db.create_engine(url, schema=schema)
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def _append_as_before(
    self: CommStore, records: list[LogRecord], receipts: Sequence[ShareReceipt] = ()
) -> None:
    """``append_logs`` as it was before the chain: the same inserts, no head, no links
    (SQLite: the same raw executemany; its one ``SELECT max(id)`` stays, a few µs a batch)."""
    with self.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            store_module._insert_logs_sqlite(conn, records)
        else:
            conn.execute(agency_log.insert(), [r.__dict__ for r in records])


@contextmanager
def _chain_off() -> Iterator[None]:
    real_extend, real_append = share_chain.extend_sqlite, CommStore.append_logs
    share_chain.extend_sqlite = lambda *args, **kwargs: None  # the baseline: no links
    CommStore.append_logs = _append_as_before  # type: ignore[method-assign]  # the baseline
    try:
        yield
    finally:
        share_chain.extend_sqlite, CommStore.append_logs = real_extend, real_append  # type: ignore[method-assign]  # restored


def _per_row(store: CommStore, batches: list[list[LogRecord]]) -> float:
    started = time.perf_counter()
    for b in batches:
        store.append_logs(b)
    return (time.perf_counter() - started) / sum(len(b) for b in batches) * 1e6


def run(
    rows: int = 20_000,
    batch: int = 500,
    singles: int = 500,
    url: str | None = None,
    repeat: int = 5,
) -> dict[str, float]:
    """µs per row of each way of writing, with and without the chain: the best of
    ``repeat`` runs, the two interleaved (other work on the machine only adds)."""
    out: dict[str, float] = {}
    bulk = [_records(batch, start) for start in range(0, rows, batch)]
    one = [_records(1, i) for i in range(singles)]

    def best(name: str, value: float) -> None:
        out[name] = min(out.get(name, value), value)

    for _ in range(repeat):
        for chained in (False, True):
            label = "chain" if chained else "no chain"
            with _engine(url) as engine, nullcontext() if chained else _chain_off():
                store = CommStore(engine)
                store.append_logs(_records(10, -10))  # warm: tables, caches, the first page
                best(f"bulk ({batch} rows a transaction), {label}", _per_row(store, bulk))
                best(f"one row a transaction, {label}", _per_row(store, one))
        # The chain's own work on the insert path: encode (one time format per batch) and hash.
        started = time.perf_counter()
        for b in bulk:
            values = [tuple(r.__dict__.values()) for r in b]
            share_chain.chain(bytes(32), share_chain.encode_rows(range(len(b)), values))
        best("encode and hash alone", (time.perf_counter() - started) / rows * 1e6)
    return dict(sorted(out.items(), key=lambda kv: ("alone" in kv[0], "one" in kv[0], kv[0])))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.share_chain", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000, help="rows written in bulk")
    parser.add_argument("--batch", type=int, default=500, help="rows per bulk transaction")
    parser.add_argument("--singles", type=int, default=500, help="rows written one at a time")
    parser.add_argument("--database-url", help="PostgreSQL instead of a SQLite file")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is shown")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = run(
        args.rows, args.batch, args.singles, args.database_url, args.repeat
    )
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"agency_log insert path on {backend}, µs per row")
    for name, value in figures.items():
        print(f"  {name:<40} {value:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
