"""The insurer's batch process: polls ``inbox/``, answers into ``outbox/`` later.

Faults come from ``control/faults.json``, re-read before each batch (request
file); ``--delay-ms``/``--drop``/``--garbage`` write that file at start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from legacy_stubs import stubkit
from legacy_stubs.stubkit import Faults
from renkei.files import atomic_write
from renkei.logs import event

from .records import INSURER_NUMBER, Insured, from_json, generate_insured, to_json

logger = logging.getLogger("legacy_stubs.csv_insurer")

TICKET: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
REQUEST_HEADER: Final = ["要求番号", "被保険者番号", "情報種別", "診療年月"]
BENEFIT_HEADER: Final = [
    "要求番号", "結果", "保険者番号", "被保険者番号",
    "給付種別", "自己負担割合", "給付額", "診療年月",
]  # fmt: skip
PERSONS_HEADER: Final = ["被保険者番号", "氏名", "氏名カナ", "生年月日", "性別", "住所"]
MEDICAL_INFO: Final = "医療保険給付関係情報"
PERSONS: Final = "PERSONS"
GARBAGE: Final = b"\x81\x00\xff\xfe,,garbage\r\n"
"""What an answer file holds under the garbage fault: not cp932."""


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("cp932")


class InsurerServer:
    """The batch process over ``folder`` (``inbox/``, ``outbox/``, ``control/``)."""

    def __init__(
        self,
        folder: Path,
        insured: list[Insured],
        *,
        poll_interval: float = 0.2,
        faults: Faults | None = None,
    ) -> None:
        self.folder = folder
        self.inbox, self.outbox = folder / "inbox", folder / "outbox"
        self.control = folder / "control" / "faults.json"
        self.insured = {i.number: i for i in insured}
        self.poll_interval = poll_interval
        self._initial_faults = faults
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    def set_faults(self, faults: Faults) -> None:
        """Write ``control/faults.json`` (what a test or an operator does by hand)."""
        atomic_write(self.control, json.dumps(faults.as_json()).encode("utf-8"))

    async def start(self) -> None:
        for sub in (self.inbox, self.outbox, self.control.parent):
            sub.mkdir(parents=True, exist_ok=True)
        if self._initial_faults is not None:
            self.set_faults(self._initial_faults)
        self._poller = asyncio.create_task(self._poll())
        event(logger, "watching", folder=str(self.folder), poll_interval=self.poll_interval)

    async def stop(self) -> None:
        tasks = [t for t in (self._poller, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poller = None

    def _faults(self) -> Faults:
        faults = Faults()
        try:
            body = json.loads(self.control.read_bytes())
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            faults.update(body)
        except FileNotFoundError:
            pass
        except ValueError as exc:
            event(logger, "faults file unreadable, ignored", error=str(exc), level=logging.WARNING)
        return faults

    async def _poll(self) -> None:
        while True:
            try:
                names = sorted(os.listdir(self.inbox))
            except OSError as exc:
                event(logger, "cannot read the inbox", error=repr(exc), level=logging.WARNING)
                names = []
            for name in names:
                ticket = name.removesuffix(".csv")
                if not name.endswith(".csv") or ticket in self._busy:
                    continue
                if not TICKET.fullmatch(ticket):
                    event(logger, "request file name refused", name=name, level=logging.WARNING)
                    with contextlib.suppress(OSError):
                        os.replace(self.inbox / name, self.inbox / (name + ".rejected"))
                    continue
                self._busy.add(ticket)
                task = asyncio.create_task(self._batch(ticket, self._faults()))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(self.poll_interval)

    async def _batch(self, ticket: str, faults: Faults) -> None:
        request = self.inbox / f"{ticket}.csv"
        answer = self.outbox / f"{ticket}.csv"
        try:
            data = request.read_bytes()
            if faults.delay_ms:
                await asyncio.sleep(faults.delay_ms / 1000)
            if not request.exists():
                event(logger, "request withdrawn before its answer", ticket=ticket)
            elif faults.drop:
                event(logger, "fault: dropping request", ticket=ticket)
            elif faults.garbage:
                event(logger, "fault: answering garbage", ticket=ticket)
                atomic_write(answer, GARBAGE)
            else:
                atomic_write(answer, self.answer(data))
            request.unlink(missing_ok=True)
        except OSError as exc:
            event(logger, "batch failed", ticket=ticket, error=repr(exc), level=logging.WARNING)
        finally:
            self._busy.discard(ticket)

    def answer(self, data: bytes) -> bytes:
        """The answer file for the request file ``data``."""
        try:
            lines = data.decode("cp932").split("\r\n")
            if lines and lines[-1] == "":
                lines.pop()
            rows = list(csv.reader(lines))
        except (UnicodeDecodeError, csv.Error):
            return csv_bytes([BENEFIT_HEADER, ["", "9", "", "", "", "", "", ""]])
        if not rows or rows[0] != REQUEST_HEADER or len(rows) < 2:
            return csv_bytes([BENEFIT_HEADER, ["", "9", "", "", "", "", "", ""]])
        body = rows[1:]
        if len(body) == 1 and len(body[0]) == 4 and body[0][2] == PERSONS:
            return self._persons()
        return csv_bytes([BENEFIT_HEADER, *(self._benefit(row) for row in body)])

    def _benefit(self, row: list[str]) -> list[str]:
        number = row[0] if row else ""
        error = [number, "9", "", "", "", "", "", ""]
        if len(row) != 4 or not number or row[2] != MEDICAL_INFO:
            return error
        month = row[3]
        if month and not re.fullmatch(r"[0-9]{4}(0[1-9]|1[0-2])", month):
            return error
        insured = self.insured.get(row[1])
        if insured is None or not insured.benefits:
            return [number, "1", "", "", "", "", "", ""]
        benefit = insured.benefits.get(month or max(insured.benefits))
        if benefit is None:
            return [number, "1", "", "", "", "", "", ""]
        return [
            number,
            "0",
            INSURER_NUMBER,
            insured.number,
            benefit.kind,
            str(benefit.ratio),
            str(benefit.amount),
            benefit.month,
        ]

    def _persons(self) -> bytes:
        rows = [PERSONS_HEADER]
        for number in sorted(self.insured):
            p = self.insured[number].person
            rows.append(
                [
                    number,
                    p.name,
                    p.kana,
                    p.birth_date.strftime("%Y/%m/%d"),
                    "男" if p.sex == "male" else "女",
                    p.address,
                ]
            )
        return csv_bytes(rows)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.01 <= value <= 60:
        raise argparse.ArgumentTypeError("must be from 0.01 to 60 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m legacy_stubs.csv_insurer",
        description="Mocked health insurer: CSV batches through a drop folder.",
    )
    parser.add_argument("--folder", type=Path, required=True, help="the drop folder")
    parser.add_argument("--poll-interval", type=_interval, default=0.2, help="seconds")
    stubkit.add_common(parser, network=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return stubkit.main(
        build_parser().parse_args(argv),
        log_name="legacy-csv-insurer",
        logger=logger,
        load=from_json,
        generate=generate_insured,
        dump=to_json,
        make_server=lambda data, faults, args: InsurerServer(
            args.folder,
            data,
            poll_interval=args.poll_interval,
            faults=faults if faults != Faults() else None,
        ),
    )
