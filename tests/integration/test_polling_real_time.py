"""support.polling's wait_for, which waits in real time in the calling thread.

Kept out of tests/unit, which never sleeps (tests/architecture/test_test_scopes.py).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import pytest
from support.polling import wait_for


def counter(holds_at: int) -> tuple[list[int], Callable[[], int | None]]:
    calls: list[int] = []

    def predicate() -> int | None:
        calls.append(len(calls) + 1)
        return len(calls) if len(calls) >= holds_at else None

    return calls, predicate


def test_wait_for_returns_once_another_thread_makes_it_hold() -> None:
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    assert wait_for(done.is_set, timeout=5.0, what="the timer") is True


def test_wait_for_fails_with_what_it_waited_for_after_a_short_timeout() -> None:
    calls, predicate = counter(holds_at=10**9)
    message = "gave up after 0.05 s waiting for the port file"
    with pytest.raises(AssertionError, match=f"^{re.escape(message)}$"):
        wait_for(predicate, timeout=0.05, every=0.01, what="the port file")
    assert len(calls) >= 2  # polled, then checked once more at the deadline
