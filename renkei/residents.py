"""Residents as the resident register (Juki-net) gives them, and the port to read them.

The values (``Name``, ``Address``, ``Resident``, ``Version``, ``Change``) are
the kernel's: the mocked register (``legacy_stubs.registry``) stores them and
the registry's binding party (``registry_binding``) matches and follows them,
and neither party imports the other.

Conventions:

* ``Name.kanji`` and ``Name.kana`` hold family name, ONE half-width space
  (U+0020), given name: "山田 太郎" / "ヤマダ タロウ". Kana is full-width
  katakana (ァ-ヶ and the long-vowel mark ー).
* ``sex`` uses the ISO/IEC 5218 (= JIS X 0303) codes: "1" male, "2" female.
* ``Address.municipality`` is the name as the local-government table writes it
  (a ward as "横浜市 鶴見区"); ``Address.text`` renders it without that space.

The dataclasses do not check themselves when built, because a register
yields a million of them; the register checks what it takes from outside.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

Sex = Literal["1", "2"]
Status = Literal["alive", "deceased"]
ChangeKind = Literal["birth", "move", "name_change", "death", "code_change"]

SEXES: tuple[Sex, ...] = ("1", "2")
CHANGE_KINDS: tuple[ChangeKind, ...] = ("birth", "move", "name_change", "death", "code_change")


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


@dataclass(frozen=True, slots=True)
class ResidentHistory:
    """One person: the current record and every past version, oldest first."""

    current: Resident
    past: tuple[Version, ...] = ()


class ResidentSource(Protocol):
    """The resident register as the binding party reads it: facts, history, changes.

    ``registry_binding`` matches, checks consent and follows residents only
    through this port, never through a register's tables. The mocked Juki-net
    implements it (``legacy_stubs.registry.source``); a real Juki-net would be
    a new adapter package registering its own factory in the
    ``renkei.resident_sources`` entry-point group (``RESIDENT_SOURCES``),
    chosen by the binding party's config.

    Two promises the binding party relies on:

    * ``changes_since`` never skips an entry that commits late: seq values
      become visible in order, so a reader that resumes after the last seq it
      saw misses nothing.
    * A code change is an entry of kind "code_change" whose ``resident_code``
      is the old code and ``after["resident_code"]`` the new one; later entries
      and ``lookup`` use the new code.
    """

    def residents(self) -> Iterator[ResidentHistory]:
        """Every resident, deceased ones too, with their past versions (order not promised)."""
        ...

    def lookup(self, resident_codes: Collection[str]) -> dict[str, Resident]:
        """Current records by current code; codes not (or no longer) in use are left out."""
        ...

    def last_seq(self) -> int:
        """The newest change's seq, 0 if there is none."""
        ...

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Changes with a greater seq, in seq order, at most ``limit`` (at least 1)."""
        ...

    def close(self) -> None:
        """Release connections (the source is not used afterwards)."""
        ...


class ResidentSourceFactory(Protocol):
    """What a ``renkei.resident_sources`` entry point names: options in, a source out.

    ``options`` is the binding config's ``[resident_source]`` table (without
    ``kind``), ``{config_dir}`` already replaced; by default the register's
    ``database_url`` and ``database_schema``.
    """

    def __call__(self, options: Mapping[str, Any]) -> ResidentSource: ...


RESIDENT_SOURCES = "renkei.resident_sources"
"""The entry-point group of resident-source factories, by kind ("juki_mock", ...)."""
