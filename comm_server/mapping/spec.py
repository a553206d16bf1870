"""Loading a mapper spec (TOML) and refusing one that cannot work.

A spec describes one legacy format: its layout (``fixed``, ``csv``, ``xml`` or
``json``), its encoding, and for each kind of information it carries a record
layout whose fields say where they sit, their type and which field of the
standard layout they fill (``target``, a dotted path in ``StandardRecord`` or
``PersonRecord``). The loader refuses gaps and overlaps in fixed-width
records, unknown types, layouts, keys and targets, code tables that do not
fit their target, and hooks that do not import; every refusal names the spec
file, the record kind, the field and (fixed-width) its offsets.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from . import layout
from .errors import SpecError
from .fieldtypes import TYPES, FieldHook

LAYOUTS = ("fixed", "csv", "xml", "json")
_TOP_KEYS = {"format", "layout", "encoding", "record_length", "delimiter", "namespaces", "records"}
_RECORD_KEYS = {"kind", "element", "fields"}
_FIELD_KEYS = {
    "name", "type", "target", "offset", "length", "column", "path",
    "codes", "value", "fill", "format", "min", "max", "hook",
}  # fmt: skip
_NO_TARGET = ("constant", "filler", "ignore")
_PY_OF_PROTO = {
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_INT32: int,
    FieldDescriptor.TYPE_INT64: int,
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_ENUM: str,  # the enum value's name
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: str
    target: str | None = None
    offset: int | None = None
    length: int | None = None
    column: int | None = None
    path: str | None = None
    codes: dict[str, Any] = field(default_factory=dict)
    """raw text -> value of the target (an enum value's name for enums)."""
    value: str = ""
    fill: str = " "
    format: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    hook: FieldHook | None = None
    enum_numbers: dict[str, int] = field(default_factory=dict)
    """For an enum target: value name -> number (and the reverse is in enum_names)."""
    enum_names: dict[int, str] = field(default_factory=dict)
    target_path: tuple[str, ...] = ()
    """``target`` split at its dots."""

    @property
    def where(self) -> str:
        if self.offset is not None and self.length is not None:
            last = self.offset + self.length - 1
            return f"at bytes {self.offset}-{last} (offset {self.offset}, length {self.length})"
        if self.column is not None:
            return f"in column {self.column + 1}"
        return f"at {self.path}" if self.path else ""


@dataclass(frozen=True, slots=True)
class RecordSpec:
    kind: str
    fields: tuple[FieldSpec, ...]
    element: str | None = None
    """XML: the record element, prefixed ("nk:Benefit")."""


@dataclass(frozen=True, slots=True)
class Spec:
    source: str
    format: str
    layout: str
    encoding: str
    records: dict[str, RecordSpec]
    record_length: int | None = None
    delimiter: str = ","
    namespaces: dict[str, str] = field(default_factory=dict)


def load_spec(path: Path | str) -> Spec:
    path = Path(path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SpecError(source, f"cannot read: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(source, f"not TOML: {err}") from None
    return parse_spec(data, source)


def _req(data: dict[str, Any], key: str, kind: type, where: str, source: str) -> Any:
    if key not in data:
        raise SpecError(source, f"{where}: {key!r} is required")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SpecError(source, f"{where}: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _opt(data: dict[str, Any], key: str, kind: type, where: str, source: str) -> Any:
    return _req(data, key, kind, where, source) if key in data else None


def parse_spec(data: dict[str, Any], source: str) -> Spec:
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise SpecError(source, f"unknown keys {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    fmt = _req(data, "format", str, "spec", source)
    kind_of_layout = _req(data, "layout", str, "spec", source)
    if kind_of_layout not in LAYOUTS:
        raise SpecError(source, f"layout {kind_of_layout!r} is not one of {', '.join(LAYOUTS)}")
    encoding = data.get("encoding", "utf-8")
    try:
        "".encode(encoding)
    except (LookupError, TypeError):
        raise SpecError(source, f"encoding {encoding!r} is not a known codec") from None
    record_length = _opt(data, "record_length", int, "spec", source)
    if kind_of_layout == "fixed" and (record_length is None or record_length <= 0):
        raise SpecError(source, "a fixed layout needs a positive record_length")
    delimiter = _opt(data, "delimiter", str, "spec", source) or ","
    if len(delimiter) != 1:
        raise SpecError(source, f"delimiter must be one character, got {delimiter!r}")
    namespaces = _opt(data, "namespaces", dict, "spec", source) or {}
    spec = Spec(
        source, fmt, kind_of_layout, encoding, {}, record_length, delimiter, dict(namespaces)
    )
    records = _req(data, "records", list, "spec", source)
    if not records:
        raise SpecError(source, "no [[records]]")
    for raw in records:
        record = _record(spec, raw)
        if record.kind in spec.records:
            raise SpecError(source, f"kind {record.kind!r} has two [[records]]")
        spec.records[record.kind] = record
    return spec


def _record(spec: Spec, data: Any) -> RecordSpec:
    source = spec.source
    if not isinstance(data, dict):
        raise SpecError(source, f"a [[records]] entry must be a table, got {data!r}")
    kind = _req(data, "kind", str, "[[records]]", source)
    where = f"records {kind!r}"
    unknown = set(data) - _RECORD_KEYS
    if unknown:
        raise SpecError(source, f"{where}: unknown keys {sorted(unknown)}")
    if kind != layout.PERSON_KIND and kind not in layout.INFO_KINDS:
        known = [*layout.INFO_KINDS, layout.PERSON_KIND]
        raise SpecError(source, f"{where}: unknown kind; known: {', '.join(known)}")
    element = _opt(data, "element", str, where, source)
    if spec.layout == "xml":
        if element is None:
            raise SpecError(source, f"{where}: an xml layout needs the record 'element'")
        _qualify(spec, element, where)
    fields = tuple(_field(spec, kind, f, where) for f in _req(data, "fields", list, where, source))
    if not fields:
        raise SpecError(source, f"{where}: no fields")
    names = [f.name for f in fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(source, f"{where}: field names used twice: {dupes}")
    targets = [f.target for f in fields if f.target]
    dupes = sorted({t for t in targets if targets.count(t) > 1})
    if dupes:
        raise SpecError(source, f"{where}: targets filled twice: {dupes}")
    if spec.layout == "fixed":
        _check_tiling(spec, fields, where)
    elif spec.layout == "csv":
        columns = sorted(f.column for f in fields if f.column is not None)
        if columns != list(range(len(fields))):
            raise SpecError(
                source,
                f"{where}: columns must be 1..{len(fields)}, each once (gap or overlap);"
                f" got {[c + 1 for c in columns]}",
            )
    else:
        paths = [f.path for f in fields]
        dupes = sorted({p for p in paths if p and paths.count(p) > 1})
        if dupes:
            raise SpecError(source, f"{where}: paths used twice: {dupes}")
    return RecordSpec(kind, fields, element)


def _check_tiling(spec: Spec, fields: tuple[FieldSpec, ...], where: str) -> None:
    """Fixed-width fields must cover the record exactly: no gap, no overlap."""
    at = 0
    previous = "the start of the record"
    for f in sorted(fields, key=lambda f: f.offset or 0):
        assert f.offset is not None
        assert f.length is not None
        if f.offset > at:
            raise SpecError(
                spec.source,
                f"{where}: gap at bytes {at}-{f.offset - 1} between {previous} and"
                f" field {f.name!r} (offset {f.offset}); declare a filler",
            )
        if f.offset < at:
            raise SpecError(
                spec.source,
                f"{where}: field {f.name!r} (offset {f.offset}, length {f.length}) overlaps"
                f" {previous}, which ends at byte {at - 1}",
            )
        at = f.offset + f.length
        previous = f"field {f.name!r} (offset {f.offset}, length {f.length})"
    assert spec.record_length is not None
    if at != spec.record_length:
        problem = "gap" if at < spec.record_length else "overrun"
        raise SpecError(
            spec.source,
            f"{where}: {problem}: the fields end at byte {at} but record_length is"
            f" {spec.record_length} (last: {previous})",
        )


def _qualify(spec: Spec, name: str, where: str) -> str:
    """ "nk:Benefit" -> "{urn:...}Benefit", refusing an undeclared prefix."""
    if ":" not in name:
        return name
    prefix, local = name.split(":", 1)
    if prefix not in spec.namespaces:
        raise SpecError(
            spec.source, f"{where}: prefix {prefix!r} of {name!r} is not in [namespaces]"
        )
    return f"{{{spec.namespaces[prefix]}}}{local}"


def _target(spec: Spec, kind: str, target: str, where: str) -> FieldDescriptor:
    descriptor: Descriptor = layout.message_type(kind).DESCRIPTOR
    fd: FieldDescriptor | None = None
    parts = target.split(".")
    case = None if kind == layout.PERSON_KIND else layout.INFO_KINDS[kind]
    for i, part in enumerate(parts):
        fd = descriptor.fields_by_name.get(part)
        if fd is None:
            known = sorted(descriptor.fields_by_name)
            raise SpecError(
                spec.source,
                f"{where}: target {target!r}: {descriptor.name} has no field"
                f" {part!r}; known: {', '.join(known)}",
            )
        if i == 0 and fd.containing_oneof is not None and part != case:
            raise SpecError(spec.source, f"{where}: target {target!r} is not part of {kind}")
        if i < len(parts) - 1:
            if fd.message_type is None:
                raise SpecError(spec.source, f"{where}: target {target!r}: {part} is not a message")
            descriptor = fd.message_type
        elif fd.message_type is not None or fd.is_repeated:
            raise SpecError(spec.source, f"{where}: target {target!r} is not a scalar field")
        elif fd.name == "layout_version":
            raise SpecError(spec.source, f"{where}: layout_version is set by the SDK")
    assert fd is not None
    return fd


def _field(spec: Spec, kind: str, data: Any, where: str) -> FieldSpec:
    source = spec.source
    if not isinstance(data, dict):
        raise SpecError(source, f"{where}: a field must be a table, got {data!r}")
    name = _req(data, "name", str, f"{where} field", source)
    where = f"{where} field {name!r}"
    unknown = set(data) - _FIELD_KEYS
    if unknown:
        raise SpecError(source, f"{where}: unknown keys {sorted(unknown)}")
    kw: dict[str, Any] = {"name": name}
    if spec.layout == "fixed":
        kw["offset"] = _req(data, "offset", int, where, source)
        kw["length"] = _req(data, "length", int, where, source)
        if kw["offset"] < 0 or kw["length"] <= 0:
            raise SpecError(
                source, f"{where}: offset {kw['offset']}, length {kw['length']}: out of range"
            )
        where = f"{where} (offset {kw['offset']}, length {kw['length']})"
    elif spec.layout == "csv":
        kw["column"] = _req(data, "column", int, where, source) - 1
        if kw["column"] < 0:
            raise SpecError(source, f"{where}: columns count from 1")
    else:
        path = _req(data, "path", str, where, source)
        if spec.layout == "json" and not path.startswith("/"):
            raise SpecError(source, f"{where}: path {path!r} is not a JSON pointer (/a/b)")
        if spec.layout == "xml":
            if "/" in path:
                raise SpecError(source, f"{where}: xml paths name one child element of the record")
            _qualify(spec, path, where)
        kw["path"] = path
    type_name = _req(data, "type", str, where, source)
    if type_name not in TYPES:
        raise SpecError(source, f"{where}: unknown type {type_name!r}; known: {', '.join(TYPES)}")
    kw["type"] = type_name
    for key in ("offset", "length", "column", "path"):
        if key in data and key not in kw:
            raise SpecError(source, f"{where}: {key!r} does not apply to a {spec.layout} layout")
    if spec.layout != "fixed" and type_name in ("filler", "packed"):
        raise SpecError(source, f"{where}: type {type_name!r} is for fixed-width layouts only")
    kw["minimum"] = _opt(data, "min", int, where, source)
    kw["maximum"] = _opt(data, "max", int, where, source)
    kw["format"] = _opt(data, "format", str, where, source)
    kw["value"] = _opt(data, "value", str, where, source) or ""
    fill = _opt(data, "fill", str, where, source)
    if fill is not None:
        if len(fill.encode(spec.encoding, "replace")) != 1:
            raise SpecError(source, f"{where}: fill must be one byte in {spec.encoding}")
        kw["fill"] = fill
    if type_name == "constant" and "value" not in data:
        raise SpecError(source, f"{where}: a constant needs its 'value'")
    if (
        type_name in ("constant", "ignore")
        and spec.layout == "fixed"
        and len(kw["value"].encode(spec.encoding, "replace")) != kw["length"]
    ):
        # Encoding writes the value as it is, so it must fill the field exactly.
        raise SpecError(source, f"{where}: the {type_name}'s value must be {kw['length']} bytes")
    target = _opt(data, "target", str, where, source)
    if type_name in _NO_TARGET:
        if target is not None:
            raise SpecError(source, f"{where}: a {type_name} fills no target")
    elif target is None:
        raise SpecError(source, f"{where}: 'target' is required for type {type_name!r}")
    else:
        fd = _target(spec, kind, target, where)
        kw["target"] = target
        kw["target_path"] = tuple(target.split("."))
        _check_target_type(spec, fd, type_name, data, kw, where)
    if type_name == "hook":
        kw["hook"] = _load_hook(spec, _req(data, "hook", str, where, source), where)
    elif "hook" in data:
        raise SpecError(source, f"{where}: 'hook' needs type = \"hook\"")
    return FieldSpec(**kw)


def _check_target_type(
    spec: Spec, fd: FieldDescriptor, type_name: str, data: dict[str, Any],
    kw: dict[str, Any], where: str,
) -> None:  # fmt: skip
    expected = _PY_OF_PROTO.get(fd.type)
    if expected is None:
        raise SpecError(spec.source, f"{where}: target {fd.full_name} has an unsupported type")
    enum = fd.enum_type
    if enum is not None:
        kw["enum_numbers"] = {v.name: v.number for v in enum.values}
        kw["enum_names"] = {v.number: v.name for v in enum.values}
    if type_name == "code":
        codes = _req(data, "codes", dict, where, spec.source)
        if not codes:
            raise SpecError(spec.source, f"{where}: empty code table")
        for raw, value in codes.items():
            if type(value) is not expected:
                raise SpecError(
                    spec.source,
                    f"{where}: code {raw!r} -> {value!r}: {fd.full_name} needs a"
                    f" {expected.__name__}"
                    + (" (an enum value name)" if fd.type == FieldDescriptor.TYPE_ENUM else ""),
                )
            if enum is not None and value not in kw["enum_numbers"]:
                raise SpecError(
                    spec.source,
                    f"{where}: code {raw!r} -> {value!r}: not a value of"
                    f" {enum.full_name}; known: {', '.join(kw['enum_numbers'])}",
                )
        values = list(codes.values())
        if len(set(values)) != len(values):
            raise SpecError(spec.source, f"{where}: two codes map to one value; encoding needs one")
        kw["codes"] = dict(codes)
        if spec.layout == "fixed" and any(
            len(raw.encode(spec.encoding, "replace")) != kw["length"] for raw in codes
        ):
            raise SpecError(spec.source, f"{where}: every code must be {kw['length']} bytes")
        return
    if "codes" in data:
        raise SpecError(spec.source, f"{where}: 'codes' needs type = \"code\"")
    value_type = TYPES[type_name].value
    if value_type is not None and (
        value_type is not expected or fd.type == FieldDescriptor.TYPE_ENUM
    ):
        raise SpecError(
            spec.source,
            f"{where}: type {type_name!r} gives a {value_type.__name__}, but target"
            f" {fd.full_name} is a {expected.__name__}"
            + (' enum (use type = "code")' if fd.type == FieldDescriptor.TYPE_ENUM else ""),
        )


def _load_hook(spec: Spec, ref: str, where: str) -> FieldHook:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise SpecError(spec.source, f"{where}: hook {ref!r} is not 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SpecError(spec.source, f"{where}: hook {ref!r}: cannot import: {err}") from None
    hook = getattr(module, attr, None)
    if (
        hook is None
        or not callable(getattr(hook, "parse", None))
        or not callable(getattr(hook, "format", None))
    ):
        raise SpecError(spec.source, f"{where}: hook {ref!r} has no parse and format")
    return hook  # type: ignore[no-any-return]  # checked just above: it has parse and format
