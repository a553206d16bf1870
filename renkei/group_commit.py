"""Group commit: writes queued while a commit is in flight share the next transaction.

Each caller still waits until its own write is durable; a busy party pays one
commit (one fsync) per batch rather than one per write, and an idle one commits
each write at once: nothing waits for a batch to fill. Used by the hub's log
and by a communication server's share of the log.

A caller may go away (be cancelled) while its write waits. Its item is then
either dropped before it is written, when ``droppable(item)`` says so, or
written like the others and handed to ``orphaned`` with its result or error,
so that the owner can finish what the caller would have (the hub closes a
PENDING row nobody will complete).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Runs ``write(batch) -> one result per item`` on ``executor``, a batch at a time."""

    def __init__(
        self,
        write: Callable[[list[Item]], list[Result]],
        executor: Executor,
        *,
        max_batch: int = 512,
        droppable: Callable[[Item], bool] | None = None,
        orphaned: Callable[[list[tuple[Item, Result | Exception]]], None] | None = None,
    ) -> None:
        self._write = write
        self._executor = executor
        self._max_batch = max_batch
        self._droppable = droppable
        self._orphaned = orphaned
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    def submit(self, item: Item) -> asyncio.Future[Result]:
        """The item's result once its batch is committed (the batch's error if it failed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        self._queue.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain())
        return done

    async def drained(self) -> None:
        """Return once nothing is queued or in flight (tests, shutdown)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        drop = self._droppable
        if drop is not None and any(done.cancelled() for _, done in batch):
            # Nobody waits for these any more and nothing needs them written.
            batch = [(item, done) for item, done in batch if not (done.cancelled() and drop(item))]
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = self._take()
            if not batch:
                continue
            failure: Exception | None = None
            try:
                written = await loop.run_in_executor(
                    self._executor, self._write, [item for item, _ in batch]
                )
            except asyncio.CancelledError:
                for _, done in batch + self._queue:
                    done.cancel()
                self._queue.clear()
                raise
            except Exception as err:
                failure = err
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
            else:
                for (_, done), result in zip(batch, written, strict=True):
                    if not done.done():
                        done.set_result(result)
            if self._orphaned is not None:
                results: list[Result | Exception] = (
                    [failure] * len(batch) if failure is not None else list(written)
                )
                gone = [
                    (item, result)
                    for (item, done), result in zip(batch, results, strict=True)
                    if done.cancelled()
                ]
                if gone:
                    self._orphaned(gone)
