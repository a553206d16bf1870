"""How fast the mocked register fills: generation alone, and generation stored in SQLite.

    python -m ops.bench.registry [--count N] [--seed S]

The store goes to a temporary SQLite file with the project's own engine
settings (WAL, ``synchronous=FULL``), so the figure is what ``renkei registry
generate`` costs on one machine; the file is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from legacy_stubs.registry.population import generate, load, paused_gc
from legacy_stubs.registry.store import RegistryStore
from renkei import db


def run(count: int = 1_000_000, seed: int = 1, *, echo: bool = True) -> dict[str, Any]:
    """Time both runs; the figures as a dict (and as a table on stdout if ``echo``)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    with paused_gc():
        started = time.perf_counter()
        generated = sum(1 for _ in generate(seed, count))
        generate_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp:
        path = Path(tmp) / "registry.db"
        engine = db.create_engine(db.sqlite_url(str(path)))
        try:
            store = RegistryStore(engine)
            started = time.perf_counter()
            stored = load(store, seed, count)
            store_seconds = time.perf_counter() - started
            if store.count() != count:
                raise RuntimeError(f"stored {store.count()} residents, expected {count}")
        finally:
            engine.dispose()
        database_bytes = sum(
            os.path.getsize(p) for p in Path(tmp).iterdir() if p.name.startswith("registry.db")
        )
    if generated != count or stored != count:
        raise RuntimeError(f"generated {generated} and stored {stored}, expected {count}")
    result: dict[str, Any] = {
        "count": count,
        "seed": seed,
        "generate_seconds": round(generate_seconds, 3),
        "generate_per_second": round(count / generate_seconds),
        "generate_and_store_seconds": round(store_seconds, 3),
        "generate_and_store_per_second": round(count / store_seconds),
        "database_bytes": database_bytes,
    }
    if echo:
        print_table(result)
    return result


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    table = Table(title=f"registry: {result['count']:,} residents (seed {result['seed']})")
    table.add_column("run")
    table.add_column("seconds", justify="right")
    table.add_column("residents/s", justify="right")
    table.add_row(
        "generate", f"{result['generate_seconds']:.2f}", f"{result['generate_per_second']:,}"
    )
    table.add_row(
        "generate + store (SQLite)",
        f"{result['generate_and_store_seconds']:.2f}",
        f"{result['generate_and_store_per_second']:,}",
    )
    (console or Console()).print(table)
    (console or Console()).print(f"SQLite file: {result['database_bytes'] / 1e6:.1f} MB")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.registry")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    run(args.count, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
