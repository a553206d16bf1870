"""Benchmark of the verifiable log's Merkle tree (issue 14), in process, no database.

- Leaves integrated per second: entries hashed (SHA-256 via hashlib) and
  appended to a CompactRange over a MemoryHashStore in batches, every completed
  node written to the store, the new root computed after each batch: the
  hashing work the hub adds per batch, without SQL.
- Proofs per second from that store: inclusion proofs of random leaves and
  consistency proofs between random sizes, each with one batched store read.
- Verifications per second of those proofs.

Not wired to make yet (``python -m ops.bench.tlog``); the SQL-backed figures of
issue 14's ``make bench-log`` come with the store.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from rich.console import Console
from rich.table import Table

from renkei.tlog import merkle


def integrate(count: int, batch: int) -> tuple[float, merkle.MemoryHashStore]:
    """Leaves per second, and the store that the proof benchmarks read."""
    entries = [os.urandom(96) for _ in range(count)]  # about the size of a salted log entry
    store = merkle.MemoryHashStore()
    tree = merkle.CompactRange(store)
    started = time.perf_counter()
    for at in range(0, count, batch):
        tree.append([merkle.leaf_hash(e) for e in entries[at : at + batch]])
        tree.root()
    elapsed = time.perf_counter() - started
    return count / elapsed, store


def proofs(store: merkle.MemoryHashStore, size: int, count: int) -> dict[str, float]:
    rng = random.Random(14)
    root = merkle.stored_root(store, size)
    leaves = store.get_hashes([(0, i) for i in range(size)])
    out: dict[str, float] = {}

    picks = [rng.randrange(size) for _ in range(count)]
    started = time.perf_counter()
    made = [merkle.stored_inclusion_proof(store, i, size) for i in picks]
    out["inclusion proofs / s"] = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for i, p in zip(picks, made, strict=True):
        merkle.verify_inclusion(leaves[i], i, size, p, root)
    out["inclusion verifications / s"] = count / (time.perf_counter() - started)

    olds = [rng.randrange(1, size + 1) for _ in range(count)]
    started = time.perf_counter()
    made = [merkle.stored_consistency_proof(store, m, size) for m in olds]
    out["consistency proofs / s"] = count / (time.perf_counter() - started)
    old_roots = {m: merkle.stored_root(store, m) for m in olds}
    started = time.perf_counter()
    for m, p in zip(olds, made, strict=True):
        merkle.verify_consistency(m, size, old_roots[m], root, p)
    out["consistency verifications / s"] = count / (time.perf_counter() - started)
    return out


def run(count: int, batch: int, proof_count: int) -> dict[str, float]:
    rate, store = integrate(count, batch)
    figures = {f"leaves integrated / s (batches of {batch})": rate}
    figures.update(proofs(store, count, proof_count))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.tlog", description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000, help="leaves in the tree")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--proofs", type=int, default=20_000)
    args = parser.parse_args(argv)
    figures = run(args.count, args.batch_size, args.proofs)
    table = Table(title=f"Merkle tree of {args.count:,} leaves, in memory (renkei.tlog.merkle)")
    table.add_column("what")
    table.add_column("per second", justify="right")
    for what, value in figures.items():
        table.add_row(what, f"{value:,.0f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
