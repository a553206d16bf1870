"""Client for the health insurer: CSV batches through a drop folder (docs/legacy-formats.md §3).

``submit`` writes one request file ``inbox/<ticket>.csv`` atomically (a
``.csv.tmp`` renamed into place) and returns the ticket; ``collect`` reads
``outbox/<ticket>.csv`` once it exists (``None`` until then) and deletes it.
``lookup`` is both, polling until the timeout; a timed-out lookup's
LEGACY_TIMEOUT carries the ticket in its metadata, so the answer can still be
collected later. ``list_persons`` asks for the whole person file (``PERSONS``)
and pages through it here.

Answers are the raw data lines (cp932, without CRLF). The client checks the
file: valid cp932, CRLF lines, the documented header, the right column count,
the echoed 要求番号 (the ticket); the fields are the mapper's.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Final

from comm_server.mapping.documents import MAX_DOCUMENT_BYTES
from renkei.errors import RenkeiError
from renkei.logs import event

from . import common
from .common import MEDICAL_INFO

logger = logging.getLogger("comm_server.legacy.csv_dropbox")

TICKET: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
REQUEST_HEADER: Final = "要求番号,被保険者番号,情報種別,診療年月"
BENEFIT_HEADER: Final = (
    "要求番号,結果,保険者番号,被保険者番号,給付種別,自己負担割合,給付額,診療年月"
)
PERSONS_HEADER: Final = "被保険者番号,氏名,氏名カナ,生年月日,性別,住所"
PERSONS: Final = "PERSONS"
KINDS: Final = (MEDICAL_INFO,)
QUERY_KEYS: Final = ("treatment_month",)
_FORBIDDEN: Final = re.compile(r'[,"\r\n]')


def _csv_field(value: str, field: str) -> str:
    if not value or _FORBIDDEN.search(value) or not value.isprintable():
        raise common.query_invalid(
            f"{field} must be non-empty, printable, without commas, quotes or line breaks",
            field=field,
        )
    try:
        value.encode("cp932")
    except UnicodeEncodeError as exc:
        raise common.query_invalid(
            f"{field}: character {value[exc.start]!r} has no cp932 form", field=field
        ) from None
    return value


def _rows(raw: bytes) -> tuple[str, list[tuple[bytes, list[str]]]]:
    """(header, [(raw line, columns)]) of an answer file; LEGACY_GARBAGE if it is no CSV."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise common.garbage(raw, f"answer file over {MAX_DOCUMENT_BYTES} bytes")
    if not raw.endswith(b"\r\n"):
        raise common.garbage(raw, "answer file does not end with CRLF")
    lines = raw[:-2].split(b"\r\n")  # cp932 trail bytes are never CR or LF
    try:
        texts = [line.decode("cp932") for line in lines]
        parsed = list(csv.reader(texts, strict=True))  # as the mapper reads a line
    except UnicodeDecodeError as exc:
        raise common.garbage(raw, f"not cp932 (byte {exc.start} of a line)") from None
    except csv.Error as exc:
        raise common.garbage(raw, f"not CSV ({exc})") from None
    if any("\r" in t or "\n" in t for t in texts):
        raise common.garbage(raw, "a line break that is not CRLF")
    if len(parsed) != len(lines):  # the reader joined lines: a quote left open at a line's end
        raise common.garbage(raw, "a quoted field runs past the end of its line")
    return texts[0], list(zip(lines[1:], parsed[1:], strict=True))


def _benefit_line(raw: bytes, ticket: str) -> bytes:
    """The data line of a benefit answer file for ``ticket``; raises for refusals and garbage."""
    header, rows = _rows(raw)
    if header != BENEFIT_HEADER or len(rows) != 1 or len(rows[0][1]) != 8:
        raise common.garbage(raw, "not one benefit answer line of 8 columns")
    line, columns = rows[0]
    if columns[0] != ticket:
        if columns[0] == "" and columns[1] == "9":
            raise _refused(ticket)
        raise common.garbage(raw, "answer to another request")
    if columns[1] == "0":
        return line
    if columns[1] == "1":
        raise common.not_found()
    if columns[1] == "9":
        raise _refused(ticket)
    raise common.garbage(raw, f"unknown 結果 {columns[1][:10]!r}")


def _person_lines(raw: bytes, ticket: str, after: str | None, limit: int) -> list[bytes]:
    """Up to ``limit`` lines of a PERSONS answer file after ``after``, in 被保険者番号 order."""
    header, rows = _rows(raw)
    if header == BENEFIT_HEADER and len(rows) == 1 and rows[0][1][1:2] == ["9"]:
        raise _refused(ticket)
    if header != PERSONS_HEADER or any(len(columns) != 6 for _, columns in rows):
        raise common.garbage(raw, "not a person file of 6 columns")
    page = sorted(
        (columns[0], line) for line, columns in rows if after is None or columns[0] > after
    )
    return [line for _, line in page[:limit]]


def _refused(ticket: str) -> RenkeiError:
    event(logger, "legacy system refused a request", ticket=ticket, level=logging.WARNING)
    return common.refused()


class CsvDropboxClient:
    """Exchanges files with the insurer through ``folder`` (``inbox/``, ``outbox/``)."""

    def __init__(self, folder: Path, *, poll_interval: float = 0.2) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        self.folder = Path(folder)
        self.inbox, self.outbox = self.folder / "inbox", self.folder / "outbox"
        self.poll_interval = poll_interval
        self._closed = False

    def __repr__(self) -> str:
        return f"CsvDropboxClient({str(self.folder)!r})"

    async def submit(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> str:
        """Put the request in the inbox; the ticket to ``collect`` its answer with."""
        if info_kind not in KINDS:
            raise common.unknown_kind(info_kind, KINDS)
        params = common.parse_query(query, QUERY_KEYS, info_kind)
        number = _csv_field(local_person_id, "local_person_id")
        return await self._submit(number, info_kind, params.get("treatment_month", ""), timeout)

    async def _submit(self, number: str, kind: str, month: str, timeout: float) -> str:
        if self._closed:
            raise common.closed()
        ticket = uuid.uuid4().hex
        data = f"{REQUEST_HEADER}\r\n{ticket},{number},{kind},{month}\r\n".encode("cp932")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.to_thread(self._write_request, ticket, data)
        except TimeoutError:
            raise common.timed_out(timeout) from None
        except OSError as exc:
            event(logger, "cannot write to the drop folder", error=repr(exc), level=logging.WARNING)
            raise common.unavailable(
                f"cannot write to the legacy drop folder: {common.describe(exc)}"
            ) from None
        event(logger, "request submitted", ticket=ticket, level=logging.DEBUG)
        return ticket

    def _write_request(self, ticket: str, data: bytes) -> None:
        tmp = self.inbox / f"{ticket}.csv.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.inbox / f"{ticket}.csv")

    async def collect(self, ticket: str, *, timeout: float) -> bytes | None:
        """The answer data line for ``ticket``, or ``None`` while the insurer works on it.

        The answer file is deleted once read, whatever it held: a ticket is
        collected once. A ticket with neither a request nor an answer was
        dropped by the insurer (or collected already): LEGACY_UNAVAILABLE.
        """
        raw = await self._fetch(ticket, timeout)
        if raw is None:
            return None
        return common.read_answer(_benefit_line, raw, ticket)

    async def _fetch(self, ticket: str, timeout: float) -> bytes | None:
        if not isinstance(ticket, str) or not TICKET.fullmatch(ticket):
            raise common.query_invalid("ticket must be 1 to 64 of A-Z a-z 0-9 _ -", field="ticket")
        if self._closed:
            raise common.closed()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.to_thread(self._take_answer, ticket)
        except TimeoutError:
            raise common.timed_out(timeout, ticket=ticket) from None
        except OSError as exc:
            raise common.unavailable(
                f"cannot read the legacy drop folder: {common.describe(exc)}"
            ) from None

    def _take_answer(self, ticket: str) -> bytes | None:
        answer = self.outbox / f"{ticket}.csv"
        request = self.inbox / f"{ticket}.csv"
        for attempt in range(2):
            try:
                with open(answer, "rb") as fh:
                    data = fh.read(MAX_DOCUMENT_BYTES + 1)  # past the limit is garbage anyway
            except FileNotFoundError:
                # The insurer writes the answer before it deletes the request:
                # look again after seeing no request, or we could miss it.
                if attempt == 0 and request.exists():
                    return None
                continue
            answer.unlink(missing_ok=True)
            return data
        raise common.unavailable(
            "the legacy system holds neither the request nor an answer for this ticket "
            "(dropped, or collected already)"
        )

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        """``submit`` then ``collect`` until ``timeout``; LEGACY_TIMEOUT carries the ticket."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ticket = await self.submit(local_person_id, info_kind, query, timeout=timeout)
        while True:
            answer = await self.collect(ticket, timeout=max(0.001, deadline - loop.time()))
            if answer is not None:
                return answer
            remaining = deadline - loop.time()
            if remaining <= 0:
                event(logger, "answer late, left to collect", ticket=ticket)
                raise common.timed_out(timeout, ticket=ticket)
            await asyncio.sleep(min(self.poll_interval, remaining))

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        """Up to ``limit`` PERSONS lines with 被保険者番号 after ``after``, in that order."""
        common.check_limit(limit)
        if after is not None:
            _csv_field(after, "after")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ticket = await self._submit("", PERSONS, "", timeout)
        try:
            while True:
                raw = await self._fetch(ticket, max(0.001, deadline - loop.time()))
                if raw is not None:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise common.timed_out(timeout)
                await asyncio.sleep(min(self.poll_interval, remaining))
        except RenkeiError:
            with contextlib.suppress(OSError):  # withdraw it: nobody will collect a listing
                (self.inbox / f"{ticket}.csv").unlink()
            raise
        return common.read_answer(_person_lines, raw, ticket, after, limit)

    async def aclose(self) -> None:
        """Later calls fail with LEGACY_UNAVAILABLE; files in the folder stay."""
        self._closed = True
