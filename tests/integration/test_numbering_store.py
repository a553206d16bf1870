"""The numbering store under concurrency, and the registry directory it reads.

Both on SQLite and (when it answers) PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from numbering import number
from numbering.store import ACTIVE, RETIRED, NumberingStore, conversion, numbers
from renkei.errors import FailedPrecondition, RenkeiError

T0 = datetime(2025, 4, 1, tzinfo=UTC)
T = TypeVar("T")
THREADS = 6


def _together(fn: Callable[[int], T], n: int = THREADS) -> list[T | BaseException]:
    """Run ``fn(i)`` in ``n`` threads released at once; results or exceptions."""
    start = threading.Barrier(n)

    def one(i: int) -> T | BaseException:
        start.wait(5)
        try:
            return fn(i)
        except Exception as err:
            return err

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_issues_for_one_resident_agree(engine: Engine) -> None:
    store = NumberingStore(engine)
    results = _together(lambda _: store.issue("10000000001", number.new_number, T0))
    assert not [r for r in results if isinstance(r, BaseException)], results
    issued = [r for r in results if not isinstance(r, BaseException)]
    assert len({current.number for current, _ in issued}) == 1
    assert sum(newly for _, newly in issued) == 1
    assert store.count_numbers() == 1


def test_concurrent_changes_of_one_number_retire_it_once(engine: Engine) -> None:
    store = NumberingStore(engine)
    current, _ = store.issue("10000000001", number.new_number, T0)
    results = _together(lambda _: store.change_number(current.number, "r", number.new_number, T0))
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(e, FailedPrecondition) and e.reason == "NUMBER_RETIRED" for e in lost)
    assert store.lookup_number("10000000001") == won[0]
    with engine.connect() as conn:
        status = dict(conn.execute(sa.select(numbers.c.number, numbers.c.status)).all())
    assert status == {current.number: RETIRED, won[0].number: ACTIVE}


def test_concurrent_bulk_and_single_issues_never_share_a_number(engine: Engine) -> None:
    codes = [f"{40_000_000_000 + i:011d}" for i in range(300)]
    store = NumberingStore(engine)

    def work(i: int) -> int:
        if i % 2:
            return store.issue_many(codes, number.new_number, T0)
        return sum(store.issue(c, number.new_number, T0)[1] for c in codes[i::THREADS])

    results = _together(work)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r for r in results if isinstance(r, int)) == len(codes)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(conversion.c.resident_code, conversion.c.number)).all()
    assert len(rows) == len(codes)
    assert len({r.number for r in rows}) == len(codes)


def test_change_resident_code_racing_an_issue_for_the_new_code(engine: Engine) -> None:
    store = NumberingStore(engine)
    store.issue("10000000001", number.new_number, T0)

    def work(i: int) -> object:
        if i == 0:
            return store.change_resident_code("10000000001", "20000000001", T0)
        return store.issue("20000000001", number.new_number, T0)

    results = _together(work, 2)
    # Either the move won (the issue then returns the moved Number) or the
    # issue won (the move is refused): never two Numbers on one code.
    moved, issued = results
    if isinstance(moved, RenkeiError):
        assert moved.reason == "RESIDENT_CODE_IN_USE"
        assert store.lookup_number("10000000001") != store.lookup_number("20000000001")
    else:
        assert not isinstance(issued, BaseException)
        assert issued[0].number == moved  # type: ignore[index]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(conversion)).scalar_one() in (
            1,
            2,
        )


def test_nothing_is_ever_deleted(engine: Engine) -> None:
    store = NumberingStore(engine)
    current, _ = store.issue("10000000001", number.new_number, T0)
    for _ in range(5):
        current = store.change_number(current.number, "r", number.new_number, T0)
    assert store.count_numbers() == 6
    assert len(store.history("10000000001")) == 6
