"""`make bench-linkage` (`renkei bench`): lawful linkages per second, four ways, in one run.

One run lays out a fresh deployment, starts the pension service's legacy stub,
its communication server, the hub, the bare relay (``ops.bench.bare_relay``)
and nginx as separate processes, and drives every path from this process:

- **direct**: the driver calls the provider's ``ProviderService.Provide``
  itself, presenting the hub's certificate (the provider answers only the
  hub) with the provider link code computed in advance and serial 0: the
  provider's work and one hop, no relay at all;
- **bare relay**: ``HubService.Relay`` through a Python relay that does
  nothing but the hops;
- **nginx**: the same ``Provide`` call as direct, through nginx's
  ``grpc_pass`` (mutual TLS on both sides): the cost of a relay hop in C;
- **hub**: ``HubService.Relay`` through the real hub (approve, translate,
  durable log rows and the verifiable log's entries and tree, the sealed
  payload passed through);
- **hub, tree off**: the same hub with ``[log] tree = false`` (rows only, on
  a copy of its database): what the verifiable log costs (issue 14).

The driver plays the city's communication server: its certificate (the
hub's on the direct path), its link code, a query sealed to the provider,
every answer opened with the city's key. Rounds alternate between the paths
(forwards, then backwards) so that whatever drifts during the run lands on
every path alike. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import signal
import sqlite3
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import tomli_w
from cryptography.hazmat.primitives.asymmetric import x25519
from google import protobuf
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from comm_server.binding.bind import bind_all
from comm_server.config import CommConfig
from comm_server.keys import own_keys
from comm_server.seal_info import answer_info, query_info
from comm_server.store import CommStore, open_key_store
from id_issuer.issuer import IdIssuer
from legacy_stubs.jsonl_records.store import write_records
from ops.bench import nginx
from ops.demo_data import Resident, legacy_records, residents
from ops.deploy import (
    DEMO_AGENCIES,
    Layout,
    Settings,
    exchange_certificate_path,
    free_port,
    init_deployment,
    pick_endpoints,
)
from ops.processes import ProcessGroup, Started, StartupError, python_module, tail
from renkei import db, exchange_cert, sealing
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.errors import RenkeiError
from renkei.exchange_cert import ExchangeVerifier, VerifiedPeer
from renkei.grpcutil.client import peer_options
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc

CITY, PENSION = "141003", "nenkin"
INFO_KIND, ITEM = "年金給付関係情報", "二十七"  # lawful for the city under the demo policy
DIRECT, BARE, NGINX, HUB, HUB_NO_TREE = "direct", "bare", "nginx", "hub", "hub_no_tree"
PATHS = (DIRECT, BARE, NGINX, HUB, HUB_NO_TREE)
PATH_NAMES = {
    DIRECT: "direct",
    BARE: "bare relay",
    NGINX: "nginx",
    HUB: "hub",
    HUB_NO_TREE: "hub, tree off",
}
# Forwards then backwards: each path's two rounds sit at mirrored places in the run.
ORDER = (*PATHS, *reversed(PATHS))
WARMUP = 200
CHANNELS = 4
CALL_TIMEOUT = 5.0  # what a comm server gives a whole linkage (query_timeout_seconds)
TIME_BUDGET = 120.0
NGINX_WORKERS = 1  # one process, like each Python relay
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
        ours = sum(sum(r.cpu.values()) for r in self.rounds)  # nginx's workers included
        return max(0.0, self.host_busy() - ours / total) if total else 0.0

    def cpu_ms_per_linkage(self) -> dict[str, float | None]:
        """Per process column; None for a process not on this path (the direct path's relay)."""
        return {
            name: (
                1000 * sum(r.cpu[name] for r in self.rounds) / self.requests
                if self.requests
                else 0.0
            )
            if all(name in r.cpu for r in self.rounds)
            else None
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
            "cpu_ms_per_linkage": {
                k: None if v is None else round(v, 3) for k, v in self.cpu_ms_per_linkage().items()
            },
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

# One call on one path: (serial, sealed answer, the provider's signature over it).
Call = Callable[[], Awaitable[tuple[int, bytes, bytes]]]


@dataclass
class Target:
    path: str
    # The relay's processes (nginx: master and workers; none on the direct path).
    pids: list[int]
    calls: list[Call]


def relay_call(stub: hub_pb2_grpc.HubServiceAsyncStub, request: hub_pb2.RelayRequest) -> Call:
    async def call() -> tuple[int, bytes, bytes]:
        response = await stub.Relay(request, timeout=CALL_TIMEOUT)
        return response.serial, response.sealed_answer, response.answer_signature

    return call


def provide_call(
    stub: comm_pb2_grpc.ProviderServiceAsyncStub, request: comm_pb2.ProvideRequest
) -> Call:
    async def call() -> tuple[int, bytes, bytes]:
        response = await stub.Provide(request, timeout=CALL_TIMEOUT)
        return 0, response.sealed_answer, response.answer_signature

    return call


@dataclass
class Driver:
    """The city's communication server, reduced to its calls on each path."""

    city_key: x25519.X25519PrivateKey
    # The provider, from its exchange certificate: answers are checked against its key.
    provider: VerifiedPeer
    concurrency: int
    # CPU is read before and after each round from these, and from the round's relay.
    pids: Mapping[str, int]

    def _opens(self, serial: int, sealed_answer: bytes, signature: bytes) -> None:
        # The answer is bound to the serial it came back with; off the hub it is always 0
        # and the provider is told 0, so those answers open too and prove the path works.
        # As the city's requester does: the provider's signature first, then the seal.
        exchange_cert.check_signature(
            self.provider,
            signature,
            exchange_cert.answer_context(serial, CITY, PENSION, INFO_KIND, ITEM, sealed_answer),
            reason="ANSWER_SIGNATURE_INVALID",
            field="answer_signature",
        )
        sealing.open_sealed(
            sealed_answer,
            self.city_key,
            answer_info(serial, CITY, PENSION, INFO_KIND, ITEM),
            field="sealed_answer",
        )

    async def round(self, target: Target, count: int, budget: float) -> RoundResult:
        histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        result = RoundResult(target.path, 0, 0, 0.0, histogram, {})
        deadline = time.monotonic() + budget
        issued = 0

        async def worker(call: Call) -> None:
            nonlocal issued
            while issued < count and time.monotonic() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    serial, sealed, signature = await call()
                    elapsed = time.perf_counter() - started
                    self._opens(serial, sealed, signature)
                except (grpc.aio.AioRpcError, RenkeiError) as err:
                    elapsed = time.perf_counter() - started
                    result.errors += 1
                    result.first_error = result.first_error or str(err)[:300]
                result.requests += 1
                histogram.record_value(max(LOWEST_US, round(elapsed * 1_000_000)))

        def cpu() -> dict[str, float]:
            now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
            if target.pids:
                now["relay"] = sum(cpu_seconds(pid) for pid in target.pids)
            return now

        before = cpu()
        host_before = host_ticks()
        wall = time.perf_counter()
        calls = target.calls
        await asyncio.gather(*(worker(calls[i % len(calls)]) for i in range(self.concurrency)))
        result.seconds = time.perf_counter() - wall
        after = cpu()
        result.cpu = {name: after[name] - before[name] for name in after}
        host_after = host_ticks()
        result.host_busy_ticks = host_after[0] - host_before[0]
        result.host_total_ticks = host_after[1] - host_before[1]
        return result


def halves(total: int, parts: int) -> Iterator[int]:
    for i in range(parts):
        yield total // parts + (1 if i < total % parts else 0)


@dataclass(frozen=True)
class Plan:
    """What to drive: per path its port and relay processes; the link codes; the load."""

    ports: Mapping[str, int]
    relay_pids: Mapping[str, list[int]]
    pids: Mapping[str, int]
    city_link_code: str
    provider_link_code: str
    requests: int
    concurrency: int
    time_budget: float


async def run_load(layout: Layout, plan: Plan) -> tuple[dict[str, PathResult], dict[str, int]]:
    """Per path: the measured rounds. Also the warm-up errors per path."""
    paths = [p for p in PATHS if p in plan.ports]
    city_tls, hub_tls = layout.pki.agency(CITY), layout.pki.hub()
    # A local subchannel pool per channel: otherwise channels with equal arguments share
    # one connection, and "a few channels" would be one.
    options = [("grpc.use_local_subchannel_pool", 1)]
    # Direct: the driver stands in for the hub, so it shows the hub's certificate. Every
    # other path ends at something showing the hub's (the relays present the hub's too).
    creds = {p: (hub_tls if p == DIRECT else city_tls).channel_credentials() for p in paths}
    peers = {p: f"agency:{PENSION}" if p == DIRECT else "hub" for p in paths}
    channels = {
        path: [
            grpc.aio.secure_channel(
                f"127.0.0.1:{plan.ports[path]}",
                creds[path],
                options=[*options, *peer_options(peers[path])],
            )
            for _ in range(CHANNELS)
        ]
        for path in paths
    }
    try:
        hub_stub: hub_pb2_grpc.HubServiceAsyncStub = hub_pb2_grpc.HubServiceStub(channels[HUB][0])
        # The provider's exchange certificate comes from the hub's directory and is checked
        # against the agencies' CA, as a comm server gets and checks it.
        agency = await hub_stub.GetAgency(
            hub_pb2.GetAgencyRequest(agency_id=PENSION), timeout=CALL_TIMEOUT
        )
        provider = ExchangeVerifier.from_pem_file(layout.pki.agencies_ca.cert).peer(
            bytes(agency.agency.exchange_certificate), PENSION
        )
        # One sealed and signed query serves every call: sealing and signing it is the
        # requester's work, which is not what is measured; the provider checks the
        # signature and opens the query afresh each time.
        sealed_query = sealing.seal(
            b"", provider.sealing_key, query_info(CITY, PENSION, INFO_KIND, ITEM)
        )
        city = own_keys(open_key_store(CommConfig.load(layout.comm_config(CITY))))
        city_key = city.sealing
        query_signature = exchange_cert.sign(
            city.signing,
            exchange_cert.query_context(CITY, PENSION, INFO_KIND, ITEM, sealed_query),
        )
        relay_request = hub_pb2.RelayRequest(
            provider_agency_id=PENSION,
            info_kind=INFO_KIND,
            legal_basis_item=ITEM,
            link_code=plan.city_link_code,
            sealed_query=sealed_query,
            query_signature=query_signature,
        )
        # What the bare relay sends the provider, made once here for direct and nginx.
        provide_request = comm_pb2.ProvideRequest(
            serial=0,
            requester_agency_id=CITY,
            info_kind=INFO_KIND,
            legal_basis_item=ITEM,
            link_code=plan.provider_link_code,
            sealed_query=sealed_query,
            requester_sealing_public_key=sealing.public_key_bytes(city_key),
            requester_exchange_certificate=exchange_cert.certificate_der(
                exchange_certificate_path(layout, CITY).read_bytes()
            ),
            query_signature=query_signature,
        )

        def calls(path: str) -> list[Call]:
            if path in (HUB, HUB_NO_TREE, BARE):
                return [
                    relay_call(hub_pb2_grpc.HubServiceStub(ch), relay_request)
                    for ch in channels[path]
                ]
            return [
                provide_call(comm_pb2_grpc.ProviderServiceStub(ch), provide_request)
                for ch in channels[path]
            ]

        driver = Driver(city_key, provider, plan.concurrency, plan.pids)
        targets = {
            path: Target(path, list(plan.relay_pids.get(path, [])), calls(path)) for path in paths
        }
        warmup = min(WARMUP, plan.requests)
        steps = [(path, warmup, True) for path in paths]
        order = [p for p in ORDER if p in paths]
        counts = {path: halves(plan.requests, order.count(path)) for path in paths}
        steps += [(path, next(counts[path]), False) for path in order]
        results = {path: PathResult(path) for path in paths}
        warmup_errors = dict.fromkeys(paths, 0)
        deadline = time.monotonic() + plan.time_budget
        for n, (path, count, warming) in enumerate(steps):
            # Each step gets an equal share of what is left, so a slow step cannot starve
            # the paths that come after it.
            budget = max(0.0, deadline - time.monotonic()) / (len(steps) - n)
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


def without_tree(layout: Layout) -> Path:
    """A second hub config: the same keys and directory, its own copy of the database
    (taken before either hub starts), another port, and ``[log] tree = false``."""
    data = tomllib.loads(layout.hub_config.read_text(encoding="utf-8"))
    hub_db = layout.hub_dir / "hub.db"
    if not data["hub"]["database_url"].endswith("/hub.db"):
        raise StartupError("the bench runs its hubs on SQLite")
    shutil.copyfile(hub_db, layout.hub_dir / "hub-no-tree.db")
    data["hub"]["database_url"] = "sqlite:///{config_dir}/hub-no-tree.db"
    data["hub"]["listen"] = f"127.0.0.1:{free_port()}"
    data["log"] = {"tree": False}  # no tree: no checkpoints, witness or tlog-tiles port
    path = layout.hub_dir / "hub-no-tree.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


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


@dataclass
class NginxHop:
    """The nginx path's processes, or why it is skipped."""

    pids: list[int] = field(default_factory=list)
    port: int = 0
    version: str = ""
    skipped: str = ""


def start_nginx(
    group: ProcessGroup, layout: Layout, state_dir: Path, comm_port: int, binary: str | None
) -> NginxHop:
    """nginx in front of the provider, as the hub stands there: its certificate both ways."""
    found = nginx.find_nginx(binary)
    if found is None:
        where = binary or "PATH or /usr/sbin"
        return NginxHop(skipped=f"nginx not found in {where} (apt-get install nginx-light)")
    hop = nginx.Hop(
        listen_port=free_port(),
        upstream_port=comm_port,
        upstream_tls=layout.pki.hub(),
        server_tls=layout.pki.hub(),
        upstream_peer=f"agency:{PENSION}",
        workers=NGINX_WORKERS,
    )
    config = nginx.write_config(hop, state_dir / "nginx")
    child = group.start("nginx", nginx.argv(found, config), port_file_arg=False)
    try:
        nginx.wait_listening(child.process, hop.listen_port)
    except RuntimeError as err:
        raise StartupError(
            f"{err}; {config.parent / 'error.log'}:\n{tail(config.parent / 'error.log')}"
        ) from None
    pid = child.process.pid
    return NginxHop([pid, *nginx.children(pid)], hop.listen_port, nginx.version(found))


# -- reporting ---------------------------------------------------------------


def machine(nginx_version: str = "") -> dict[str, Any]:
    model = ""
    memory_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": protobuf.__version__,
        "sqlite": sqlite3.sqlite_version,
        "nginx": nginx_version,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratios(results: Mapping[str, PathResult]) -> dict[str, float]:
    """hub / <path> for throughput and p50, for every other path that ran."""
    hub = results[HUB]
    out = {}
    for path in (HUB_NO_TREE, BARE, NGINX, DIRECT):
        if path not in results:
            continue
        other = results[path]
        p50 = other.percentile_ms(50)
        out[f"throughput_hub_per_{path}"] = (
            hub.per_second / other.per_second if other.per_second else 0.0
        )
        out[f"p50_hub_per_{path}"] = hub.percentile_ms(50) / p50 if p50 else 0.0
    return out


def report(
    console: Console,
    info: Mapping[str, Any],
    results: Mapping[str, PathResult],
    skipped: Mapping[str, str],
    settings: Mapping[str, Any],
) -> dict[str, float]:
    console.print(
        f"machine: {info['nproc']} CPUs ({info['cpu_model'] or 'unknown model'}),"
        f" {info['memory_gib']} GiB, {info['platform']}; Python {info['python']},"
        f" grpcio {info['grpcio']}, protobuf {info['protobuf']}, SQLite {info['sqlite']},"
        f" nginx {info['nginx'] or '-'}"
    )
    order = [p for p in ORDER if p in results]
    console.print(
        f"load: {settings['requests']} requests per path after {settings['warmup']} warm-up,"
        f" {settings['concurrency']} in flight over {CHANNELS} channels,"
        f" rounds {' / '.join(PATH_NAMES[p] for p in order)}; everything on 127.0.0.1"
    )
    table = Table(
        "path",
        "requests",
        "errors",
        "linkages/s",
        "p50 ms",
        "p99 ms",
        "relay CPU",
        "provider comm CPU",
        "legacy stub CPU",
        "driver CPU",
        "host busy (others)",
        title="lawful linkages, city -> pension service (CPU: ms per linkage)",
    )
    for path in PATHS:
        if path in skipped:
            table.add_row(PATH_NAMES[path], "skipped", *([""] * 9))
            continue
        r = results[path]
        cpu = r.cpu_ms_per_linkage()
        table.add_row(
            PATH_NAMES[path],
            str(r.requests),
            str(r.errors),
            f"{r.per_second:.0f}",
            f"{r.percentile_ms(50):.2f}",
            f"{r.percentile_ms(99):.2f}",
            *(_ms(cpu[name]) for name in SERVER_COLUMNS),
            f"{r.host_busy():.0%} ({r.host_others():.0%})",
        )
    console.print(table)
    for path, reason in skipped.items():
        console.print(f"{PATH_NAMES[path]}: skipped, {reason}")
    ratio = ratios(results)
    for path in (HUB_NO_TREE, BARE, NGINX):
        if f"throughput_hub_per_{path}" in ratio:
            console.print(
                f"hub / {PATH_NAMES[path]} throughput: {ratio[f'throughput_hub_per_{path}']:.2f};"
                f" p50 {ratio[f'p50_hub_per_{path}']:.2f}"
            )
    return ratio


# -- the whole run -----------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(args: argparse.Namespace) -> int:
    console = Console(width=160, highlight=False)
    requests, concurrency = int(args.requests), int(args.concurrency)
    time_budget = float(args.time_budget)
    if requests < 2 or concurrency < 1 or time_budget <= 0:
        console.print("need --requests >= 2, --concurrency >= 1 and --time-budget > 0")
        return 2
    state_dir = Path(args.state_dir)
    people = residents()
    layout = deploy(state_dir, people)
    person = people[0]
    group = ProcessGroup(state_dir / "run")
    skipped: dict[str, str] = {}
    hop = NginxHop()
    # SIGTERM ends the run as Ctrl-C does, through the finally below that stops every child.
    previous = signal.signal(signal.SIGTERM, _interrupt)
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
        no_tree_config = without_tree(layout)
        hub, hub_port = start(
            group,
            "hub",
            python_module("ops.cli", "hub", "serve", "--config", str(layout.hub_config)),
        )
        hub_off, hub_off_port = start(
            group,
            "hub-no-tree",
            python_module("ops.cli", "hub", "serve", "--config", str(no_tree_config)),
        )
        bind(layout, people)
        comm, comm_port = start(
            group,
            f"comm-{PENSION}",
            python_module("ops.cli", "comm", "serve", "--config", str(layout.comm_config(PENSION))),
        )
        provider_code = link_code(layout, PENSION, person.local_ids[PENSION])
        bare, bare_port = start(
            group,
            "bare-relay",
            python_module(
                "ops.bench.bare_relay",
                "--config",
                str(layout.hub_config),
                "--provider",
                PENSION,
                "--link-code",
                provider_code,
            ),
        )
        hop = start_nginx(group, layout, state_dir, comm_port, args.nginx)
        ports = {DIRECT: comm_port, BARE: bare_port, HUB: hub_port, HUB_NO_TREE: hub_off_port}
        relay_pids = {
            BARE: [bare.process.pid],
            HUB: [hub.process.pid],
            HUB_NO_TREE: [hub_off.process.pid],
        }
        if hop.skipped:
            skipped[NGINX] = hop.skipped
        else:
            ports[NGINX], relay_pids[NGINX] = hop.port, hop.pids
        results, warmup_errors = asyncio.run(
            run_load(
                layout,
                Plan(
                    ports=ports,
                    relay_pids=relay_pids,
                    pids={
                        "provider comm": comm.process.pid,
                        "legacy stub": legacy.process.pid,
                        "driver": os.getpid(),
                    },
                    city_link_code=link_code(layout, CITY, person.local_ids[CITY]),
                    provider_link_code=provider_code,
                    requests=requests,
                    concurrency=concurrency,
                    time_budget=time_budget,
                ),
            )
        )
    except StartupError as err:
        console.print(f"could not start the bench topology: {err}")
        return 1
    finally:
        # Also on Ctrl-C, SIGTERM and any error: every child is stopped before leaving.
        signal.signal(signal.SIGTERM, previous)
        exits = group.stop_all()

    info = machine(hop.version)
    settings = {
        "requests": requests,
        "concurrency": concurrency,
        "warmup": min(WARMUP, requests),
        "time_budget_seconds": time_budget,
    }
    ratio = report(console, info, results, skipped, settings)
    short = [p for p in results if results[p].requests < requests]
    if short:
        console.print(
            f"stopped at the {time_budget:.0f} s bound before every request was sent:"
            f" {', '.join(PATH_NAMES[p] for p in short)}"
        )
    for path in results:
        first = next((r.first_error for r in results[path].rounds if r.first_error), "")
        if first or warmup_errors[path]:
            console.print(
                f"{PATH_NAMES[path]}: {results[path].errors} errors,"
                f" {warmup_errors[path]} in warm-up; first: {first}"
            )
    failed = [name for name, code in exits.items() if code != 0]
    if failed:
        console.print(f"processes that exited non-zero: {exits}; logs in {group.log_dir}")
    output = Path(args.output) if args.output is not None else state_dir / "linkage.json"
    paths: dict[str, Any] = {p: results[p].as_json() for p in results}
    paths.update({p: {"path": PATH_NAMES[p], "skipped": why} for p, why in skipped.items()})
    output.write_text(
        json.dumps(
            {
                "machine": info,
                "settings": {
                    **settings,
                    "channels": CHANNELS,
                    "nginx_workers": NGINX_WORKERS,
                    "order": [p for p in ORDER if p in results],
                },
                "paths": paths,
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
    console.print(f"JSON: {output}")
    hub_failed = results[HUB].errors or warmup_errors[HUB]
    return 1 if hub_failed or failed else 0


if __name__ == "__main__":
    cli = argparse.Namespace(
        state_dir=Path("bench-state"),
        requests=3000,
        concurrency=32,
        output=None,
        time_budget=TIME_BUDGET,
        nginx=None,
    )
    sys.exit(main(cli))
