"""`make bench-bulk`: persons per second through the hub in bulk mode, beside unary Relay.

One run lays out a fresh deployment, starts the hub and the pension service's
communication server as separate processes, binds a synthetic population of
``--persons`` residents at the city and the pension service through the
running hub (``IssueLinkCode``, as any binding does), then drives the hub from
this process, playing the city's communication server: ``--requests``
``BulkRelay`` calls of every person, ``--concurrency`` in flight, each
answer batch opened with the city's key and checked person by person; and,
as the baseline, ``--unary`` single ``Relay`` calls (32 in flight) of the same
lawful exchange.

The provider's legacy system is, by default, an in-memory table inside the
provider's communication server process (``--legacy memory``), so that what
is measured is the hub path and the provider's own work (correspondence
lookups, log rows, sealing), not a Python JSON-lines stub answering one TCP
line per person. ``--legacy jsonl`` puts the JSON-lines stub process there
instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from comm_server import bootstrap as comm_bootstrap
from comm_server.binding.bind import bind
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.keys import OwnKeys, own_keys
from comm_server.legacy.jsonl_client import canonical_json
from comm_server.seal_info import answer_info, query_info
from comm_server.store import AsyncCommStore, CommStore, open_key_store, open_store
from id_issuer.issuer import IdIssuer
from legacy_stubs.jsonl_records.store import load_records, write_records
from legacy_stubs.registry.resident_code import check_digit
from ops.bench.linkage import cpu_seconds, machine
from ops.deploy import DEMO_AGENCIES, Layout, Settings, init_deployment, pick_endpoints
from ops.processes import ProcessGroup, StartupError, python_module
from renkei import bulk, db, exchange_cert, limits, sealing
from renkei.comm.v1 import comm_pb2
from renkei.errors import NotFound, RenkeiError
from renkei.exchange_cert import ExchangeVerifier, VerifiedPeer
from renkei.grpcutil.client import peer_options
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc
from renkei.runner import serve_until_signalled

CITY, PENSION = "141003", "nenkin"
INFO_KIND, ITEM = "年金給付関係情報", "二十七"  # lawful for the city under the demo policy
CALL_TIMEOUT = 60.0
UNARY_CONCURRENCY = 32
TIME_BUDGET = 120.0  # the load phase stops after this, whatever is left
BIND_CONCURRENCY = 32


# -- the provider's in-memory legacy system ------------------------------------


class MemoryLegacy:
    """A legacy system answering from a dict: what is left to measure is renkei's work."""

    def __init__(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        self._answers = {
            (local, kind): canonical_json(record)
            for local, kinds in records.items()
            for kind, record in kinds.items()
        }

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        answer = self._answers.get((local_person_id, info_kind))
        if answer is None:
            raise NotFound("RECORD_NOT_FOUND", "the legacy system has no such record")
        return answer

    async def lookup_many(
        self, requests: Sequence[tuple[str, str, bytes]], *, timeout: float
    ) -> list[bytes | Exception]:
        """Bulk queries: every person from the dict in one call, no task each."""
        answers = self._answers
        missing = NotFound("RECORD_NOT_FOUND", "the legacy system has no such record")
        return [answers.get((local, kind), missing) for local, kind, _ in requests]

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        """The person file: not needed by bulk queries, so there is none."""
        return []

    async def aclose(self) -> None:
        return None


async def serve_provider(config_path: Path, records: Path, port_file: Path | None) -> None:
    """The real communication server, its legacy client swapped for ``MemoryLegacy``."""
    config = CommConfig.load(config_path)
    legacy = MemoryLegacy(load_records(records))
    await serve_until_signalled(lambda: comm_bootstrap.create_server(config, legacy), port_file)


# -- the population -------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    resident_code: str
    city_id: str
    pension_id: str


def population(count: int) -> list[Person]:
    people = []
    for i in range(count):
        body = f"{7_000_000_000 + i:010d}"
        people.append(Person(body + check_digit(body), f"C{i:07d}", f"P{i:07d}"))
    return people


def pension_records(people: list[Person]) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        p.pension_id: {
            INFO_KIND: {
                "年金種別": "老齢基礎年金",
                "年金額": 700_000 + (i % 100) * 1000,
                "支給開始年月": f"20{10 + i % 15}-04",
            }
        }
        for i, p in enumerate(people)
    }


async def bind_population(layout: Layout, people: list[Person]) -> None:
    """Every person at the city and the pension service, through the running hub."""
    issuer = IdIssuer.load(layout.id_issuer_config)
    for agency_id in (CITY, PENSION):
        config = CommConfig.load(layout.comm_config(agency_id))
        store = open_store(config)
        hub = HubClient(config.hub_endpoint, config.tls)
        slots = asyncio.Semaphore(BIND_CONCURRENCY)
        try:
            await asyncio.gather(
                *(_bind_one(store, hub, slots, issuer, agency_id, p) for p in people)
            )
        finally:
            await hub.close()
            store.close()


async def _bind_one(
    store: AsyncCommStore,
    hub: HubClient,
    slots: asyncio.Semaphore,
    issuer: IdIssuer,
    agency_id: str,
    p: Person,
) -> None:
    local = p.city_id if agency_id == CITY else p.pension_id
    async with slots:
        await bind(store, hub, local, issuer.sealed_id_code(p.resident_code, agency_id))


def link_codes(layout: Layout, agency_id: str, local_ids: list[str]) -> list[str]:
    config = CommConfig.load(layout.comm_config(agency_id))
    store = CommStore(db.create_engine(config.database_url, schema=config.database_schema))
    found = store.link_codes_for(local_ids)
    return [found[lid] for lid in local_ids]


# -- driving --------------------------------------------------------------------


@dataclass
class PathResult:
    name: str
    calls: int = 0
    persons: int = 0
    answered: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    first_error: str = ""

    @property
    def persons_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def cpu_us_per_person(self) -> dict[str, float]:
        return {k: 1e6 * v / self.answered if self.answered else 0.0 for k, v in self.cpu.items()}

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "persons": self.persons,
            "answered": self.answered,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "persons_per_second": round(self.persons_per_second, 1),
            "p50_ms": round(self.latency_ms(0.5), 2),
            "max_ms": round(self.latency_ms(1.0), 2),
            "cpu_us_per_person": {k: round(v, 1) for k, v in self.cpu_us_per_person().items()},
            "first_error": self.first_error,
        }


@dataclass
class Driver:
    stub: hub_pb2_grpc.HubServiceAsyncStub
    unary_stubs: list[hub_pb2_grpc.HubServiceAsyncStub]
    # The provider, from its verified exchange certificate; the city's own keys.
    provider: VerifiedPeer
    city: OwnKeys
    codes: list[str]
    pids: Mapping[str, int]

    def _bulk_request(self, codes: list[str]) -> tuple[hub_pb2.BulkRelayRequest, bytes]:
        nonce = os.urandom(bulk.NONCE_BYTES)
        payload = comm_pb2.BulkQueryPayload(nonce=nonce, queries=[b""] * len(codes))
        sealed = sealing.seal(
            payload.SerializeToString(),
            self.provider.sealing_key,
            bulk.query_info(CITY, PENSION, INFO_KIND, ITEM, len(codes)),
        )
        request = hub_pb2.BulkRelayRequest(
            provider_agency_id=PENSION,
            info_kind=INFO_KIND,
            legal_basis_item=ITEM,
            link_codes=codes,
            sealed_queries=sealed,
            query_signature=self._signed(sealed),
        )
        return request, nonce

    def _signed(self, sealed: bytes) -> bytes:
        return exchange_cert.sign(
            self.city.signing,
            exchange_cert.query_context(CITY, PENSION, INFO_KIND, ITEM, sealed),
        )

    def _open(self, response: hub_pb2.BulkRelayResponse, nonce: bytes) -> tuple[int, int]:
        """(answered, failed) persons; every answer checked against its serial."""
        answered = [
            (i, r.serial) for i, r in enumerate(response.results) if not r.HasField("error")
        ]
        failed = len(response.results) - len(answered)
        if not answered:
            return 0, failed
        exchange_cert.check_signature(
            self.provider,
            response.answer_signature,
            exchange_cert.bulk_answer_context(
                answered, CITY, PENSION, INFO_KIND, ITEM, response.sealed_answers
            ),
            reason="ANSWER_SIGNATURE_INVALID",
            field="answer_signature",
        )
        plaintext = sealing.open_sealed(
            response.sealed_answers,
            self.city.sealing,
            bulk.answer_info(CITY, PENSION, INFO_KIND, ITEM, nonce, answered),
            field="sealed_answers",
        )
        payload = comm_pb2.BulkAnswerPayload.FromString(plaintext)
        got = {(a.index, a.serial) for a in payload.answers if a.answer}
        ok = sum(1 for pair in answered if pair in got)
        return ok, failed + len(answered) - ok

    async def _measure(self, result: PathResult, work: Any) -> PathResult:
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        wall = time.perf_counter()
        await work
        result.seconds = time.perf_counter() - wall
        result.cpu = {name: cpu_seconds(pid) - before[name] for name, pid in self.pids.items()}
        return result

    async def bulk(
        self, requests: int, persons: int, concurrency: int, deadline: float
    ) -> PathResult:
        result = PathResult("bulk")
        codes = self.codes[:persons]
        issued = 0

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.monotonic() < deadline:
                issued += 1
                request, nonce = self._bulk_request(codes)
                started = time.perf_counter()
                try:
                    response = await self.stub.BulkRelay(request, timeout=CALL_TIMEOUT)
                    result.latencies.append(time.perf_counter() - started)
                    ok, failed = self._open(response, nonce)
                except grpc.aio.AioRpcError as err:
                    ok, failed = 0, len(codes)
                    result.first_error = result.first_error or str(err)[:300]
                result.calls += 1
                result.persons += len(codes)
                result.answered += ok
                result.errors += failed

        async def all_workers() -> None:
            await asyncio.gather(*(worker() for _ in range(concurrency)))

        return await self._measure(result, all_workers())

    async def unary(self, calls: int, deadline: float) -> PathResult:
        result = PathResult("unary Relay")
        issued = 0
        sealed = sealing.seal(
            b"", self.provider.sealing_key, query_info(CITY, PENSION, INFO_KIND, ITEM)
        )
        signature = self._signed(sealed)

        async def worker(w: int) -> None:
            nonlocal issued
            stub = self.unary_stubs[w % len(self.unary_stubs)]
            while issued < calls and time.monotonic() < deadline:
                code = self.codes[issued % len(self.codes)]
                issued += 1
                started = time.perf_counter()
                try:
                    response = await stub.Relay(
                        hub_pb2.RelayRequest(
                            provider_agency_id=PENSION,
                            info_kind=INFO_KIND,
                            legal_basis_item=ITEM,
                            link_code=code,
                            sealed_query=sealed,
                            query_signature=signature,
                        ),
                        timeout=CALL_TIMEOUT,
                    )
                    result.latencies.append(time.perf_counter() - started)
                    exchange_cert.check_signature(
                        self.provider,
                        response.answer_signature,
                        exchange_cert.answer_context(
                            response.serial, CITY, PENSION, INFO_KIND, ITEM, response.sealed_answer
                        ),
                        reason="ANSWER_SIGNATURE_INVALID",
                        field="answer_signature",
                    )
                    sealing.open_sealed(
                        response.sealed_answer,
                        self.city.sealing,
                        answer_info(response.serial, CITY, PENSION, INFO_KIND, ITEM),
                        field="sealed_answer",
                    )
                    result.answered += 1
                except (grpc.aio.AioRpcError, RenkeiError) as err:
                    result.errors += 1
                    result.first_error = result.first_error or str(err)[:300]
                result.calls += 1
                result.persons += 1

        async def all_workers() -> None:
            await asyncio.gather(*(worker(w) for w in range(UNARY_CONCURRENCY)))

        return await self._measure(result, all_workers())


async def run_load(
    layout: Layout,
    hub_port: int,
    pids: Mapping[str, int],
    codes: list[str],
    args: argparse.Namespace,
) -> list[PathResult]:
    tls = layout.pki.agency(CITY)
    options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        *peer_options("hub"),
    ]
    channels = [
        grpc.aio.secure_channel(f"127.0.0.1:{hub_port}", tls.channel_credentials(), options=options)
        for _ in range(4)
    ]
    try:
        stubs: list[hub_pb2_grpc.HubServiceAsyncStub] = [
            hub_pb2_grpc.HubServiceStub(ch) for ch in channels
        ]
        agency = await stubs[0].GetAgency(
            hub_pb2.GetAgencyRequest(agency_id=PENSION), timeout=CALL_TIMEOUT
        )
        driver = Driver(
            stubs[0],
            stubs,
            ExchangeVerifier.from_pem_file(layout.pki.agencies_ca.cert).peer(
                bytes(agency.agency.exchange_certificate), PENSION
            ),
            own_keys(open_key_store(CommConfig.load(layout.comm_config(CITY)))),
            codes,
            pids,
        )
        deadline = time.monotonic() + TIME_BUDGET
        await driver.bulk(1, min(len(codes), 500), 1, deadline)  # warm-up
        await driver.unary(min(int(args.unary), 100), deadline)
        results = [
            await driver.bulk(int(args.requests), len(codes), int(args.concurrency), deadline)
        ]
        if int(args.unary) > 0:
            results.append(await driver.unary(int(args.unary), deadline))
        return results
    finally:
        for ch in channels:
            await ch.close(None)


# -- reporting ------------------------------------------------------------------


def report(console: Console, info: Mapping[str, Any], results: list[PathResult]) -> float:
    console.print(
        f"machine: {info['nproc']} CPUs ({info['cpu_model'] or 'unknown model'}),"
        f" {info['platform']}, Python {info['python']}, grpcio {info['grpcio']}"
    )
    names = list(results[0].cpu)
    table = Table(
        "path",
        "calls",
        "persons",
        "errors",
        "persons/s",
        "p50 ms/call",
        "max ms/call",
        *(f"{n} CPU" for n in names),
        title="lawful persons, city -> pension service (CPU: µs per person answered)",
    )
    for r in results:
        cpu = r.cpu_us_per_person()
        table.add_row(
            r.name,
            str(r.calls),
            str(r.persons),
            str(r.errors),
            f"{r.persons_per_second:,.0f}",
            f"{r.latency_ms(0.5):.1f}",
            f"{r.latency_ms(1.0):.1f}",
            *(f"{cpu[n]:.0f}" for n in names),
        )
    console.print(table)
    ratio = 0.0
    if len(results) > 1 and results[1].persons_per_second:
        ratio = results[0].persons_per_second / results[1].persons_per_second
        console.print(f"bulk / unary persons per second: {ratio:.1f}")
    return ratio


# -- the whole run ----------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    console = Console(width=160, highlight=False)
    persons = int(args.persons)
    if not 1 <= persons <= limits.MAX_BULK_ITEMS or int(args.requests) < 1:
        console.print(f"need 1 <= --persons <= {limits.MAX_BULK_ITEMS} and --requests >= 1")
        return 2
    state_dir = Path(args.state_dir)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    layout = init_deployment(
        state_dir, DEMO_AGENCIES, pick_endpoints(DEMO_AGENCIES), Settings(log_level="WARNING")
    )
    people = population(persons)
    records_path = layout.legacy_records(PENSION)
    write_records(records_path, pension_records(people))
    group = ProcessGroup(state_dir / "run")
    started = time.monotonic()
    try:
        hub, hub_port = _start(
            group, "hub", ["ops.cli", "hub", "serve", "--config", str(layout.hub_config)]
        )
        asyncio.run(bind_population(layout, people))
        bound_s = time.monotonic() - started
        pids = {"hub": hub.process.pid}
        provider_config = str(layout.comm_config(PENSION))
        if args.legacy == "jsonl":
            legacy, _ = _start(
                group,
                f"legacy-{PENSION}",
                [
                    "legacy_stubs.jsonl_records",
                    "--records",
                    str(records_path),
                    "--port",
                    str(CommConfig.load(layout.comm_config(PENSION)).legacy.port),
                    "--log-level",
                    "WARNING",
                ],
            )
            comm, _ = _start(
                group,
                f"comm-{PENSION}",
                ["ops.cli", "comm", "serve", "--config", provider_config],
            )
            pids |= {"provider comm": comm.process.pid, "legacy stub": legacy.process.pid}
        else:
            comm, _ = _start(
                group,
                f"comm-{PENSION}",
                [
                    "ops.bench.bulk",
                    "provider",
                    "--config",
                    provider_config,
                    "--records",
                    str(records_path),
                ],
            )
            pids["provider comm"] = comm.process.pid
        pids["driver"] = os.getpid()
        codes = link_codes(layout, CITY, [p.city_id for p in people])
        load_before = os.getloadavg()[0]
        results = asyncio.run(run_load(layout, hub_port, pids, codes, args))
        load_after = os.getloadavg()[0]
    except StartupError as err:
        console.print(f"could not start the bench topology: {err}")
        return 1
    finally:
        exits = group.stop_all()
    info = machine()
    console.print(
        f"load: {args.requests} BulkRelay calls of {persons} persons, {args.concurrency} in"
        f" flight; baseline {args.unary} Relay calls, {UNARY_CONCURRENCY} in flight;"
        f" legacy: {args.legacy}; binding {2 * persons} records took {bound_s:.1f} s;"
        f" load average {load_before:.1f} before, {load_after:.1f} after (neighbours count too)"
    )
    ratio = report(console, info, results)
    for r in results:
        if r.first_error:
            console.print(f"{r.name}: first error: {r.first_error}")
    failed = [name for name, code in exits.items() if code != 0]
    if failed:
        console.print(f"processes that exited non-zero: {exits}; logs in {group.log_dir}")
    if args.output is not None:
        Path(args.output).write_text(
            json.dumps(
                {
                    "machine": info,
                    "settings": {
                        "persons": persons,
                        "requests": int(args.requests),
                        "concurrency": int(args.concurrency),
                        "unary": int(args.unary),
                        "legacy": args.legacy,
                    },
                    "paths": {r.name: r.as_json() for r in results},
                    "ratio_bulk_to_unary": round(ratio, 2),
                    "load_average": [round(load_before, 2), round(load_after, 2)],
                    "exit_codes": exits,
                },
                ensure_ascii=False,
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    bulk_failed = results[0].errors or results[0].answered == 0
    return 1 if bulk_failed or failed else 0


def _start(group: ProcessGroup, name: str, argv: list[str]) -> tuple[Any, int]:
    child = group.start(name, python_module(*argv))
    return child, group.wait_ready(child)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ops.bench.bulk", description=__doc__)
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="the benchmark (the default)")
    prov = sub.add_parser("provider", help="(internal) a provider comm server, in-memory legacy")
    prov.add_argument("--config", type=Path, required=True)
    prov.add_argument("--records", type=Path, required=True)
    prov.add_argument("--port-file", type=Path)
    for q in (p, run):
        q.add_argument("--state-dir", type=Path, default=Path("bench-bulk-state"))
        q.add_argument("--persons", type=int, default=5000, help="persons per BulkRelay call")
        q.add_argument("--requests", type=int, default=20, help="BulkRelay calls")
        q.add_argument("--concurrency", type=int, default=2, help="BulkRelay calls in flight")
        q.add_argument("--unary", type=int, default=2000, help="baseline Relay calls (0: none)")
        q.add_argument("--legacy", choices=("memory", "jsonl"), default="memory")
        q.add_argument("--output", type=Path, help="also write the results as JSON")
    return p


if __name__ == "__main__":
    cli = parser().parse_args()
    if cli.command == "provider":
        asyncio.run(serve_provider(cli.config, cli.records, cli.port_file))
        sys.exit(0)
    sys.exit(main(cli))
