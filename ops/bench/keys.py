"""Benchmarks of the key lifecycle (``make bench-keys``): translations, and re-keying 1M rows.

- Code translations per second: requester link code -> ID code -> provider
  link code, in process (what the hub does per exchange, without the RPC).
- Re-keying a correspondence table: ``rows`` link codes in an agency's SQLite
  store, rotated and re-keyed by the real job against a real hub on loopback
  (mutual TLS), batch by batch, then promoted.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from comm_server.binding.rekey import rekey
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.store import correspondence, open_store
from hub_server import bootstrap as hub_bootstrap
from hub_server import keys as hub_keys
from hub_server.config import HubConfig
from ops.deploy import DEMO_AGENCIES, Endpoints, init_deployment
from renkei import codes

CITY, PENSION = DEMO_AGENCIES[0].agency_id, DEMO_AGENCIES[1].agency_id


def translations_per_second(count: int = 200_000) -> float:
    ring = {a: codes.AgencyKeys(1, {1: codes.new_key()}) for a in (CITY, PENSION)}
    codec = codes.LinkCodec(ring)
    issuer = codes.IdCodeIssuer({1: codes.new_key()}, 1)
    rng = random.Random(7)
    links = [codec.encode(CITY, issuer.issue(f"{rng.randrange(10**11):011d}")) for _ in range(1000)]
    started = time.perf_counter()
    for i in range(count):
        id_code, _ = codec.decode(CITY, links[i % 1000])
        codec.encode(PENSION, id_code)
    return count / (time.perf_counter() - started)


async def rekey_seconds(root: Path, rows: int, batch: int) -> dict[str, float]:
    ids = [a.agency_id for a in DEMO_AGENCIES]
    layout = init_deployment(
        root, DEMO_AGENCIES, Endpoints(0, dict.fromkeys(ids, 0), dict.fromkeys(ids, 1))
    )
    # No ID issuer runs here: this measures a link-code key rotation.
    hub = await hub_bootstrap.create_server(
        replace(HubConfig.load(layout.hub_config), id_issuer_endpoint=None)
    )
    config = CommConfig.load(layout.comm_config(CITY))
    store = open_store(config)
    client = HubClient(f"127.0.0.1:{hub.port}", config.tls)
    try:
        codec = hub.hub.codec
        issuer = codes.IdCodeIssuer({1: codes.new_key()}, 1)
        started = time.perf_counter()
        now = datetime.now(UTC)
        with store.store.engine.begin() as conn:
            for start in range(0, rows, 20_000):
                conn.execute(
                    correspondence.insert(),
                    [
                        {
                            "local_person_id": f"L{n:08d}",
                            "link_code": codec.encode(CITY, issuer.issue(f"{n:011d}")),
                            "key_version": 1,
                            "bound_at": now,
                        }
                        for n in range(start, min(rows, start + 20_000))
                    ],
                )
        load = time.perf_counter() - started
        hub_keys.rotate_link_key(hub.key_admin.store, CITY, timedelta(days=30))
        hub.hub.codec = await hub.key_admin.codec()
        started = time.perf_counter()
        report = await rekey(store, client, batch=batch)
        elapsed = time.perf_counter() - started
        if not report.completed:
            raise RuntimeError(f"re-key refused: {report.refused}")
        with store.store.engine.connect() as conn:
            left = conn.execute(
                sa.select(sa.func.count()).where(correspondence.c.key_version != 2)
            ).scalar()
        if left or report.promoted != rows:
            raise RuntimeError(f"re-key incomplete: {left} rows left, {report.promoted} promoted")
        return {"rows": rows, "load_s": load, "rekey_s": elapsed, "rows_per_s": rows / elapsed}
    finally:
        await client.close()
        store.close()
        await hub.stop(0)


def main(state_dir: Path, rows: int = 1_000_000, batch: int = 1000) -> int:
    import shutil

    console = Console(width=120)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    tps = translations_per_second()
    result = asyncio.run(rekey_seconds(state_dir, rows, batch))
    table = Table("measure", "value", title=f"key lifecycle ({os.cpu_count()} cores)")
    table.add_row("code translations / s (link -> ID -> link, in process)", f"{tps:,.0f}")
    table.add_row(f"re-key {rows:,} rows: table load (s)", f"{result['load_s']:.1f}")
    table.add_row(f"re-key {rows:,} rows: job incl. promote (s)", f"{result['rekey_s']:.1f}")
    table.add_row("re-key rows / s", f"{result['rows_per_s']:,.0f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path("bench-state/keys"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    options = parser.parse_args()
    raise SystemExit(main(options.state_dir, options.rows, options.batch))
