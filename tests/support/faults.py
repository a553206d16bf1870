"""The fault suite's world and load: real processes, closed-loop Query calls, the invariants.

A ``World`` is the demo's city (141003, requester) and pension service (nenkin,
provider), each with its comm server and JSON-lines legacy stub, and the hub:
five processes on loopback over mutual TLS, as ``ops.deploy`` lays them out, on
SQLite files or one PostgreSQL schema per party. ``Load`` drives Query calls
through the city's comm server from a thread, each with its own deadline, and
records every answer. ``check`` asserts issue 12's four invariants over the
three shares once traffic has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import sqlalchemy as sa

from comm_server.binding.bind import bind_all
from comm_server.config import CommConfig
from comm_server.staff_register import Grant
from comm_server.store import CommStore, LogRecord
from hub_server.config import HubConfig
from hub_server.log_store import PENDING, LogRow, SqlHubLog
from id_issuer.issuer import IdIssuer
from legacy_stubs.control import set_faults
from legacy_stubs.jsonl_records.store import write_records
from ops.demo_data import Resident, legacy_records, residents
from ops.deploy import DEMO_AGENCIES, Layout, Settings, init_deployment, pick_endpoints
from ops.processes import ProcessGroup, Started, python_module
from renkei import db
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel as open_channel

CITY, PENSION = "141003", "nenkin"
AGENCIES = tuple(a for a in DEMO_AGENCIES if a.agency_id in (CITY, PENSION))
STAFF = Grant("F-1", ("FT-1",), name="fault suite")
# The city asks the pension service for pension benefits (Annex Table 2, item 二十七).
INFO_KIND, ITEM = "年金給付関係情報", "二十七"
ANSWER_TIMEOUT, QUERY_TIMEOUT = 0.5, 2.0
# The bound: every answer within the caller's deadline plus this.
LATENESS = 0.05
# A deadline this short may end at the caller's own timer before any server answers
# (the round trip alone takes longer under load); a longer one should get a server's.
CLIENT_DEADLINE_ONLY_UNDER = 0.2
# How often the load's loop checks it is running on time.
HEARTBEAT = 0.005
# Hub rows whose caller was never told their serial (see check()).
UNTOLD_HUB_ROWS = frozenset(
    {
        ("CANCELLED", "NOT_RELAYED"),
        ("UNAVAILABLE", "HUB_LOG_UNAVAILABLE"),
        ("INTERRUPTED", "HUB_RESTARTED"),
        # The announcement races the caller's own deadline: a call whose time ran out
        # while its row was being written may end before the serial reaches it.
        ("DEADLINE_EXCEEDED", "DEADLINE_TOO_SHORT"),
        ("CANCELLED", "CALLER_CANCELLED"),
    }
)
# A requester row without a serial is right only when the hub never told one
# (docs/errors.md): a refusal before the hub, or giving up before its answer.
NO_SERIAL_REASONS = frozenset(
    {
        "HUB_DEADLINE_EXCEEDED",
        "QUERY_TIMEOUT",
        "HUB_UNAVAILABLE",
        "DEADLINE_TOO_SHORT",
        # The hub could not write the exchange's first row: there is no serial to tell.
        "HUB_LOG_UNAVAILABLE",
        # The requester's own store stalled before it could ask the hub.
        "REQUESTER_LOG_UNAVAILABLE",
    }
)


@dataclass(frozen=True)
class Answer:
    """One Query call as its caller saw it."""

    started: float
    elapsed: float
    deadline: float
    code: str
    reason: str
    serial: int | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    @property
    def client_deadline(self) -> bool:
        """Ended by the caller's own gRPC deadline (no ErrorInfo: no server said so)."""
        return self.code == "DEADLINE_EXCEEDED" and not self.reason


@dataclass(frozen=True)
class Mark:
    hub_serial: int
    city_rows: int
    pension_rows: int


@dataclass
class World:
    layout: Layout
    group: ProcessGroup
    people: list[Resident]
    schema_prefix: str
    argv: dict[str, list[str]] = field(default_factory=dict)
    running: dict[str, Started] = field(default_factory=dict)

    # -- processes ---------------------------------------------------------

    def start(self, name: str) -> None:
        child = self.group.start(name, self.argv[name])
        self.group.wait_ready(child)
        self.running[name] = child

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, wait: float = 15.0) -> int:
        """Signal one party and wait for it to exit; its exit code."""
        child = self.running.pop(name)
        child.process.send_signal(sig)
        return child.process.wait(wait)

    def restart(self, name: str) -> None:
        if name in self.running:
            self.kill(name)
        self.start(name)

    def heal(self) -> None:
        """Every party running and no legacy fault set: how each scenario begins."""
        for name in self.argv:
            child = self.running.get(name)
            if child is None or child.process.poll() is not None:
                self.running.pop(name, None)
                self.start(name)
        for agency_id in (CITY, PENSION):
            self.legacy(agency_id)
        self.wait_answering()

    def pid(self, name: str) -> int:
        return self.running[name].process.pid

    def port(self, name: str) -> int:
        return int(self.running[name].port_file.read_text())

    def legacy(self, agency_id: str, **faults: int | bool) -> None:
        """Set (or, with no arguments, clear) the faults of an agency's legacy stub."""
        config = CommConfig.load(self.layout.comm_config(agency_id))
        set_faults({"kind": "jsonl", "port": config.legacy.port}, **faults)  # type: ignore[arg-type]

    # -- the shares --------------------------------------------------------

    def hub_engine(self) -> sa.Engine:
        config = HubConfig.load(self.layout.hub_config)
        return db.create_engine(config.database_url, schema=config.database_schema)

    def comm_engine(self, agency_id: str) -> sa.Engine:
        config = CommConfig.load(self.layout.comm_config(agency_id))
        return db.create_engine(config.database_url, schema=config.database_schema)

    def hub_rows(self) -> list[LogRow]:
        engine = self.hub_engine()
        try:
            return SqlHubLog(engine).rows(limit=10**7)
        finally:
            engine.dispose()

    def comm_rows(self, agency_id: str) -> list[LogRecord]:
        engine = self.comm_engine(agency_id)
        try:
            return CommStore(engine).log_rows(limit=10**7)
        finally:
            engine.dispose()

    def mark(self) -> Mark:
        """Where each share ends now: a scenario checks the rows written after."""
        hub = self.hub_rows()
        return Mark(
            max((r.serial for r in hub), default=0),
            len(self.comm_rows(CITY)),
            len(self.comm_rows(PENSION)),
        )

    # -- calls -------------------------------------------------------------

    def channel(self) -> grpc.aio.Channel:
        files = self.layout.pki.agency(CITY)
        target = CommConfig.load(self.layout.comm_config(CITY)).listen
        return open_channel(target, files, peer=f"agency:{CITY}")

    def request(self, n: int) -> comm_pb2.QueryRequest:
        # Two of the three residents have a pension; the pension service never bound
        # the third (its refusal: NOT_FOUND PERSON_NOT_BOUND, under the hub's serial).
        person = self.people[n % len(self.people)]
        return comm_pb2.QueryRequest(
            local_person_id=person.local_ids[CITY],
            provider_agency_id=PENSION,
            info_kind=INFO_KIND,
            legal_basis_item=ITEM,
            purpose="fault suite",
            staff_id=STAFF.staff_id,
            terminal_id=STAFF.terminals[0],
        )

    def wait_answering(self, timeout: float = 20.0) -> None:
        """Until a lawful query is answered OK again (the world recovered)."""
        give_up = time.monotonic() + timeout
        last: Answer | None = None
        while time.monotonic() < give_up:
            last = asyncio.run(self._one(0, 2.0))
            if last.ok:
                return
            time.sleep(0.1)
        raise AssertionError(f"no OK answer within {timeout} s; last: {last}")

    async def _one(self, n: int, timeout: float) -> Answer:
        async with self.channel() as channel:
            return await call(requester_stub(channel), self.request(n), timeout)


def requester_stub(channel: grpc.aio.Channel) -> comm_pb2_grpc.RequesterServiceAsyncStub:
    return comm_pb2_grpc.RequesterServiceStub(channel)


async def call(
    stub: comm_pb2_grpc.RequesterServiceAsyncStub, request: comm_pb2.QueryRequest, timeout: float
) -> Answer:
    start = time.monotonic()
    try:
        response = await stub.Query(request, timeout=timeout)
    except grpc.aio.AioRpcError as err:
        elapsed = time.monotonic() - start
        refusal = from_rpc_error(err, fallback_reason="")
        serial = refusal.metadata.get("serial")
        return Answer(
            start,
            elapsed,
            timeout,
            err.code().name,  # the code on the wire, before from_rpc_error maps INTERNAL
            refusal.reason,
            int(serial) if serial else None,
            err.details() or "",
        )
    return Answer(start, time.monotonic() - start, timeout, "OK", "", response.serial or None)


# -- the world ---------------------------------------------------------------


def deploy(root: Path, database_url: str | None, prefix: str) -> tuple[Layout, list[Resident]]:
    people = residents()
    layout = init_deployment(
        root,
        AGENCIES,
        pick_endpoints(AGENCIES),
        Settings(
            answer_timeout_seconds=ANSWER_TIMEOUT,
            query_timeout_seconds=QUERY_TIMEOUT,
            log_level="WARNING",
            database_url=database_url,
            # One schema per party per run, dropped afterwards (tests/support/databases.py).
            schema_prefix=prefix,
            extra_staff=(STAFF,),
        ),
    )
    for agency_id, records in legacy_records(people).items():
        if agency_id in (CITY, PENSION):
            write_records(layout.legacy_records(agency_id), records)
    return layout, people


@contextlib.contextmanager
def running_world(root: Path, database_url: str | None) -> Iterator[World]:
    prefix = f"faults_{uuid.uuid4().hex[:8]}"
    layout, people = deploy(root / "deployment", database_url, prefix)
    with ProcessGroup(root / "run") as group:
        world = World(layout, group, people, prefix)
        for aid in (CITY, PENSION):
            config = CommConfig.load(layout.comm_config(aid))
            world.argv[f"legacy-{aid}"] = python_module(
                "legacy_stubs.jsonl_records",
                *("--records", str(layout.legacy_records(aid))),
                *("--port", str(config.legacy.port), "--log-level", "WARNING"),
            )
            world.argv[f"comm-{aid}"] = python_module(
                "ops.cli", "comm", "serve", "--config", str(layout.comm_config(aid))
            )
        world.argv["witness"] = python_module(
            "ops.cli", "witness", "serve", "--config", str(layout.witness_config)
        )
        world.argv["hub"] = python_module(
            "ops.cli", "hub", "serve", "--config", str(layout.hub_config)
        )
        for name in (f"legacy-{CITY}", f"legacy-{PENSION}", "witness", "hub"):
            world.start(name)
        sealer = IdIssuer.load(layout.id_issuer_config)
        for aid in (CITY, PENSION):
            items = [
                (p.local_ids[aid], sealer.sealed_id_code(p.resident_code, aid))
                for p in people
                if aid in p.local_ids
            ]
            asyncio.run(bind_all(CommConfig.load(layout.comm_config(aid)), items))
        for aid in (CITY, PENSION):
            world.start(f"comm-{aid}")
        world.wait_answering()
        yield world


# -- load --------------------------------------------------------------------


@dataclass
class Load:
    """Closed-loop Query calls from ``workers`` callers in a thread, until stopped.

    Bounded in count and time: it stops by itself after ``max_calls`` calls or
    ``max_seconds``. ``deadline`` is each call's own, or a function of the call
    number (short deadlines mixed with long ones).
    """

    world: World
    workers: int = 6
    deadline: float | Callable[[int], float] = 1.5
    max_calls: int = 3000
    max_seconds: float = 30.0
    answers: list[Answer] = field(default_factory=list)
    # (due, woke): spans in which the load's own event loop was not running.
    stalls: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self.since = self.world.mark()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Answer]:
        self._stop.set()
        self._thread.join(self.max_seconds + 30)
        assert not self._thread.is_alive(), "the load did not stop"
        return self.answers

    def wait_calls(self, count: int, timeout: float = 20.0) -> None:
        """Until ``count`` more calls were answered (so a fault lands under load)."""
        target = len(self.answers) + count
        give_up = time.monotonic() + timeout
        while len(self.answers) < target and time.monotonic() < give_up:
            time.sleep(0.01)

    def _deadline(self, n: int) -> float:
        return self.deadline(n) if callable(self.deadline) else self.deadline

    async def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        counter = iter(range(self.max_calls))
        async with self.world.channel() as channel:
            stub = requester_stub(channel)

            async def worker() -> None:
                for n in counter:
                    if self._stop.is_set() or time.monotonic() > end:
                        return
                    answer = await call(stub, self.world.request(n), self._deadline(n))
                    self.answers.append(answer)
                    if answer.code == "UNAVAILABLE":
                        await asyncio.sleep(0.02)  # a client backs off (docs/errors.md)

            beat = asyncio.create_task(self._heartbeat())
            await asyncio.gather(*(worker() for _ in range(self.workers)))
            beat.cancel()

    async def _heartbeat(self) -> None:
        """Record when this loop woke late: the caller stalled, not the servers."""
        while True:
            due = time.monotonic() + HEARTBEAT
            await asyncio.sleep(HEARTBEAT)
            woke = time.monotonic()
            if woke - due > HEARTBEAT:
                self.stalls.append((due, woke))

    def stalled(self, a: Answer) -> float:
        """Seconds of ``a``'s call during which the caller's own loop did not run."""
        end = a.started + a.elapsed
        return sum(max(0.0, min(woke, end) - max(due, a.started)) for due, woke in self.stalls)


# -- the invariants ----------------------------------------------------------


def settle(world: World, timeout: float = 10.0) -> list[LogRow]:
    """The hub's rows once none is PENDING (b), or fail naming those left."""
    give_up = time.monotonic() + timeout
    while True:
        rows = world.hub_rows()
        pending = [r.serial for r in rows if r.outcome == PENDING]
        if not pending:
            return rows
        if time.monotonic() > give_up:
            raise AssertionError(f"hub rows still PENDING after traffic stopped: {pending}")
        time.sleep(0.1)


def check(
    world: World,
    load: Load,
    *,
    transport_ok: Callable[[Answer], bool] | None = None,
    requester_rows_kept: bool = True,
) -> None:
    """Issue 12's invariants over the load's answers and the rows written since it began.

    ``transport_ok``: which bare statuses with no ErrorInfo the scenario expects
    from the client's own gRPC stack (its server was down: nobody answered).
    ``requester_rows_kept`` False: the requester's server was killed, so an
    exchange the hub logged may have no requester row at all (it died before
    writing one; nothing was acknowledged).
    """
    answers = load.answers
    assert answers, "no call was made"
    everything = settle(world)
    since = load.since
    hub_serials = {r.serial for r in everything}
    hub = [r for r in everything if r.serial > since.hub_serial]
    requester = [r for r in world.comm_rows(CITY)[since.city_rows :] if r.role == "requester"]
    provider = [r for r in world.comm_rows(PENSION)[since.pension_rows :] if r.role == "provider"]
    problems: list[str] = []

    # (a) nothing acknowledged is missing from any share.
    req_serials = {r.serial for r in requester}
    prov_serials = {r.serial for r in provider}
    ok_hub = {r.serial for r in everything if r.outcome == "OK"}
    ok_req = {r.serial for r in requester if r.outcome == "OK"}
    ok_prov = {r.serial for r in provider if r.outcome == "OK"}
    for a in answers:
        if not a.ok:
            continue
        missing = [
            share
            for share, serials in (("hub", ok_hub), ("requester", ok_req), ("provider", ok_prov))
            if a.serial not in serials
        ]
        if a.serial is None or missing:
            problems.append(f"(a) OK serial {a.serial} missing from {missing or 'its answer'}")

    # (c) every answer within deadline + 50 ms, every refusal with a specific reason.
    for a in answers:
        if a.client_deadline:
            # The caller's own timer ended the call: no server answered, so the time is
            # the caller's, not an answer's (issue 12's one exception). The requester's
            # server keeps 50 ms back (renkei/deadline.py) to log and answer first, but
            # its safety net for a silent hub fires at the caller's deadline itself, and
            # a log write slower than the margin on a busy machine loses the race too.
            # A long deadline ending so is allowed, and said in the run's warnings.
            if a.deadline > CLIENT_DEADLINE_ONLY_UNDER:
                warnings.warn(
                    f"the caller's own {a.deadline:g} s deadline fired before any server"
                    f" answered ({a.elapsed * 1000:.0f} ms)",
                    stacklevel=2,
                )
            continue
        # Time the caller's own loop stood still (this 2-core machine is shared) is
        # not the servers' lateness: it is taken off, and said so when it was not enough.
        stalled = load.stalled(a)
        if a.elapsed - stalled > a.deadline + LATENESS:
            problems.append(
                f"(c) {a.elapsed * 1000:.0f} ms for a {a.deadline * 1000:.0f} ms call"
                f" (the caller stalled {stalled * 1000:.0f} ms of it): {a}"
            )
        if a.ok:
            continue
        if a.code in ("INTERNAL", "UNKNOWN"):
            problems.append(f"(c) {a.code}: {a}")
        elif not a.reason and not (transport_ok is not None and transport_ok(a)):
            problems.append(f"(c) bare {a.code} without a reason: {a}")

    # (d) the three shares joinable by serial.
    for r in requester:
        if r.serial is None:
            if r.reason not in NO_SERIAL_REASONS and r.outcome != "PERMISSION_DENIED":
                problems.append(f"(d) requester row without serial: {r.outcome} {r.reason}")
        elif r.serial not in hub_serials:
            problems.append(f"(d) requester serial {r.serial} not in the hub's share")
    for r in provider:
        if r.serial is None or r.serial not in hub_serials:
            problems.append(f"(d) provider row serial {r.serial} not in the hub's share")
    for h in hub:
        if h.outcome == "OK" and h.serial not in prov_serials:
            problems.append(f"(d) hub OK serial {h.serial} has no provider row")
    if requester_rows_kept:
        # The hub announces a relay's serial once its row is durable (initial metadata),
        # so a hub row joins no requester row only when its caller cannot have been told:
        # the row landed after the caller had gone (closed NOT_RELAYED, or not durable in
        # time), the caller's deadline ended the call as the serial went out (the hub found
        # no time left, or was cancelled), or the hub died between the row and the
        # announcement (closed at the next start). Each such row is matched by a
        # requester row without a serial.
        unjoined = [h for h in hub if h.serial not in req_serials]
        for h in unjoined:
            if (h.outcome, h.reason) not in UNTOLD_HUB_ROWS:
                problems.append(
                    f"(d) hub row {h.serial} {h.outcome} {h.reason} joins no requester row,"
                    " though the hub announced its serial"
                )
        untold = [r for r in requester if r.serial is None and r.reason in NO_SERIAL_REASONS]
        if len(unjoined) > len(untold):
            rows = ", ".join(f"{h.serial} {h.outcome} {h.reason}" for h in unjoined)
            problems.append(
                f"(d) {len(unjoined)} hub rows join no requester row, only {len(untold)}"
                f" requester rows lack a serial: {rows}"
            )
    logged: dict[str, int] = {}
    for r in requester:
        key = f"{r.outcome} {r.reason}{'' if r.serial else ' (no serial)'}"
        logged[key] = logged.get(key, 0) + 1
    assert not problems, summary(problems, answers) + f"\nrequester rows: {logged}"


def summary(problems: list[str], answers: Sequence[Answer]) -> str:
    counts: dict[str, int] = {}
    for a in answers:
        key = f"{a.code} {a.reason}".strip()
        counts[key] = counts.get(key, 0) + 1
    head = "\n".join(problems[:25])
    more = f"\n... and {len(problems) - 25} more" if len(problems) > 25 else ""
    return f"{len(problems)} invariant breaches:\n{head}{more}\nanswers: {counts}"


def outcomes(answers: Sequence[Answer]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in answers:
        key = f"{a.code} {a.reason}".strip()
        counts[key] = counts.get(key, 0) + 1
    return counts
