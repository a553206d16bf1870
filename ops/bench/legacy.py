"""`make bench-legacy`: answers per second through each kind of legacy system, end to end.

The demo's deployment (ops.demo: every party its own process, mutual TLS):
requester comm -> hub -> provider comm -> legacy stub process -> mapper ->
standard layout, sealed, opened and re-encoded, for the four systems of
docs/legacy-formats.md. Each system gets the same closed-loop load (a fixed
number of requests in flight) for a fixed time, one system after the other,
asking the demo's lawful query through it. Loopback only; bounded in time.
Figures and the machine: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from ops.demo import SYSTEMS, Demo
from ops.demo_data import DemoQuery, queries
from ops.deploy import Layout
from ops.identities import seed_registry
from ops.load.report import machine
from ops.load.stats import DIGITS, HIGHEST_US, LOWEST_US, to_us
from ops.processes import ProcessGroup
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.grpcutil.client import peer_options

# The demo's first four queries: one through each legacy system, by provider.
PROVIDERS = ("141003", "nenkin", "kyoukai-kenpo", "131130")


@dataclass
class SystemResult:
    system: str
    provider: str
    requester: str
    seconds: float = 0.0
    answers: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    histogram: HdrHistogram = field(
        default_factory=lambda: HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    )

    def row(self) -> dict[str, Any]:
        ms = {
            f"p{p:g}_ms": round(self.histogram.get_value_at_percentile(p) / 1000, 2)
            for p in (50, 99)
        }
        return {
            "system": self.system,
            "provider": self.provider,
            "requester": self.requester,
            "answers": self.answers,
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 3),
            "answers_per_second": round(self.answers / self.seconds, 2) if self.seconds else 0.0,
            **ms,
        }


async def _load(
    layout: Layout,
    port: int,
    q: DemoQuery,
    result: SystemResult,
    *,
    concurrency: int,
    seconds: float,
    requests: int | None,
) -> None:
    credentials = layout.pki.agency(q.requester).channel_credentials()
    options = peer_options(f"agency:{q.requester}")
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options) as channel:
        stub = comm_pb2_grpc.RequesterServiceStub(channel)
        request = q.query_request()
        await stub.Query(request, timeout=10)  # warm: keys, connections
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop_at = started + seconds
        budget = [requests]

        async def worker() -> None:
            while loop.time() < stop_at:
                if budget[0] is not None:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                t0 = loop.time()
                try:
                    response = await stub.Query(request, timeout=10)
                except grpc.aio.AioRpcError as err:
                    key = err.code().name
                    result.errors[key] = result.errors.get(key, 0) + 1
                    continue
                if response.state != comm_pb2.ANSWER_STATE_ANSWERED or not response.HasField(
                    "record"
                ):
                    result.errors["NOT_ANSWERED"] = result.errors.get("NOT_ANSWERED", 0) + 1
                    continue
                result.histogram.record_value(to_us(loop.time() - t0))
                result.answers += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = loop.time() - started


def run_bench(
    state_dir: Path,
    *,
    concurrency: int,
    seconds: float,
    requests: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    out = console or Console(highlight=False, width=140)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    demo = Demo(state_dir, Console(quiet=True))
    layout = demo.deploy()
    seed_registry(layout, demo.people, extra=200, seed=2026)
    by_provider = {q.provider: q for q in reversed(queries(demo.people)[:4])}
    results: list[SystemResult] = []
    wall = time.monotonic()
    with ProcessGroup(state_dir / "run") as group:
        out.print("starting the demo's deployment (every party its own process)...")
        demo.start_world(group, layout)
        for provider in PROVIDERS:
            q = by_provider[provider]
            result = SystemResult(SYSTEMS[provider][0], provider, q.requester)
            out.print(f"  {result.system}: {q.requester} -> hub -> {provider} ...")
            asyncio.run(
                _load(
                    layout,
                    demo.endpoints.comm_ports[q.requester],
                    q,
                    result,
                    concurrency=concurrency,
                    seconds=seconds,
                    requests=requests,
                )
            )
            results.append(result)
        exits = group.stop_all()
    rows = [r.row() for r in results]
    fastest = max((r["answers_per_second"] for r in rows), default=0.0)
    for r in rows:
        r["ratio_to_fastest"] = round(r["answers_per_second"] / fastest, 3) if fastest else 0.0
    table = Table(
        "legacy system", "path", "answers", "errors", "answers/s", "p50 ms", "p99 ms", "vs fastest"
    )
    for r in rows:
        table.add_row(
            r["system"],
            f"{r['requester']} -> hub -> {r['provider']}",
            str(r["answers"]),
            str(sum(r["errors"].values())),
            f"{r['answers_per_second']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['ratio_to_fastest']:.2f}",
        )
    out.print(table)
    info = machine()
    out.print(
        f"closed loop, {concurrency} in flight, {seconds:g} s per system; machine:"
        f" {info['nproc']} CPUs, Python {info['python']}, {info['platform']}"
    )
    return {
        "concurrency": concurrency,
        "seconds_per_system": seconds,
        "systems": rows,
        "exits": exits,
        "wall_seconds": round(time.monotonic() - wall, 1),
        "machine": info,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.legacy", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path("bench-state/legacy"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="load per legacy system")
    parser.add_argument("--requests", type=int, help="stop each system after this many")
    parser.add_argument("--output", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = run_bench(
        args.state_dir,
        concurrency=args.concurrency,
        seconds=args.seconds,
        requests=args.requests,
    )
    if args.output is not None:
        args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0 if all(code == 0 for code in report["exits"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
