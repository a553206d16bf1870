"""renkei load's closed and open loops on virtual time: what is sent, when, and what is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hdrh.histogram import HdrHistogram
from support.virtual_time import run_virtual

from ops.load.runner import Plan, drive
from ops.load.scenario import Entry, Pick, Scenario
from ops.load.stats import OK, Outcome, Results, encode, new_histogram

SCENARIO = Scenario("test", (Entry("141003", "nenkin", "kind", "item"),))


def histogram_of(values_us: list[int]) -> HdrHistogram:
    h = new_histogram()
    for v in values_us:
        h.record_value(v)
    return h


def run(
    plan: Plan, answer: Callable[[float], float], worker: int = 0
) -> tuple[Results, list[float]]:
    """Drive ``plan`` against a fake target answering a call sent at t after ``answer(t)`` s."""
    sent: list[float] = []

    async def main() -> Results:
        loop = asyncio.get_running_loop()

        async def invoke(pick: Pick) -> Outcome:
            now = loop.time()
            sent.append(now)
            await asyncio.sleep(answer(now))
            return Outcome(OK)

        return await drive(plan, worker, 0.0, invoke, SCENARIO.picker(worker), clock=loop.time)

    return run_virtual(main()), sent


def stall(start: float, end: float, normal: float) -> Callable[[float], float]:
    """A target frozen from ``start`` to ``end``: what is sent then is answered at ``end``."""
    return lambda t: end - t if start <= t < end else normal


def test_open_loop_counts_a_stall_against_every_request_due_during_it() -> None:
    plan = Plan("open", rate=100.0, duration=0.3)  # due every 10 ms: 0.00 .. 0.29

    results, sent = run(plan, stall(0.045, 0.15, 0.001))

    assert len(sent) == 30
    # By hand: sends due at 0.05 .. 0.14 wait for 0.15, i.e. 100, 90, ..., 10 ms;
    # the other 20 are answered in 1 ms.
    expected = histogram_of([1000] * 20 + [10_000 * i for i in range(1, 11)])
    assert encode(results.histograms["lawful"]) == encode(expected)


def test_closed_loop_hides_a_stall_unless_corrected() -> None:
    # One request in flight, answered in 1 ms, but the one sent at 50 ms waits until 150 ms.
    target = stall(0.0495, 0.15, 0.001)
    plain = Plan("closed", concurrency=1, duration=0.2)
    corrected = Plan("closed", concurrency=1, duration=0.2, expected_interval=0.01)

    omitted, sent = run(plain, target)
    back_filled, _ = run(corrected, target)

    fast = len(sent) - 1
    # Coordinated omission: the stall is one value among many fast ones.
    assert encode(omitted.histograms["lawful"]) == encode(histogram_of([1000] * fast + [100_000]))
    # Corrected with a 10 ms expected interval: 100, 90, ..., 10 ms, as HdrHistogram does it.
    assert encode(back_filled.histograms["lawful"]) == encode(
        histogram_of([1000] * fast + [10_000 * i for i in range(1, 11)])
    )
    assert back_filled.completed == omitted.completed == len(sent)


def test_open_loop_sends_exactly_the_planned_count_and_leaves_the_warm_up_out() -> None:
    plan = Plan("open", rate=1000.0, duration=2.0, warmup=0.5)

    results, sent = run(plan, lambda t: 0.002)

    assert len(sent) == 2500  # due at k / 1000 s for every k with k / 1000 < 2.5
    assert results.warmup == 500
    assert results.completed == 2000
    assert encode(results.overall()) == encode(histogram_of([2000] * 2000))
    assert results.measure_start == 0.5
    # By completion time, 2 ms after sending: the last ones land in a third second.
    assert sorted(results.seconds) == [0, 1, 2]
    assert sum(s.completed for s in results.seconds.values()) == 2000


def test_closed_loop_request_count_after_warm_up() -> None:
    # Times in binary fractions of a second, so that sums of them are exact.
    plan = Plan("closed", concurrency=3, requests=50, warmup=0.125)

    results, sent = run(plan, lambda t: 0.015625)

    # Three loops send at 0, 1/64, ..., 7/64 s during the warm-up, then 50 measured in all.
    assert results.warmup == 24
    assert results.completed == 50
    assert len(sent) == 74


def test_two_workers_share_a_request_count() -> None:
    plan = Plan("closed", concurrency=4, requests=41, workers=2)

    first, _ = run(plan, lambda t: 0.01, worker=0)
    second, _ = run(plan, lambda t: 0.01, worker=1)

    assert (first.completed, second.completed) == (21, 20)


def test_the_hard_cap_stops_a_run_whatever_its_duration() -> None:
    plan = Plan("closed", concurrency=2, duration=1000.0, max_seconds=1.0)

    results, sent = run(plan, lambda t: 0.125)

    assert max(sent) < 1.0
    assert results.completed == len(sent) == 16


def test_open_loop_at_the_in_flight_cap_still_counts_from_the_due_time() -> None:
    # 1000/s offered, 10 ms per call, at most 2 in flight: the sender falls behind,
    # and every latency includes the wait for room.
    plan = Plan("open", rate=1000.0, requests=20, max_in_flight=2)

    results, sent = run(plan, lambda t: 0.01)

    assert len(sent) == 20
    # By hand: sends 2j and 2j+1 (due at 2j and 2j+1 ms) go out when pair j-1 is answered,
    # at 10j and 10j+1 ms, and are answered 10 ms later: 10 + 8j ms after their due times.
    expected = histogram_of([(10 + 8 * j) * 1000 for j in range(10) for _ in range(2)])
    assert encode(results.overall()) == encode(expected)
