"""The registry's values: a resident, the four facts (4情報) and the changes to them.

Conventions (also in the package docstring):

* ``Name.kanji`` and ``Name.kana`` hold family name, ONE half-width space
  (U+0020), given name: "山田 太郎" / "ヤマダ タロウ". Kana is full-width
  katakana (ァ-ヶ and the long-vowel mark ー). Kanji may contain hiragana, as
  given names do ("あすか").
* ``sex`` uses the ISO/IEC 5218 (= JIS X 0303) codes: "1" male, "2" female.
  The register knows no other value, so "0" (unknown) and "9" (not applicable)
  are refused.
* ``Address.municipality`` is the name as the local-government table writes it
  (a ward as "横浜市 鶴見区"); ``Address.text`` renders it without that space.

The dataclasses do not check themselves when built, because the generator builds
a million of them; ``check_name`` and ``check_address`` are for entry points
that take values from outside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from renkei.errors import invalid_field

from . import places

Sex = Literal["1", "2"]
Status = Literal["alive", "deceased"]
ChangeKind = Literal["birth", "move", "name_change", "death", "code_change"]

SEXES: tuple[Sex, ...] = ("1", "2")
CHANGE_KINDS: tuple[ChangeKind, ...] = ("birth", "move", "name_change", "death", "code_change")

_KANA_PART = "[\u30a1-\u30f6\u30fc]+"
_KANA_RE = re.compile(f"{_KANA_PART} {_KANA_PART}")
# Any run of characters that are not whitespace; the one separator is a half-width space.
_KANJI_RE = re.compile(r"[^\s]+ [^\s]+")
_CODE6_RE = re.compile(r"[0-9]{6}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Name:
    kanji: str
    kana: str

    @property
    def family_kanji(self) -> str:
        return self.kanji.split(" ", 1)[0]

    @property
    def given_kanji(self) -> str:
        return self.kanji.split(" ", 1)[1]

    @property
    def family_kana(self) -> str:
        return self.kana.split(" ", 1)[0]

    @property
    def given_kana(self) -> str:
        return self.kana.split(" ", 1)[1]

    def to_dict(self) -> dict[str, str]:
        return {"kanji": self.kanji, "kana": self.kana}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Name:
        return cls(str(data["kanji"]), str(data["kana"]))


@dataclass(frozen=True, slots=True)
class Address:
    prefecture: str
    municipality_code: str
    municipality: str
    town: str
    chome: int
    banchi: int
    go: int

    @property
    def text(self) -> str:
        """The address as one line: "神奈川県横浜市鶴見区豊岡町3丁目12番5号"."""
        return (
            f"{self.prefecture}{self.municipality.replace(' ', '')}{self.town}"
            f"{self.chome}丁目{self.banchi}番{self.go}号"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefecture": self.prefecture,
            "municipality_code": self.municipality_code,
            "municipality": self.municipality,
            "town": self.town,
            "chome": self.chome,
            "banchi": self.banchi,
            "go": self.go,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Address:
        return cls(
            str(data["prefecture"]),
            str(data["municipality_code"]),
            str(data["municipality"]),
            str(data["town"]),
            int(data["chome"]),
            int(data["banchi"]),
            int(data["go"]),
        )


@dataclass(frozen=True, slots=True)
class Resident:
    resident_code: str
    name: Name
    birth_date: date
    sex: Sex
    address: Address
    status: Status = "alive"
    died_on: date | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "resident_code": self.resident_code,
            "name": self.name.to_dict(),
            "birth_date": self.birth_date.isoformat(),
            "sex": self.sex,
            "address": self.address.to_dict(),
            "status": self.status,
            "died_on": None if self.died_on is None else self.died_on.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Version:
    """The facts a resident had from ``valid_from`` until ``valid_to`` (None: still now).

    ``valid_from`` is None for the version loaded at the start, whose beginning
    the registry does not know. Under a code change the older versions keep the
    code they had then.
    """

    resident_code: str
    valid_from: date | None
    valid_to: date | None
    name: Name
    birth_date: date
    sex: Sex
    address: Address
    status: Status
    died_on: date | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "resident_code": self.resident_code,
            "valid_from": None if self.valid_from is None else self.valid_from.isoformat(),
            "valid_to": None if self.valid_to is None else self.valid_to.isoformat(),
            "name": self.name.to_dict(),
            "birth_date": self.birth_date.isoformat(),
            "sex": self.sex,
            "address": self.address.to_dict(),
            "status": self.status,
            "died_on": None if self.died_on is None else self.died_on.isoformat(),
        }


@dataclass(frozen=True)
class Change:
    """One entry of the change feed; ``before`` and ``after`` hold only what changed.

    For a code change ``resident_code`` is the old code (the one subscribers
    know) and ``after["resident_code"]`` the new one; later entries use the new.
    """

    seq: int
    resident_code: str
    kind: ChangeKind
    effective_date: date
    before: dict[str, Any]
    after: dict[str, Any]
    recorded_at: datetime | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "resident_code": self.resident_code,
            "kind": self.kind,
            "effective_date": self.effective_date.isoformat(),
            "before": self.before,
            "after": self.after,
            "recorded_at": None if self.recorded_at is None else self.recorded_at.isoformat(),
        }


def is_katakana_name(kana: str) -> bool:
    """Full-width katakana family and given names, one half-width space between them."""
    return _KANA_RE.fullmatch(kana) is not None


def check_name(name: Name, field: str = "name") -> Name:
    if not _KANJI_RE.fullmatch(name.kanji) or len(name.kanji) > 100:
        raise invalid_field(
            f"{field}.kanji", "must be family and given name with one half-width space between"
        )
    if not is_katakana_name(name.kana) or len(name.kana) > 200:
        raise invalid_field(
            f"{field}.kana",
            "must be full-width katakana family and given name with one half-width space between",
        )
    return name


def check_address(address: Address, field: str = "address") -> Address:
    """A real municipality or ward (never a city that has wards), and sane numbers."""
    if not _CODE6_RE.fullmatch(address.municipality_code):
        raise invalid_field(f"{field}.municipality_code", "must be 6 ASCII digits")
    gov = places.by_code().get(address.municipality_code)
    if gov is None or address.municipality_code not in places.residential_codes():
        raise invalid_field(
            f"{field}.municipality_code", "is not a municipality or ward that keeps residents"
        )
    if gov.prefecture != address.prefecture:
        raise invalid_field(f"{field}.prefecture", f"{gov.code} is in {gov.prefecture}")
    if gov.name != address.municipality:
        raise invalid_field(f"{field}.municipality", f"{gov.code} is {gov.name}")
    if not address.town or len(address.town) > 100 or any(c.isspace() for c in address.town):
        raise invalid_field(f"{field}.town", "must be 1 to 100 characters without spaces")
    for part in ("chome", "banchi", "go"):
        value = getattr(address, part)
        if not isinstance(value, int) or not 1 <= value <= 9999:
            raise invalid_field(f"{field}.{part}", "must be an integer from 1 to 9999")
    return address
