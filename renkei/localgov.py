"""Japan's local governments, from ``renkei/data/local_governments.csv``, every code checked.

The one copy of the table in the project: the agency registry, the resident
registry's population and the four-fact normalizer all read it from here.

The file is a verbatim copy of ``shared/data/local_governments.csv`` (code4fukui/localgovjp,
CC0): 47 prefectures, 1,741 municipalities (Tokyo's 23 special wards among them) and
the 175 wards of the designated cities, each with its 6-digit 全国地方公共団体コード.
A ward is named "横浜市 鶴見区" (city, a space, ward).

The sixth digit of a code is a check digit over the first five (weights 6, 5, 4, 3, 2):
``check = (11 - sum % 11) % 10``. For example 14100 -> 6+20+4+0+0 = 30, 30 % 11 = 8,
11 - 8 = 3: 横浜市 is 141003; 13101 -> 27 % 11 = 5, 11 - 5 = 6: 千代田区 is 131016. A file
with a wrong check digit is refused, naming the line.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Kind = Literal["prefecture", "municipality", "ward"]
KINDS: tuple[Kind, ...] = ("prefecture", "municipality", "ward")
COLUMNS = ("code", "kind", "prefecture", "name", "name_kana")
WEIGHTS = (6, 5, 4, 3, 2)
RESOURCE = "data/local_governments.csv"


class LocalGovernmentDataError(ValueError):
    """The local government table is malformed; the message names the line."""


@dataclass(frozen=True, slots=True)
class LocalGovernment:
    code: str
    kind: Kind
    prefecture: str
    name: str
    name_kana: str
    line: int  # line in the file (the header is line 1)

    @property
    def city(self) -> str:
        """For a ward, the designated city's name ("横浜市"); otherwise the name."""
        return self.name.split(" ", 1)[0]

    @property
    def ward(self) -> str:
        """For a ward, the ward's own name ("中区"); otherwise ""."""
        return self.name.split(" ", 1)[1] if self.kind == "ward" else ""


def check_digit(first_five: str) -> str:
    """The check digit of a local government code's first five digits."""
    if len(first_five) != 5 or not first_five.isascii() or not first_five.isdigit():
        raise ValueError(f"need five digits, got {first_five!r}")
    total = sum(int(d) * w for d, w in zip(first_five, WEIGHTS, strict=True))
    return str((11 - total % 11) % 10)


def is_valid_code(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit() and check_digit(code[:5]) == code[5]


def parse_local_governments(text: str, source: str = RESOURCE) -> tuple[LocalGovernment, ...]:
    """Every row, in file order; raises LocalGovernmentDataError naming the first bad line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise LocalGovernmentDataError(
            f"{source} line 1: header must be {','.join(COLUMNS)}, got {header!r}"
        )
    rows: list[LocalGovernment] = []
    seen: dict[str, int] = {}
    for line, cells in enumerate(reader, start=2):
        where = f"{source} line {line}"
        if len(cells) != len(COLUMNS):
            raise LocalGovernmentDataError(f"{where}: {len(cells)} columns, want {len(COLUMNS)}")
        code, kind, prefecture, name, kana = (c.strip() for c in cells)
        where = f"{where} ({code} {name})"
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            raise LocalGovernmentDataError(f"{where}: code must be 6 digits")
        expected = check_digit(code[:5])
        if code[5] != expected:
            raise LocalGovernmentDataError(
                f"{where}: check digit {code[5]} is wrong, {code[:5]} needs {expected}"
            )
        if kind not in KINDS:
            raise LocalGovernmentDataError(f"{where}: unknown kind {kind!r}")
        if not (prefecture and name):
            raise LocalGovernmentDataError(f"{where}: prefecture and name are required")
        if code in seen:
            raise LocalGovernmentDataError(f"{where}: code already on line {seen[code]}")
        if (kind == "ward") != (" " in name):
            raise LocalGovernmentDataError(
                f"{where}: a ward, and only a ward, is named 'city ward'"
            )
        seen[code] = line
        rows.append(LocalGovernment(code, kind, prefecture, name, kana, line))
    _check_structure(rows, source)
    return tuple(rows)


def _check_structure(rows: list[LocalGovernment], source: str) -> None:
    """Every row's prefecture exists and shares its code prefix; every ward's city exists."""
    prefectures = {g.name: g for g in rows if g.kind == "prefecture"}
    municipalities = {(g.prefecture, g.name) for g in rows if g.kind == "municipality"}
    for g in rows:
        where = f"{source} line {g.line} ({g.code} {g.name})"
        pref = prefectures.get(g.prefecture)
        if pref is None:
            raise LocalGovernmentDataError(f"{where}: no prefecture {g.prefecture!r}")
        if g.code[:2] != pref.code[:2]:
            raise LocalGovernmentDataError(
                f"{where}: code does not start with {g.prefecture}'s {pref.code[:2]}"
            )
        if g.kind == "prefecture" and (g.name != g.prefecture or g.code[2:5] != "000"):
            raise LocalGovernmentDataError(f"{where}: not a prefecture's row")
        if g.kind == "ward" and (g.prefecture, g.city) not in municipalities:
            raise LocalGovernmentDataError(f"{where}: no city {g.city!r} in {g.prefecture}")


def shipped_text() -> str:
    return resources.files("renkei").joinpath(RESOURCE).read_text(encoding="utf-8")


@functools.cache
def shipped() -> tuple[LocalGovernment, ...]:
    """The shipped table, parsed and checked once per process."""
    return parse_local_governments(shipped_text())
