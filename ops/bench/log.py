"""`make bench-log`: the verifiable log on SQLite (issue 14), side by side with the rows alone.

- **Integration**: log rows written by the hub's own store (``SqlHubLog``) in
  batches, with the tree (rows, salted entries, their Merkle nodes, one
  transaction per batch) and without it (rows only), alternating, on two files
  of the same folder: entries integrated per second, and the ratio.
- **Proofs** per second served from that SQLite store (one query each).
- **Commit to witnessed checkpoint**: rows written one at a time at a steady
  rate through the hub's group commit, a checkpointer signing every
  ``--interval`` seconds and a witness (``renkei witness``, in process over
  loopback HTTP) cosigning; per entry, the time from its commit to the first
  witnessed checkpoint that holds it (p50, p99).

Bounded in count and time; everything on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from hub_server.checkpoints import Checkpointer, NamedWitness
from hub_server.log_store import PENDING, AsyncHubLog, LogEntry, SqlHubLog
from hub_server.log_tree import Leaf, TreeReader, TreeWriter
from hub_server.log_tree import metadata as tree_metadata
from renkei import db
from renkei.tlog import checkpoint, note
from renkei.tlog.witness_client import WitnessClient
from witness import bootstrap as witness_bootstrap
from witness.config import WitnessConfig
from witness.setup import init_witness

ORIGIN = "bench.log.renkei.internal"


def _entry(i: int) -> LogEntry:
    return LogEntry(
        logged_at=datetime.now(UTC),
        legal_basis_item="二十七",
        requester_agency_id="141003",
        provider_agency_id="nenkin",
        info_kind="年金給付関係情報",
        policy_version="sha256:" + "0" * 16,
        person_key=f"{i:064x}",
    )


def integration(folder: Path, count: int, batch: int, rounds: int) -> dict[str, float]:
    """Rows per second with the tree and without it, alternating rounds."""
    repos = {
        tree: SqlHubLog(db.create_engine(db.sqlite_url(str(folder / f"tree-{tree}.db"))), tree=tree)
        for tree in (True, False)
    }
    spent = dict.fromkeys(repos, 0.0)
    per_round = count // rounds
    rows = [(_entry(i), PENDING, "") for i in range(batch)]
    for n in range(rounds):
        for tree in (True, False) if n % 2 == 0 else (False, True):
            started = time.perf_counter()
            for _ in range(per_round // batch):
                repos[tree].begin_many(rows)
            spent[tree] += time.perf_counter() - started
    done = rounds * (per_round // batch) * batch
    for repo in repos.values():
        repo.close()
        repo.engine.dispose()
    return {"with tree": done / spent[True], "rows only": done / spent[False]}


def tree_only(folder: Path, count: int, batch: int) -> float:
    """Entries integrated per second: encoded entries and their nodes, one transaction a batch."""
    engine = db.create_engine(db.sqlite_url(str(folder / "tree-only.db")))
    tree_metadata.create_all(engine)
    writer = TreeWriter()
    leaves = [
        Leaf(i, "exchange", "141003", "nenkin", f"{i:064x}", os.urandom(16) + b"x" * 300)
        for i in range(batch)
    ]
    done = 0
    started = time.perf_counter()
    with engine.connect() as conn:
        while done < count:
            with conn.begin():
                writer.append(conn, leaves)
            writer.committed()
            done += batch
    elapsed = time.perf_counter() - started
    engine.dispose()
    return done / elapsed


def proofs(folder: Path, count: int) -> dict[str, float]:
    reader = TreeReader(db.create_engine(db.sqlite_url(str(folder / "tree-True.db"))))
    size = reader.size()
    rng = random.Random(14)
    out = {}
    started = time.perf_counter()
    for _ in range(count):
        reader.inclusion_proof(rng.randrange(size), size)
    out["inclusion proofs / s"] = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(count):
        reader.consistency_proof(rng.randrange(1, size + 1), size)
    out["consistency proofs / s"] = count / (time.perf_counter() - started)
    return out


async def latency(folder: Path, rate: float, seconds: float, interval: float) -> HdrHistogram:
    """Per entry, ms from its commit to the first witnessed checkpoint holding it."""
    signer = note.Ed25519Signer.generate(ORIGIN)
    vkey = init_witness(
        folder / "witness",
        listen="127.0.0.1:0",
        tls={},
        logs=[(ORIGIN, signer.verifier().verifier_key())],
        name="witness.bench.renkei.internal",
        log_level="WARNING",
    )
    config = replace(
        WitnessConfig.load(folder / "witness" / "witness.toml"), insecure_development=True
    )
    witness = await witness_bootstrap.create_server(config)
    engine = db.create_engine(db.sqlite_url(str(folder / "latency.db")))
    repo = SqlHubLog(engine)
    log = AsyncHubLog(repo)
    client = WitnessClient(f"http://127.0.0.1:{witness.port}")
    assert repo.tree is not None
    tree = repo.tree
    checkpoints = Checkpointer(
        lambda: tree.head,
        TreeReader(engine),
        checkpoint.CheckpointSigner(signer),
        signer.verifier(),
        [NamedWitness("bench", client, checkpoint.parse_cosignature_verifier_key(vkey))],
        ThreadPoolExecutor(max_workers=1),
        interval,
    )
    committed: list[tuple[int, float]] = []  # (leaf index, when durable)
    witnessed: list[tuple[int, float]] = []  # (size, when its cosigned checkpoint was kept)

    target: list[int] = []  # the last leaf written, once writing is over
    caught_up = asyncio.Event()

    async def sign() -> None:
        while True:
            await asyncio.sleep(interval)
            if await checkpoints.step() and checkpoints.witnessed:
                witnessed.append((checkpoints.signed_size, time.monotonic()))
                if target and checkpoints.signed_size > target[0]:
                    caught_up.set()

    async def write(i: int) -> None:
        (receipt,) = await log.begin_many([(_entry(i), PENDING, "")])
        assert receipt.leaf_index is not None
        committed.append((receipt.leaf_index, time.monotonic()))

    signing = asyncio.create_task(sign())
    writes = []
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < seconds:
        writes.append(asyncio.create_task(write(i)))
        i += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*writes)
    target.append(max((leaf for leaf, _ in committed), default=0))
    with contextlib.suppress(TimeoutError):  # entries never witnessed are left out, and said
        await asyncio.wait_for(caught_up.wait(), 10 * interval + 5)
    signing.cancel()
    await checkpoints.close()
    await witness.stop(0)
    log.close()
    histogram = HdrHistogram(1, 60_000_000, 3)  # microseconds
    for leaf, at in committed:
        first = next((when for size, when in witnessed if size > leaf), None)
        if first is not None:
            histogram.record_value(max(1, int((first - at) * 1e6)))
    return histogram


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.log", description=__doc__)
    parser.add_argument("--count", type=int, default=200_000, help="rows per variant")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--proofs", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0, help="rows/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.5, help="checkpoint interval")
    args = parser.parse_args(argv)
    console = Console(width=100, highlight=False)
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        folder = Path(tmp)
        rates = integration(folder, args.count, args.batch_size, args.rounds)
        integrated = tree_only(folder, args.count, args.batch_size)
        made = proofs(folder, args.proofs)
        histogram = asyncio.run(latency(folder, args.rate, args.seconds, args.interval))
    table = Table(title="the verifiable log on SQLite (hub_server.log_tree)")
    table.add_column("what")
    table.add_column("figure", justify="right")
    table.add_row(
        f"entries integrated / s (entries and nodes), batches of {args.batch_size}",
        f"{integrated:,.0f}",
    )
    table.add_row(
        "hub log rows with their entries and tree / s (the hub's whole write)",
        f"{rates['with tree']:,.0f}",
    )
    table.add_row("log rows / s without the tree (same batches)", f"{rates['rows only']:,.0f}")
    table.add_row("ratio with / without", f"{rates['with tree'] / rates['rows only']:.2f}")
    for what, value in made.items():
        table.add_row(what, f"{value:,.0f}")
    table.add_row(
        f"commit -> witnessed checkpoint p50 ms ({histogram.get_total_count()} entries,"
        f" {args.rate:.0f}/s, interval {args.interval} s)",
        f"{histogram.get_value_at_percentile(50) / 1000:.1f}",
    )
    table.add_row(
        "commit -> witnessed checkpoint p99 ms",
        f"{histogram.get_value_at_percentile(99) / 1000:.1f}",
    )
    console.print(table)
    return 0 if histogram.get_total_count() else 1


if __name__ == "__main__":
    raise SystemExit(main())
