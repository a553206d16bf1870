"""The hub's database locked, full and unreachable under load, on SQLite and PostgreSQL.

What each fault is, on each backend:

- locked: another connection holds the log for writing (SQLite ``BEGIN
  EXCLUSIVE`` on the hub's file; PostgreSQL ``LOCK TABLE hub_log IN ACCESS
  EXCLUSIVE MODE``), so the hub's writes wait.
- full: PostgreSQL refuses every write to the log with SQLSTATE 53100
  ``disk_full`` (the error a full disk gives, raised by a trigger); for SQLite
  the running hub's file-size limit (RLIMIT_FSIZE, set with prlimit(2)) drops
  to zero, so the kernel refuses every write it makes to a file (EFBIG, its own
  stdout log included), which SQLite reports as a disk I/O error.
- unreachable (PostgreSQL only): the hub reaches the database through a TCP
  proxy that is stopped (every connection reset, new ones refused) or stalled
  (connections kept, no byte forwarded: a partition) and then let go. A SQLite
  file on a local disk has no network path to lose.

The hub refuses UNAVAILABLE ``HUB_LOG_UNAVAILABLE`` within the caller's
deadline while the fault lasts, writes the outcomes it owes once the database
is back, and the invariants hold. An agency's own share locked: the requester's
server refuses ``REQUESTER_LOG_UNAVAILABLE`` before the caller's deadline, and
a provider that cannot log is answered for by the hub's deadline; an agency's
share full: its server refuses ``REQUESTER_LOG_UNAVAILABLE`` or
``PROVIDER_LOG_UNAVAILABLE`` (relayed by the hub under its serial).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.databases import table_locked
from support.faults import CITY, PENSION, Load, World, check
from support.polling import wait_for

from ops.deploy import free_port

FAULT_SECONDS = 2.0


def sqlite(world: World) -> bool:
    return world.hub_engine().dialect.name == "sqlite"


def hub_file(world: World) -> Path:
    return world.layout.hub_dir / "hub.db"


def saw_log_unavailable(
    load: Load, reason: str = "HUB_LOG_UNAVAILABLE", timeout: float = 15.0
) -> None:
    give_up = time.monotonic() + timeout
    while not any(a.reason == reason for a in load.answers):
        assert time.monotonic() < give_up, "the fault never reached a caller"
        time.sleep(0.05)


def locked(world: World, agency_id: str | None = None) -> contextlib.AbstractContextManager[None]:
    """The hub's log (or an agency's share of it) held for writing by another connection."""
    engine = world.hub_engine() if agency_id is None else world.comm_engine(agency_id)
    return table_locked(engine, "hub_log" if agency_id is None else "agency_log")


def test_hub_database_locked_under_load(world: World) -> None:
    with Load(world) as load:
        load.wait_calls(20)
        with locked(world):
            saw_log_unavailable(load)
            time.sleep(FAULT_SECONDS)
        world.wait_answering()
        load.wait_calls(20)
    check(world, load)


def test_requester_database_locked_under_load(world: World) -> None:
    """The city's own share stalls: its server refuses in time, it does not go silent."""
    with Load(world) as load:
        load.wait_calls(20)
        with locked(world, CITY):
            saw_log_unavailable(load, "REQUESTER_LOG_UNAVAILABLE")
            time.sleep(FAULT_SECONDS)
        world.wait_answering()
        load.wait_calls(20)
    check(world, load)


def test_provider_database_locked_under_load(world: World) -> None:
    """The pension service's share stalls: the hub's deadline answers for it."""
    with Load(world) as load:
        load.wait_calls(20)
        with locked(world, PENSION):
            saw_log_unavailable(load, "PROVIDER_DEADLINE_EXCEEDED")
            time.sleep(FAULT_SECONDS)
        world.wait_answering()
        load.wait_calls(20)
    check(world, load)


DISK_FULL = """
CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION disk_full();
"""
DISK_FREED = "DROP TRIGGER disk_full ON {table}; DROP FUNCTION disk_full();"


@contextlib.contextmanager
def full(world: World, agency_id: str | None = None) -> Iterator[None]:
    """The hub's database (or an agency's) full, as the module's docstring says."""
    party = "hub" if agency_id is None else f"comm-{agency_id}"
    engine = world.hub_engine() if agency_id is None else world.comm_engine(agency_id)
    if engine.dialect.name == "sqlite":
        engine.dispose()
        # The running party may write no byte more to any file; Python ignores SIGXFSZ,
        # so each write fails with EFBIG, as a full disk refuses new blocks.
        pid = world.pid(party)
        before = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, before[1]))
        try:
            yield
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, before)
        return
    table = "hub_log" if agency_id is None else "agency_log"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(DISK_FULL.format(table=table)))
        try:
            yield
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(DISK_FREED.format(table=table)))
    finally:
        engine.dispose()


def test_hub_database_full_under_load(world: World) -> None:
    with Load(world) as load:
        load.wait_calls(20)
        with full(world):
            saw_log_unavailable(load)
            time.sleep(FAULT_SECONDS)
        world.wait_answering()
        load.wait_calls(20)
    check(world, load)


AGENCY_FULL = {CITY: "REQUESTER_LOG_UNAVAILABLE", PENSION: "PROVIDER_LOG_UNAVAILABLE"}


@pytest.mark.parametrize("agency_id", [CITY, PENSION])
def test_agency_database_full_under_load(world: World, agency_id: str) -> None:
    """An agency's share refuses its rows: that agency's own refusal, never INTERNAL."""
    reason = AGENCY_FULL[agency_id]
    with Load(world) as load:
        load.wait_calls(20)
        with full(world, agency_id):
            saw_log_unavailable(load, reason)
            time.sleep(FAULT_SECONDS)
        world.wait_answering()
        load.wait_calls(20)
    if agency_id == CITY:
        # The rows the city's full database refused are kept and written once it has room
        # again (retried every second), as the refusals their callers heard.
        refused = {a.serial for a in load.answers if a.reason == reason and a.serial}
        wait_for(
            lambda: refused <= {r.serial for r in world.comm_rows(CITY)},
            timeout=10,
            what="the city's refused rows to be written",
        )
    check(world, load)


class Proxy:
    """A TCP proxy on loopback, in a thread: forwarding, stopped, or stalled."""

    def __init__(self, upstream: int) -> None:
        self.upstream, self.port = upstream, free_port()
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self.start()

    def _run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def start(self) -> None:
        self._server = self._run(asyncio.start_server(self._link, "127.0.0.1", self.port))  # type: ignore[assignment]

    def stop(self) -> None:
        """The database gone: every connection reset, new ones refused."""

        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._links):
                task.cancel()
            await asyncio.gather(*self._links, return_exceptions=True)

        self._run(close())

    def stall(self) -> None:
        """A partition: connections stay up, no byte goes through until ``resume``."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        self.resume()
        with contextlib.suppress(Exception):
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            if up_writer is not None:
                up_writer.transport.abort()
            self._links.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()  # stalled: the bytes are held, as on a partition
            writer.write(data)
            await writer.drain()


@contextlib.contextmanager
def proxied_hub(world: World) -> Iterator[Proxy]:
    """The hub restarted to reach PostgreSQL through a proxy; put back afterwards."""
    config = world.layout.hub_config
    original = config.read_text(encoding="utf-8")
    url = sa.engine.make_url(world.hub_engine().url)
    assert url.port is not None
    proxy = Proxy(url.port)
    config.write_text(original.replace(f":{url.port}/", f":{proxy.port}/"), encoding="utf-8")
    try:
        world.restart("hub")
        world.wait_answering()
        yield proxy
    finally:
        config.write_text(original, encoding="utf-8")
        world.restart("hub")
        proxy.close()


@pytest.mark.postgres_only  # a SQLite file on a local disk has no network path to lose
@pytest.mark.parametrize("how", ["stopped", "stalled"])
def test_hub_database_unreachable_under_load(world: World, how: str) -> None:
    with proxied_hub(world) as proxy, Load(world) as load:
        load.wait_calls(20)
        if how == "stopped":
            proxy.stop()
        else:
            proxy.stall()
        saw_log_unavailable(load)
        time.sleep(FAULT_SECONDS)
        if how == "stopped":
            proxy.start()
        else:
            proxy.resume()
        world.wait_answering()
        load.wait_calls(20)
    check(world, load)
