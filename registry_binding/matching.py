"""Binding a record to a resident by the four facts (4情報), as Juki-net would (R14, R20).

An agency's record (``renkei.fourfacts.normalize.FourFacts``) is normalized
(``renkei.fourfacts.normalize.normalize``) and looked up in in-memory indexes
built from the register (a ``renkei.residents.ResidentSource``): every current
record AND every past version, so previous names and previous addresses are
known.

The rule
--------
A WRONG binding is far worse than none, so a record binds only when exactly
one person matches on all four facts:

1. **name** (kanji, as a ``normalize_name`` key) is a name the person has or
   had (current or in history: a record with the previous name still matches);
2. **date of birth** is equal;
3. **sex** is equal (a record whose sex is unknown never binds);
4. **address** is one the person has or had, proven by the register: the
   record's municipality (from the line or the hint; several codes for "中区"
   or for a designated city without its ward) must contain the person's
   municipality code, and the town key, 丁目, 番 and 号 must all be equal.
   A record whose address lacks any of these (no municipality and no hint,
   no 号, ...) never binds. What follows the 号 (a building, a room) is not
   compared.

Exactly one such person: ``"unique"``, with the person's CURRENT resident code
(also after a code change). Two or more: ``"ambiguous"`` with their codes;
then, and only then, a reading (kana) in the record may break the tie if it
equals the reading of exactly one of them. Kana never makes a match on its
own and never keeps one from being made (readings are the least reliable
fact in legacy files; a differing one is reported in the reason). None:
``"none"`` with the nearest reason, checked in this order: "invalid record:
...", "no resident with this name and birth date", "sex unknown", "sex
differs", "address incomplete: ...", "address differs".

The reason of a unique match lists what was not plain, joined by "; ":
"deceased" (a dead person's record, 除票, still binds, but says so),
"matched previous name", "matched previous address", "kana broke the tie",
"kana differs"; with none of these it is "matched current facts".

Candidates: the unique code, or the ambiguous ones; for "none" the list is
empty, so a failed look-up tells nothing about the people who nearly matched.

Indexes are keyed by (name key, date of birth); building them is one
pass over ``ResidentSource.residents()`` (measured over the mock's tables:
4-5 s and about 1.5 GB for a million, docs/benchmarks.md). A look-up then normalizes the record
and compares a handful of candidates; ``match`` never raises on bad input.
The indexes are a snapshot: ``is_stale()`` says whether the change feed has
moved on since, ``refresh()`` rebuilds and swaps them in at once (matching
from other threads meanwhile sees the old or the new, never a mix). A
register's initial load writes no feed entries (the mock's ``add_many``), so
build or refresh after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, TypeVar, cast

from renkei.fourfacts.normalize import (
    FourFacts,
    NormalizedAddress,
    NormalizedFacts,
    SexEncoding,
    normalize,
    normalize_kana,
    normalize_name,
    normalize_town,
)
from renkei.residents import Address, ResidentSource

Status = Literal["unique", "ambiguous", "none"]
_T = TypeVar("_T")
AddressKey = tuple[str, str, int, int, int]
"""(municipality code, town key, 丁目, 番, 号)."""

MATCHED_CURRENT = "matched current facts"
DECEASED = "deceased"
PREVIOUS_NAME = "matched previous name"
PREVIOUS_ADDRESS = "matched previous address"
KANA_TIE = "kana broke the tie"
KANA_DIFFERS = "kana differs"
NO_NAME_BIRTH = "no resident with this name and birth date"
SEX_DIFFERS = "sex differs"
SEX_UNKNOWN = "sex unknown"
ADDRESS_DIFFERS = "address differs"


@dataclass(frozen=True, slots=True)
class MatchResult:
    status: Status
    resident_code: str | None
    reason: str
    candidates: list[str] = field(default_factory=list)
    deceased: bool = False
    # The code the person's ID code is made from: the first resident code the
    # register knows for them, so a code change (R8) leaves their ID code, and
    # every agency's link code for them, as it was.
    id_basis: str | None = None


@dataclass(slots=True)
class _Person:
    """One person's facts over all versions, deduplicated (tuples: most have one of each)."""

    code: str
    """The current resident code."""
    id_basis: str
    """The first resident code the register knows for the person (MatchResult.id_basis)."""
    deceased: bool
    current_name: str
    current_address: AddressKey
    names: tuple[str, ...]
    kanas: tuple[str, ...]
    sexes: str
    """Every sex code the person has had, one character each (almost always just one)."""
    addresses: tuple[AddressKey, ...]
    births: tuple[date, ...]


class Matcher:
    """The register's four facts, indexed for ``match`` (see the module docstring)."""

    def __init__(self, source: ResidentSource, *, sex_encoding: SexEncoding = "iso5218") -> None:
        self._source = source
        self._sex_encoding: SexEncoding = sex_encoding
        self._index: dict[tuple[str, date], tuple[_Person, ...]] = {}
        self._built_at_seq = 0
        self.refresh()

    @property
    def built_at_seq(self) -> int:
        """The change-feed position the indexes reflect."""
        return self._built_at_seq

    def is_stale(self) -> bool:
        """Whether the register has recorded changes since the indexes were built."""
        return self._source.last_seq() != self._built_at_seq

    def refresh(self) -> None:
        """(Re)build the indexes from the source.

        The feed position is read before and after; if a change committed in
        between, the read is repeated, so the indexes are one consistent state.
        """
        for _ in range(10):
            seq = self._source.last_seq()
            index = self._build()
            if self._source.last_seq() == seq:
                self._index, self._built_at_seq = index, seq
                return
        raise RuntimeError("the register kept changing while the matcher read it")

    def _build(self) -> dict[tuple[str, date], tuple[_Person, ...]]:
        people: list[_Person] = []
        shared: dict[object, object] = {}  # one object per distinct date and code

        def share(value: _T) -> _T:
            return cast(_T, shared.setdefault(value, value))

        def address_key(a: Address) -> AddressKey:
            return (share(a.municipality_code), normalize_town(a.town), a.chome, a.banchi, a.go)

        for entry in self._source.residents():
            now = entry.current
            name = normalize_name(now.name.kanji)
            address = address_key(now.address)
            person = _Person(
                code=now.resident_code,
                id_basis=entry.past[0].resident_code if entry.past else now.resident_code,
                deceased=now.status == "deceased",
                current_name=name,
                current_address=address,
                names=(name,),
                kanas=(normalize_kana(now.name.kana),),
                sexes=now.sex,
                addresses=(address,),
                births=(share(now.birth_date),),
            )
            for version in entry.past:
                name, kana = normalize_name(version.name.kanji), normalize_kana(version.name.kana)
                if name not in person.names:
                    person.names += (name,)
                if kana not in person.kanas:
                    person.kanas += (kana,)
                if version.sex not in person.sexes:
                    person.sexes += version.sex
                address = address_key(version.address)
                if address not in person.addresses:
                    person.addresses += (address,)
                if version.birth_date not in person.births:
                    person.births += (share(version.birth_date),)
            people.append(person)
        index: dict[tuple[str, date], tuple[_Person, ...]] = {}
        for person in people:
            for name in person.names:
                for birth in person.births:
                    key = (name, birth)
                    index[key] = (*index.get(key, ()), person)
        return index

    # -- matching -------------------------------------------------------------

    def match(self, facts: FourFacts) -> MatchResult:
        """Bind one record, or say why not (the rule is in the module docstring)."""
        try:
            keys = normalize(facts, sex_encoding=self._sex_encoding)
        except ValueError as exc:
            return MatchResult("none", None, f"invalid record: {exc}")
        return self.match_normalized(keys)

    def match_many(self, records: Iterable[FourFacts]) -> Iterator[MatchResult]:
        """``match`` for each record, in order."""
        for facts in records:
            yield self.match(facts)

    def match_normalized(self, keys: NormalizedFacts) -> MatchResult:
        """``match`` for a record already normalized."""
        found = self._index.get((keys.name, keys.birth_date))
        if not found:
            return MatchResult("none", None, NO_NAME_BIRTH)
        if keys.sex is None:
            return MatchResult("none", None, SEX_UNKNOWN)
        sex = keys.sex
        people = [p for p in found if sex in p.sexes]
        if not people:
            return MatchResult("none", None, SEX_DIFFERS)
        address = keys.address
        missing = _missing_parts(address)
        if missing:
            return MatchResult("none", None, f"address incomplete: no {', '.join(missing)}")
        matched = [p for p in people if _lives_at(p, address)]
        if not matched:
            return MatchResult("none", None, ADDRESS_DIFFERS)
        notes: list[str] = []
        if len(matched) > 1:
            by_kana = [] if keys.kana is None else [p for p in matched if keys.kana in p.kanas]
            if len(by_kana) != 1:
                codes = sorted(p.code for p in matched)
                why = f"{len(matched)} residents match name, birth date, sex and address"
                if keys.kana is not None:
                    why += "; kana does not tell them apart"
                return MatchResult("ambiguous", None, why, codes)
            matched = by_kana
            notes.append(KANA_TIE)
        person = matched[0]
        if person.deceased:
            notes.insert(0, DECEASED)
        if keys.name != person.current_name:
            notes.append(PREVIOUS_NAME)
        if not _at_current(person, address):
            notes.append(PREVIOUS_ADDRESS)
        if keys.kana is not None and keys.kana not in person.kanas:
            notes.append(KANA_DIFFERS)
        reason = "; ".join(notes) if notes else MATCHED_CURRENT
        return MatchResult(
            "unique", person.code, reason, [person.code], person.deceased, person.id_basis
        )


def _missing_parts(address: NormalizedAddress) -> list[str]:
    missing = []
    if not address.municipality_codes:
        missing.append("municipality recognised (give a municipality_hint)")
    for part in ("town", "chome", "banchi", "go"):
        if getattr(address, part) is None:
            missing.append(part)
    return missing


def _same_place(key: AddressKey, address: NormalizedAddress) -> bool:
    return (
        key[0] in address.municipality_codes
        and key[1] == address.town
        and key[2] == address.chome
        and key[3] == address.banchi
        and key[4] == address.go
    )


def _lives_at(person: _Person, address: NormalizedAddress) -> bool:
    return any(_same_place(key, address) for key in person.addresses)


def _at_current(person: _Person, address: NormalizedAddress) -> bool:
    return _same_place(person.current_address, address)
