"""Client for a legacy records system speaking JSON lines over TCP.

The wire format is documented in ``legacy_stubs.jsonl_records.protocol``
(the mock of such a system). It is restated here on purpose rather than
imported: production code does not depend on the test stubs.

Connections are pooled: a lookup takes an idle connection (or opens one),
sends one request, reads its one answer and gives the connection back. A
connection that failed, timed out, or answered out of protocol is closed,
never reused. A lookup that fails on a *reused* connection before any answer
arrived (the legacy system closed it while idle) is retried once on a fresh
connection; lookups are reads, so that is safe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final

from comm_server.legacy.common import (
    GARBAGE_PREVIEW,
    closed,
    describe,
    garbage,
    refused,
    timed_out,
    unavailable,
)
from comm_server.mapping.documents import DocumentError, parse_json
from renkei.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from renkei.logs import event

from . import common

logger = logging.getLogger("comm_server.legacy.jsonl")

MAX_LINE: Final = 64 * 1024
"""Longest protocol line, its newline included, in bytes."""

"""Raw bytes of an unreadable answer quoted in the error."""


def canonical_json(record: Any) -> bytes:
    """The one byte form of a record: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
        "utf-8"
    )


def decode_response(line: bytes, request_id: str) -> bytes:
    """The record in the answer ``line`` to request ``request_id``, as canonical JSON.

    Raises ``NotFound`` (RECORD_NOT_FOUND), ``Unavailable`` (LEGACY_ERROR for an
    ``error`` answer, LEGACY_GARBAGE for anything out of protocol).
    """
    try:
        body = parse_json(line)
    except DocumentError as err:
        raise garbage(line, str(err)) from None
    if not isinstance(body, dict):
        raise garbage(line, "not a JSON object")
    # An error about an unreadable request may carry a null id; anything
    # else answering another request means the stream is out of step.
    null_id_error = body.get("status") == "error" and body.get("id") is None
    if body.get("id") != request_id and not null_id_error:
        raise garbage(line, "answer to another request")
    status = body.get("status")
    if status == "ok":
        record = body.get("record")
        if not isinstance(record, dict):
            raise garbage(line, "ok answer without a record object")
        return canonical_json(record)
    if status == "not_found":
        # The legacy message may name the person: it stays out of the error.
        raise NotFound("RECORD_NOT_FOUND", "the legacy system has no such record")
    if status == "error":
        message = body.get("message")
        event(
            logger,
            "legacy system refused a request",
            request_id=request_id,
            legacy_message=message if isinstance(message, str) else repr(message),
            level=logging.WARNING,
        )
        raise refused()
    raise garbage(line, "unknown status")


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def abort(self) -> None:
        self.writer.transport.abort()


class _Retry(Exception):
    """A reused connection turned out dead before answering: try a fresh one."""

    def __init__(self, error: Unavailable) -> None:
        super().__init__(error.message)
        self.error = error


class JsonlLegacyClient:
    """Looks records up in a JSON-lines legacy system at ``host:port``.

    At most ``max_connections`` lookups are in flight at once (more wait,
    within their timeout); up to ``max_idle`` connections are kept open
    between lookups.
    """

    def __init__(
        self, host: str, port: int, *, max_connections: int = 8, max_idle: int = 4
    ) -> None:
        if max_connections < 1 or max_idle < 0:
            raise ValueError("max_connections must be >= 1 and max_idle >= 0")
        self.host = host
        self.port = port
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    def __repr__(self) -> str:
        return f"JsonlLegacyClient({self.host!r}, {self.port})"

    async def __aenter__(self) -> JsonlLegacyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def lookup(
        self,
        local_person_id: str,
        info_kind: str,
        query: bytes,
        *,
        timeout: float,
    ) -> bytes:
        """The record of ``info_kind`` for the person, as canonical JSON bytes.

        ``timeout`` (seconds) bounds the whole lookup: waiting for a
        connection, connecting, sending and reading the answer.
        """
        try:
            query_text = query.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(
                "LEGACY_QUERY_INVALID",
                f"query is not valid UTF-8 (byte {exc.start})",
                {"field": "query"},
            ) from None
        if self._closed:
            raise closed()
        request_id = uuid.uuid4().hex
        line = (
            json.dumps(
                {
                    "op": "lookup",
                    "id": request_id,
                    "local_person_id": local_person_id,
                    "info_kind": info_kind,
                    "query": query_text,
                },
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode("utf-8")
            + b"\n"
        )
        if len(line) > MAX_LINE:
            raise InvalidArgument(
                "LEGACY_QUERY_INVALID",
                f"request longer than the legacy protocol's {MAX_LINE} bytes",
                {"field": "query"},
            )
        try:
            async with asyncio.timeout(timeout):
                async with self._slots:
                    try:
                        return await self._exchange(line, request_id, fresh=False)
                    except _Retry as retry:
                        event(
                            logger,
                            "idle connection was dead, retrying on a new one",
                            error=retry.error.message,
                            level=logging.DEBUG,
                        )
                        return await self._exchange(line, request_id, fresh=True)
        except TimeoutError:
            raise timed_out(timeout) from None

    async def _exchange(self, line: bytes, request_id: str, *, fresh: bool) -> bytes:
        conn = None if fresh else self._take_idle()
        if conn is None:
            conn = await self._connect()
        keep = False
        try:
            answer = await self._round_trip(conn, line)
            try:
                record = common.read_answer(decode_response, answer, request_id)
            except (NotFound, Unavailable) as exc:
                # A protocol-level answer leaves the stream in step; garbage does not.
                keep = exc.reason in ("RECORD_NOT_FOUND", "LEGACY_ERROR")
                raise
            keep = True
            return record
        finally:
            if keep:
                self._give_back(conn)
            else:
                conn.abort()

    async def _round_trip(self, conn: _Connection, line: bytes) -> bytes:
        try:
            conn.writer.write(line)
            await conn.writer.drain()
            return await conn.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise unavailable("the legacy system closed the connection mid-answer") from None
            error = unavailable("the legacy system closed the connection without answering")
            if conn.reused:
                raise _Retry(error) from None
            raise error from None
        except asyncio.LimitOverrunError:
            # The overrun leaves the buffered bytes in place: quote their start.
            head = await conn.reader.read(GARBAGE_PREVIEW)
            raise garbage(head, f"answer longer than {MAX_LINE} bytes") from None
        except OSError as exc:
            error = unavailable(f"connection to the legacy system failed: {describe(exc)}")
            if conn.reused:
                raise _Retry(error) from None
            raise error from None

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE - 1)
        except OSError as exc:
            event(
                logger,
                "cannot connect to the legacy system",
                host=self.host,
                port=self.port,
                error=repr(exc),
                level=logging.WARNING,
            )
            raise unavailable(f"cannot connect to the legacy system: {describe(exc)}") from None
        return _Connection(reader, writer)

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                conn.reused = True
                return conn
            conn.abort()
        return None

    def _give_back(self, conn: _Connection) -> None:
        if self._closed or len(self._idle) >= self._max_idle or not conn.usable():
            conn.abort()
            return
        self._idle.append(conn)

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        """Refused: the JSON-lines system keeps records, not a person file with four facts."""
        raise FailedPrecondition(
            "LEGACY_LIST_UNSUPPORTED",
            "the JSON-lines legacy system has no person file to list",
        )

    async def aclose(self) -> None:
        """Close every idle connection; later lookups fail with LEGACY_UNAVAILABLE.

        Lookups in flight finish; their connections are closed, not pooled.
        """
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.writer.close()
        for conn in idle:
            try:
                async with asyncio.timeout(1.0):
                    await conn.writer.wait_closed()
            except (TimeoutError, OSError):
                conn.abort()
