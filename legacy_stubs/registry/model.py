"""The registry's values and the checks its entry points apply to values from outside.

The values themselves (``Name``, ``Address``, ``Resident``, ``Version``,
``Change``) are the kernel's (``renkei.residents``), shared with the binding
party; they are re-exported here so the mock's modules keep one import.

* Kana is full-width katakana (ァ-ヶ and the long-vowel mark ー). Kanji may
  contain hiragana, as given names do ("あすか").
* The register knows no sex but "1" and "2", so "0" (unknown) and "9" (not
  applicable) are refused.

``check_name`` and ``check_address`` are for entry points that take values
from outside; the generator's output is trusted.
"""

from __future__ import annotations

import re

from renkei.errors import invalid_field
from renkei.residents import (
    CHANGE_KINDS,
    SEXES,
    Address,
    Change,
    ChangeKind,
    Name,
    Resident,
    Sex,
    Status,
    Version,
)

from . import places

__all__ = [
    "CHANGE_KINDS",
    "SEXES",
    "Address",
    "Change",
    "ChangeKind",
    "Name",
    "Resident",
    "Sex",
    "Status",
    "Version",
    "check_address",
    "check_name",
    "is_katakana_name",
]

_KANA_PART = "[\u30a1-\u30f6\u30fc]+"
_KANA_RE = re.compile(f"{_KANA_PART} {_KANA_PART}")
# Any run of characters that are not whitespace; the one separator is a half-width space.
_KANJI_RE = re.compile(r"[^\s]+ [^\s]+")
_CODE6_RE = re.compile(r"[0-9]{6}", re.ASCII)


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
