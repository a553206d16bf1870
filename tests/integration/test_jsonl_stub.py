"""The JSON-lines legacy stub over real sockets, with the communication server's client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest
from support.polling import until, wait_for

from comm_server.legacy.jsonl_client import JsonlLegacyClient, canonical_json
from legacy_stubs.jsonl_records.protocol import GARBAGE, MAX_LINE
from legacy_stubs.jsonl_records.server import Faults, StubServer
from legacy_stubs.jsonl_records.store import RecordStore, write_records
from renkei.errors import DeadlineExceeded, NotFound, RenkeiError, Unavailable

T = TypeVar("T")

RECORDS: dict[str, dict[str, dict[str, Any]]] = {
    "P1": {"tax": {"year": 2024, "income": 5_000_000, "name": "山田太郎"}},
    "P2": {"tax": {"year": 2024, "income": 0}, "address": {"pref": "大阪府"}},
}
ROOT = Path(__file__).resolve().parents[2]


def run(scenario: Callable[[], Awaitable[T]], limit: float = 5.0) -> T:
    """Run one async scenario on a fresh loop, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(limit):
            return await scenario()

    return asyncio.run(bounded())


@asynccontextmanager
async def stub(faults: Faults | None = None) -> AsyncIterator[tuple[StubServer, JsonlLegacyClient]]:
    server = StubServer(RecordStore(RECORDS), faults)
    port = await server.start()
    client = JsonlLegacyClient("127.0.0.1", port)
    try:
        yield server, client
    finally:
        await client.aclose()
        await server.stop()


class Raw:
    """A bare protocol connection, for what the client never sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 * MAX_LINE)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def ask(self, body: Any) -> dict[str, Any]:
        await self.send(body if isinstance(body, bytes) else json.dumps(body).encode() + b"\n")
        answer: dict[str, Any] = json.loads(await self.reader.readuntil(b"\n"))
        return answer

    async def close(self) -> None:
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()


def expect(error: type[RenkeiError], reason: str, caught: pytest.ExceptionInfo[Any]) -> None:
    assert isinstance(caught.value, error), repr(caught.value)
    assert caught.value.reason == reason, repr(caught.value)


# --- round trips ------------------------------------------------------------


def test_lookup_ok() -> None:
    async def scenario() -> None:
        async with stub() as (_, client):
            got = await client.lookup("P1", "tax", "年度=2024".encode(), timeout=2.0)
            assert got == canonical_json(RECORDS["P1"]["tax"])
            assert json.loads(got)["name"] == "山田太郎"

    run(scenario)


@pytest.mark.parametrize(("person", "kind"), [("P9", "tax"), ("P1", "address")])
def test_lookup_not_found(person: str, kind: str) -> None:
    async def scenario() -> None:
        async with stub() as (_, client):
            with pytest.raises(NotFound) as caught:
                await client.lookup(person, kind, b"", timeout=2.0)
            expect(NotFound, "RECORD_NOT_FOUND", caught)
            # The connection stays in step and is reused.
            assert await client.lookup("P2", "address", b"", timeout=2.0) == canonical_json(
                {"pref": "大阪府"}
            )

    run(scenario)


def test_malformed_requests_get_errors_and_the_connection_survives() -> None:
    async def scenario() -> None:
        async with stub() as (server, _):
            raw = await Raw.open(server.port)
            answer = await raw.ask(b"this is not json\n")
            assert (answer["id"], answer["status"]) == (None, "error")
            assert answer["message"].startswith("line is not JSON")
            answer = await raw.ask({"op": "lookup", "id": "r1", "info_kind": "tax"})
            assert (answer["id"], answer["status"]) == ("r1", "error")
            answer = await raw.ask(b"\xff\xfe\x00\n")
            assert (answer["id"], answer["status"]) == (None, "error")
            answer = await raw.ask({"op": "frobnicate", "id": "r2"})
            assert (answer["id"], answer["status"]) == ("r2", "error")
            await raw.send(b"\n   \n")  # blank lines are skipped
            assert await raw.ask({"op": "ping", "id": "p"}) == {"id": "p", "status": "ok"}
            answer = await raw.ask(
                {"op": "lookup", "id": "r3", "local_person_id": "P2", "info_kind": "tax"}
            )
            assert answer == {"id": "r3", "status": "ok", "record": RECORDS["P2"]["tax"]}
            assert server.connections_accepted == 1
            await raw.close()

    run(scenario)


def test_line_of_exactly_max_line_bytes_is_accepted() -> None:
    async def scenario() -> None:
        async with stub() as (server, _):
            base = {"op": "lookup", "id": "r", "local_person_id": "P9", "info_kind": "tax"}
            empty = len(json.dumps({**base, "query": ""}).encode()) + 1
            body = {**base, "query": "q" * (MAX_LINE - empty)}
            data = json.dumps(body).encode() + b"\n"
            assert len(data) == MAX_LINE
            raw = await Raw.open(server.port)
            assert (await raw.ask(data))["status"] == "not_found"
            await raw.close()

    run(scenario)


def test_oversize_line_gets_an_error_and_the_connection_closes() -> None:
    async def scenario() -> None:
        async with stub() as (server, client):
            raw = await Raw.open(server.port)
            await raw.send(b'{"op":"ping","id":"' + b"x" * (MAX_LINE + 10) + b'"}\n')
            answer = json.loads(await raw.reader.readuntil(b"\n"))
            assert answer["status"] == "error"
            assert "longer than" in answer["message"]
            assert await raw.reader.read() == b""  # closed
            await raw.close()
            # The server carries on.
            assert await client.lookup("P2", "tax", b"", timeout=2.0)

    run(scenario)


def test_control_requests_set_faults_for_other_connections() -> None:
    async def scenario() -> None:
        async with stub() as (server, client):
            raw = await Raw.open(server.port)
            assert await raw.ask({"op": "set_faults", "id": "f1", "garbage": True}) == {
                "id": "f1",
                "status": "ok",
            }
            assert server.faults == Faults(garbage=True)
            with pytest.raises(Unavailable) as caught:
                await client.lookup("P1", "tax", b"", timeout=2.0)
            expect(Unavailable, "LEGACY_GARBAGE", caught)
            await raw.ask({"op": "set_faults", "id": "f2", "garbage": False, "delay_ms": 0})
            assert await client.lookup("P1", "tax", b"", timeout=2.0)
            await raw.close()

    run(scenario)


# --- faults -----------------------------------------------------------------


def test_delay_fault_times_out() -> None:
    async def scenario() -> None:
        async with stub(Faults(delay_ms=1000)) as (server, client):
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded) as caught:
                await client.lookup("P1", "tax", b"", timeout=0.2)
            elapsed = time.monotonic() - started
            expect(DeadlineExceeded, "LEGACY_TIMEOUT", caught)
            assert 0.15 < elapsed < 0.8
            # The timed-out connection is discarded: the next lookup opens a new one.
            server.faults.delay_ms = 0
            assert await client.lookup("P1", "tax", b"", timeout=2.0)
            assert server.connections_accepted == 2

    run(scenario)


def test_delay_within_timeout_succeeds() -> None:
    async def scenario() -> None:
        async with stub(Faults(delay_ms=50)) as (_, client):
            assert await client.lookup("P1", "tax", b"", timeout=2.0)

    run(scenario)


def test_drop_fault_is_unavailable() -> None:
    async def scenario() -> None:
        async with stub(Faults(drop=True)) as (server, client):
            with pytest.raises(Unavailable) as caught:
                await client.lookup("P1", "tax", b"", timeout=2.0)
            expect(Unavailable, "LEGACY_UNAVAILABLE", caught)
            assert client.idle_connections == 0
            server.faults.drop = False
            assert await client.lookup("P1", "tax", b"", timeout=2.0)

    run(scenario)


def test_drop_after_reuse_is_unavailable_not_a_hang() -> None:
    async def scenario() -> None:
        async with stub() as (server, client):
            await client.lookup("P1", "tax", b"", timeout=2.0)
            server.faults.drop = True
            with pytest.raises(Unavailable) as caught:
                await client.lookup("P1", "tax", b"", timeout=2.0)
            expect(Unavailable, "LEGACY_UNAVAILABLE", caught)

    run(scenario)


def test_garbage_fault() -> None:
    async def scenario() -> None:
        async with stub(Faults(garbage=True)) as (server, client):
            with pytest.raises(Unavailable) as caught:
                await client.lookup("P1", "tax", b"", timeout=2.0)
            expect(Unavailable, "LEGACY_GARBAGE", caught)
            assert repr(GARBAGE[:40]) in caught.value.message
            assert client.idle_connections == 0  # never reused
            server.faults.garbage = False
            assert await client.lookup("P1", "tax", b"", timeout=2.0)
            assert server.connections_accepted == 2

    run(scenario)


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed

    async def scenario() -> None:
        client = JsonlLegacyClient("127.0.0.1", port)
        with pytest.raises(Unavailable) as caught:
            await client.lookup("P1", "tax", b"", timeout=2.0)
        expect(Unavailable, "LEGACY_UNAVAILABLE", caught)
        await client.aclose()

    run(scenario)


# --- pooling and lifecycle --------------------------------------------------


def test_connection_is_reused_across_lookups() -> None:
    async def scenario() -> None:
        async with stub() as (server, client):
            for _ in range(5):
                assert await client.lookup("P1", "tax", b"", timeout=2.0)
                with pytest.raises(NotFound):
                    await client.lookup("P9", "tax", b"", timeout=2.0)
            assert server.connections_accepted == 1
            assert client.idle_connections == 1

    run(scenario)


def test_concurrent_lookups() -> None:
    async def scenario() -> None:
        async with stub(Faults(delay_ms=50)) as (server, client):
            answers = await asyncio.gather(
                *(client.lookup(p, "tax", b"", timeout=2.0) for p in ["P1", "P2"] * 4)
            )
            assert answers == [canonical_json(RECORDS[p]["tax"]) for p in ["P1", "P2"] * 4]
            assert server.connections_accepted <= 8
            assert client.idle_connections <= 4
            before = server.connections_accepted
            await client.lookup("P1", "tax", b"", timeout=2.0)
            assert server.connections_accepted == before  # pooled

    run(scenario)


def test_restarted_legacy_system_is_reached_again() -> None:
    async def scenario() -> None:
        async with stub() as (server, client):
            await client.lookup("P1", "tax", b"", timeout=2.0)
            await server.stop()  # the client's idle connection dies
            again = StubServer(RecordStore(RECORDS), port=server.port)
            await again.start()
            try:
                assert await client.lookup("P1", "tax", b"", timeout=2.0)
            finally:
                await again.stop()

    run(scenario)


def test_closed_client_refuses() -> None:
    async def scenario() -> None:
        async with stub() as (_, client):
            await client.lookup("P1", "tax", b"", timeout=2.0)
            await client.aclose()
            with pytest.raises(Unavailable) as caught:
                await client.lookup("P1", "tax", b"", timeout=2.0)
            expect(Unavailable, "LEGACY_UNAVAILABLE", caught)

    run(scenario)


def test_client_vanishing_mid_request_does_not_hurt_the_server() -> None:
    async def scenario() -> None:
        async with stub(Faults(delay_ms=100)) as (server, client):
            raw = await Raw.open(server.port)
            await raw.send(b'{"op":"lookup","id":"r","local_person_id":"P1","info_kind":"tax"}\n')
            raw.writer.transport.abort()  # reset while the server sleeps
            half = await Raw.open(server.port)
            await half.send(b'{"op":"ping","id":"p"')  # EOF mid-line
            await half.close()
            assert await client.lookup("P1", "tax", b"", timeout=2.0)
            # Both broken connections end; only the client's pooled one stays.
            await until(
                lambda: server.open_connections == 1,
                timeout=2.0,
                what="the server to end both broken connections",
            )

    run(scenario)


def test_stop_ends_connections_and_leaves_no_tasks() -> None:
    async def scenario() -> None:
        server = StubServer(RecordStore(RECORDS), Faults(delay_ms=5000))
        port = await server.start()
        client = JsonlLegacyClient("127.0.0.1", port)
        idle = await Raw.open(port)
        pending = asyncio.create_task(client.lookup("P1", "tax", b"", timeout=4.0))
        await until(
            lambda: server.open_connections == 2,
            timeout=2.0,
            what="the server to hold the idle and the pending connection",
        )
        await server.stop()
        assert server.open_connections == 0
        with pytest.raises(Unavailable) as caught:
            await pending
        expect(Unavailable, "LEGACY_UNAVAILABLE", caught)
        assert await idle.reader.read() == b""
        await idle.close()
        await client.aclose()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(scenario)


# --- as its own process -----------------------------------------------------


def _wait_for_port(path: Path, proc: subprocess.Popen[bytes], limit: float = 5.0) -> int:
    def port() -> int | None:
        if path.exists():  # written atomically, so whole once it is there
            return int(path.read_text())
        assert proc.poll() is None, proc.communicate(timeout=1)
        return None

    return wait_for(port, timeout=limit, every=0.02, what="the stub's port file")


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    records = tmp_path / "records.json"
    write_records(records, RECORDS)
    port_file = tmp_path / "port"
    args = ["--records", str(records), "--port", "0", "--port-file", str(port_file), *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "legacy_stubs.jsonl_records", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, port_file


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_serves_and_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    proc, port_file = _start(tmp_path)
    try:
        port = _wait_for_port(port_file, proc)

        async def scenario() -> bytes:
            async with JsonlLegacyClient("127.0.0.1", port) as client:
                return await client.lookup("P2", "address", b"", timeout=2.0)

        assert run(scenario) == canonical_json({"pref": "大阪府"})
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=5)
        assert proc.returncode == 0, stderr.decode(errors="replace")
        assert b'"msg": "ready"' in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def test_process_fault_flags(tmp_path: Path) -> None:
    proc, port_file = _start(tmp_path, "--garbage")
    try:
        port = _wait_for_port(port_file, proc)

        async def scenario() -> None:
            async with JsonlLegacyClient("127.0.0.1", port) as client:
                with pytest.raises(Unavailable) as caught:
                    await client.lookup("P1", "tax", b"", timeout=2.0)
                expect(Unavailable, "LEGACY_GARBAGE", caught)

        run(scenario)
        proc.terminate()
        proc.communicate(timeout=5)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def test_process_refuses_unreadable_records(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    proc = subprocess.run(
        [sys.executable, "-m", "legacy_stubs.jsonl_records", "--records", str(missing)],
        cwd=ROOT,
        capture_output=True,
        timeout=5,
        check=False,
    )
    assert proc.returncode == 2
    assert b"cannot load records" in proc.stderr
