"""``renkei mapper check SPEC_OR_FORMAT SAMPLE``: decode, re-encode, show fields and differences.

How a sample file is cut into records:

* fixed-width: records back to back, or one per line (LF or CRLF) when the file has line ends;
* CSV: one record per line; a first line equal to the spec's column names is a header;
* XML: every record element (``element`` of the spec) anywhere in the document,
  so a whole SOAP answer is a sample;
* JSON: an object (the record itself, or an answer whose ``record`` is one, or
  whose ``persons`` are), an array of records, or JSON lines.

A record round-trips when re-encoding its decoded form gives back every field
the standard layout carries. Fillers and ignored fields are shown but do not
count. Exit status: 0 all round-trip, 1 some record is bad or changed, 2 the
spec, format, kind or sample cannot be used.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from .documents import DocumentError, parse_json, parse_xml
from .errors import MappingError, SpecError, UnknownFormat
from .mapper import FieldView, Mapper, SpecMapper
from .registry import load_mapper_or_spec
from .spec import FieldSpec

_NOT_CARRIED = ("filler", "ignore", "constant")


class SampleError(Exception):
    """A sample file that cannot be cut into records."""


@dataclass(frozen=True, slots=True)
class RecordResult:
    index: int
    raw: bytes
    views: list[FieldView]
    error: MappingError | None
    reencoded: bytes | None
    differences: list[str]
    uncarried: list[str]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.differences


def split_sample(mapper: SpecMapper, kind: str, data: bytes) -> list[bytes]:
    spec = mapper.spec
    if spec.layout == "fixed":
        if b"\n" not in data:
            size = spec.record_length or 1
            return [data[i : i + size] for i in range(0, len(data), size)]
        return [line.rstrip(b"\r") for line in data.split(b"\n") if line.rstrip(b"\r")]
    if spec.layout == "csv":
        lines = [line.rstrip(b"\r") for line in data.split(b"\n") if line.rstrip(b"\r")]
        fields = sorted(mapper.record_spec(kind).fields, key=lambda f: f.column or 0)
        header = spec.delimiter.join(f.name for f in fields).encode(spec.encoding, "replace")
        return lines[1:] if lines and lines[0] == header else lines
    if spec.layout == "xml":
        return _xml_records(mapper, kind, data)
    return _json_records(data, spec.encoding)


def _xml_records(mapper: SpecMapper, kind: str, data: bytes) -> list[bytes]:
    spec = mapper.spec
    try:
        root = parse_xml(data)
    except DocumentError as err:
        raise SampleError(str(err)) from None
    element = mapper.record_spec(kind).element or ""
    prefix, _, local = element.rpartition(":")
    tag = f"{{{spec.namespaces[prefix]}}}{local}" if prefix else local
    prefixes = {uri: p for p, uri in spec.namespaces.items()}
    declarations = "".join(f" xmlns:{p}={quoteattr(uri)}" for p, uri in spec.namespaces.items())
    try:
        return [
            _serialize(found, prefixes, declarations).encode(spec.encoding)
            for found in root.iter(tag)
        ]
    except UnicodeEncodeError as err:
        raise SampleError(
            f"a record holds {err.object[err.start : err.end]!r}, not in {spec.encoding}"
        ) from None


def _serialize(el: ET.Element, prefixes: dict[str, str], declarations: str = "") -> str:
    def name(tag: str) -> str:
        if tag.startswith("{"):
            uri, local = tag[1:].split("}", 1)
            return f"{prefixes[uri]}:{local}" if uri in prefixes else local
        return tag

    attrs = "".join(f" {name(k)}={quoteattr(v)}" for k, v in el.attrib.items())
    inner = escape(el.text or "") + "".join(
        _serialize(child, prefixes) + escape(child.tail or "") for child in el
    )
    return f"<{name(el.tag)}{declarations}{attrs}>{inner}</{name(el.tag)}>"


def _json_records(data: bytes, encoding: str) -> list[bytes]:
    try:
        return _json_split(data, encoding)
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end]
        raise SampleError(f"a record holds {bad!r}, not in {encoding}") from None


def _json_split(data: bytes, encoding: str) -> list[bytes]:
    def dump(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(encoding)

    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise SampleError(f"the sample is not {encoding}: {err}") from None
    try:
        whole = parse_json(text)
    except DocumentError as first:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise SampleError(str(first)) from None
        try:
            return [dump(parse_json(line)) for line in lines]
        except DocumentError as err:
            raise SampleError(
                f"the sample is neither JSON ({first}) nor JSON lines ({err})"
            ) from None
    if isinstance(whole, list):
        return [dump(item) for item in whole]
    if isinstance(whole, dict) and isinstance(whole.get("record"), dict):
        return [dump(whole["record"])]
    if isinstance(whole, dict) and isinstance(whole.get("persons"), list):
        return [dump(item) for item in whole["persons"]]
    return [dump(whole)]


def check_record(mapper: SpecMapper, kind: str, index: int, raw: bytes) -> RecordResult:
    views = mapper.explain(kind, raw) if _splits(mapper, kind, raw) else []
    try:
        reencoded = mapper.encode(kind, mapper.decode(kind, raw))
    except MappingError as err:
        return RecordResult(index, raw, views, err, None, [], [])
    try:
        after = {v.field.name: v for v in mapper.explain(kind, reencoded)}
    except MappingError as err:  # written, but not readable back
        return RecordResult(index, raw, views, err, reencoded, [], [])
    differences: list[str] = []
    uncarried: list[str] = []
    for view in views:
        new = after[view.field.name]
        if new.raw != view.raw:
            binary = view.field.type == "packed"
            line = (
                f"{view.field.name} {view.field.where}:"
                f" {_show(view.raw, mapper.spec.encoding, binary)}"
                f" -> {_show(new.raw, mapper.spec.encoding, binary)}"
            )
            (uncarried if view.field.type in _NOT_CARRIED else differences).append(line)
    return RecordResult(index, raw, views, None, reencoded, differences, uncarried)


def _splits(mapper: SpecMapper, kind: str, raw: bytes) -> bool:
    try:
        mapper.explain(kind, raw)
    except MappingError:
        return False
    return True


def _show(piece: object, encoding: str = "cp932", binary: bool = False) -> str:
    if isinstance(piece, bytes) and binary:
        return f"hex {piece.hex(' ')}"
    if isinstance(piece, bytes):
        try:
            return repr(piece.decode(encoding))
        except UnicodeDecodeError:
            return f"hex {piece.hex(' ')}"
    if isinstance(piece, str):
        return repr(piece)
    return json.dumps(piece, ensure_ascii=False)


def _where(f: FieldSpec) -> str:
    if f.offset is not None:
        return f"{f.offset} +{f.length}"
    return f.where.removeprefix("at ").removeprefix("in ")


def _table(mapper: SpecMapper, result: RecordResult) -> Table:
    status = "[green]round-trips[/]" if result.ok else "[red]FAILS[/]"
    table = Table(title=f"record {result.index} ({len(result.raw)} bytes): {status}")
    where = "offset +len" if mapper.spec.layout == "fixed" else "where"
    for column in ("field", where, "raw", "decoded", "target"):
        table.add_column(column, overflow="fold")
    for view in result.views:
        decoded = (
            f"[red]{escape_markup(view.error.problem)}[/]"
            if view.error
            else ""
            if view.value is None
            else escape_markup(repr(view.value))
        )
        table.add_row(
            view.field.name,
            _where(view.field),
            escape_markup(_show(view.raw, mapper.spec.encoding, view.field.type == "packed")),
            decoded,
            view.field.target or f"({view.field.type})",
        )
    return table


def run_check(
    spec_or_format: str, sample: Path, kind: str | None, console: Console | None = None
) -> int:
    console = console or Console(width=160)
    try:
        found: Mapper = load_mapper_or_spec(spec_or_format)
    except (SpecError, UnknownFormat) as err:
        console.print(f"[red]renkei mapper check: {err.message}[/]", highlight=False)
        return 2
    if not isinstance(found, SpecMapper):
        console.print(f"renkei mapper check: {found!r} is not spec-driven; give its spec file")
        return 2
    mapper = found
    kind = kind or mapper.kinds[0]
    if kind not in mapper.kinds:
        console.print(
            f"[red]renkei mapper check: {mapper.format} has no kind {kind!r};"
            f" kinds: {', '.join(mapper.kinds)}[/]"
        )
        return 2
    try:
        records = split_sample(mapper, kind, sample.read_bytes())
    except (OSError, SampleError) as err:
        # One line, however long, so that it greps.
        message = escape_markup(f"{sample}: {err}")
        console.print(f"[red]renkei mapper check: {message}[/]", soft_wrap=True)
        return 2
    console.print(f"{mapper.format} ({mapper.spec.source}), kind {kind}: {len(records)} records")
    results = [check_record(mapper, kind, i, raw) for i, raw in enumerate(records, start=1)]
    for result in results:
        console.print(_table(mapper, result))
        if result.error is not None:
            message = escape_markup(result.error.message)
            console.print(
                f"[red]record {result.index}: {message}[/]", highlight=False, soft_wrap=True
            )
        for line in result.differences:
            console.print(
                f"[red]record {result.index}: differs: {escape_markup(line)}[/]", highlight=False
            )
        for line in result.uncarried:
            console.print(
                f"record {result.index}: not carried: {escape_markup(line)}", highlight=False
            )
    bad = sum(not r.ok for r in results)
    console.print(
        f"{len(results) - bad} of {len(results)} records round-trip"
        + (f"; {bad} do not" if bad else "")
    )
    return 1 if bad or not results else 0
