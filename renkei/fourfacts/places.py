"""Prefectures, municipalities and wards, for recognising them at the start of an address.

The table is ``renkei.localgov``'s, a verbatim copy of ``shared/data/local_governments.csv``
(code4fukui/localgovjp, CC0), the same file the registry stub ships: every prefecture,
municipality and ward of a designated city with its 6-digit local government code
(JIS X 0402 plus check digit). A ward is written "横浜市 鶴見区". The table has no
counties (郡): "上川郡東川町" is recognised by skipping any "…郡" before a town or village.

Names are compared as *place keys*: NFKC, no spaces, old character forms folded
(``data/itaiji.toml``) and ヶ/ケ/が/ガ, の/ノ, つ/ツ unified between ideographs, so
"龍ヶ崎市", "竜ケ崎市" and "龍ケ崎市" are one key.

A *residential* code is one a resident's address can carry: a municipality, or a
ward of a designated city; never the city that has wards, whose residents live in
its wards. Resolving "横浜市" without a ward gives all of Yokohama's wards.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from renkei.localgov import shipped

from ._text import fold_itaiji, nfkc, remove_spaces, unify_place_particles

Kind = Literal["prefecture", "municipality", "ward"]

_CODE_RE = re.compile(r"[0-9]{5,6}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Place:
    code: str
    kind: Kind
    prefecture: str
    name: str
    name_kana: str

    @property
    def short_name(self) -> str:
        """A ward's own name ("中区" for "横浜市 中区"); the name for anything else."""
        return self.name.rsplit(" ", 1)[-1]


@dataclass(frozen=True, slots=True)
class PlaceMatch:
    """A municipality-level name found in a text: where it ends and what it can be."""

    name: str
    """The table's name when it names one place ("横浜市 中区"), else the common name ("中区")."""
    codes: frozenset[str]
    """The residential codes it can mean (never empty)."""
    end: int


def place_key(text: str) -> str:
    """The form in which place names are compared (see the module docstring).

    >>> place_key("龍ヶ崎市") == place_key("竜ケ崎市"), place_key("横浜市 中区")
    (True, '横浜市中区')
    """
    return unify_place_particles(fold_itaiji(remove_spaces(nfkc(text))))


class Gazetteer:
    """The local-government table, indexed by place key."""

    def __init__(self, rows: Iterable[Place]) -> None:
        self.places: tuple[Place, ...] = tuple(rows)
        self.by_code: dict[str, Place] = {p.code: p for p in self.places}
        self._by_code5: dict[str, Place] = {p.code[:5]: p for p in self.places}
        self.prefectures: dict[str, str] = {
            place_key(p.name): p.name for p in self.places if p.kind == "prefecture"
        }
        self._pref_lengths = sorted({len(k) for k in self.prefectures}, reverse=True)
        wards: dict[tuple[str, str], list[Place]] = {}
        for p in self.places:
            if p.kind == "ward":
                wards.setdefault((p.prefecture, p.name.split(" ", 1)[0]), []).append(p)
        self.wards_of: dict[str, tuple[Place, ...]] = {}
        by_key: dict[str, list[Place]] = {}
        for p in self.places:
            if p.kind == "prefecture":
                continue
            by_key.setdefault(place_key(p.name), []).append(p)
            if p.kind == "ward":
                by_key.setdefault(place_key(p.short_name), []).append(p)
            elif (p.prefecture, p.name) in wards:
                self.wards_of[p.code] = tuple(wards[(p.prefecture, p.name)])
        self.by_key: dict[str, tuple[Place, ...]] = {k: tuple(v) for k, v in by_key.items()}
        self._key_lengths = sorted({len(k) for k in self.by_key}, reverse=True)
        # Key lengths by the first two characters (every key has at least two), longest first:
        # a text is tried only at the lengths some key with its start has.
        lengths: dict[str, set[int]] = {}
        for k in self.by_key:
            lengths.setdefault(k[:2], set()).add(len(k))
        self._lengths_at: dict[str, tuple[int, ...]] = {
            start: tuple(sorted(ls, reverse=True)) for start, ls in lengths.items()
        }
        self._ward_keys: dict[str, dict[str, Place]] = {
            city: {place_key(w.short_name): w for w in ws} for city, ws in self.wards_of.items()
        }
        self.residential_codes: frozenset[str] = frozenset(
            p.code
            for p in self.places
            if p.kind == "ward" or (p.kind == "municipality" and p.code not in self.wards_of)
        )
        self._codes: dict[str, frozenset[str]] = {
            p.code: self._compute_codes(p) for p in self.places
        }

    def codes_of(self, place: Place) -> frozenset[str]:
        """The residential codes a place stands for."""
        return self._codes[place.code]

    def _compute_codes(self, place: Place) -> frozenset[str]:
        if place.kind == "prefecture":
            return frozenset(
                c for c in self.residential_codes if self.by_code[c].prefecture == place.prefecture
            )
        wards = self.wards_of.get(place.code)
        if wards is not None:
            return frozenset(w.code for w in wards)
        return frozenset({place.code})

    def prefecture_at(self, key_text: str, pos: int = 0) -> tuple[str, int] | None:
        """(prefecture name, end) if a prefecture's full name starts at ``pos``."""
        for length in self._pref_lengths:
            name = self.prefectures.get(key_text[pos : pos + length])
            if name is not None:
                return name, pos + length
        return None

    def municipality_at(
        self, key_text: str, pos: int = 0, prefecture: str | None = None
    ) -> PlaceMatch | None:
        """The longest municipality or ward name starting at ``pos`` (a place-key text).

        Falls back to skipping a county ("上川郡") in front of a town or village.
        Only places in ``prefecture`` count when it is given. A designated city is
        followed by one of its wards if the text has one.
        """
        found = self._direct(key_text, pos, prefecture)
        if found is None:
            county = key_text.find("郡", pos + 1, pos + 8)
            if county > pos:
                found = self._direct(key_text, county + 1, prefecture, towns_only=True)
        if found is None:
            return None
        places, end = found
        if len(places) == 1 and places[0].code in self._ward_keys:
            ward_keys = self._ward_keys[places[0].code]
            for length in self._key_lengths:
                ward = ward_keys.get(key_text[end : end + length])
                if ward is not None:
                    return PlaceMatch(ward.name, frozenset({ward.code}), end + length)
        if len(places) == 1:
            codes = self._codes[places[0].code]
        else:
            codes = frozenset().union(*(self._codes[p.code] for p in places))
        if len(places) == 1 or len({p.name for p in places}) == 1:
            name = places[0].name
        else:
            name = places[0].short_name
        return PlaceMatch(name, codes, end)

    def _direct(
        self, key_text: str, pos: int, prefecture: str | None, towns_only: bool = False
    ) -> tuple[tuple[Place, ...], int] | None:
        left = len(key_text) - pos
        for length in self._lengths_at.get(key_text[pos : pos + 2], ()):
            if length > left:
                continue
            places = self.by_key.get(key_text[pos : pos + length])
            if places is None:
                continue
            if prefecture is not None:
                places = tuple(p for p in places if p.prefecture == prefecture)
            if towns_only:
                places = tuple(
                    p for p in places if p.kind == "municipality" and p.name.endswith(("町", "村"))
                )
            if places:
                return places, pos + length
        return None

    def resolve(self, text: str) -> PlaceMatch:
        """A municipality named by ``text`` alone: a code (6 digits, or the 5-digit
        JIS X 0402 code) or a name with or without its prefecture.

        A city with wards stands for all its wards; a prefecture alone is refused
        (ValueError), as is anything else that is not wholly a municipality.

        >>> sorted(gazetteer().resolve("141046").codes), gazetteer().resolve("横浜市中区").name
        (['141046'], '横浜市 中区')
        """
        key = place_key(text)
        if _CODE_RE.fullmatch(key):
            place = self.by_code.get(key) if len(key) == 6 else self._by_code5.get(key)
            if place is None:
                raise ValueError(f"no local government has code {text!r}")
            if place.kind == "prefecture":
                raise ValueError(f"{text!r} is a prefecture, not a municipality")
            return PlaceMatch(place.name, self.codes_of(place), len(key))
        pos, prefecture = 0, None
        pref = self.prefecture_at(key)
        if pref is not None:
            prefecture, pos = pref
        found = self.municipality_at(key, pos, prefecture)
        if found is None or found.end != len(key):
            raise ValueError(f"{text!r} does not name a municipality or ward")
        return found


def _rows() -> list[Place]:
    return [Place(g.code, g.kind, g.prefecture, g.name, g.name_kana) for g in shipped()]


@functools.cache
def gazetteer() -> Gazetteer:
    """The project's table of local governments (``renkei.localgov``), indexed once."""
    return Gazetteer(_rows())
