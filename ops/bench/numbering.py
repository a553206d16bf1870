"""Initial numbering throughput: Numbers issued per second via ``issue_many``.

Numbers ``count`` residents into a fresh SQLite store in a temporary folder,
through the real service (format checks, directory check, CSPRNG draws,
check digits, collision checks against every Number ever issued, the
conversion table and the event history), one transaction per batch, durable
commits (WAL, ``synchronous=FULL``). Run with ``python -m ops.bench.numbering``.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from numbering.directory import StaticResidentDirectory
from numbering.service import DEFAULT_BATCH, NumberingService
from numbering.store import NumberingStore
from renkei import db

# Resident codes of the run: 11 digits, distinct, not meant to be real ones.
_FIRST_CODE = 10_000_000_000


def resident_codes(count: int) -> list[str]:
    return [f"{_FIRST_CODE + i:011d}" for i in range(count)]


def run(
    count: int = 1_000_000, *, batch_size: int = DEFAULT_BATCH, show: bool = True
) -> dict[str, Any]:
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    codes = resident_codes(count)
    directory = StaticResidentDirectory(codes)
    with tempfile.TemporaryDirectory(prefix="numbering-bench-") as tmp:
        engine = db.create_engine(db.sqlite_url(str(Path(tmp) / "numbering.db")))
        try:
            store = NumberingStore(engine)
            service = NumberingService(store, directory, batch_size=batch_size)
            started = time.perf_counter()
            issued = service.issue_many(codes)
            elapsed = time.perf_counter() - started
            stored = store.count_numbers()
        finally:
            engine.dispose()
    if issued != count or stored != count:
        raise RuntimeError(f"issued {issued}, stored {stored}, expected {count}")
    result: dict[str, Any] = {
        "residents": count,
        "issued": issued,
        "seconds": round(elapsed, 3),
        "numbers_per_second": round(issued / elapsed),
        "batch_size": batch_size,
        "database": f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)",
        "python": platform.python_version(),
    }
    if show:
        _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    table = Table(title="Initial numbering (issue_many)")
    table.add_column("residents", justify="right")
    table.add_column("batch", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("Numbers/s", justify="right")
    table.add_column("store")
    table.add_row(
        f"{result['residents']:,}",
        f"{result['batch_size']:,}",
        f"{result['seconds']:.2f}",
        f"{result['numbers_per_second']:,}",
        result["database"],
    )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.numbering", description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    args = parser.parse_args(argv)
    run(args.count, batch_size=args.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
