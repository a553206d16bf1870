"""Open-loop send times: a fixed schedule computed from an index, so it never drifts.

The k-th send of worker ``first`` among ``stride`` workers is due at
``start + (first + k * stride) / rate``: one division of exact integers per
send, never a running sum, so late wake-ups do not push later sends back and
rounding does not accumulate. Together the workers' schedules are the single
schedule ``start + j / rate``, evenly interleaved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    start: float
    rate: float  # sends per second, all workers together
    first: int = 0
    stride: int = 1

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.stride < 1 or not 0 <= self.first < self.stride:
            raise ValueError(f"worker {self.first} of {self.stride} is not a worker")

    def due(self, k: int) -> float:
        return self.start + (self.first + k * self.stride) / self.rate

    @classmethod
    def for_worker(cls, start: float, rate: float, worker: int, workers: int) -> Schedule:
        return cls(start, rate, worker, workers)


class Pacer:
    """Waits for each send's due time on a clock; a late wake-up shortens the next wait."""

    def __init__(
        self,
        schedule: Schedule,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.schedule = schedule
        self._clock = clock
        self._sleep = sleep

    async def wait(self, k: int) -> float:
        """Sleep until send ``k`` is due (not at all when behind); return its due time."""
        due = self.schedule.due(k)
        delay = due - self._clock()
        if delay > 0:
            await self._sleep(delay)
        return due
