"""Client for the municipal tax system: fixed-width cp932 records over TCP.

Wire format: docs/legacy-formats.md section 1 (restated here, not imported
from the stub). Query keys: ``fiscal_year=YYYY`` (課税年度) for 地方税関係情報;
none for 住民票関係情報 (the 課税年度 field is left blank).

The client checks the framing only (length prefix, ``RS`` header, echoed
要求番号, record count and size); reading the fields is the mapper's job.
Connections are pooled; one that failed or answered out of protocol is
closed. A lookup that finds a *reused* connection dead before any answer is
retried once on a fresh one (lookups are reads).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Final

from renkei.errors import RenkeiError, Unavailable
from renkei.logs import event

from . import common
from .common import RESIDENT_INFO, TAX_INFO

logger = logging.getLogger("comm_server.legacy.fixed_tax")

HEADER_LEN: Final = 20
RECORD_LEN: Final = 256
KINDS: Final = {TAX_INFO: b"01", RESIDENT_INFO: b"02"}
QUERY_KEYS: Final = {TAX_INFO: ("fiscal_year",), RESIDENT_INFO: ()}


class _Retry(Exception):
    def __init__(self, error: Unavailable) -> None:
        super().__init__(error.message)
        self.error = error


def _ascii_id(value: str, field: str) -> bytes:
    printable = value.isascii() and value.isprintable() and " " not in value
    raw = value.encode("ascii") if printable else b""
    if not raw or len(raw) > 10:
        raise common.query_invalid(
            f"{field} must be 1 to 10 printable ASCII characters without spaces for the "
            "tax system's 宛名番号",
            field=field,
        )
    return raw.ljust(10, b" ")


class FixedTaxClient:
    """Looks records up in the tax system at ``host:port``."""

    def __init__(self, host: str, port: int, *, max_connections: int = 8, max_idle: int = 4):
        self.host, self.port = host, port
        self._max_idle = max_idle
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._numbers = itertools.count(1)
        self._closed = False

    def __repr__(self) -> str:
        return f"FixedTaxClient({self.host!r}, {self.port})"

    def _request(self, kind: bytes, atena: bytes, info: bytes, year: bytes) -> tuple[bytes, bytes]:
        number = f"{next(self._numbers) % 100_000_000:08d}".encode("ascii")
        body = kind + number + atena + info + year + b" " * 14
        return number, f"{len(body):06d}".encode("ascii") + body

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        """The 256-byte tax (``01``) or resident (``02``) record, as the system wrote it."""
        info = KINDS.get(info_kind)
        if info is None:
            raise common.unknown_kind(info_kind, KINDS)
        params = common.parse_query(query, QUERY_KEYS[info_kind], info_kind)
        atena = _ascii_id(local_person_id, "local_person_id")
        year = params.get("fiscal_year", "    ").encode("ascii")
        number, message = self._request(b"LQ", atena, info, year)
        records = await self._call(number, message, timeout)
        if len(records) != 1:
            raise common.garbage(message, f"{len(records)} records answer a lookup")
        return records[0]

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        """Up to ``limit`` 256-byte resident records with 宛名番号 after ``after``."""
        common.check_limit(limit)
        atena = b" " * 10 if after is None else _ascii_id(after, "after")
        number, message = self._request(b"LA", atena, b"  ", b"    ")
        return (await self._call(number, message, timeout))[:limit]

    async def _call(self, number: bytes, message: bytes, timeout: float) -> list[bytes]:
        if self._closed:
            raise common.closed()
        try:
            async with asyncio.timeout(timeout), self._slots:
                try:
                    return await self._exchange(number, message, fresh=False)
                except _Retry:
                    return await self._exchange(number, message, fresh=True)
        except TimeoutError:
            raise common.timed_out(timeout) from None

    async def _exchange(self, number: bytes, message: bytes, *, fresh: bool) -> list[bytes]:
        conn = None if fresh else self._take_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        reader, writer = conn
        keep = False
        try:
            try:
                writer.write(message)
                await writer.drain()
                prefix = await reader.readexactly(6)
            except (asyncio.IncompleteReadError, OSError) as exc:
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                error = common.unavailable(
                    "the legacy system closed the connection mid-answer"
                    if partial
                    else "the legacy system closed the connection without answering"
                )
                if reused and not partial:
                    raise _Retry(error) from None
                raise error from None
            if not prefix.isdigit():
                raise common.garbage(prefix, "length prefix is not 6 digits")
            try:
                body = await reader.readexactly(int(prefix))
            except (asyncio.IncompleteReadError, OSError):
                raise common.unavailable(
                    "the legacy system closed the connection mid-answer"
                ) from None
            records = common.read_answer(self._records, body, number)
            keep = True
            return records
        except RenkeiError as exc:
            keep = exc.reason in ("RECORD_NOT_FOUND", "LEGACY_ERROR")
            raise
        finally:
            if keep and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:
                writer.transport.abort()

    def _records(self, body: bytes, number: bytes) -> list[bytes]:
        if len(body) < HEADER_LEN or body[0:2] != b"RS":
            raise common.garbage(body, "not an RS response")
        if body[2:10] != number:
            raise common.garbage(body, "answer to another request")
        count_text = body[12:18]
        if not count_text.isdigit() or len(body) != HEADER_LEN + RECORD_LEN * int(count_text):
            raise common.garbage(body, "record count does not match the length")
        code = body[10:12]
        count = int(count_text)
        if code == b"00":
            return [
                body[HEADER_LEN + i * RECORD_LEN : HEADER_LEN + (i + 1) * RECORD_LEN]
                for i in range(count)
            ]
        if code in (b"10", b"90") and count == 0:
            if code == b"10":
                raise common.not_found()
            event(logger, "legacy system refused a request", code="90", level=logging.WARNING)
            raise common.refused()
        raise common.garbage(body, f"unknown result code {code!r}")

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            event(
                logger,
                "cannot connect to the legacy system",
                host=self.host,
                port=self.port,
                error=repr(exc),
                level=logging.WARNING,
            )
            raise common.unavailable(
                f"cannot connect to the legacy system: {common.describe(exc)}"
            ) from None

    def _take_idle(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.transport.abort()
        return None

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.transport.abort()
