"""Field types: how one field's text becomes a value of the standard layout and back.

Every type works on text (a fixed-width field is first cut out by its byte
offsets and decoded from the record's encoding), so one table serves the
fixed-width, CSV, XML and JSON layouts. ``length`` is the field's byte length
in a fixed-width record, ``None`` elsewhere; padding happens only then.

A type raises ``ValueError`` with a short reason; the layout turns that into a
``MappingError`` that names the field, where it sits and the raw bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from renkei.fourfacts.eras import era_by_key, era_date, era_of

IDEOGRAPHIC_SPACE = "\u3000"

Value = str | int | bool
_DIGITS = re.compile(r"[0-9]+")
_ASCII = re.compile(r"[\x20-\x7e]*")
# Full-width katakana, the long-vowel mark, the middle dot and U+3000 between names.
_KANA = re.compile(r"[\u30a1-\u30fa\u30fc\u30fb\u3000]*")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldLike(Protocol):
    """What a type needs to know about its field (``spec.FieldSpec``)."""

    @property
    def length(self) -> int | None: ...
    @property
    def minimum(self) -> int | None: ...
    @property
    def maximum(self) -> int | None: ...
    @property
    def format(self) -> str | None: ...
    @property
    def fill(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FieldType:
    name: str
    value: type | None
    """The Python type of the decoded value; None for fields that fill nothing."""
    parse: Callable[[str, FieldLike], Any]
    format: Callable[[Any, FieldLike], str]
    json: type | None = str
    """The JSON type the field has in a JSON record."""


def _ascii_parse(text: str, f: FieldLike) -> str:
    if not _ASCII.fullmatch(text):
        raise ValueError("not printable ASCII")
    return text.rstrip(" ") if f.length is not None else text


def _ascii_format(value: str, f: FieldLike) -> str:
    if not _ASCII.fullmatch(value):
        raise ValueError("not printable ASCII")
    if f.length is not None:
        if value.endswith(" "):
            raise ValueError("ends with a space, which the padding would swallow")
        return value.ljust(f.length)
    return value


def _digits_parse(text: str, f: FieldLike) -> str:
    if not _DIGITS.fullmatch(text):
        raise ValueError("not ASCII digits")
    return text


def _digits_format(value: str, f: FieldLike) -> str:
    if not _DIGITS.fullmatch(value) or (f.length is not None and len(value) != f.length):
        raise ValueError(f"not {f.length or 'some'} ASCII digits")
    return value


def _in_range(number: int, f: FieldLike) -> int:
    if f.minimum is not None and number < f.minimum:
        raise ValueError(f"{number} is below the minimum {f.minimum}")
    if f.maximum is not None and number > f.maximum:
        raise ValueError(f"{number} is above the maximum {f.maximum}")
    return number


def _unsigned_parse(text: str, f: FieldLike) -> int:
    if not _DIGITS.fullmatch(text):
        raise ValueError("not ASCII digits")
    return _in_range(int(text), f)


def _unsigned_format(value: int, f: FieldLike) -> str:
    _in_range(value, f)
    if value < 0:
        raise ValueError(f"{value} is negative")
    text = str(value)
    if f.length is not None:
        if len(text) > f.length:
            raise ValueError(f"{value} has more than {f.length} digits")
        text = text.zfill(f.length)
    return text


def _signed_parse(text: str, f: FieldLike) -> int:
    sign, digits = text[:1], text[1:]
    if f.length is None and sign not in "+-":
        sign, digits = "+", text
    if sign not in ("+", "-") or not _DIGITS.fullmatch(digits):
        raise ValueError("not a sign (+ or -) followed by ASCII digits")
    number = int(digits)
    if sign == "-" and number == 0:
        raise ValueError("minus zero")
    return _in_range(-number if sign == "-" else number, f)


def _signed_format(value: int, f: FieldLike) -> str:
    _in_range(value, f)
    digits = str(abs(value))
    if f.length is None:
        return str(value)
    if len(digits) > f.length - 1:
        raise ValueError(f"{value} has more than {f.length - 1} digits")
    return ("-" if value < 0 else "+") + digits.zfill(f.length - 1)


def _padded(text: str, f: FieldLike) -> str:
    return text.rstrip(IDEOGRAPHIC_SPACE) if f.length is not None else text


def _text_parse(text: str, f: FieldLike) -> str:
    if _CONTROL.search(text):
        raise ValueError("control characters")
    return _padded(text, f)


def _text_format(value: str, f: FieldLike) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters")
    if f.length is not None and value.endswith(IDEOGRAPHIC_SPACE):
        raise ValueError("ends with U+3000, which the padding would swallow")
    return value  # the fixed-width layout pads to the byte length


def _kana_parse(text: str, f: FieldLike) -> str:
    if not _KANA.fullmatch(text):
        bad = next(c for c in text if not _KANA.fullmatch(c))
        raise ValueError(f"{bad!r} is not full-width katakana")
    return _padded(text, f)


def _kana_format(value: str, f: FieldLike) -> str:
    if not _KANA.fullmatch(value):
        bad = next(c for c in value if not _KANA.fullmatch(c))
        raise ValueError(f"{bad!r} is not full-width katakana")
    return _text_format(value, f)


def _iso_date(value: str) -> date:
    if not _ISO_DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not an ISO date YYYY-MM-DD")
    return date.fromisoformat(value)


def _era_parse(text: str, f: FieldLike) -> str:
    if len(text) != 7 or not _DIGITS.fullmatch(text):
        raise ValueError("not an era date GYYMMDD (7 ASCII digits)")
    try:
        era = era_by_key(text[0])
    except ValueError:
        raise ValueError(f"era code {text[0]!r} is not 1-5 (明治..令和)") from None
    return era_date(era, int(text[1:3]), int(text[3:5]), int(text[5:7])).isoformat()


def _era_format(value: str, f: FieldLike) -> str:
    day = _iso_date(value)
    era, year = era_of(day)
    if year > 99:
        raise ValueError(f"{value} is year {year} of {era.name}, more than two digits")
    return f"{era.code}{year:02d}{day.month:02d}{day.day:02d}"


def _strptime(text: str, pattern: str) -> datetime:
    parsed = datetime.strptime(text, pattern)
    if parsed.strftime(pattern) != text:
        raise ValueError(f"{text!r} is not in the one spelling {pattern!r} allows")
    return parsed


def _date_parse(text: str, f: FieldLike) -> str:
    pattern = f.format or "%Y-%m-%d"
    try:
        return _strptime(text, pattern).date().isoformat()
    except ValueError as err:
        raise ValueError(f"{text!r} is not a date {pattern!r}: {err}") from None


def _date_format(value: str, f: FieldLike) -> str:
    return _iso_date(value).strftime(f.format or "%Y-%m-%d")


def _month_parse(text: str, f: FieldLike) -> str:
    pattern = f.format or "%Y-%m"
    try:
        return _strptime(text, pattern).strftime("%Y-%m")
    except ValueError as err:
        raise ValueError(f"{text!r} is not a year-month {pattern!r}: {err}") from None


def _month_format(value: str, f: FieldLike) -> str:
    if not _ISO_MONTH.fullmatch(value):
        raise ValueError(f"{value!r} is not an ISO year-month YYYY-MM")
    return datetime.strptime(value, "%Y-%m").strftime(f.format or "%Y-%m")


def _bool_parse(text: str, f: FieldLike) -> bool:
    if text not in ("true", "false"):
        raise ValueError("not true or false")
    return text == "true"


def _bool_format(value: bool, f: FieldLike) -> str:
    return "true" if value else "false"


def _fill_parse(text: str, f: FieldLike) -> None:
    return None  # reserved bytes: a legacy system may leave anything there


def _fill_format(value: object, f: FieldLike) -> str:
    return f.fill * (f.length or 0)


def _not_used(text: str, f: FieldLike) -> None:
    return None


def _no_text(value: object, f: FieldLike) -> str:
    return ""


TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        FieldType("ascii", str, _ascii_parse, _ascii_format),
        FieldType("digits", str, _digits_parse, _digits_format),
        FieldType("unsigned", int, _unsigned_parse, _unsigned_format, int),
        FieldType("signed", int, _signed_parse, _signed_format, int),
        FieldType("text", str, _text_parse, _text_format),
        FieldType("kana", str, _kana_parse, _kana_format),
        FieldType("era_date", str, _era_parse, _era_format),
        FieldType("date", str, _date_parse, _date_format),
        FieldType("year_month", str, _month_parse, _month_format),
        FieldType("bool", bool, _bool_parse, _bool_format, bool),
        # Their behaviour lives in the layouts and the spec (tables, constants, hooks).
        FieldType("code", None, _not_used, _no_text, None),
        FieldType("constant", None, _not_used, _no_text),
        FieldType("filler", None, _fill_parse, _fill_format),
        FieldType("ignore", None, _not_used, _no_text, None),
        FieldType("packed", int, _not_used, _no_text, None),
        FieldType("hook", None, _not_used, _no_text, None),
    )
}


class FieldHook(Protocol):
    """A Python hook for an odd field: named in a spec as ``hook = "module:attribute"``.

    ``parse`` turns the field's text (a fixed-width field cut out and decoded,
    padding included) into the value for the target; ``format`` does the
    reverse and, for a fixed-width field, returns the text to pad. Both raise
    ValueError with a short reason for a value they refuse.
    """

    def parse(self, text: str, field: FieldLike) -> Value: ...
    def format(self, value: Any, field: FieldLike) -> str: ...


def packed_decode(raw: bytes, f: FieldLike) -> int:
    """IBM packed decimal (COMP-3): two digits a byte, the last nibble the sign (C/F +, D -)."""
    nibbles = [n for b in raw for n in (b >> 4, b & 0x0F)]
    sign, digits = nibbles[-1], nibbles[:-1]
    if sign not in (0x0C, 0x0D, 0x0F) or any(d > 9 for d in digits):
        raise ValueError("not packed decimal (digit nibbles 0-9, sign nibble C, D or F)")
    number = int("".join(map(str, digits)) or "0")
    if sign == 0x0D and number == 0:
        raise ValueError("minus zero")
    return _in_range(-number if sign == 0x0D else number, f)


def packed_encode(value: int, f: FieldLike) -> bytes:
    _in_range(value, f)
    length = f.length or 0
    digits = str(abs(value)).zfill(length * 2 - 1)
    if len(digits) > length * 2 - 1:
        raise ValueError(f"{value} has more than {length * 2 - 1} digits")
    nibbles = [int(d) for d in digits] + [0x0D if value < 0 else 0x0C]
    return bytes(nibbles[i] << 4 | nibbles[i + 1] for i in range(0, len(nibbles), 2))
