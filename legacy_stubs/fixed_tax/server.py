"""The tax office's TCP server: 6-digit length-prefixed requests, one at a time per connection."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Final

from legacy_stubs import stubkit
from legacy_stubs.stubkit import Faults
from renkei.logs import event

from .records import (
    RESIDENT_KIND,
    TAX_KIND,
    Resident,
    encode_resident,
    encode_tax,
    from_json,
    generate_residents,
    to_json,
)

logger = logging.getLogger("legacy_stubs.fixed_tax")

REQUEST_LEN: Final = 40
PAGE: Final = 1000
GARBAGE: Final = b"000012RX\x82\xa0\xff\x00garb!!"
"""A length prefix, then bytes that are no response (``RX`` ...)."""

OK, NOT_FOUND, BAD_REQUEST = b"00", b"10", b"90"


def frame(body: bytes) -> bytes:
    return f"{len(body):06d}".encode("ascii") + body


def response(number: bytes, code: bytes, records: Sequence[bytes] = ()) -> bytes:
    header = b"RS" + number + code + f"{len(records):06d}".encode("ascii") + b"  "
    return frame(header + b"".join(records))


class TaxServer:
    """The tax office's server; ``faults`` may be changed at any time (or by ``FT``)."""

    def __init__(
        self,
        residents: list[Resident],
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.residents = {r.atena: r for r in residents}
        self._order = sorted(self.residents)
        self.faults = faults if faults is not None else Faults()
        self.host, self._requested_port = host, port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections_accepted = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, self._requested_port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        event(logger, "listening", host=self.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        self.connections_accepted += 1
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    prefix = await reader.readexactly(6)
                except asyncio.IncompleteReadError:
                    return
                if not prefix.isdigit():
                    # The framing is lost: answer once, then hang up.
                    writer.write(response(b"00000000", BAD_REQUEST))
                    await writer.drain()
                    return
                try:
                    body = await reader.readexactly(int(prefix))
                except asyncio.IncompleteReadError:
                    return
                answer = await self._answer(body)
                if answer is None:
                    event(logger, "fault: dropping connection")
                    return
                writer.write(answer)
                await writer.drain()
        except OSError as exc:
            event(logger, "connection lost", error=repr(exc), level=logging.INFO)
        except Exception:
            logger.exception("connection handler failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _answer(self, body: bytes) -> bytes | None:
        """The framed answer, or None to drop the connection."""
        number = body[2:10] if len(body) >= 10 and body[2:10].isdigit() else b"00000000"
        if len(body) != REQUEST_LEN:
            return response(number, BAD_REQUEST)
        kind = body[0:2]
        if kind == b"FT":
            return self._set_faults(body, number)
        if kind not in (b"LQ", b"LA") or not body[2:10].isdigit():
            return response(number, BAD_REQUEST)
        delay_ms, drop, garbage = self.faults.delay_ms, self.faults.drop, self.faults.garbage
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if drop:
            return None
        if garbage:
            return GARBAGE
        try:
            atena = body[10:20].decode("ascii").rstrip(" ")
            info = body[20:22]
            year_text = body[22:26].decode("ascii")
        except UnicodeDecodeError:
            return response(number, BAD_REQUEST)
        if kind == b"LA":
            after = [a for a in self._order if a > atena] if atena else self._order
            page = [encode_resident(self.residents[a]) for a in after[:PAGE]]
            return response(number, OK, page)
        if not atena or " " in atena or info not in (TAX_KIND.encode(), RESIDENT_KIND.encode()):
            return response(number, BAD_REQUEST)
        if year_text != "    " and not year_text.isdigit():
            return response(number, BAD_REQUEST)
        resident = self.residents.get(atena)
        if resident is None:
            return response(number, NOT_FOUND)
        if info == RESIDENT_KIND.encode():  # 課税年度 does not apply: ignored
            return response(number, OK, [encode_resident(resident)])
        if not resident.taxes:
            return response(number, NOT_FOUND)
        year = max(resident.taxes) if year_text == "    " else int(year_text)
        tax = resident.taxes.get(year)
        if tax is None:
            return response(number, NOT_FOUND)
        return response(number, OK, [encode_tax(atena, tax)])

    def _set_faults(self, body: bytes, number: bytes) -> bytes:
        delay, drop, garbage = body[26:32], body[32:33], body[33:34]
        if not delay.isdigit() or drop not in (b"0", b"1") or garbage not in (b"0", b"1"):
            return response(number, BAD_REQUEST)
        try:  # the same limits as every other stub's fault control
            self.faults.update(
                {"delay_ms": int(delay), "drop": drop == b"1", "garbage": garbage == b"1"}
            )
        except ValueError:
            return response(number, BAD_REQUEST)
        event(logger, "faults set", **self.faults.as_json())
        return response(number, OK)


def fault_request(
    number: int, delay_ms: int = 0, drop: bool = False, garbage: bool = False
) -> bytes:
    """The framed ``FT`` request that sets these faults."""
    body = (
        b"FT"
        + f"{number:08d}".encode("ascii")
        + b" " * 16
        + f"{delay_ms:06d}".encode("ascii")
        + (b"1" if drop else b"0")
        + (b"1" if garbage else b"0")
        + b" " * 6
    )
    return frame(body)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m legacy_stubs.fixed_tax",
        description="Mocked municipal tax system: fixed-width cp932 records over TCP.",
    )
    stubkit.add_common(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return stubkit.main(
        build_parser().parse_args(argv),
        log_name="legacy-fixed-tax",
        logger=logger,
        load=from_json,
        generate=generate_residents,
        dump=to_json,
        make_server=lambda data, faults, args: TaxServer(
            data, faults, host=args.host, port=args.port
        ),
    )
