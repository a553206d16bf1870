"""renkei load's open-loop schedule: exactly the planned send times, and no drift."""

from __future__ import annotations

import asyncio
import re

import pytest

from ops.load.rate import Pacer, Schedule


def test_the_schedule_is_start_plus_k_over_rate_exactly() -> None:
    schedule = Schedule(start=12_345.5, rate=250.0)
    for k in range(100_000):
        assert schedule.due(k) == 12_345.5 + k / 250.0


def test_worker_schedules_interleave_into_the_single_schedule() -> None:
    start, rate, workers = 7.25, 1000.0, 3
    per_worker = [Schedule.for_worker(start, rate, w, workers) for w in range(workers)]
    due = sorted(s.due(k) for s in per_worker for k in range(1000))

    assert due == [start + j / rate for j in range(3000)]


@pytest.mark.parametrize(
    ("first", "stride", "rate", "message"),
    [
        (0, 0, 1.0, "worker 0 of 0 is not a worker"),
        (3, 3, 1.0, "worker 3 of 3 is not a worker"),
        (0, 1, 0.0, "rate must be positive, got 0.0"),
    ],
)
def test_a_schedule_refuses_impossible_workers_and_rates(
    first: int, stride: int, rate: float, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Schedule(0.0, rate, first, stride)


class LateClock:
    """A fake clock whose every sleep wakes ``late`` seconds after it was asked to."""

    def __init__(self, start: float, late: float) -> None:
        self.now = start
        self.late = late
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.late


def test_late_wake_ups_do_not_drift_over_many_intervals() -> None:
    clock = LateClock(start=100.0, late=0.0004)
    schedule = Schedule(100.0, 500.0)  # every 2 ms; each wake-up 0.4 ms late
    pacer = Pacer(schedule, clock, clock.sleep)

    async def run() -> list[tuple[float, float]]:
        sends = []
        for k in range(20_000):
            due = await pacer.wait(k)
            sends.append((due, clock()))
        return sends

    sends = asyncio.run(run())

    assert [due for due, _ in sends] == [schedule.due(k) for k in range(20_000)]
    # Each send is at most one wake-up's lateness behind its due time, at the end as at the start.
    lateness = [sent - due for due, sent in sends]
    assert max(lateness) == pytest.approx(0.0004, abs=1e-9)
    assert lateness[-1] == pytest.approx(0.0004, abs=1e-9)
    # The waits shrink by the lateness: 40 s of sends take 40 s, not 40 s + 20,000 x 0.4 ms.
    assert clock.sleeps[1] == pytest.approx(0.002 - 0.0004, abs=1e-9)
    assert clock() == pytest.approx(100.0 + 19_999 / 500.0 + 0.0004, abs=1e-9)


def test_a_sender_behind_schedule_does_not_sleep_and_keeps_the_due_times() -> None:
    clock = LateClock(start=0.0, late=0.0)
    pacer = Pacer(Schedule(0.0, 100.0), clock, clock.sleep)
    clock.now = 0.055  # stalled: sends 0..5 are overdue

    async def run() -> list[float]:
        return [await pacer.wait(k) for k in range(8)]

    due = asyncio.run(run())

    assert due == [k / 100.0 for k in range(8)]
    assert clock.sleeps == [pytest.approx(0.005), pytest.approx(0.01)]  # only for sends 6 and 7
