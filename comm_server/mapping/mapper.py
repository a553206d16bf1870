"""``Mapper``, the interface the communication server uses, and ``SpecMapper``, its
implementation driven by a declarative spec (``spec.py``).

``decode(kind, raw)`` turns one legacy record into a ``StandardRecord`` (or a
``PersonRecord`` for ``PERSON_KIND``); ``encode(kind, record)`` does the
reverse. What ``raw`` is depends on the layout: a whole fixed-width record;
one CSV line without its line end; one XML record element serialized on its
own, with its namespace declarations; one JSON object.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from xml.sax.saxutils import escape

from renkei.layout.v1 import layout_pb2

from . import layout
from .documents import DocumentError, parse_json, parse_xml
from .errors import RECORD_UNENCODABLE, MappingError, unknown_kind
from .fieldtypes import IDEOGRAPHIC_SPACE, TYPES, Value, packed_decode, packed_encode
from .layout import Record
from .spec import FieldSpec, RecordSpec, Spec, load_spec


class Mapper(Protocol):
    """One legacy format <-> the standard layout, in both directions."""

    @property
    def format(self) -> str:
        """The format's name, the key of its ``renkei.mappers`` entry point."""
        ...

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of information (and ``PERSON_KIND``) the format carries."""
        ...

    def decode(self, kind: str, raw: bytes) -> Record:
        """One legacy record -> the standard layout; ``MappingError`` and nothing else."""
        ...

    def encode(self, kind: str, record: Record) -> bytes:
        """The standard layout -> one legacy record; ``MappingError`` if it cannot be written."""
        ...


@dataclass(frozen=True, slots=True)
class FieldView:
    """One field of one record as read, for ``renkei mapper check``."""

    field: FieldSpec
    raw: bytes | str | object
    value: Value | None
    error: MappingError | None = None


_PADDED = ("text", "kana", "hook")


class SpecMapper:
    """A ``Mapper`` whose work is all described by a ``Spec``."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._qualified = {
            k: {f.name: _qualify(spec, f.path) for f in r.fields if f.path}
            for k, r in spec.records.items()
            if spec.layout == "xml"
        }

    @classmethod
    def from_file(cls, path: Any) -> SpecMapper:
        return cls(load_spec(path))

    @property
    def format(self) -> str:
        return self.spec.format

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.spec.records)

    def __repr__(self) -> str:
        return f"SpecMapper({self.spec.format!r}, {self.spec.source!r})"

    # -- the two directions ---------------------------------------------------------------

    def decode(self, kind: str, raw: bytes) -> Record:
        record_spec = self.record_spec(kind)
        record = layout.new_record(kind)
        try:
            for f, piece in self._pieces(record_spec, raw):
                value = self._value(f, piece)
                if f.target is not None and value is not None:
                    self._set(record, f, value, piece)
        except MappingError:
            raise
        except Exception as err:  # the contract: a bad record is a MappingError, whatever it held
            raise self._fail(f"unreadable record ({type(err).__name__}: {err})", raw) from None
        return record

    def encode(self, kind: str, record: Record) -> bytes:
        record_spec = self.record_spec(kind)
        self._check_record(kind, record)
        try:
            pieces = [(f, self._piece(f, record)) for f in record_spec.fields]
            return self._join(record_spec, pieces)
        except MappingError:
            raise
        except Exception as err:  # the contract, as for decode
            raise MappingError(
                f"cannot write the record ({type(err).__name__}: {err})",
                reason=RECORD_UNENCODABLE,
                mapper=self.format,
            ) from None

    def explain(self, kind: str, raw: bytes) -> list[FieldView]:
        """Every field of ``raw`` with its raw piece and value, an error per field at worst."""
        record_spec = self.record_spec(kind)
        views = []
        try:
            pieces = list(self._pieces(record_spec, raw))
        except MappingError:
            raise
        except Exception as err:  # as in decode
            raise self._fail(f"unreadable record ({type(err).__name__}: {err})", raw) from None
        for f, piece in pieces:
            try:
                views.append(FieldView(f, piece, self._value(f, piece)))
            except MappingError as err:
                views.append(FieldView(f, piece, None, err))
            except Exception as err:  # as in decode
                bad = self._error(f, f"unreadable ({type(err).__name__}: {err})", piece)
                views.append(FieldView(f, piece, None, bad))
        return views

    def record_spec(self, kind: str) -> RecordSpec:
        try:
            return self.spec.records[kind]
        except KeyError:
            raise unknown_kind(self.format, kind, self.kinds) from None

    # -- fields ---------------------------------------------------------------------------

    def _error(self, f: FieldSpec, message: str, raw: Any, *, encode: bool = False) -> MappingError:
        shown = raw if isinstance(raw, bytes | str) else json.dumps(raw, ensure_ascii=False)
        return MappingError(
            message,
            field=f.name,
            where=f.where,
            raw=shown,
            mapper=self.format,
            reason=RECORD_UNENCODABLE if encode else "LEGACY_RECORD_INVALID",
        )

    def _value(self, f: FieldSpec, piece: Any) -> Value | None:
        """A field's piece (bytes, text or a JSON value) -> the value for its target."""
        if f.type in ("filler", "ignore"):
            return None
        if f.type == "packed":
            try:
                return packed_decode(piece, f)
            except ValueError as err:
                raise self._error(f, str(err), piece) from None
        if isinstance(piece, bytes):
            try:
                text = piece.decode(self.spec.encoding)
            except UnicodeDecodeError as err:
                raise self._error(
                    f,
                    f"not valid {self.spec.encoding} at byte {(f.offset or 0) + err.start}",
                    piece,
                ) from None
        elif self.spec.layout == "json":
            return self._json_value(f, piece)
        else:
            text = piece
        return self._text_value(f, text, piece)

    def _text_value(self, f: FieldSpec, text: str, piece: Any) -> Value | None:
        if f.type == "code":
            if text not in f.codes:
                known = ", ".join(repr(c) for c in f.codes)
                raise self._error(f, f"unknown code {text!r}; known: {known}", piece)
            value: Value = f.codes[text]
            return value
        if f.type == "constant":
            if text != f.value:
                raise self._error(f, f"expected {f.value!r}, got {text!r}", piece)
            return None
        try:
            if f.type == "hook":
                assert f.hook is not None
                return f.hook.parse(text, f)
            parsed: Value = TYPES[f.type].parse(text, f)
            return parsed
        except ValueError as err:
            raise self._error(f, str(err), piece) from None
        except Exception as err:  # a hook's bug must not escape as anything but a bad record
            raise self._error(f, f"hook failed: {type(err).__name__}: {err}", piece) from None

    def _json_value(self, f: FieldSpec, piece: Any) -> Value | None:
        wanted = TYPES[f.type].json
        if f.type in ("code", "hook") or wanted is str:  # hooks see JSON strings
            if not isinstance(piece, str):
                raise self._error(f, f"expected a JSON string, got {type(piece).__name__}", piece)
            return self._text_value(f, piece, piece)
        if wanted is bool:
            if not isinstance(piece, bool):
                raise self._error(f, f"expected true or false, got {type(piece).__name__}", piece)
            return piece
        if not isinstance(piece, int) or isinstance(piece, bool):
            raise self._error(f, f"expected a JSON integer, got {type(piece).__name__}", piece)
        return self._text_value(f, str(piece), piece)

    def _set(self, record: Record, f: FieldSpec, value: Value, piece: Any) -> None:
        *parents, name = f.target_path
        obj: Any = record
        for part in parents:
            obj = getattr(obj, part)
        if f.enum_numbers and isinstance(value, str):
            value = f.enum_numbers[value]
        try:
            setattr(obj, name, value)
        except (ValueError, TypeError) as err:
            raise self._error(f, f"out of range for {f.target}: {err}", piece) from None

    def _get(self, record: Record, f: FieldSpec) -> Value:
        obj: Any = record
        for part in f.target_path:
            obj = getattr(obj, part)
        if f.enum_names:
            return f.enum_names.get(obj, str(obj))
        return obj  # type: ignore[no-any-return]  # a scalar proto field

    def _piece(self, f: FieldSpec, record: Record) -> Any:
        """The value of ``f``'s target -> its piece (bytes for fixed-width, else text/JSON)."""
        value = None if f.target is None else self._get(record, f)
        try:
            if f.type == "packed":
                assert isinstance(value, int)
                return packed_encode(value, f)
            if f.type == "code":
                for raw, mapped in f.codes.items():
                    if mapped == value and type(mapped) is type(value):
                        text = raw
                        break
                else:
                    raise ValueError(f"{value!r} has no code; codes: {f.codes}")
            elif f.type in ("constant", "ignore"):
                text = f.value
            elif f.type == "hook":
                assert f.hook is not None
                text = f.hook.format(value, f)
            elif self.spec.layout == "json" and TYPES[f.type].json in (int, bool):
                TYPES[f.type].format(value, f)  # range checks
                return value
            else:
                text = TYPES[f.type].format(value, f)
        except ValueError as err:
            raise self._error(f, str(err), repr(value), encode=True) from None
        except Exception as err:  # a hook's bug
            raise self._error(
                f, f"hook failed: {type(err).__name__}: {err}", repr(value), encode=True
            ) from None
        if self.spec.layout != "fixed":
            return text
        try:
            data = text.encode(self.spec.encoding)
        except UnicodeEncodeError as err:
            bad = text[err.start : err.end]
            raise self._error(
                f, f"{bad!r} cannot be written in {self.spec.encoding}", text, encode=True
            ) from None
        assert f.length is not None
        if len(data) > f.length:
            raise self._error(f, f"{len(data)} bytes do not fit in {f.length}", text, encode=True)
        if len(data) < f.length:
            if f.type not in _PADDED:
                raise self._error(f, f"{len(data)} bytes, expected {f.length}", text, encode=True)
            pad, odd = divmod(f.length - len(data), 2)
            data += (IDEOGRAPHIC_SPACE * pad).encode(self.spec.encoding) + b" " * odd
        return data

    def _check_record(self, kind: str, record: Record) -> None:
        def refuse(message: str) -> MappingError:
            return MappingError(message, reason=RECORD_UNENCODABLE, mapper=self.format)

        if not isinstance(record, layout.message_type(kind)):
            raise refuse(f"kind {kind} needs a {layout.message_type(kind).__name__}")
        if kind == layout.PERSON_KIND:
            return
        assert isinstance(record, layout_pb2.StandardRecord)
        if record.layout_version != layout.LAYOUT_VERSION:
            raise refuse(
                f"layout version {record.layout_version!r}; this SDK writes"
                f" {layout.LAYOUT_VERSION!r}"
            )
        case = record.WhichOneof("info")
        if case != layout.INFO_KINDS[kind]:
            raise refuse(f"kind {kind} needs info {layout.INFO_KINDS[kind]}, the record has {case}")

    # -- layouts --------------------------------------------------------------------------

    def _fail(self, message: str, raw: bytes) -> MappingError:
        return MappingError(message, raw=raw, mapper=self.format)

    def _pieces(self, record_spec: RecordSpec, raw: bytes) -> Iterator[tuple[FieldSpec, Any]]:
        if isinstance(raw, bytearray | memoryview):
            raw = bytes(raw)
        if not isinstance(raw, bytes):
            raise self._fail(f"a record is bytes, got {type(raw).__name__}", b"")
        if self.spec.layout == "fixed":
            if len(raw) != self.spec.record_length:
                what = (
                    "truncated record"
                    if len(raw) < (self.spec.record_length or 0)
                    else "record too long"
                )
                raise self._fail(
                    f"{what}: {len(raw)} bytes, expected {self.spec.record_length}", raw
                )
            for f in record_spec.fields:
                assert f.offset is not None
                assert f.length is not None
                yield f, raw[f.offset : f.offset + f.length]
        elif self.spec.layout == "csv":
            yield from zip(record_spec.fields, self._csv_row(record_spec, raw), strict=True)
        elif self.spec.layout == "xml":
            yield from self._xml_pieces(record_spec, raw)
        else:
            yield from self._json_pieces(record_spec, raw)

    def _join(self, record_spec: RecordSpec, pieces: list[tuple[FieldSpec, Any]]) -> bytes:
        if self.spec.layout == "fixed":
            return b"".join(p for _, p in sorted(pieces, key=lambda fp: fp[0].offset or 0))
        if self.spec.layout == "csv":
            out = io.StringIO()
            row = [p for _, p in sorted(pieces, key=lambda fp: fp[0].column or 0)]
            csv.writer(out, delimiter=self.spec.delimiter, lineterminator="").writerow(row)
            return self._encode_text(out.getvalue())
        if self.spec.layout == "xml":
            return self._xml_join(record_spec, pieces)
        obj: dict[str, Any] = {}
        for f, piece in pieces:
            if f.type == "ignore" or f.path is None:
                continue
            *parents, last = _pointer(f.path)
            node = obj
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = piece
        return self._encode_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def _encode_text(self, text: str) -> bytes:
        try:
            return text.encode(self.spec.encoding)
        except UnicodeEncodeError as err:
            raise MappingError(
                f"{text[err.start : err.end]!r} cannot be written in {self.spec.encoding}",
                reason=RECORD_UNENCODABLE,
                mapper=self.format,
            ) from None

    def _csv_row(self, record_spec: RecordSpec, raw: bytes) -> list[str]:
        try:
            text = raw.decode(self.spec.encoding)
        except UnicodeDecodeError as err:
            raise self._fail(f"not valid {self.spec.encoding} at byte {err.start}", raw) from None
        if "\r" in text or "\n" in text:
            raise self._fail("a line break inside the record (one line, without its end)", raw)
        try:
            rows = list(csv.reader([text], delimiter=self.spec.delimiter, strict=True))
        except csv.Error as err:
            raise self._fail(f"not one CSV line: {err}", raw) from None
        row = rows[0] if rows else []
        if len(row) != len(record_spec.fields):
            names = ",".join(
                f.name for f in sorted(record_spec.fields, key=lambda f: f.column or 0)
            )
            raise self._fail(
                f"{len(row)} columns, expected {len(record_spec.fields)} ({names})", raw
            )
        return [row[f.column or 0] for f in record_spec.fields]

    def _xml_pieces(self, record_spec: RecordSpec, raw: bytes) -> Iterator[tuple[FieldSpec, str]]:
        try:
            root = parse_xml(raw)
        except DocumentError as err:
            raise self._fail(str(err), raw) from None
        assert record_spec.element is not None
        expected = _qualify(self.spec, record_spec.element)
        if root.tag != expected:
            raise self._fail(f"record element is {root.tag}, expected {record_spec.element}", raw)
        tags = self._qualified[record_spec.kind]
        known = set(tags.values())
        for child in root:
            if child.tag not in known:
                raise self._fail(f"unexpected element {child.tag} in {record_spec.element}", raw)
        for f in record_spec.fields:
            found = root.findall(tags[f.name])
            if f.type == "ignore":
                continue
            if len(found) != 1:
                raise MappingError(
                    f"{'missing' if not found else f'{len(found)} elements'}, expected one",
                    field=f.name,
                    where=f.where,
                    raw=raw,
                    mapper=self.format,
                )
            if len(found[0]):
                raise self._error(f, "has child elements, expected text", ET.tostring(found[0]))
            yield f, found[0].text or ""

    def _xml_join(self, record_spec: RecordSpec, pieces: list[tuple[FieldSpec, Any]]) -> bytes:
        assert record_spec.element is not None
        ns = "".join(
            f' xmlns:{p}="{escape(uri, {chr(34): "&quot;"})}"'
            for p, uri in self.spec.namespaces.items()
        )
        body = "".join(
            f"<{f.path}>{escape(p)}</{f.path}>" if p else f"<{f.path}/>"
            for f, p in pieces
            if f.type != "ignore"
        )
        element = record_spec.element
        return self._encode_text(f"<{element}{ns}>{body}</{element}>")

    def _json_pieces(self, record_spec: RecordSpec, raw: bytes) -> Iterator[tuple[FieldSpec, Any]]:
        try:
            obj = parse_json(raw, self.spec.encoding)
        except DocumentError as err:
            raise self._fail(str(err)[:200], raw) from None
        if not isinstance(obj, dict):
            raise self._fail(f"expected a JSON object, got {type(obj).__name__}", raw)
        tops = {_pointer(f.path)[0] for f in record_spec.fields if f.path}
        extra = sorted(set(obj) - tops)
        if extra:
            raise self._fail(f"unexpected members {extra}", raw)
        for f in record_spec.fields:
            if f.type == "ignore":
                continue
            node: Any = obj
            for part in _pointer(f.path or ""):
                if not isinstance(node, dict) or part not in node:
                    raise MappingError(
                        "missing", field=f.name, where=f.where, raw=raw, mapper=self.format
                    )
                node = node[part]
            yield f, node


def _pointer(path: str) -> list[str]:
    """A JSON pointer (RFC 6901) -> its reference tokens."""
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _qualify(spec: Spec, name: str | None) -> str:
    if not name or ":" not in name:
        return name or ""
    prefix, local = name.split(":", 1)
    return f"{{{spec.namespaces[prefix]}}}{local}"
