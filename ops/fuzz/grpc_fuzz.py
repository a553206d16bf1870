"""Every RPC of every renkei service, found by walking the descriptors, sent hostile input.

Each input is raw bytes through a generic channel method (no client-side
serializer): random bytes, mutations of a plausible request, a well-formed
message with hostile values, or one with a 100,000-entry repeated field. The
call goes out under the certificate of the caller the service serves (an
agency to the hub, the hub to a provider ...), now and then of another party.

Outcomes that fail the run:
- ``INTERNAL`` or ``UNKNOWN``, whatever their details;
- any other non-OK status without a ``google.rpc.ErrorInfo`` in its rich details,
  except the one the transport makes itself: ``RESOURCE_EXHAUSTED`` for a request
  over the server's message limit (grpc refuses it before any handler);
- an ErrorInfo reason docs/errors.md does not list;
- a status past the client's deadline (``DEADLINE_EXCEEDED`` without ErrorInfo: the
  server did not answer within ``deadline`` seconds, a hang), or a call that took
  far longer than its deadline;
- a refusal in a response (a stream's call, a bulk item) with code INTERNAL or
  UNKNOWN, no reason, or an undocumented one;
- anything a server logs at ERROR or above while serving the input;
- a server whose grpc.health.v1 check is not SERVING after a batch.
"""

from __future__ import annotations

import contextlib
import importlib
import random
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

import renkei
from comm_server.mapping import layout
from ops.demo_data import queries, residents
from ops.fuzz import messages
from ops.fuzz.report import Tally, pack, unpack
from ops.fuzz.world import (
    AGENCY_IDS,
    BINDING,
    HUB,
    ID_ISSUER,
    NUMBERING,
    World,
)
from renkei.comm.v1 import comm_pb2
from renkei.grpcutil import interceptor
from renkei.grpcutil.client import peer_options
from renkei.limits import MAX_MESSAGE_BYTES

REPO = Path(__file__).resolve().parents[2]
ERRORS_PAGE = REPO / "docs" / "errors.md"
# Past the deadline by this much, a call has hung even though grpc gave up on it.
HANG_GRACE = 2.0
# An input answered within the contract but slower than this is kept apart (corpus/slow/).
SLOW_SECONDS = 1.0
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


@dataclass(frozen=True)
class Target:
    server: str  # World.ports key
    service: ServiceDescriptor
    callers: tuple[str, ...]  # the parties this service serves, first the usual one

    def methods(self) -> list[MethodDescriptor]:
        return list(self.service.methods)


def proto_modules() -> list[Any]:
    """Every generated ``renkei/<area>/v1/*_pb2`` module (a new proto file is found too)."""
    found = []
    for area in sorted(p.name for p in Path(renkei.__file__).parent.iterdir() if p.is_dir()):
        folder = Path(renkei.__file__).parent / area / "v1"
        for path in sorted(folder.glob("*_pb2.py")):
            found.append(importlib.import_module(f"renkei.{area}.v1.{path.stem}"))
    return found


def services() -> list[ServiceDescriptor]:
    """Every service of every renkei proto file, from its descriptor."""
    return [s for m in proto_modules() for s in m.DESCRIPTOR.services_by_name.values()]


def targets() -> list[Target]:
    """Each service at each server that serves it, with the callers it serves."""
    agencies = tuple(f"agency:{a}" for a in AGENCY_IDS)
    found: list[Target] = []
    for service in services():
        name = service.full_name
        if name in ("renkei.hub.v1.HubService", "renkei.log.v1.LogService"):
            found.append(Target(HUB, service, agencies))
        elif name == "renkei.hub.v1.PersonalLogService":
            # The portal's service: every agency's certificate is refused (CALLER_NOT_PORTAL).
            found.append(Target(HUB, service, agencies))
        elif name == "renkei.oversight.v1.LegalHoldService":
            found.append(Target(HUB, service, ("oversight", *agencies)))
            found.extend(Target(a, service, ("oversight",)) for a in AGENCY_IDS)
            found.append(Target(BINDING, service, ("oversight",)))
        elif name == "renkei.oversight.v1.AgencyLogService":
            found.extend(Target(a, service, ("oversight", HUB)) for a in AGENCY_IDS)
        elif name == "renkei.oversight.v1.ConsentLogService":
            found.append(Target(BINDING, service, ("oversight", *agencies)))
        elif name in ("renkei.comm.v1.ProviderService", "renkei.comm.v1.DisclosureService"):
            found.extend(Target(a, service, (HUB,)) for a in AGENCY_IDS)
        elif name == "renkei.comm.v1.RequesterService":
            found.extend(Target(a, service, (f"agency:{a}",)) for a in AGENCY_IDS)
        elif name == "renkei.idissuer.v1.IdIssuerService":
            found.append(Target(ID_ISSUER, service, ("service:registry", HUB)))
        elif name == "renkei.numbering.v1.NumberingService":
            found.append(Target(NUMBERING, service, ("service:registry",)))
        elif name == "renkei.registry.v1.BindingService":
            found.append(Target(BINDING, service, agencies))
        elif name == "renkei.registry.v1.ResidentDirectoryService":
            found.append(Target(BINDING, service, ("service:numbering",)))
        else:
            raise LookupError(f"{name}: the fuzzer knows no server for this service")
    return found


def documented_reasons() -> frozenset[str]:
    if not ERRORS_PAGE.exists():
        return frozenset()
    return frozenset(re.findall(r"`([A-Z][A-Z0-9_]+)`", ERRORS_PAGE.read_text(encoding="utf-8")))


def words() -> list[str]:
    """Plausible field values: the deployment's parties, people, kinds and items."""
    people = residents()
    found = {*AGENCY_IDS, "hub", "registry", "S-1", "T-1", "test", "1", "2026", "202604"}
    found.update(layout.INFO_KINDS)
    found.add(layout.PERSON_KIND)
    for person in people:
        found.add(person.resident_code)
        found.update(person.local_ids.values())
    for q in queries(people):
        found.update((q.info_kind, q.item, q.staff_id, q.terminal_id, q.purpose))
    return sorted(found)


def real_requests(server: str, method: MethodDescriptor) -> list[bytes]:
    """Requests a correct client sends ``server``: the demo's queries, as their requester.

    Mutations of these reach past the shape checks: the hub's approval, the
    provider, its legacy system and mapper.
    """
    if server not in AGENCY_IDS or method.containing_service.name != "RequesterService":
        return []
    mine = [q for q in queries(residents()) if q.requester == server]
    if method.name == "Query":
        return [q.query_request().SerializeToString() for q in mine]
    if method.name == "BulkQuery":
        return [q.bulk_query_request().SerializeToString() for q in mine]
    return []


def record_real_requests(world: World) -> dict[str, list[bytes]]:
    """Requests the servers send each other for the demo's queries, by message type.

    Each demo query is asked once (Query, and BulkQuery) of its requester's comm
    server while every server's interceptor notes what it admits: the hub's
    Approve, Relay, Translate ..., the providers' Provide with real sealed
    payloads. Mutations of these reach code that made-up requests never do.
    """
    seen: dict[str, list[bytes]] = {}
    original = interceptor._admit

    def note(message: Any) -> None:
        if isinstance(message, Message):
            found = seen.setdefault(message.DESCRIPTOR.full_name, [])
            if len(found) < 20:
                found.append(message.SerializeToString())

    async def noted(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            note(request)
            yield request

    def admit(request: Any, streams_in: bool, refusal: Any) -> Any:
        admitted = original(request, streams_in, refusal)
        if streams_in:
            return noted(admitted)
        note(admitted)
        return admitted

    interceptor._admit = admit
    try:
        for agency_id in AGENCY_IDS:
            creds = world.tls(f"agency:{agency_id}").channel_credentials()
            target = f"127.0.0.1:{world.ports[agency_id]}"
            options = peer_options(f"agency:{agency_id}")
            with grpc.secure_channel(target, creds, options) as channel:
                for method in comm_pb2.DESCRIPTOR.services_by_name["RequesterService"].methods:
                    path = f"/{method.containing_service.full_name}/{method.name}"
                    call = channel.unary_unary(path, None, None)
                    for request in real_requests(agency_id, method):
                        with contextlib.suppress(grpc.RpcError):
                            call(request, timeout=10)
    finally:
        interceptor._admit = original
    return seen


@dataclass
class Outcome:
    label: str  # OK, or CODE/REASON, or CODE (transport)
    problem: str | None  # why this fails the run; None: within the contract


def judge(
    error: grpc.RpcError | None,
    elapsed: float,
    deadline: float,
    size: int,
    reasons: frozenset[str],
) -> Outcome:
    """Whether a call's outcome keeps the contract (see the module's docstring)."""
    if elapsed > deadline + HANG_GRACE:
        return Outcome("HANG", f"took {elapsed:.1f} s with a {deadline:g} s deadline")
    if error is None:
        return Outcome("OK", None)
    call: Any = error
    code: grpc.StatusCode = call.code()
    try:
        status = rpc_status.from_call(call)
    except ValueError as exc:
        return Outcome(code.name, f"rich status inconsistent: {exc}")
    info = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return Outcome(code.name, f"{code.name}: {call.details()!r}")
    if info is None or not info.reason:
        label = f"{code.name} (transport)"
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and size > MAX_MESSAGE_BYTES:
            return Outcome(label, None)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Outcome("HANG", f"no answer within the {deadline:g} s deadline")
        return Outcome(label, f"{code.name} without ErrorInfo: {call.details()!r}")
    label = f"{code.name}/{info.reason}"
    if reasons and info.reason not in reasons:
        return Outcome(label, f"reason {info.reason} is not in docs/errors.md")
    return Outcome(label, None)


BAD_CODES = {
    grpc.StatusCode.INTERNAL.value[0],
    grpc.StatusCode.UNKNOWN.value[0],
    "INTERNAL",
    "UNKNOWN",
}


def in_band(message: Message, reasons: frozenset[str]) -> str | None:
    """A refusal carried in a response (a stream's or bulk call's per-item error) that
    breaks the contract: INTERNAL or UNKNOWN, no reason, or a reason not documented."""
    fields = {f.name for f in message.DESCRIPTOR.fields}
    if {"code", "reason"} <= fields:
        error: Any = message
        code, reason = error.code, error.reason
        if code in BAD_CODES:
            return f"in-band {code}: {getattr(message, 'message', '')!r}"
        if code and not reason:
            return f"in-band {code} without a reason"
    # ErrorInfo reasons: error_reason(s) anywhere; reason beside a code, or in Approve's
    # answer (elsewhere, as in the registry's MatchOutcome, reason is a sentence for people).
    reason_fields = {"error_reason", "error_reasons"}
    if "code" in fields or message.DESCRIPTOR.full_name == "renkei.hub.v1.ApproveResponse":
        reason_fields.add("reason")
    for f, value in message.ListFields():
        if f.name in reason_fields:
            for reason in value if f.is_repeated else [value]:
                if reason and reasons and reason not in reasons:
                    return f"in-band reason {reason} is not in docs/errors.md"
        elif f.message_type is not None and not f.message_type.GetOptions().map_entry:
            for item in value if f.is_repeated else [value]:
                found = in_band(item, reasons)
                if found:
                    return found
    return None


def judge_responses(
    method: MethodDescriptor, responses: Sequence[bytes], reasons: frozenset[str]
) -> str | None:
    response_type = messages.message_class(method.output_type)
    for raw in responses:
        try:
            response = response_type.FromString(raw)
        except DecodeError:
            return f"a response that is no {method.output_type.full_name}"
        problem = in_band(response, reasons)
        if problem:
            return problem
    return None


class Caller:
    """Blocking channels to every server, one per calling party, made on first use."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._channels: dict[tuple[str, str], grpc.Channel] = {}

    def channel(self, server: str, party: str) -> grpc.Channel:
        key = (server, party)
        if key not in self._channels:
            creds = self.world.tls(party).channel_credentials()
            target = f"127.0.0.1:{self.world.ports[server]}"
            options = [*CHANNEL_OPTIONS, *peer_options(self.world.party_of(server))]
            self._channels[key] = grpc.secure_channel(target, creds, options)
        return self._channels[key]

    def call(
        self,
        server: str,
        party: str,
        method: MethodDescriptor,
        requests: Sequence[bytes],
        deadline: float,
    ) -> tuple[grpc.RpcError | None, float, list[bytes]]:
        """One call with raw request bytes; (its error or None, seconds taken, responses)."""
        channel = self.channel(server, party)
        path = f"/{method.containing_service.full_name}/{method.name}"
        started = time.perf_counter()
        responses: list[bytes] = []
        try:
            if method.client_streaming and method.server_streaming:
                call: Any = channel.stream_stream(path, None, None)
                responses.extend(call(iter(requests), timeout=deadline))
            elif method.client_streaming:
                call = channel.stream_unary(path, None, None)
                responses.append(call(iter(requests), timeout=deadline))
            elif method.server_streaming:
                call = channel.unary_stream(path, None, None)
                responses.extend(call(requests[0], timeout=deadline))
            else:
                call = channel.unary_unary(path, None, None)
                responses.append(call(requests[0], timeout=deadline))
        except grpc.RpcError as err:
            return err, time.perf_counter() - started, responses
        return None, time.perf_counter() - started, responses

    def healthy(self, server: str) -> str | None:
        """None when ``server`` answers SERVING; else what it answered."""
        stub = health_pb2_grpc.HealthStub(self.channel(server, HUB))
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        except grpc.RpcError as err:
            return f"health check failed: {err.code().name}"
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            return f"health is {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}"
        return None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


def _inputs(
    gen: messages.Generator, method: MethodDescriptor, seeds: list[bytes], real: list[bytes]
) -> tuple[str, bytes]:
    """One request's bytes for ``method`` and how they were made."""
    rng = gen.rng
    r = rng.random()
    descriptor = method.input_type
    if r < 0.1:
        return "random", messages.random_bytes(rng)
    if r < 0.3:
        return "mutated", messages.mutate(rng, rng.choice(seeds), seeds)
    if r < 0.65:  # a correct request (real where there are any) with a field or two changed
        base = rng.choice(real) if real and rng.random() < 0.7 else rng.choice(seeds)
        message = messages.message_class(descriptor).FromString(base)
        return "tweaked", gen.tweak(message).SerializeToString()
    if r < 0.9:
        return "hostile", gen.hostile(descriptor).SerializeToString()
    if r < 0.93:
        huge = gen.huge_repeated(descriptor)
        if huge is not None:
            return "huge-repeated", huge
    if real and rng.random() < 0.5:
        return "real", rng.choice(real)
    return "plausible", gen.plausible(descriptor).SerializeToString()


def fuzz_grpc(
    world: World,
    total: int,
    seed: int,
    tally: Tally,
    *,
    deadline: float = 5.0,
    batch: int = 200,
    stop_at: float | None = None,
    only: str | None = None,
) -> None:
    """``total`` inputs spread over every RPC of every target, health after each batch.

    ``only``: just the RPCs whose name (``<server> <Service>/<Method>``) holds it.
    """
    rng = random.Random(seed)
    gen = messages.Generator(rng, words() + world.secrets * 5)
    reasons = documented_reasons()
    caller = Caller(world)
    rpcs = [
        (t, m)
        for t in targets()
        for m in t.methods()
        if only is None or only in f"{t.server} {t.service.name}/{m.name}"
    ]
    if not rpcs:
        raise LookupError(f"no RPC matches {only!r}")
    try:
        # Every RPC gets total // len(rpcs) inputs, the first total % len(rpcs) one more.
        plan = [rpcs[n % len(rpcs)] for n in range(total)]
        rng.shuffle(plan)
        recorded = record_real_requests(world)
        startup = world.errors.take()  # logged starting up and in the warm-up: reported apart
        for line in startup:
            tally.fail("warm-up", f"a server logged an error: {line}", {"kind": "warm-up"})
        real = {
            (t.server, m.full_name): real_requests(t.server, m)
            + recorded.get(m.input_type.full_name, [])
            for t, m in rpcs
        }
        seeds = {
            (t.server, m.full_name): [
                gen.plausible(m.input_type).SerializeToString() for _ in range(8)
            ]
            + real[t.server, m.full_name]
            for t, m in rpcs
        }
        for n, (t, method) in enumerate(plan, 1):
            if stop_at is not None and time.monotonic() > stop_at:
                break
            party = t.callers[0] if len(t.callers) == 1 else rng.choice(t.callers)
            if rng.random() < 0.05:  # the wrong kind of caller now and then
                party = rng.choice((HUB, "agency:nenkin", "service:registry", "service:numbering"))
            requests = []
            how = ""
            for _ in range(rng.randint(1, 3) if method.client_streaming else 1):
                key = (t.server, method.full_name)
                how, raw = _inputs(gen, method, seeds[key], real[key])
                requests.append(raw)
            error, elapsed, responses = caller.call(t.server, party, method, requests, deadline)
            outcome = judge(error, elapsed, deadline, max(map(len, requests)), reasons)
            if outcome.problem is None:
                outcome.problem = judge_responses(method, responses, reasons)
            logged = world.errors.take()
            if outcome.problem is None and logged:
                outcome.problem = f"a server logged an error: {logged[0]}"
            name = f"{t.server} {method.containing_service.name}/{method.name}"
            tally.saw(name, outcome.label)
            tally.took(elapsed, name, f"{how}, {outcome.label}")
            case = {
                "kind": "grpc",
                "server": t.server,
                "method": method.full_name,
                "caller": party,
                "requests": [pack(r) for r in requests],
            }
            if outcome.problem is not None:
                tally.fail(name, f"{outcome.problem} ({how} input as {party})", case)
            elif elapsed > SLOW_SECONDS and "(transport)" not in outcome.label:
                tally.slow.append({**case, "seconds": round(elapsed, 3), "label": outcome.label})
            if n % batch == 0 or n == len(plan):
                for server in sorted({x.server for x in targets()}):
                    problem = caller.healthy(server)
                    if problem is not None:
                        tally.fail(f"{server} health", problem, {"kind": "health"})
                        return
    finally:
        caller.close()


def method_by_name(full_name: str) -> MethodDescriptor:
    for service in services():
        for method in service.methods:
            if method.full_name == full_name:
                return method
    raise LookupError(full_name)


def replay(world: World, case: dict[str, Any], deadline: float = 5.0) -> str | None:
    """A kept gRPC case sent again: None if it now keeps the contract, else the problem."""
    caller = Caller(world)
    try:
        requests = [unpack(r) for r in case["requests"]]
        method = method_by_name(case["method"])
        error, elapsed, responses = caller.call(
            case["server"], case["caller"], method, requests, deadline
        )
        reasons = documented_reasons()
        outcome = judge(error, elapsed, deadline, max(map(len, requests)), reasons)
        if outcome.problem is None:
            outcome.problem = judge_responses(method, responses, reasons)
        logged = world.errors.take()
        if outcome.problem is None and logged:
            outcome.problem = f"a server logged an error: {logged[0]}"
        if outcome.problem is None:
            outcome.problem = caller.healthy(case["server"])
        expected = case.get("expect")  # set by hand when the case was kept: what the fix answers
        if outcome.problem is None and expected and outcome.label != expected:
            outcome.problem = f"answered {outcome.label}, not {expected}"
        return outcome.problem
    finally:
        caller.close()
