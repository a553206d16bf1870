"""The polling helper: returns once the predicate holds, and fails naming what, past the timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from support.polling import until
from support.virtual_time import run_virtual


def counter(holds_at: int) -> tuple[list[int], Callable[[], int | None]]:
    calls: list[int] = []

    def predicate() -> int | None:
        calls.append(len(calls) + 1)
        return len(calls) if len(calls) >= holds_at else None

    return calls, predicate


def test_until_returns_the_first_truthy_value_once_the_predicate_holds() -> None:
    calls, predicate = counter(holds_at=3)
    assert run_virtual(until(predicate, every=0.5)) == 3
    assert calls == [1, 2, 3]


def test_until_awaits_a_predicate_that_returns_an_awaitable() -> None:
    answers = iter([b"", b"", b"ready"])

    async def fetch() -> bytes:
        await asyncio.sleep(0.1)
        return next(answers)

    assert run_virtual(until(fetch, every=0.1)) == b"ready"


def test_until_fails_with_what_it_waited_for_after_the_timeout() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AssertionError) as caught:
            await until(lambda: [], timeout=2.0, every=0.25, what="the pension rows")
        assert str(caught.value) == "gave up after 2 s waiting for the pension rows (last saw [])"
        return loop.time() - started

    assert run_virtual(main()) == pytest.approx(2.0)


def test_until_gives_up_on_a_predicate_that_hangs() -> None:
    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    with pytest.raises(AssertionError, match=r"^gave up after 1 s waiting for the answer$"):
        run_virtual(until(hangs, timeout=1.0, what="the answer"))


def test_until_lets_the_predicates_own_errors_through_at_once() -> None:
    def broken() -> bool:
        raise TimeoutError("the predicate's own")

    with pytest.raises(TimeoutError, match="the predicate's own"):
        run_virtual(until(broken, timeout=5.0))
