"""The mocked legacy records system: an asyncio TCP server speaking JSON lines.

See ``protocol`` for the wire format. ``StubServer`` runs in-process (tests);
``serve`` runs one until cancelled (the ``__main__`` entry point).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from renkei.logs import event

from .protocol import (
    GARBAGE,
    MAX_LINE,
    LookupRequest,
    PingRequest,
    ProtocolError,
    SetFaultsRequest,
    error_response,
    not_found_response,
    ok_response,
    parse_request,
)
from .store import RecordStore

logger = logging.getLogger("legacy_stubs.jsonl_records")

CLOSE_GRACE = 1.0
"""Seconds a connection gets to flush and close before it is aborted."""


@dataclass
class Faults:
    """Faults injected into every lookup; change the fields at run time at will."""

    delay_ms: int = 0
    drop: bool = False
    garbage: bool = False


class StubServer:
    """One listening socket and the connections it accepted.

    ``start`` binds (``port=0`` picks a free port) and returns the bound port;
    ``stop`` closes the socket, ends every connection and waits for their
    tasks, so nothing outlives it. ``faults`` is shared, not copied: changing
    it (or sending ``set_faults``) affects the next lookup on any connection.
    """

    def __init__(
        self,
        store: RecordStore,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.store = store
        self.faults = faults if faults is not None else Faults()
        self.host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._stopping = False
        self._connections: set[asyncio.Task[None]] = set()
        self.connections_accepted = 0
        """How many connections were accepted since ``start`` (tests check reuse with it)."""

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> int:
        if self._server is not None or self._stopping:
            raise RuntimeError("a StubServer starts once")
        # readuntil accepts `limit` bytes before the newline: MAX_LINE in all.
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self._requested_port, limit=MAX_LINE - 1
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        event(logger, "listening", host=self.host, port=self._port)
        return self._port

    async def stop(self) -> None:
        """Stop listening, end every connection, and wait for their tasks."""
        if self._stopping:
            return
        self._stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        while self._connections:
            tasks = list(self._connections)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        event(logger, "stopped", port=self._port)

    async def __aenter__(self) -> StubServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, not a coroutine: the task is registered the moment
        # it exists, so `stop` can never miss one.
        if self._stopping:
            writer.transport.abort()
            return
        self.connections_accepted += 1
        task = asyncio.get_running_loop().create_task(self._serve_connection(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = str(writer.get_extra_info("peername"))
        event(logger, "connection opened", peer=peer, level=logging.DEBUG)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        event(logger, "peer closed mid-line", peer=peer, level=logging.WARNING)
                    return
                except asyncio.LimitOverrunError:
                    event(logger, "line too long", peer=peer, limit=MAX_LINE, level=logging.WARNING)
                    await self._refuse_oversize(reader, writer)
                    return
                if not line.strip():
                    continue
                if not await self._answer(line, writer, peer):
                    return
        except OSError as exc:  # reset, broken pipe: the client went away
            event(logger, "connection lost", peer=peer, error=repr(exc), level=logging.INFO)
        except Exception:
            logger.exception("connection handler failed (peer %s)", peer)
        finally:
            await _close(writer)
            event(logger, "connection closed", peer=peer, level=logging.DEBUG)

    async def _refuse_oversize(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer an oversize line with an error, then close without a reset.

        The framing is lost, so the connection ends. Our side is half-closed
        first and the rest of the client's data read and dropped, so the
        client reliably reads the error instead of a connection reset.
        """
        writer.write(error_response(None, f"line longer than {MAX_LINE} bytes"))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE):
                while await reader.read(MAX_LINE):
                    pass

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Answer one request; False when the connection must close."""
        try:
            request = parse_request(line)
        except ProtocolError as exc:
            event(
                logger,
                "malformed request",
                peer=peer,
                request_id=exc.request_id,
                problem=exc.message,
                level=logging.WARNING,
            )
            await self._send(writer, error_response(exc.request_id, exc.message))
            return True
        if isinstance(request, PingRequest):
            await self._send(writer, ok_response(request.id))
            return True
        if isinstance(request, SetFaultsRequest):
            self._set_faults(request)
            await self._send(writer, ok_response(request.id))
            return True
        return await self._lookup(request, writer, peer)

    def _set_faults(self, request: SetFaultsRequest) -> None:
        if request.delay_ms is not None:
            self.faults.delay_ms = request.delay_ms
        if request.drop is not None:
            self.faults.drop = request.drop
        if request.garbage is not None:
            self.faults.garbage = request.garbage
        event(
            logger,
            "faults set",
            delay_ms=self.faults.delay_ms,
            drop=self.faults.drop,
            garbage=self.faults.garbage,
        )

    async def _lookup(
        self, request: LookupRequest, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        # The faults in force when the request arrived apply to all of it.
        delay_ms, drop, garbage = self.faults.delay_ms, self.faults.drop, self.faults.garbage
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if drop:
            event(logger, "fault: dropping connection", peer=peer, request_id=request.id)
            return False
        if garbage:
            event(logger, "fault: answering garbage", peer=peer, request_id=request.id)
            await self._send(writer, GARBAGE)
            return True
        record = self.store.lookup(request.local_person_id, request.info_kind)
        if record is None:
            if self.store.has_person(request.local_person_id):
                message = f"no record of info_kind {request.info_kind!r} for this person"
            else:
                message = "no person with this local_person_id"
            status, answer = "not_found", not_found_response(request.id, message)
        else:
            status, answer = "ok", ok_response(request.id, record)
            if len(answer) > MAX_LINE:
                status = "error"
                answer = error_response(request.id, f"record larger than {MAX_LINE} bytes")
        event(
            logger,
            "lookup",
            peer=peer,
            request_id=request.id,
            info_kind=request.info_kind,
            status=status,
            level=logging.DEBUG,
        )
        await self._send(writer, answer)
        return True


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close the connection, flushing for at most ``CLOSE_GRACE`` seconds."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:
        pass


async def serve(
    host: str,
    port: int,
    store: RecordStore,
    faults: Faults,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until cancelled; ``ready(bound_port)`` is called once listening."""
    server = StubServer(store, faults, host=host, port=port)
    bound = await server.start()
    try:
        if ready is not None:
            ready(bound)
        await asyncio.Event().wait()
    finally:
        await server.stop()
