"""The mappers and the legacy clients' parse boundary, fed mutated golden fixtures.

Mappers (every registered format, both directions of the contract):
``decode(kind, raw)`` on golden records mutated at the byte level and
structurally (deep nesting, encoding declarations, DTDs, huge integers, lone
surrogates, CSV quotes and line breaks ...) and ``encode(kind, record)`` on
golden records with hostile field values, and on whatever decode made of a
mutated record. Either gives a value or raises ``MappingError``; anything
else fails the run.

Legacy clients: each client's answer parser, behind ``common.read_answer`` as
the client calls it, on mutated well-formed answers built around the golden
records. It returns the record(s) or refuses with LEGACY_GARBAGE,
RECORD_NOT_FOUND or LEGACY_ERROR; anything else fails the run. What it
returns goes on through the format's mapper, under the mapper's contract.

An input taking over ``hang_seconds`` fails the run; one past
``HARD_LIMIT_SECONDS`` is interrupted (SIGALRM, in the main thread).
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message

from comm_server.legacy import (
    common,
    csv_dropbox_client,
    json_http_client,
    jsonl_client,
    soap_client,
)
from comm_server.legacy.fixed_tax_client import FixedTaxClient
from comm_server.mapping import layout
from comm_server.mapping.errors import MappingError
from comm_server.mapping.mapper import Mapper, SpecMapper
from comm_server.mapping.registry import known_formats, load_mapper
from ops.fuzz import messages
from ops.fuzz.report import Tally
from renkei.errors import RenkeiError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "unit" / "fixtures" / "mappers"
KIND_OF_PREFIX = {
    "tax": common.TAX_INFO,
    "resident": common.RESIDENT_INFO,
    "pension": common.PENSION_INFO,
    "medical": common.MEDICAL_INFO,
    "person": layout.PERSON_KIND,
}
LEGACY_REFUSALS = frozenset({"LEGACY_GARBAGE", "RECORD_NOT_FOUND", "LEGACY_ERROR"})
HARD_LIMIT_SECONDS = 10.0
CAUGHT = re.compile(r"(?:unreadable record|cannot write the record) \((\w+):")


def _deep(open_: bytes, close: bytes, depth: int) -> bytes:
    return open_ * depth + close * depth


ENTITIES = b'<!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
PIECES: tuple[bytes, ...] = (
    b'<?xml version="1.0" encoding="utf-16"?>',
    b'<?xml version="1.0" encoding="utf-7"?>',
    b'<?xml version="1.0" encoding="cp932"?>',
    b'<?xml version="1.0" encoding="iso-8859-1"?>',
    b'<?xml version="" encoding="o"?>',
    b'<?xml version="1.1"?>',
    ENTITIES,
    b'<!DOCTYPE a SYSTEM "file:///etc/passwd">',
    b"&a;",
    b"&#0;",
    b"&#x110000;",
    b"&#xD800;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"<?pi x?>",
    b' xmlns:nk="urn:other"',
    b' xmlns="urn:renkei:stub:nenkin:v1"',
    _deep(b"<a>", b"</a>", 70),
    _deep(b"<a>", b"</a>", 5000),
    _deep(b"[", b"]", 70),
    _deep(b"[", b"]", 5000),
    _deep(b'{"a":', b"}", 70),
    b"9" * 5000,
    b"-" + b"9" * 4301,
    b"1e999",
    b"-0",
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    b"{}",
    b"[]",
    b"\\ud800",
    b"\\udfff\\ud800",
    b"\xed\xa0\x80",  # a UTF-8 encoded lone surrogate
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\x00",
    b"\x82",  # a cp932 lead byte without its trail
    b"\x81\x7f",
    b"\x85",
    b'"',
    b'""',
    b'"a,b"',
    b"\r\n",
    b"\r",
    b"\n",
    b",",
    b",,,,,,,,",
    b"\t",
    "１２３".encode(),
    "令和".encode("cp932"),
    "髙".encode("cp932"),
    b"\x1b[31m",
)


def mutate_document(rng: random.Random, golden: bytes, others: Sequence[bytes]) -> bytes:
    """``golden`` with 1-3 mutations: byte-level, or a hostile piece where it hurts."""
    raw = golden
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.4:
            raw = messages.mutate(rng, raw, others)
        elif r < 0.7:
            at = rng.randint(0, len(raw))
            raw = raw[:at] + rng.choice(PIECES) + raw[at:]
        elif r < 0.8:
            raw = rng.choice(PIECES) + raw  # where a declaration, DTD or BOM would stand
        elif r < 0.85:
            raw = _replace_token(rng, raw)
        elif r < 0.92:  # in place, the length kept (what a fixed-width record needs)
            piece = rng.choice(PIECES)[: len(raw)]
            at = rng.randint(0, len(raw) - len(piece))
            raw = raw[:at] + piece + raw[at + len(piece) :]
        else:
            other = rng.choice(others) if others else raw
            cut, cut2 = rng.randint(0, len(raw)), rng.randint(0, len(other))
            raw = raw[:cut] + other[cut2:]
    return raw


def _replace_token(rng: random.Random, raw: bytes) -> bytes:
    """A run of digits or a text between delimiters replaced by a hostile piece."""
    starts = [i for i, b in enumerate(raw) if chr(b) in '>",:' or (i == 0)]
    if not starts:
        return raw
    at = rng.choice(starts) + 1
    end = at
    while end < len(raw) and chr(raw[end]) not in '<",}\r\n':
        end += 1
    return raw[:at] + rng.choice(PIECES) + raw[end:]


@dataclass(frozen=True)
class Golden:
    format: str
    kind: str
    raw: bytes
    record: Message


def golden_records(fixtures: Path = FIXTURES) -> list[Golden]:
    found = []
    for path in sorted(fixtures.glob("*/*")):
        if path.suffix == ".txtpb" or ".encoded." in path.name:
            continue
        kind = KIND_OF_PREFIX[path.name.split("_")[0]]
        record = layout.message_type(kind)()
        text_format.Parse(path.with_suffix(".txtpb").read_text(encoding="utf-8"), record)
        found.append(Golden(path.parent.name, kind, path.read_bytes(), record))
    return found


# -- the hang guard ---------------------------------------------------------------------


class _TooSlow(BaseException):
    """Raised into an input that ran past HARD_LIMIT_SECONDS (not an Exception: no
    ``except Exception`` in the code under test may swallow it)."""


@contextlib.contextmanager
def _hard_limit() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _timed(call: Callable[[], object]) -> tuple[object, BaseException | None, float]:
    signal_ok = threading.current_thread() is threading.main_thread()
    if signal_ok:
        signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_SECONDS)
    started = time.perf_counter()
    try:
        return call(), None, time.perf_counter() - started
    except BaseException as exc:  # judged by the caller: the contract is about which
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, exc, time.perf_counter() - started
    finally:
        if signal_ok:
            signal.setitimer(signal.ITIMER_REAL, 0)


# -- mappers ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class MapperFuzzer:
    def __init__(
        self,
        rng: random.Random,
        tally: Tally,
        *,
        hang_seconds: float = 1.0,
        fixtures: Path = FIXTURES,
    ) -> None:
        self.rng = rng
        self.tally = tally
        self.hang = hang_seconds
        self.golden = golden_records(fixtures)
        self.mappers: dict[str, Mapper] = {f: load_mapper(f) for f in known_formats()}
        self.gen = messages.Generator(rng, _words(self.golden))
        fixtured = {g.format for g in self.golden}
        self.unfixtured = sorted(set(self.mappers) - fixtured)
        for fmt in self.unfixtured:  # an installed mapper without fixtures here: its own output
            self.golden.extend(self._made_up(fmt))

    def _made_up(self, fmt: str) -> list[Golden]:
        """Golden records for a mapper without fixtures: plausible records it encodes."""
        made = []
        mapper = self.mappers[fmt]
        for kind in mapper.kinds:
            for _ in range(20):
                record = layout.new_record(kind)
                record.MergeFrom(self.gen.plausible(record.DESCRIPTOR))  # type: ignore[arg-type]
                try:
                    raw = mapper.encode(kind, record)
                except Exception:  # made-up records a format cannot carry: try another
                    continue
                made.append(Golden(fmt, kind, raw, record))
                break
        return made

    def decode(self, fmt: str, kind: str, raw: bytes) -> Message | None:
        """One decode under the contract; the record, or None (refused or failed)."""
        mapper = self.mappers[fmt]
        value, exc, took = _timed(lambda: mapper.decode(kind, raw))
        case = {"kind": "mapper", "format": fmt, "direction": "decode", "info_kind": kind}
        target = f"{fmt} decode"
        if not self._judge(target, exc, took, {**case, "raw": _b64(raw)}):
            return None
        return value if isinstance(value, Message) else None

    def explain(self, fmt: str, kind: str, raw: bytes) -> None:
        """``renkei mapper check``'s view of a record: field views, or one MappingError."""
        mapper = self.mappers[fmt]
        if not isinstance(mapper, SpecMapper):
            return
        _, exc, took = _timed(lambda: mapper.explain(kind, raw))
        case = {"kind": "mapper", "format": fmt, "direction": "explain", "info_kind": kind}
        self._judge(f"{fmt} explain", exc, took, {**case, "raw": _b64(raw)})

    def encode(self, fmt: str, kind: str, record: Message) -> None:
        mapper = self.mappers[fmt]
        value, exc, took = _timed(lambda: mapper.encode(kind, record))  # type: ignore[arg-type]
        case = {
            "kind": "mapper",
            "format": fmt,
            "direction": "encode",
            "info_kind": kind,
            "record": _b64(record.SerializeToString()),
        }
        if exc is None and not isinstance(value, bytes):
            self.tally.fail(f"{fmt} encode", f"encode gave {type(value).__name__}", case)
        self._judge(f"{fmt} encode", exc, took, case)

    def _judge(
        self, target: str, exc: BaseException | None, took: float, case: dict[str, Any]
    ) -> bool:
        """Record the outcome; True when the call returned a value."""
        if exc is None:
            self.tally.saw(target, "ok")
        elif isinstance(exc, MappingError):
            # The mapper's catch-all keeps the contract for an exception from below it;
            # shown apart (by the exception's class) since each is a bug worth a look.
            caught = CAUGHT.search(exc.message)
            label = f"caught {caught.group(1)}" if caught else exc.reason
            self.tally.saw(target, f"MappingError/{label}")
        else:
            self.tally.saw(target, type(exc).__name__)
            where = exc.__traceback__
            while where is not None and where.tb_next is not None:
                where = where.tb_next
            line = f" at {where.tb_frame.f_code.co_filename}:{where.tb_lineno}" if where else ""
            self.tally.fail(target, f"{type(exc).__name__}: {str(exc)[:200]}{line}", case)
        if took > self.hang:
            self.tally.fail(target, f"one input took {took:.2f} s (over {self.hang:g} s)", case)
        return exc is None

    def one(self) -> None:
        rng = self.rng
        g = rng.choice(self.golden)
        r = rng.random()
        if r < 0.75:
            others = [o.raw for o in self.golden if o.format == g.format] + [
                rng.choice(self.golden).raw
            ]
            raw = mutate_document(rng, g.raw, others)
            if rng.random() < 0.1:
                self.explain(g.format, g.kind, raw)
                return
            decoded = self.decode(g.format, g.kind, raw)
            if decoded is not None and rng.random() < 0.3:
                self.encode(g.format, g.kind, decoded)
        elif r < 0.8:
            self.decode(g.format, g.kind, messages.random_bytes(rng))
        else:
            record = type(g.record)()
            record.CopyFrom(g.record)
            hostile = self.gen.hostile(g.record.DESCRIPTOR)  # type: ignore[arg-type]
            if rng.random() < 0.5:
                record.MergeFrom(hostile)  # the golden record with hostile values over it
            else:
                record = hostile
            self.encode(g.format, g.kind, record)


def _words(golden: Sequence[Golden]) -> list[str]:
    found: set[str] = set()
    for g in golden:
        for _, value in g.record.ListFields():
            if isinstance(value, str):
                found.add(value)
            elif isinstance(value, Message):
                found.update(v for _, v in value.ListFields() if isinstance(v, str))
    return sorted(found) or ["x"]


# -- legacy clients ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A well-formed legacy answer, the parser its client reads it with, the mapper after."""

    client: str
    reader: str
    raw: bytes
    parse: Callable[..., object]  # called as the client calls it: read_answer(parse, raw, *args)
    args: tuple[object, ...]
    format: str | None  # the mapper that decodes what the parser returns
    kind: str

    def read(self, raw: bytes) -> object:
        return common.read_answer(self.parse, raw, *self.args)


def _csv_answer(line: bytes, header: str) -> bytes:
    return header.encode("cp932") + b"\r\n" + line + b"\r\n"


def legacy_answers(golden: Sequence[Golden]) -> list[Answer]:
    """The answers each client parses, built around the golden records."""
    tax = FixedTaxClient("127.0.0.1", 9)  # never connects: only its parser is used
    answers: list[Answer] = []
    for g in golden:
        person = g.kind == layout.PERSON_KIND
        if g.format == "soap_pension":
            tag = b"ListPersonsResponse" if person else b"GetBenefitResponse"
            body = b"<nk:" + tag + b">" + g.raw * (2 if person else 1) + b"</nk:" + tag + b">"
            raw = soap_client.envelope(body.decode())
            if person:
                parse: Callable[..., object] = soap_client._persons
                answers.append(Answer("soap", "persons", raw, parse, (200, 10), g.format, g.kind))
            else:
                parse = soap_client._benefit
                answers.append(Answer("soap", "benefit", raw, parse, (200,), g.format, g.kind))
        elif g.format == "csv_insurer":
            if person:
                raw = _csv_answer(g.raw, csv_dropbox_client.PERSONS_HEADER)
                parse = csv_dropbox_client._person_lines
                answers.append(
                    Answer("csv_dropbox", "persons", raw, parse, ("R1", None, 10), g.format, g.kind)
                )
            else:
                ticket = g.raw.split(b",", 1)[0].decode()
                raw = _csv_answer(g.raw, csv_dropbox_client.BENEFIT_HEADER)
                parse = csv_dropbox_client._benefit_line
                answers.append(
                    Answer("csv_dropbox", "benefit", raw, parse, (ticket,), g.format, g.kind)
                )
        elif g.format == "json_http":
            record = json.loads(g.raw)
            if person:
                raw = json.dumps({"persons": [record, record]}, ensure_ascii=False).encode()
                parse = json_http_client._persons
                answers.append(
                    Answer("json_http", "persons", raw, parse, (200, 10), g.format, g.kind)
                )
            else:
                raw = json.dumps({"kind": g.kind, "record": record}, ensure_ascii=False).encode()
                parse = json_http_client._record
                answers.append(
                    Answer("json_http", "record", raw, parse, (200, g.kind), g.format, g.kind)
                )
            line = json.dumps({"id": "q-1", "status": "ok", "record": record}).encode()
            parse = jsonl_client.decode_response
            answers.append(Answer("jsonl", "response", line, parse, ("q-1",), None, g.kind))
        elif g.format == "fixed_tax":
            raw = b"RS00000001" + b"00" + b"000001" + g.raw
            parse = tax._records
            answers.append(
                Answer("fixed_tax", "records", raw, parse, (b"00000001",), g.format, g.kind)
            )
    return answers


class LegacyFuzzer:
    def __init__(self, mappers: MapperFuzzer) -> None:
        self.m = mappers
        self.answers = legacy_answers(mappers.golden)

    def one(self) -> None:
        rng = self.m.rng
        a = rng.choice(self.answers)
        others = [o.raw for o in self.answers if o.client == a.client]
        raw = mutate_document(rng, a.raw, others) if rng.random() < 0.95 else a.raw
        target = f"legacy {a.client} {a.reader}"
        value, exc, took = _timed(lambda: a.read(raw))
        case = {"kind": "legacy", "client": a.client, "reader": a.reader, "raw": _b64(raw)}
        if exc is None:
            records = value if isinstance(value, list) else [value]
            if not all(isinstance(r, bytes) for r in records):
                self.m.tally.fail(target, f"reader gave {type(value).__name__}", case)
            self.m.tally.saw(target, "ok")
            if a.format is not None:
                for record in records[:3]:
                    if isinstance(record, bytes):
                        self.m.decode(a.format, a.kind, record)
        elif isinstance(exc, RenkeiError) and exc.reason in LEGACY_REFUSALS:
            self.m.tally.saw(target, exc.reason)
        else:
            reason = getattr(exc, "reason", "")
            self.m.tally.saw(target, f"{type(exc).__name__}{'/' + reason if reason else ''}")
            self.m.tally.fail(target, f"{type(exc).__name__}: {str(exc)[:200]}", case)
        if took > self.m.hang:
            self.m.tally.fail(target, f"one input took {took:.2f} s", case)


def fuzz_mappers(
    total: int,
    seed: int,
    tally: Tally,
    *,
    legacy_share: float = 0.2,
    stop_at: float | None = None,
    hang_seconds: float = 1.0,
) -> None:
    """``total`` mapper inputs, plus ``legacy_share`` of that many legacy answers."""
    rng = random.Random(seed)
    mappers = MapperFuzzer(rng, tally, hang_seconds=hang_seconds)
    legacy = LegacyFuzzer(mappers)
    with _hard_limit():
        done = 0
        while _mapper_inputs(tally) < total:
            if stop_at is not None and done % 100 == 0 and time.monotonic() > stop_at:
                break
            done += 1
            if rng.random() < legacy_share / (1 + legacy_share):
                legacy.one()
            else:
                mappers.one()


def _mapper_inputs(tally: Tally) -> int:
    return sum(n for t, n in tally.inputs.items() if not t.startswith("legacy "))


def replay(case: dict[str, Any]) -> str | None:
    """A kept mapper or legacy case run again: None if it keeps the contract now."""
    tally = Tally()
    mappers = MapperFuzzer(random.Random(0), tally)
    if case["kind"] == "mapper":
        if case["direction"] == "decode":
            mappers.decode(case["format"], case["info_kind"], base64.b64decode(case["raw"]))
        elif case["direction"] == "explain":
            mappers.explain(case["format"], case["info_kind"], base64.b64decode(case["raw"]))
        else:
            record = layout.message_type(case["info_kind"])()
            record.ParseFromString(base64.b64decode(case["record"]))
            mappers.encode(case["format"], case["info_kind"], record)
    else:
        legacy = LegacyFuzzer(mappers)
        answer = next(
            a for a in legacy.answers if (a.client, a.reader) == (case["client"], case["reader"])
        )
        raw = base64.b64decode(case["raw"])
        _, exc, _ = _timed(lambda: answer.read(raw))
        ok = exc is None or (isinstance(exc, RenkeiError) and exc.reason in LEGACY_REFUSALS)
        if not ok:
            return f"{type(exc).__name__}: {exc}"
    return "; ".join(f.problem for f in tally.failures) or None
