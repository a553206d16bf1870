"""`make bench`: lawful linkages per second through the hub, beside a bare relay.

One run lays out a fresh deployment, starts the pension service's legacy stub,
its communication server, the hub and the bare relay (``hub_server.bare_relay``)
as separate processes, and drives both relays from this process, playing the
city's communication server: its certificate, its link code, a query sealed to
the provider, every answer opened with the city's key. Rounds alternate
between the two relays so that whatever drifts during the run (page cache,
WAL growth, CPU frequency, neighbours) lands on both alike.

What the ratio measures is the hub's own work per linkage (approve, translate,
two durable log writes) against the same processes and hops doing nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import x25519
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from comm_server.binding import bind_all
from comm_server.config import CommConfig
from comm_server.exchange import answer_info, query_info
from comm_server.keys import sealing_key as agency_sealing_key
from comm_server.store import CommStore, open_key_store
from id_issuer.issuer import IdIssuer
from legacy_stubs.jsonl_records.store import write_records
from renkei import db, sealing
from renkei.demo_data import Resident, legacy_records, residents
from renkei.deploy import DEMO_AGENCIES, Layout, Settings, init_deployment, pick_endpoints
from renkei.errors import RenkeiError
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc
from renkei.processes import ProcessGroup, Started, StartupError, python_module

CITY, PENSION = "141003", "nenkin"
INFO_KIND, ITEM = "年金給付関係情報", "二十七"  # lawful for the city under the demo policy
HUB, BARE = "hub", "bare"
PATH_NAMES = {BARE: "bare relay", HUB: "hub"}
ORDER = (BARE, HUB, BARE, HUB)
WARMUP = 200
CHANNELS = 4
CALL_TIMEOUT = 5.0  # what a comm server gives a whole linkage (query_timeout_seconds)
TIME_BUDGET = 60.0
SERVER_COLUMNS = ("relay", "provider comm", "legacy stub", "driver")
LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3


# -- measuring ---------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (every thread), from /proc."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses; the fields after its last ')' do not.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot, whoever used them."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


@dataclass
class RoundResult:
    path: str
    requests: int
    errors: int
    seconds: float
    histogram: HdrHistogram
    cpu: dict[str, float]
    host_busy_ticks: int = 0
    host_total_ticks: int = 0
    first_error: str = ""


@dataclass
class PathResult:
    path: str
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.rounds)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def histogram(self) -> HdrHistogram:
        merged = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        for r in self.rounds:
            merged.add(r.histogram)
        return merged

    def percentile_ms(self, p: float) -> float:
        return float(self.histogram().get_value_at_percentile(p)) / 1000

    def host_busy(self) -> float:
        """Share of all CPUs busy during this path's rounds, other programs included."""
        total = sum(r.host_total_ticks for r in self.rounds)
        return sum(r.host_busy_ticks for r in self.rounds) / total if total else 0.0

    def host_others(self) -> float:
        """Share of all CPUs busy with anything but the measured processes (kernel included)."""
        total = sum(r.host_total_ticks for r in self.rounds) / os.sysconf("SC_CLK_TCK")
        ours = sum(sum(r.cpu.values()) for r in self.rounds)
        return max(0.0, self.host_busy() - ours / total) if total else 0.0

    def cpu_ms_per_linkage(self) -> dict[str, float]:
        if not self.requests:
            return {name: 0.0 for name in SERVER_COLUMNS}
        return {
            name: 1000 * sum(r.cpu[name] for r in self.rounds) / self.requests
            for name in SERVER_COLUMNS
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "path": PATH_NAMES[self.path],
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "linkages_per_second": round(self.per_second, 1),
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.histogram().get_max_value() / 1000,
            "cpu_ms_per_linkage": {k: round(v, 3) for k, v in self.cpu_ms_per_linkage().items()},
            "host_cpu_busy": round(self.host_busy(), 3),
            "host_cpu_others": round(self.host_others(), 3),
            "rounds": [
                {
                    "requests": r.requests,
                    "errors": r.errors,
                    "seconds": round(r.seconds, 3),
                    "linkages_per_second": round(r.requests / r.seconds, 1) if r.seconds else 0,
                    "p50_ms": r.histogram.get_value_at_percentile(50) / 1000,
                    "first_error": r.first_error,
                }
                for r in self.rounds
            ],
        }


# -- driving -----------------------------------------------------------------


@dataclass
class Target:
    path: str
    pid: int
    stubs: list[hub_pb2_grpc.HubServiceAsyncStub]


@dataclass
class Driver:
    """The city's communication server, reduced to its calls to the relay."""

    request: hub_pb2.RelayRequest
    city_key: x25519.X25519PrivateKey
    concurrency: int
    # CPU is read before and after each round from these, and from the round's relay.
    pids: Mapping[str, int]

    def _opens(self, response: hub_pb2.RelayResponse) -> None:
        # The answer is bound to the serial it came back with; the bare relay's is always 0
        # and it tells the provider 0, so its answers open too and prove that path works.
        sealing.open_sealed(
            response.sealed_answer,
            self.city_key,
            answer_info(response.serial, CITY, PENSION, INFO_KIND, ITEM),
            field="sealed_answer",
        )

    async def round(self, target: Target, count: int, budget: float) -> RoundResult:
        histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        result = RoundResult(target.path, 0, 0, 0.0, histogram, {})
        deadline = time.monotonic() + budget
        issued = 0

        async def worker(stub: hub_pb2_grpc.HubServiceAsyncStub) -> None:
            nonlocal issued
            while issued < count and time.monotonic() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    response = await stub.Relay(self.request, timeout=CALL_TIMEOUT)
                    elapsed = time.perf_counter() - started
                    self._opens(response)
                except (grpc.aio.AioRpcError, RenkeiError) as err:
                    elapsed = time.perf_counter() - started
                    result.errors += 1
                    result.first_error = result.first_error or str(err)[:300]
                result.requests += 1
                histogram.record_value(max(LOWEST_US, round(elapsed * 1_000_000)))

        pids = {**self.pids, "relay": target.pid}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        host_before = host_ticks()
        wall = time.perf_counter()
        stubs = target.stubs
        await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(self.concurrency)))
        result.seconds = time.perf_counter() - wall
        result.cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        host_after = host_ticks()
        result.host_busy_ticks = host_after[0] - host_before[0]
        result.host_total_ticks = host_after[1] - host_before[1]
        return result


def halves(total: int, parts: int) -> Iterator[int]:
    for i in range(parts):
        yield total // parts + (1 if i < total % parts else 0)


async def run_load(
    layout: Layout,
    ports: Mapping[str, int],
    relay_pids: Mapping[str, int],
    pids: Mapping[str, int],
    link_code: str,
    requests: int,
    concurrency: int,
) -> tuple[dict[str, PathResult], dict[str, int]]:
    """Per path: the measured rounds. Also the warm-up errors per path."""
    tls = layout.pki.agency(CITY)
    # A local subchannel pool per channel: otherwise channels with equal arguments share
    # one connection, and "a few channels" would be one.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = {
        path: [
            grpc.aio.secure_channel(
                f"127.0.0.1:{ports[path]}", tls.channel_credentials(), options=options
            )
            for _ in range(CHANNELS)
        ]
        for path in (HUB, BARE)
    }
    try:
        hub_stub: hub_pb2_grpc.HubServiceAsyncStub = hub_pb2_grpc.HubServiceStub(channels[HUB][0])
        # The provider's key comes from the hub's directory, as a comm server gets it.
        agency = await hub_stub.GetAgency(
            hub_pb2.GetAgencyRequest(agency_id=PENSION), timeout=CALL_TIMEOUT
        )
        provider_key = sealing.load_public_key(bytes(agency.agency.sealing_public_key))
        # One sealed query serves every call: sealing it is the requester's work, which
        # is not what is measured, and the provider opens it afresh each time.
        request = hub_pb2.RelayRequest(
            provider_agency_id=PENSION,
            info_kind=INFO_KIND,
            legal_basis_item=ITEM,
            link_code=link_code,
            sealed_query=sealing.seal(
                b"", provider_key, query_info(CITY, PENSION, INFO_KIND, ITEM)
            ),
        )
        driver = Driver(
            request,
            agency_sealing_key(open_key_store(CommConfig.load(layout.comm_config(CITY)))),
            concurrency,
            pids,
        )
        targets = {
            path: Target(
                path,
                relay_pids[path],
                [hub_pb2_grpc.HubServiceStub(ch) for ch in chans],
            )
            for path, chans in channels.items()
        }
        warmup = min(WARMUP, requests)
        plan = [(path, warmup, True) for path in (BARE, HUB)]
        counts = {path: halves(requests, ORDER.count(path)) for path in (HUB, BARE)}
        plan += [(path, next(counts[path]), False) for path in ORDER]
        results = {path: PathResult(path) for path in (HUB, BARE)}
        warmup_errors = dict.fromkeys((HUB, BARE), 0)
        deadline = time.monotonic() + TIME_BUDGET
        for n, (path, count, warming) in enumerate(plan):
            # Each step gets an equal share of what is left, so a slow step cannot starve
            # the path that comes after it.
            budget = max(0.0, deadline - time.monotonic()) / (len(plan) - n)
            outcome = await driver.round(targets[path], count, budget)
            if warming:
                warmup_errors[path] += outcome.errors
            else:
                results[path].rounds.append(outcome)
        return results, warmup_errors
    finally:
        for chans in channels.values():
            for ch in chans:
                await ch.close(None)


# -- setting up --------------------------------------------------------------


def deploy(state_dir: Path, people: list[Resident]) -> Layout:
    if state_dir.exists():
        shutil.rmtree(state_dir)
    layout = init_deployment(
        state_dir, DEMO_AGENCIES, pick_endpoints(DEMO_AGENCIES), Settings(log_level="WARNING")
    )
    for agency_id, records in legacy_records(people).items():
        write_records(layout.legacy_records(agency_id), records)
    return layout


def bind(layout: Layout, people: list[Resident]) -> None:
    """Every demo agency's records, through the running hub, as the demo binds them."""
    issuer = IdIssuer.load(layout.id_issuer_config)
    for agency in DEMO_AGENCIES:
        aid = agency.agency_id
        items = [
            (p.local_ids[aid], issuer.sealed_id_code(p.resident_code, aid))
            for p in people
            if aid in p.local_ids
        ]
        asyncio.run(bind_all(CommConfig.load(layout.comm_config(aid)), items))


def link_code(layout: Layout, agency_id: str, local_person_id: str) -> str:
    config = CommConfig.load(layout.comm_config(agency_id))
    store = CommStore(db.create_engine(config.database_url, schema=config.database_schema))
    code = store.link_code_for(local_person_id)
    if code is None:
        raise RuntimeError(f"{agency_id}: {local_person_id} is not bound")
    return code


def start(group: ProcessGroup, name: str, argv: Sequence[str]) -> tuple[Started, int]:
    child = group.start(name, argv)
    return child, group.wait_ready(child)


# -- reporting ---------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
    }


def report(
    console: Console,
    info: Mapping[str, Any],
    results: Mapping[str, PathResult],
    settings: Mapping[str, Any],
) -> dict[str, float]:
    console.print(
        f"machine: {info['nproc']} CPUs ({info['cpu_model'] or 'unknown model'}),"
        f" {info['platform']}, Python {info['python']}, grpcio {info['grpcio']}"
    )
    console.print(
        f"load: {settings['requests']} requests per path after {settings['warmup']} warm-up,"
        f" {settings['concurrency']} in flight over {CHANNELS} channels,"
        f" rounds {' / '.join(PATH_NAMES[p] for p in ORDER)}; everything on 127.0.0.1"
    )
    table = Table(
        "path",
        "requests",
        "errors",
        "linkages/s",
        "p50 ms",
        "p99 ms",
        "hub/relay CPU",
        "provider comm CPU",
        "legacy stub CPU",
        "driver CPU",
        "host busy (others)",
        title="lawful linkages, city -> pension service (CPU: ms per linkage)",
    )
    for path in (BARE, HUB):
        r = results[path]
        cpu = r.cpu_ms_per_linkage()
        table.add_row(
            PATH_NAMES[path],
            str(r.requests),
            str(r.errors),
            f"{r.per_second:.0f}",
            f"{r.percentile_ms(50):.2f}",
            f"{r.percentile_ms(99):.2f}",
            *(f"{cpu[name]:.2f}" for name in SERVER_COLUMNS),
            f"{r.host_busy():.0%} ({r.host_others():.0%})",
        )
    console.print(table)
    hub, bare = results[HUB], results[BARE]
    bare_p50 = bare.percentile_ms(50)
    ratio = {
        "throughput": hub.per_second / bare.per_second if bare.per_second else 0.0,
        "p50": hub.percentile_ms(50) / bare_p50 if bare_p50 else 0.0,
    }
    console.print(f"hub / bare relay throughput: {ratio['throughput']:.2f}; p50 {ratio['p50']:.2f}")
    return ratio


# -- the whole run -----------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    console = Console(width=150, highlight=False)
    requests, concurrency = int(args.requests), int(args.concurrency)
    if requests < len(ORDER) or concurrency < 1:
        console.print(f"need --requests >= {len(ORDER)} and --concurrency >= 1")
        return 2
    state_dir = Path(args.state_dir)
    people = residents()
    layout = deploy(state_dir, people)
    person = people[0]
    group = ProcessGroup(state_dir / "run")
    try:
        legacy, _ = start(
            group,
            f"legacy-{PENSION}",
            python_module(
                "legacy_stubs.jsonl_records",
                "--records",
                str(layout.legacy_records(PENSION)),
                "--port",
                str(CommConfig.load(layout.comm_config(PENSION)).legacy.port),
                "--log-level",
                "WARNING",
            ),
        )
        hub, hub_port = start(
            group,
            "hub",
            python_module("renkei.cli", "hub", "serve", "--config", str(layout.hub_config)),
        )
        bind(layout, people)
        comm, _ = start(
            group,
            f"comm-{PENSION}",
            python_module(
                "renkei.cli", "comm", "serve", "--config", str(layout.comm_config(PENSION))
            ),
        )
        bare, bare_port = start(
            group,
            "bare-relay",
            python_module(
                "hub_server.bare_relay",
                "--config",
                str(layout.hub_config),
                "--provider",
                PENSION,
                "--link-code",
                link_code(layout, PENSION, person.local_ids[PENSION]),
            ),
        )
        results, warmup_errors = asyncio.run(
            run_load(
                layout,
                {HUB: hub_port, BARE: bare_port},
                {HUB: hub.process.pid, BARE: bare.process.pid},
                {
                    "provider comm": comm.process.pid,
                    "legacy stub": legacy.process.pid,
                    "driver": os.getpid(),
                },
                link_code(layout, CITY, person.local_ids[CITY]),
                requests,
                concurrency,
            )
        )
    except StartupError as err:
        console.print(f"could not start the bench topology: {err}")
        return 1
    finally:
        exits = group.stop_all()

    info = machine()
    settings = {"requests": requests, "concurrency": concurrency, "warmup": min(WARMUP, requests)}
    ratio = report(console, info, results, settings)
    short = [p for p in (HUB, BARE) if results[p].requests < requests]
    if short:
        console.print(
            f"stopped at the {TIME_BUDGET:.0f} s bound before every request was sent:"
            f" {', '.join(PATH_NAMES[p] for p in short)}"
        )
    for path in (HUB, BARE):
        first = next((r.first_error for r in results[path].rounds if r.first_error), "")
        if first or warmup_errors[path]:
            console.print(
                f"{PATH_NAMES[path]}: {results[path].errors} errors,"
                f" {warmup_errors[path]} in warm-up; first: {first}"
            )
    failed = [name for name, code in exits.items() if code != 0]
    if failed:
        console.print(f"processes that exited non-zero: {exits}; logs in {group.log_dir}")
    if args.output is not None:
        Path(args.output).write_text(
            json.dumps(
                {
                    "machine": info,
                    "settings": {**settings, "channels": CHANNELS, "order": list(ORDER)},
                    "paths": {p: results[p].as_json() for p in (HUB, BARE)},
                    "warmup_errors": warmup_errors,
                    "ratio": {k: round(v, 3) for k, v in ratio.items()},
                    "exit_codes": exits,
                },
                ensure_ascii=False,
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    hub_failed = results[HUB].errors or warmup_errors[HUB]
    return 1 if hub_failed or failed else 0


if __name__ == "__main__":
    cli = argparse.Namespace(
        state_dir=Path("bench-state"), requests=3000, concurrency=32, output=None
    )
    sys.exit(main(cli))
