"""Driving the load: closed or open loop, in this process or in several worker processes.

Closed loop: each of N loops sends, waits for the answer, sends again.
Latency is send to answer; with ``expected_interval`` each value is also
back-filled as HdrHistogram's ``record_corrected_value`` does.

Open loop: sends are due on a fixed schedule (``rate.Schedule``) whatever
the answers do, and latency runs from the *due* time, so a stall of the
target counts against every request that should have gone out during it
(coordinated omission corrected at the source). In-flight calls are capped;
at the cap the sender waits, and the wait still counts.

Every run stops by itself: after ``duration`` seconds or ``requests`` measured
requests, and in any case at ``max_seconds``; a call never outlives its
``timeout``. Requests sent during the warm-up are answered and then dropped.

Worker processes are spawned (not forked: gRPC's threads do not survive a
fork), each with its own event loop and channels. They share CLOCK_MONOTONIC
(``time.monotonic`` and the event loop's clock read it), so the parent hands
them one start time and their schedules interleave.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import queue as queue_module
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc

from ops.load import targets
from ops.load.endpoints import Connection, open_channel
from ops.load.rate import Pacer, Schedule
from ops.load.scenario import Pick, Scenario
from ops.load.stats import Outcome, Results, outcome_of, to_us

Mode = Literal["closed", "open"]
CONNECT_TIMEOUT = 15.0
PROGRESS_EVERY = 0.25
START_MARGIN = 0.05  # between the parent's go and the first send, for every worker to wake


@dataclass(frozen=True)
class Plan:
    mode: Mode
    concurrency: int = 1  # closed: in flight, all workers together
    rate: float = 0.0  # open: sends per second, all workers together
    duration: float | None = None  # measured seconds after the warm-up
    requests: int | None = None  # measured requests, all workers together
    warmup: float = 0.0
    max_seconds: float = 600.0  # hard cap from the start, warm-up included
    timeout: float = 10.0  # per call
    expected_interval: float = 0.0  # closed loop: seconds; 0 means no correction
    max_in_flight: int = 10_000  # open loop, per worker
    workers: int = 1
    channels: int = 2  # per caller per worker

    def __post_init__(self) -> None:
        if self.duration is None and self.requests is None:
            raise ValueError("a run needs a duration or a request count")
        if self.mode == "closed" and self.concurrency < 1:
            raise ValueError("closed loop needs a concurrency of at least 1")
        if self.mode == "open" and not self.rate > 0:
            raise ValueError("open loop needs a positive rate")
        if self.workers < 1 or self.channels < 1 or self.max_in_flight < 1:
            raise ValueError("workers, channels and max in flight must be at least 1")


def share(total: int, parts: int, index: int) -> int:
    """Worker ``index``'s part of ``total``; the parts add up to it."""
    return total // parts + (1 if index < total % parts else 0)


@dataclass
class Progress:
    """What a worker has done so far; sent to the parent a few times a second."""

    worker: int = 0
    phase: str = "connecting"
    completed: int = 0  # measured
    unexpected: int = 0
    expected_errors: int = 0
    warmup: int = 0
    in_flight: int = 0
    started: float = 0.0


Invoke = Callable[[Pick], Awaitable[Outcome]]


async def drive(
    plan: Plan,
    worker: int,
    start: float,
    invoke: Invoke,
    picker: Callable[[], Pick],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    progress: Callable[[Progress], None] | None = None,
) -> Results:
    """One worker's share of the plan, from ``start`` on ``clock``."""
    closed = plan.mode == "closed"
    measure_start = start + plan.warmup
    interval_us = to_us(plan.expected_interval) if closed and plan.expected_interval > 0 else 0
    results = Results(measure_start, interval_us)
    hard_stop = start + plan.max_seconds
    end = measure_start + plan.duration if plan.duration is not None else hard_stop
    quota = share(plan.requests, plan.workers, worker) if plan.requests is not None else None
    state = Progress(worker, "warm-up" if plan.warmup > 0 else "measuring", started=start)
    issued = 0

    def may_send(at: float) -> bool:
        nonlocal issued
        if at >= end or at >= hard_stop:
            return False
        if at >= measure_start and quota is not None:
            if issued >= quota:
                return False
            issued += 1
        return True

    async def one(pick: Pick, intended: float) -> None:
        state.in_flight += 1
        sent = clock()
        try:
            outcome = await invoke(pick)
        finally:
            state.in_flight -= 1
        done = clock()
        expected = pick.expect.matches(outcome)
        if intended < measure_start:
            results.warmup += 1
            state.warmup += 1
            return
        if state.phase == "warm-up":
            state.phase = "measuring"
        results.record(pick.klass, intended, sent, done, outcome, expected)
        state.completed += 1
        if not expected:
            state.unexpected += 1
        elif not outcome.ok:
            state.expected_errors += 1

    async def report() -> None:
        while progress is not None:
            progress(state)
            await sleep(PROGRESS_EVERY)

    reporter = asyncio.create_task(report())
    try:
        if closed:

            async def loop() -> None:
                while may_send(now := clock()):
                    await one(picker(), now)

            await asyncio.gather(
                *(loop() for _ in range(share(plan.concurrency, plan.workers, worker)))
            )
        else:
            schedule = Schedule.for_worker(start, plan.rate, worker, plan.workers)
            pacer = Pacer(schedule, clock, sleep)
            room = asyncio.Semaphore(plan.max_in_flight)
            pending: set[asyncio.Task[None]] = set()

            async def released(pick: Pick, due: float) -> None:
                try:
                    await one(pick, due)
                finally:
                    room.release()

            for k in itertools.count():
                if not may_send(schedule.due(k)):
                    break
                due = await pacer.wait(k)
                await room.acquire()
                task = asyncio.create_task(released(picker(), due))
                pending.add(task)
                task.add_done_callback(pending.discard)
            state.phase = "draining"
            await asyncio.gather(*pending)
    finally:
        reporter.cancel()
    state.phase = "done"
    if progress is not None:
        progress(state)
    return results


# -- one worker with real channels ----------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    worker: int
    plan: Plan
    scenario: Scenario
    target: str
    connections: tuple[Connection, ...]


@dataclass
class Channels:
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    stubs: dict[str, Iterator[Any]] = field(default_factory=dict)

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close(None)


async def connect(spec: WorkerSpec, target: targets.Target) -> Channels:
    """Every channel of every caller, connected (TLS handshake done) within CONNECT_TIMEOUT."""
    out = Channels()
    owners: list[Connection] = []
    for conn in spec.connections:
        chans = [open_channel(conn) for _ in range(spec.plan.channels)]
        out.channels += chans
        owners += [conn] * len(chans)
        out.stubs[conn.caller] = itertools.cycle([target.stub(ch) for ch in chans])
    try:
        await asyncio.wait_for(
            asyncio.gather(*(ch.channel_ready() for ch in out.channels)), CONNECT_TIMEOUT
        )
    except TimeoutError:
        ready = grpc.ChannelConnectivity.READY
        stuck = sorted(
            {
                f"{conn.caller}: {conn.address}"
                for conn, ch in zip(owners, out.channels, strict=True)
                if ch.get_state() != ready
            }
        )
        await out.close()
        raise ConnectionError(
            f"no connection within {CONNECT_TIMEOUT:g} s to {', '.join(stuck)}"
            " (not serving, or the TLS handshake failed: wrong CA or certificate)"
        ) from None
    return out


async def run_worker(
    spec: WorkerSpec,
    start_at: Callable[[], Awaitable[float]],
    progress: Callable[[Progress], None] | None,
) -> Results:
    target = targets.target(spec.target)
    channels = await connect(spec, target)
    terminal = f"LOAD-{spec.worker}"
    timeout = spec.plan.timeout

    async def invoke(pick: Pick) -> Outcome:
        try:
            return await target.call(
                next(channels.stubs[pick.entry.requester]), pick, timeout, terminal
            )
        except grpc.aio.AioRpcError as err:
            return outcome_of(err)

    try:
        start = await start_at()
        loop = asyncio.get_running_loop()
        return await drive(
            spec.plan,
            spec.worker,
            start,
            invoke,
            spec.scenario.picker(spec.worker),
            clock=loop.time,
            progress=progress,
        )
    finally:
        await channels.close()


def _process_main(
    spec: WorkerSpec, out: Any, go: Any, start_value: Any
) -> None:  # multiprocessing objects are untyped
    async def start_at() -> float:
        out.put(("ready", spec.worker, None))
        if not await asyncio.to_thread(go.wait, CONNECT_TIMEOUT * 4):
            raise TimeoutError("the parent never said go")
        return float(start_value.value)

    def progress(p: Progress) -> None:
        out.put(("progress", spec.worker, p))

    try:
        results = asyncio.run(run_worker(spec, start_at, progress))
        out.put(("done", spec.worker, results.to_wire()))
    except BaseException as err:
        out.put(("failed", spec.worker, f"{type(err).__name__}: {err}"))


@dataclass
class Run:
    results: Results
    failures: dict[int, str]
    seconds: float  # wall time of the whole run, connecting included


def run(
    plan: Plan,
    scenario: Scenario,
    target: str,
    conns: tuple[Connection, ...],
    progress: Callable[[Progress], None] | None = None,
) -> Run:
    wall = time.monotonic()
    specs = [WorkerSpec(i, plan, scenario, target, conns) for i in range(plan.workers)]
    if plan.workers == 1:

        async def now() -> float:
            return asyncio.get_running_loop().time()

        results = asyncio.run(run_worker(specs[0], now, progress))
        return Run(results, {}, time.monotonic() - wall)
    return _run_processes(plan, specs, progress, wall)


def _run_processes(
    plan: Plan,
    specs: list[WorkerSpec],
    progress: Callable[[Progress], None] | None,
    wall: float,
) -> Run:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    start_value = ctx.Value("d", 0.0)
    processes = [
        ctx.Process(target=_process_main, args=(s, out, go, start_value), name=f"load-{s.worker}")
        for s in specs
    ]
    for p in processes:
        p.start()
    ready: set[int] = set()
    finished: dict[int, Results] = {}
    failures: dict[int, str] = {}
    # Spawning re-imports grpc in each worker; connecting is bounded too.
    deadline = time.monotonic() + CONNECT_TIMEOUT * 3

    def release() -> float:
        """One start time for every worker; the new deadline of the whole run."""
        start_value.value = time.monotonic() + START_MARGIN
        go.set()
        return float(start_value.value) + plan.max_seconds + plan.timeout + 10

    try:
        while len(finished) + len(failures) < len(specs):
            try:
                kind, worker, body = out.get(timeout=0.2)
            except queue_module.Empty:
                kind, worker, body = "", -1, None
            if kind == "ready":
                ready.add(worker)
            elif kind == "progress" and progress is not None:
                progress(body)
            elif kind == "done":
                finished[worker] = Results.from_wire(body)
            elif kind == "failed":
                failures[worker] = str(body)  # the others run on; the report says who failed
            if not go.is_set() and len(ready) + len(failures) == len(specs):
                deadline = release()
            if kind == "":
                # Nothing came for a while: a worker that died without a word is a failure.
                for i, p in enumerate(processes):
                    if p.exitcode is not None and i not in finished and i not in failures:
                        failures[i] = f"exited with code {p.exitcode} without a report"
            if time.monotonic() > deadline:
                for i in range(len(specs)):
                    if i not in finished and i not in failures:
                        failures[i] = "did not finish within the hard cap; stopped"
                break
    finally:
        for p in processes:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
    merged = Results(
        next(iter(finished.values())).measure_start if finished else 0.0,
        next(iter(finished.values())).expected_interval_us if finished else 0,
    )
    for worker in sorted(finished):
        merged.merge(finished[worker])
    return Run(merged, failures, time.monotonic() - wall)
