"""`make bench-binding`, end to end: an agency's file bound through every party, as processes.

    python -m ops.bench.binding [--count N] [--batch B] [--ahead A] [--seed S]

The matcher alone is measured in process by ``ops.bench.matcher``
(a million residents). This run takes the same generated register and agency
file (its kinds and shares, documented there) at a smaller size and sends the
file through the real path, ``comm_server.binding.bulk_bind.bind_agency`` (what
``renkei bind`` runs) as the city's communication server:

    batch of B records --MatchRecords--> registry binding service (normalize, match)
                          --SealIdCodeBatch (one call, one HPKE message a batch)--> ID issuer
    the batch's unique matches --IssueLinkCodes (one call a batch)--> hub (opens, derives)
                       --> correspondence table and handles (one SQLite commit a batch)

with the next A batches matched while one is at the hub and the store.

The ID issuer, the hub and the registry's binding service run as separate
processes on loopback (``ops.processes``); the driver is this process.
CPU seconds per process over the run say which one limits the rate.

Precision end to end: each bound record's link code must be the hub's link
code for ITS resident (computed after the run, from the ID issuer's key, as
the integration tests do), and no record about nobody may be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from comm_server.binding.bulk_bind import AHEAD, BindReport, bind_agency
from comm_server.binding.records import LocalRecord
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.store import CommStore
from id_issuer.issuer import IdIssuer
from legacy_stubs.registry.store import RegistryStore
from ops.bench import matcher as inproc
from ops.bench.linkage import cpu_seconds
from ops.deploy import (
    DEMO_AGENCIES,
    Settings,
    init_deployment,
    pick_endpoints,
    registry_engine,
)
from ops.processes import ProcessGroup, python_module
from renkei import db, id_code_batch

CITY = "141003"


def _local(n: int, record: inproc.BenchRecord) -> LocalRecord:
    f = record.facts
    return LocalRecord(
        local_person_id=f"E2E-{n:07d}",
        name=f.name,
        address=f.address,
        birth_date=str(f.birth_date),
        sex=str(f.sex),
        kana=f.kana or "",
        municipality_hint=f.municipality_hint or "",
    )


async def _check_precision(
    config: CommConfig, issuer: IdIssuer, truth: dict[str, str | None]
) -> tuple[int, int]:
    """(bound rightly, bound wrongly), from the city's correspondence table.

    The expected code of each bound record is the hub's link code for its own
    resident: that resident's ID code, made here with the ID issuer's key,
    sealed in batches of 1000 for the city and turned into link codes by the
    hub (the same derivation as a single ``IssueLinkCode``, tested so).
    """
    store = CommStore(db.create_engine(config.database_url, schema=config.database_schema))
    hub = HubClient(
        config.hub_endpoint, config.tls, insecure_development=config.insecure_development
    )
    right = wrong = 0
    try:
        pending: list[tuple[str, str]] = []  # (bound link code, resident code)
        bound_codes = store.link_codes_for(list(truth))
        for local, code in truth.items():
            bound = bound_codes.get(local)
            if bound is None:
                continue
            if code is None:
                wrong += 1
            else:
                pending.append((bound, code))
        for i in range(0, len(pending), id_code_batch.MAX_CODES):
            chunk = pending[i : i + id_code_batch.MAX_CODES]
            sealed = issuer.sealed_batch([issuer.issuer.issue(c) for _, c in chunk], CITY)
            issued, _ = await hub.issue_link_codes(sealed, timeout=30)
            for (bound, _), (link, _) in zip(chunk, issued, strict=True):
                if link == bound:
                    right += 1
                else:
                    wrong += 1
    finally:
        await hub.close()
        store.engine.dispose()
    return right, wrong


def run(
    count: int = 20_000,
    batch: int = 500,
    seed: int = 1,
    *,
    ahead: int = AHEAD,
    state_dir: Path | None = None,
    echo: bool = True,
) -> dict[str, Any]:
    """Deploy, start the parties, bind the file; the figures (and a table if ``echo``)."""
    console = Console()
    own_dir = state_dir is None
    root = Path(tempfile.mkdtemp(prefix="bind-e2e-")) if state_dir is None else state_dir
    if root.exists() and not own_dir:
        shutil.rmtree(root)
    try:
        layout = init_deployment(
            root, DEMO_AGENCIES, pick_endpoints(DEMO_AGENCIES), Settings(log_level="WARNING")
        )
        world = inproc.build_world(count, count, seed)
        engine = registry_engine(layout)
        inproc.store_world(world, RegistryStore(engine))
        engine.dispose()
        records = [_local(n, r) for n, r in enumerate(world.records)]
        truth = {
            rec.local_person_id: r.truth for rec, r in zip(records, world.records, strict=True)
        }
        with ProcessGroup(root / "run") as group:
            parties = {
                "id-issuer": ("id-issuer", layout.id_issuer_config),
                "hub": ("hub", layout.hub_config),
                "registry-binding": ("registry-binding", layout.registry_config),
            }
            started = {
                name: group.start(
                    name, python_module("ops.cli", cmd, "serve", "--config", str(path))
                )
                for name, (cmd, path) in parties.items()
            }
            for child in started.values():
                group.wait_ready(child, timeout=120)
            pids = {name: child.process.pid for name, child in started.items()}
            pids["driver (comm server side)"] = os.getpid()
            config = CommConfig.load(layout.comm_config(CITY))
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started_at = time.perf_counter()
            report: BindReport = asyncio.run(bind_agency(config, records, batch=batch, ahead=ahead))
            seconds = time.perf_counter() - started_at
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            right, wrong = asyncio.run(
                _check_precision(config, IdIssuer.load(layout.id_issuer_config), truth)
            )
            group.stop_all()
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    must = sum(1 for r in world.records if r.kind in inproc.MUST_BIND)
    rate = len(records) / seconds
    result: dict[str, Any] = {
        "records": len(records),
        "batch": batch,
        "ahead": ahead,
        "seconds": round(seconds, 2),
        "records_per_second": round(rate, 1),
        "bound": report.bound,
        "ambiguous": report.ambiguous,
        "none": report.none,
        "invalid": report.invalid,
        "failed": report.failed,
        "bound_right": right,
        "bound_wrong": wrong,
        "recall": right / must if must else 1.0,
        "cpu_seconds": {name: round(v, 2) for name, v in cpu.items()},
        "yokohama_minutes": round(inproc.YOKOHAMA / rate / 60, 1),
        "cpus": os.cpu_count(),
    }
    if echo:
        print_table(result, console)
    if wrong:
        raise inproc.PrecisionError(f"PRECISION BROKEN end to end: {wrong} records bound wrongly")
    return result


def print_table(result: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"binding end to end: {result['records']:,} records, batches of {result['batch']}"
        f", {result['ahead']} matched ahead ({result['cpus']} CPUs)"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("wall time", f"{result['seconds']:.1f} s")
    table.add_row("records / s", f"{result['records_per_second']:,.0f}")
    table.add_row("3.7 M records (Yokohama) at this rate", f"{result['yokohama_minutes']:,} min")
    table.add_row("bound (right / wrong)", f"{result['bound_right']:,} / {result['bound_wrong']}")
    table.add_row("recall (plain, form, moved)", f"{result['recall']:.4%}")
    table.add_row(
        "ambiguous / none / invalid / failed",
        f"{result['ambiguous']:,} / {result['none']:,} / {result['invalid']:,}"
        f" / {result['failed']:,}",
    )
    for name, seconds in result["cpu_seconds"].items():
        share = seconds / result["seconds"]
        table.add_row(f"CPU: {name}", f"{seconds:.1f} s ({share:.0%} of a core)")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.binding")
    parser.add_argument("--count", type=int, default=20_000, help="residents and records")
    parser.add_argument("--batch", type=int, default=500, help="records per MatchRecords call")
    parser.add_argument(
        "--ahead", type=int, default=AHEAD, help="batches matched while one is written"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.count < 100:
        parser.error("--count must be at least 100")
    try:
        run(
            args.count,
            args.batch,
            args.seed,
            state_dir=args.state_dir,
            ahead=args.ahead,
        )
    except inproc.PrecisionError as err:
        Console(stderr=True).print(f"[bold red]{err}[/]")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
