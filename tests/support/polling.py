"""The one polling helper: wait until a condition holds, or fail saying what never happened.

Use it only where there is nothing to wait on: state another process writes
(files, a log), a background loop's effect (a reload, a late log row), a
server that is not up yet. Where the code under test can set an
``asyncio.Event``, wait on the event; where only time matters, use
``support.virtual_time``.

``until`` (async) and ``wait_for`` (sync) call ``predicate`` at once and then
every ``every`` seconds, and return its first truthy value, so a predicate can
hand back what it found (a port, an answer) as well as say "done". Past
``timeout`` they raise AssertionError naming ``what`` they waited for: a
failure, never a hang. An exception the predicate raises ends the wait at once
(it is the failure). ``until`` also takes a predicate returning an awaitable
(one call to a server per poll); that call counts against ``timeout`` too.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def _gave_up(what: str, timeout: float, last: object) -> AssertionError:
    message = f"gave up after {timeout:g} s waiting for {what}"
    if last is not None and not isinstance(last, bool):
        seen = repr(last)
        message += f" (last saw {seen[:300]}{'...' if len(seen) > 300 else ''})"
    return AssertionError(message)


@overload
async def until(
    predicate: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    every: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = ...,
    every: float = ...,
    what: str = ...,
) -> T: ...


async def until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 5.0,
    every: float = 0.01,
    what: str = "the condition",
) -> Any:
    """Await the first truthy value of ``predicate()``; AssertionError after ``timeout`` s."""
    last: object = None
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            while True:
                value = predicate()
                if inspect.isawaitable(value):
                    value = await value
                last = value
                if value:
                    return value
                await asyncio.sleep(every)
    except TimeoutError:
        if not deadline.expired():
            raise  # the predicate's own timeout, not ours
        raise _gave_up(what, timeout, last) from None


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 5.0,
    every: float = 0.01,
    what: str = "the condition",
) -> T:
    """The blocking twin of ``until``, for sync tests and fixtures (no awaitables)."""
    give_up = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= give_up:
            raise _gave_up(what, timeout, value)
        time.sleep(every)
