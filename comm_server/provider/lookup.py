"""The provider's legacy lookups within a deadline; an answer that comes late is discarded.

All persons of a call are looked up at once: one task each, or one
``lookup_many`` call for a client that takes many (no task per person). A
lookup still running at the deadline is left running a while longer (the
late window), so that an answer which does come late is seen, logged under
the exchange's serial as ``LATE_ANSWER_DISCARDED`` and dropped, never
relayed (R28).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from comm_server.legacy import LegacyClient, ManyLegacyClient
from comm_server.ports import Clock, ExchangeStore
from comm_server.store import LogRecord
from renkei.logs import event

_log = logging.getLogger("comm_server.exchange")

LATE = "LATE_ANSWER"
LATE_ANSWER_DISCARDED = "LATE_ANSWER_DISCARDED"
# How long past its deadline a legacy answer is still awaited, to be logged and discarded.
LATE_WINDOW_MIN_SECONDS = 5.0

Requests = Sequence[tuple[str, str, bytes]]
"""(local_person_id, info_kind, query) per person looked up."""
Results = dict[int, bytes | BaseException]
Unfinished = dict[int, asyncio.Future[bytes]]


def late_window(timeout: float) -> float:
    """How long past ``timeout`` a lookup is left running, to log a late answer."""
    return max(LATE_WINDOW_MIN_SECONDS, 3 * timeout)


class Lookups:
    def __init__(self, legacy: LegacyClient, store: ExchangeStore, clock: Clock) -> None:
        self.legacy = legacy
        # The client, if it looks many persons up in one call (bulk calls use it).
        self.many = legacy if isinstance(legacy, ManyLegacyClient) else None
        self._store = store
        self._clock = clock
        self._late: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """Stop waiting for late legacy answers."""
        tasks, self._late = list(self._late), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def each(
        self,
        requests: Requests,
        wanted: list[int],
        timeout: float,
        results: Results,
        unfinished: Unfinished,
    ) -> None:
        """One lookup per person, all at once: person ``wanted[j]``'s outcome into ``results``,
        or its still-running lookup into ``unfinished`` (left running for the late window)."""
        legacy, until = self.legacy, timeout + late_window(timeout)
        tasks = [
            asyncio.ensure_future(legacy.lookup(local_id, kind, query, timeout=until))
            for local_id, kind, query in requests
        ]
        try:
            await asyncio.wait(tasks, timeout=timeout)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        for k, task in zip(wanted, tasks, strict=True):
            if not task.done():
                unfinished[k] = task
            else:
                failure = task.exception()
                results[k] = task.result() if failure is None else failure

    async def all_in_one(
        self,
        many: ManyLegacyClient,
        requests: Requests,
        wanted: list[int],
        timeout: float,
        results: Results,
        unfinished: Unfinished,
    ) -> None:
        """All persons in one ``lookup_many`` call: no task per person.

        Past ``timeout`` every person is late: each gets a future settled when the
        call ends (within the late window), so a late answer is still logged and
        discarded person by person, as with one lookup each.
        """
        batch = asyncio.ensure_future(
            many.lookup_many(requests, timeout=timeout + late_window(timeout))
        )
        try:
            done, _ = await asyncio.wait([batch], timeout=timeout)
        except asyncio.CancelledError:
            batch.cancel()
            raise
        if not done:
            loop = asyncio.get_running_loop()
            futures: list[asyncio.Future[bytes]] = [loop.create_future() for _ in wanted]
            batch.add_done_callback(lambda finished: _settle(finished, futures))
            unfinished.update(zip(wanted, futures, strict=True))
            return
        for k, outcome in zip(wanted, _outcomes(batch, len(wanted)), strict=True):
            results[k] = outcome

    def watch_late(
        self, task: asyncio.Future[bytes], record: LogRecord, started: float, timeout: float
    ) -> None:
        """Await a lookup past its deadline: a late answer is logged under ``record``
        and discarded."""
        watcher = asyncio.ensure_future(self._discard_late(task, record, started, timeout))
        self._late.add(watcher)
        watcher.add_done_callback(self._late.discard)

    async def _discard_late(
        self, task: asyncio.Future[bytes], record: LogRecord, started: float, timeout: float
    ) -> None:
        try:
            await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        except Exception as err:  # the lookup failed late too: nothing to discard
            event(
                _log,
                "late legacy lookup ended without an answer",
                serial=record.serial,
                error=repr(err),
                level=logging.DEBUG,
            )
            return
        delay = asyncio.get_running_loop().time() - started
        detail = (
            f"answered after {delay:.3f} s, {delay - timeout:.3f} s past the {timeout:g} s"
            " limit; discarded, never relayed"
        )
        event(
            _log,
            "late legacy answer discarded",
            serial=record.serial,
            delay_s=round(delay, 3),
            level=logging.WARNING,
        )
        await self._store.append_log(
            replace(
                record,
                logged_at=self._clock(),
                outcome=LATE,
                reason=LATE_ANSWER_DISCARDED,
                detail=detail,
            ),
        )


def _outcomes(
    batch: asyncio.Future[list[bytes | Exception]], n: int
) -> list[bytes | BaseException]:
    """Per person: the answer or the error; the call's own failure is everyone's."""
    failure = batch.exception()
    if failure is not None:
        return [failure] * n
    answers = batch.result()
    if len(answers) != n:
        wrong = RuntimeError(f"lookup_many answered {len(answers)} results for {n} persons")
        return [wrong] * n
    return list(answers)


def _settle(
    batch: asyncio.Future[list[bytes | Exception]], futures: list[asyncio.Future[bytes]]
) -> None:
    outcomes: list[bytes | BaseException] | None = (
        None if batch.cancelled() else _outcomes(batch, len(futures))
    )
    for k, future in enumerate(futures):
        if future.done():  # its watcher was cancelled (shutdown)
            continue
        if outcomes is None:
            future.cancel()
            continue
        outcome = outcomes[k]
        if isinstance(outcome, bytes):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)
