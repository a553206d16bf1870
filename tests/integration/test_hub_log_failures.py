"""The hub's log under cancellation and database failure (issue 12, findings 5 and 6).

A Hub on the real log (log_store.AsyncHubLog over SqlHubLog) and the fake
provider of tests/support/hub_fakes.py. The database is stalled by another
connection holding a write lock (SQLite ``BEGIN EXCLUSIVE``, PostgreSQL
``LOCK TABLE``), or made to fail by a busy timeout of 10 ms under that lock.
Whatever happens, the caller hears UNAVAILABLE ``HUB_LOG_UNAVAILABLE`` before
its deadline, or nothing when it went away, and no row is left PENDING once
the database is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AbstractContextManager
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.databases import table_locked
from support.hub_fakes import ITEM, PENSION, PENSION_INFO, HubRig, answer_all, hub_rig

from hub_server.exchange import ProvideCall, Provided, RelayRequest
from hub_server.log_store import OK, PENDING, AsyncHubLog, SqlHubLog
from renkei.errors import RenkeiError


def locked(engine: Engine) -> AbstractContextManager[None]:
    """Another connection holds the log's table for writing until the block ends."""
    return table_locked(engine, "hub_log")


def _impatient(engine: Engine) -> None:
    """A lock makes this engine's writes fail after 10 ms instead of waiting for it."""

    def set_timeout(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA busy_timeout = 10")
        else:
            cur.execute("SET lock_timeout = '10ms'")
            dbapi_conn.commit()  # else the pool's reset rolls the setting back
        cur.close()

    sa.event.listen(engine, "connect", set_timeout)
    engine.dispose()  # connections pooled already (PostgreSQL's schema was made) lack it


def _rig(engine: Engine) -> tuple[HubRig, AsyncHubLog, SqlHubLog]:
    repo = SqlHubLog(engine)
    log = AsyncHubLog(repo, retry_every=0.02)
    return hub_rig((log, repo.rows)), log, repo


def _single(rig: HubRig, n: int = 1) -> RelayRequest:
    return RelayRequest(PENSION, PENSION_INFO, ITEM, (rig.link_code(n),), b"q", single=True)


def _bulk(rig: HubRig, *ns: int) -> RelayRequest:
    return RelayRequest(PENSION, PENSION_INFO, ITEM, [rig.link_code(n) for n in ns], b"q")


SCHEDULING_SLACK = 0.2


def _outcomes(repo: SqlHubLog) -> list[tuple[str, str]]:
    return [(r.outcome, r.reason) for r in repo.rows()]


async def _refused_in_time(rig: HubRig, req: RelayRequest, deadline: float) -> RenkeiError:
    started = time.monotonic()
    with pytest.raises(RenkeiError) as caught:
        await rig.hub.relay(rig.city, req, deadline)
    # Before the caller's deadline had passed by more than a loaded machine's scheduling
    # slack (not a speed check: a hub that waited on the stalled database would take seconds).
    assert time.monotonic() - started < deadline + SCHEDULING_SLACK
    return caught.value


@pytest.mark.parametrize("bulk", [False, True])
def test_a_stalled_database_fails_the_relay_closed_in_time_and_the_rows_close_later(
    engine: Engine, bulk: bool
) -> None:
    rig, log, repo = _rig(engine)
    req = _bulk(rig, 1, 2) if bulk else _single(rig)

    async def run() -> RenkeiError:
        with locked(engine):
            err = await _refused_in_time(rig, req, 0.3)
        await log.flush()  # the rows landed when the lock went: they are closed
        return err

    try:
        err = asyncio.run(run())
    finally:
        log.close()
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_LOG_UNAVAILABLE")
    assert rig.gateway.asked == []  # never relayed without a durable PENDING row
    # The rows were written after the caller was told: closed as what it was told.
    assert _outcomes(repo) in ([], [("UNAVAILABLE", "HUB_LOG_UNAVAILABLE")] * len(req.link_codes))
    assert repo.mark_interrupted() == 0


@pytest.mark.parametrize("bulk", [False, True])
def test_a_caller_gone_while_its_rows_are_written_leaves_them_closed_not_relayed(
    engine: Engine, bulk: bool
) -> None:
    rig, log, repo = _rig(engine)
    req = _bulk(rig, 1, 2) if bulk else _single(rig)

    async def run() -> None:
        with locked(engine):
            task = asyncio.ensure_future(rig.hub.relay(rig.city, req, 5.0))
            await asyncio.sleep(0.1)  # the write is blocked on the lock
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await asyncio.sleep(0.05)
        await log.flush()

    try:
        asyncio.run(run())
    finally:
        log.close()
    assert rig.gateway.asked == []
    assert _outcomes(repo) == [("CANCELLED", "NOT_RELAYED")] * len(req.link_codes)
    assert repo.mark_interrupted() == 0


def test_a_caller_gone_before_its_row_is_taken_is_never_written(engine: Engine) -> None:
    rig, log, repo = _rig(engine)

    async def run() -> None:
        with locked(engine):
            first = asyncio.ensure_future(rig.hub.relay(rig.city, _single(rig, 1), 5.0))
            await asyncio.sleep(0.05)  # in flight, blocked on the lock
            second = asyncio.ensure_future(rig.hub.relay(rig.city, _single(rig, 2), 5.0))
            await asyncio.sleep(0.05)  # queued behind it
            second.cancel()
            first.cancel()
            await asyncio.gather(first, second, return_exceptions=True)
        await asyncio.sleep(0.05)
        await log.flush()

    try:
        asyncio.run(run())
    finally:
        log.close()
    assert _outcomes(repo) == [("CANCELLED", "NOT_RELAYED")]  # the first; the second never
    assert [r.entry.person_key for r in repo.rows()] == [rig.person_key(1)]


@pytest.mark.parametrize("bulk", [False, True])
def test_an_outcome_the_database_refuses_is_unavailable_with_the_serial_and_written_later(
    engine: Engine, bulk: bool, caplog: pytest.LogCaptureFixture
) -> None:
    _impatient(engine)
    rig, log, repo = _rig(engine)
    req = _bulk(rig, 1, 2) if bulk else _single(rig)
    lock = locked(engine)

    def answer_then_lock(call: ProvideCall) -> Provided:
        lock.__enter__()
        return answer_all(call)

    rig.gateway.script = answer_then_lock

    async def run() -> RenkeiError:
        try:
            err = await _refused_in_time(rig, req, 2.0)
            again = await _refused_in_time(rig, req, 2.0)  # a second request, same outage
            assert again.reason == "HUB_LOG_UNAVAILABLE"
        finally:
            lock.__exit__(None, None, None)
        await log.flush()
        return err

    caplog.set_level(logging.INFO, logger="hub_server.log_store")
    try:
        err = asyncio.run(run())
    finally:
        log.close()
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_LOG_UNAVAILABLE")
    assert err.metadata == ({"serials": "1-2"} if bulk else {"serial": "1"})
    assert len(rig.gateway.asked) == 1  # the second request's rows could not even begin
    n = len(req.link_codes)
    assert _outcomes(repo) == [(OK, "")] * n  # the provider's answer, once the database took it
    # One traceback for the outage, one line when it ended; not one per request.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert sum("recovered" in r.getMessage() for r in caplog.records) >= 1


def test_no_row_is_pending_after_a_storm_of_short_deadlines_and_cancellations(
    engine: Engine,
) -> None:
    rig, log, repo = _rig(engine)

    async def run() -> None:
        async def one(n: int) -> None:
            try:
                async with asyncio.timeout(0.001 * (n % 10)):
                    await rig.hub.relay(rig.city, _single(rig, n), 0.005 + 0.001 * (n % 7))
            except (TimeoutError, RenkeiError):
                pass

        await asyncio.gather(*(one(n) for n in range(60)))
        await asyncio.sleep(0.05)
        await log.flush()

    try:
        asyncio.run(run())
    finally:
        log.close()
    assert PENDING not in {outcome for outcome, _ in _outcomes(repo)}
