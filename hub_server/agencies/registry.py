"""The agency registry: every body Annex Table 2 names, with the classes that make it eligible.

Built from two data files the project ships:

* ``data/local_governments.csv`` -- one agency per prefecture (its governor, class
  都道府県知事, display name "神奈川県知事") and per municipality (its mayor, class
  市町村長, display name "横浜市長"; Tokyo's special wards are municipalities here), each
  with its 6-digit local government code as agency id. The wards of a designated
  city are not agencies: the city's mayor is the 市町村長, so "横浜市 中区" and the
  ward's code resolve to 横浜市. Every code's check digit is verified on load.
* ``data/agencies.toml`` -- national bodies, insurers and associations with stable
  ASCII ids, bodies every prefecture or municipality has (後期高齢者医療広域連合,
  教育委員会, 社会福祉協議会), which mayors hold the narrower classes (市長,
  保健所を設置する市の長, …), and which classes belong to the classes the statute
  describes by function. The file documents its sources.

Class names are the annex compiler's (``hub_server.annex``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal

from hub_server.directory import AGENCY_ID_RE, Agency
from renkei.localgov import (
    LocalGovernment,
    parse_local_governments,
    shipped_text,
)

AgencyKind = Literal["prefecture", "municipality", "body"]

GOVERNOR = "都道府県知事"
MAYOR = "市町村長"
CITY_MAYOR = "市長"
SPECIAL_WARD_MAYOR = "特別区の区長"
WELFARE_TOWN_MAYOR = "福祉に関する事務所を管理する町村長"
HEALTH_CENTRE_CITY_MAYOR = "保健所を設置する市の長"
TOKYO = "東京都"
BODIES_RESOURCE = "data/agencies.toml"


class UnknownAgency(LookupError):
    """No agency has this id or name."""


class AmbiguousAgencyName(LookupError):
    """More than one agency answers to this name; use the prefecture or the id."""

    def __init__(self, name: str, candidates: Iterable[RegisteredAgency]) -> None:
        self.name = name
        self.candidates = tuple(candidates)
        listed = ", ".join(f"{a.agency_id} {a.display_name}" for a in self.candidates)
        super().__init__(f"{name!r} is ambiguous: {listed}")


@dataclass(frozen=True)
class Ward:
    """A ward of a designated city: part of its city, not an agency of its own."""

    code: str
    name: str  # "中区"
    full_name: str  # "横浜市 中区"
    name_kana: str


@dataclass(frozen=True)
class RegisteredAgency:
    agency_id: str
    display_name: str  # "横浜市長", "神奈川県知事", "厚生労働大臣"
    name: str  # the plain name: "横浜市", "神奈川県", "厚生労働大臣"
    classes: frozenset[str]
    kind: AgencyKind
    aliases: tuple[str, ...] = ()  # other names ``find`` accepts
    prefecture: str = ""
    code: str = ""  # local government code of a prefecture or municipality
    name_kana: str = ""
    wards: tuple[Ward, ...] = ()
    illustrative: bool = False  # a placeholder for a class whose members are not named
    note: str = ""

    def to_agency(self, *, endpoint: str = "", sealing_public_key: bytes = b"") -> Agency:
        """The hub's directory entry; endpoint and key come from the deployment."""
        return Agency(
            agency_id=self.agency_id,
            display_name=self.display_name,
            classes=self.classes,
            endpoint=endpoint,
            sealing_public_key=sealing_public_key,
        )

    def directory_entry(self) -> dict[str, object]:
        return {"id": self.agency_id, "name": self.display_name, "classes": sorted(self.classes)}


@dataclass(frozen=True)
class _Described:
    classes: tuple[str, ...]
    member_classes: frozenset[str]
    basis: str


class AgencyRegistry:
    def __init__(
        self,
        agencies: Iterable[RegisteredAgency],
        local_governments: Iterable[LocalGovernment] = (),
    ) -> None:
        self._by_id: dict[str, RegisteredAgency] = {}
        for agency in agencies:
            if agency.agency_id in self._by_id:
                raise ValueError(f"agency id {agency.agency_id!r} used twice")
            if not AGENCY_ID_RE.match(agency.agency_id):
                raise ValueError(f"agency id {agency.agency_id!r} is not a valid id")
            self._by_id[agency.agency_id] = agency
        self._local = tuple(local_governments)
        self._by_code: dict[str, RegisteredAgency] = {}
        self._names: dict[str, list[str]] = {}
        self._by_class: dict[str, list[RegisteredAgency]] = {}
        for agency in self._by_id.values():
            names = {agency.display_name, agency.name, *agency.aliases}
            if agency.code:
                self._by_code[agency.code] = agency
            for ward in agency.wards:
                self._by_code[ward.code] = agency
                names |= _ward_names(agency, ward)
            for name in names:
                for key in {name, _compact(name)}:
                    ids = self._names.setdefault(key, [])
                    if agency.agency_id not in ids:
                        ids.append(agency.agency_id)
            for cls in agency.classes:
                self._by_class.setdefault(cls, []).append(agency)

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(
        cls, *, local_governments: Path | None = None, bodies: Path | None = None
    ) -> AgencyRegistry:
        """The shipped data, or the given files (tests use them to try a tampered file)."""
        if local_governments is None:
            lg_text, lg_source = shipped_text(), "local_governments.csv"
        else:
            lg_text, lg_source = (
                local_governments.read_text(encoding="utf-8"),
                str(local_governments),
            )
        if bodies is None:
            b_text = (
                resources.files("hub_server.agencies")
                .joinpath(BODIES_RESOURCE)
                .read_text(encoding="utf-8")
            )
            b_source = "agencies.toml"
        else:
            b_text, b_source = bodies.read_text(encoding="utf-8"), str(bodies)
        governments = parse_local_governments(lg_text, lg_source)
        try:
            data = tomllib.loads(b_text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{b_source}: {err}") from None
        return cls(_build(governments, data, b_source), governments)

    # ---------------------------------------------------------------- lookups

    def get(self, agency_id: str) -> RegisteredAgency:
        agency = self._by_id.get(agency_id)
        if agency is None:
            raise UnknownAgency(f"no agency {agency_id!r}")
        return agency

    def __contains__(self, agency_id: object) -> bool:
        return agency_id in self._by_id

    def by_code(self, code: str) -> RegisteredAgency:
        """The prefecture or municipality with this code; a ward's code gives its city."""
        agency = self._by_code.get(code)
        if agency is None:
            raise UnknownAgency(f"no local government with code {code!r}")
        return agency

    def find_all(self, name: str) -> tuple[RegisteredAgency, ...]:
        """Every agency answering to ``name`` (display name, plain name or alias)."""
        ids = self._names.get(name) or self._names.get(_compact(name)) or []
        return tuple(self._by_id[i] for i in ids)

    def find(self, name: str) -> RegisteredAgency:
        """The one agency answering to ``name``: "横浜市", "横浜市長", "横浜市 中区", ...

        Raises UnknownAgency, or AmbiguousAgencyName when several do ("府中市" is in
        東京都 and in 広島県: say "東京都府中市").
        """
        found = self.find_all(name)
        if not found:
            raise UnknownAgency(f"no agency named {name!r}")
        if len(found) > 1:
            raise AmbiguousAgencyName(name, found)
        return found[0]

    def by_class(self, name: str) -> tuple[RegisteredAgency, ...]:
        return tuple(self._by_class.get(name, ()))

    def classes(self) -> frozenset[str]:
        return frozenset(self._by_class)

    def __iter__(self) -> Iterator[RegisteredAgency]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def local_governments(self) -> tuple[LocalGovernment, ...]:
        return self._local

    def counts(self) -> dict[str, int]:
        kinds = [a.kind for a in self]
        return {
            "agencies": len(self),
            "prefectures": kinds.count("prefecture"),
            "municipalities": kinds.count("municipality"),
            "wards": sum(len(a.wards) for a in self),
            "bodies": kinds.count("body"),
            "illustrative": sum(a.illustrative for a in self),
        }

    def to_directory_entries(self, *, include_illustrative: bool = True) -> list[dict[str, object]]:
        """``[[agency]]`` tables for the hub's directory: id, name, classes.

        The deployment adds ``endpoint`` and ``sealing_public_key`` for the agencies it runs.
        """
        return [a.directory_entry() for a in self if include_illustrative or not a.illustrative]


# -------------------------------------------------------------------- building


def _compact(name: str) -> str:
    return "".join(name.split())


def _ward_names(city: RegisteredAgency, ward: Ward) -> set[str]:
    return {
        ward.full_name,
        f"{city.prefecture}{ward.full_name}",
        f"{city.prefecture} {ward.full_name}",
    }


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def _table_list(data: Mapping[str, object], key: str, source: str) -> list[dict[str, object]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{source}: {key} must be an array of tables")
    return value


def _build(
    governments: tuple[LocalGovernment, ...], data: Mapping[str, object], source: str
) -> list[RegisteredAgency]:
    municipal = data.get("municipal", {})
    if not isinstance(municipal, dict):
        raise ValueError(f"{source}: [municipal] must be a table")
    local = _local_agencies(governments, municipal, source)
    bodies = _bodies(data, source)
    generated = _generated(governments, data, source)
    agencies = [*local, *bodies, *generated]
    return _apply_described(agencies, _table_list(data, "described", source), source)


def _local_agencies(
    governments: tuple[LocalGovernment, ...], municipal: Mapping[str, object], source: str
) -> list[RegisteredAgency]:
    by_place = {(g.prefecture, g.name): g for g in governments if g.kind == "municipality"}

    def place(entry: str, what: str) -> LocalGovernment:
        prefecture, _, name = entry.partition(" ")
        found = by_place.get((prefecture, name))
        if found is None:
            raise ValueError(f"{source}: {what}: no municipality {entry!r}")
        return found

    extra: dict[str, set[str]] = {}
    for entry in _strings(municipal.get("welfare_office_towns", []), "welfare_office_towns"):
        g = place(entry, "welfare_office_towns")
        if g.name.endswith("市"):
            raise ValueError(f"{source}: welfare_office_towns: {entry!r} is a city")
        extra.setdefault(g.code, set()).add(WELFARE_TOWN_MAYOR)
    for entry in _strings(municipal.get("health_centre_cities", []), "health_centre_cities"):
        extra.setdefault(place(entry, "health_centre_cities").code, set()).add(
            HEALTH_CENTRE_CITY_MAYOR
        )
    named = municipal.get("named", {})
    if not isinstance(named, dict):
        raise ValueError(f"{source}: [municipal.named] must be a table")
    for cls, entry in named.items():
        if not isinstance(entry, str):
            raise ValueError(f"{source}: municipal.named.{cls} must be a string")
        extra.setdefault(place(entry, f"municipal.named.{cls}").code, set()).add(str(cls))
    special_wards_health = municipal.get("health_centre_special_wards", False)
    if not isinstance(special_wards_health, bool):
        raise ValueError(f"{source}: health_centre_special_wards must be true or false")

    wards: dict[tuple[str, str], list[Ward]] = {}
    for g in governments:
        if g.kind == "ward":
            wards.setdefault((g.prefecture, g.city), []).append(
                Ward(g.code, g.ward, g.name, g.name_kana)
            )

    out: list[RegisteredAgency] = []
    for g in governments:
        if g.kind == "prefecture":
            out.append(
                RegisteredAgency(
                    agency_id=g.code,
                    display_name=f"{g.name}知事",
                    name=g.name,
                    classes=frozenset({GOVERNOR}),
                    kind="prefecture",
                    prefecture=g.name,
                    code=g.code,
                    name_kana=g.name_kana,
                )
            )
        elif g.kind == "municipality":
            classes = {MAYOR, *extra.get(g.code, ())}
            city_wards = tuple(wards.get((g.prefecture, g.name), ()))
            special_ward = g.prefecture == TOKYO and g.name.endswith("区")
            if g.name.endswith("市"):
                classes.add(CITY_MAYOR)
            if special_ward:
                classes.add(SPECIAL_WARD_MAYOR)
                if special_wards_health:
                    classes.add(HEALTH_CENTRE_CITY_MAYOR)
            if city_wards:  # a designated city: 地域保健法第五条第一項
                classes.add(HEALTH_CENTRE_CITY_MAYOR)
            out.append(
                RegisteredAgency(
                    agency_id=g.code,
                    display_name=f"{g.name}長",
                    name=g.name,
                    classes=frozenset(classes),
                    kind="municipality",
                    aliases=(
                        f"{g.prefecture}{g.name}",
                        f"{g.prefecture}{g.name}長",
                        f"{g.prefecture} {g.name}",
                    ),
                    prefecture=g.prefecture,
                    code=g.code,
                    name_kana=g.name_kana,
                    wards=city_wards,
                )
            )
    return out


_BODY_KEYS = frozenset({"id", "name", "classes", "aliases", "note", "basis", "illustrative"})
_DESCRIBED_KEYS = frozenset({"classes", "member_classes", "basis"})


def _check_keys(entry: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _body(entry: Mapping[str, object], where: str, **fields: str) -> RegisteredAgency:
    _check_keys(entry, _BODY_KEYS, where)

    def text(key: str, default: str | None = None) -> str:
        value = entry.get(key, default)
        if not isinstance(value, str) or (default is None and not value):
            raise ValueError(f"{where}: {key} must be a non-empty string")
        return value.format(**fields) if fields else value

    illustrative = entry.get("illustrative", False)
    if not isinstance(illustrative, bool):
        raise ValueError(f"{where}: illustrative must be true or false")
    classes = _strings(entry.get("classes"), f"{where}: classes")
    aliases = _strings(entry.get("aliases", []), f"{where}: aliases")
    name = text("name")
    return RegisteredAgency(
        agency_id=text("id"),
        display_name=name,
        name=name,
        classes=frozenset(classes),
        kind="body",
        aliases=tuple(a.format(**fields) if fields else a for a in aliases),
        prefecture=fields.get("prefecture", ""),
        illustrative=illustrative,
        note=text("note", "") or text("basis", ""),
    )


def _bodies(data: Mapping[str, object], source: str) -> list[RegisteredAgency]:
    return [
        _body(entry, f"{source}: agency[{n}]")
        for n, entry in enumerate(_table_list(data, "agency", source))
    ]


def _generated(
    governments: tuple[LocalGovernment, ...], data: Mapping[str, object], source: str
) -> list[RegisteredAgency]:
    out: list[RegisteredAgency] = []
    for n, entry in enumerate(_table_list(data, "per_prefecture", source)):
        for g in governments:
            if g.kind == "prefecture":
                agency = _body(
                    entry, f"{source}: per_prefecture[{n}]", pref=g.code[:2], prefecture=g.name
                )
                out.append(agency)
    for n, entry in enumerate(_table_list(data, "per_municipality", source)):
        for g in governments:
            if g.kind == "municipality":
                agency = _body(
                    entry,
                    f"{source}: per_municipality[{n}]",
                    code=g.code,
                    name=g.name,
                    prefecture=g.prefecture,
                )
                out.append(replace(agency, aliases=(*agency.aliases, g.prefecture + agency.name)))
    return out


def _apply_described(
    agencies: list[RegisteredAgency], entries: list[dict[str, object]], source: str
) -> list[RegisteredAgency]:
    described = []
    held = {cls for a in agencies for cls in a.classes}
    for n, entry in enumerate(entries):
        where = f"{source}: described[{n}]"
        _check_keys(entry, _DESCRIBED_KEYS, where)
        members = frozenset(_strings(entry.get("member_classes"), f"{where}: member_classes"))
        unknown = sorted(members - held)
        if unknown:
            raise ValueError(f"{where}: no agency holds member class(es) {unknown}")
        basis = entry.get("basis")
        if not isinstance(basis, str) or not basis:
            raise ValueError(f"{where}: basis must be a non-empty string")
        described.append(
            _Described(_strings(entry.get("classes"), f"{where}: classes"), members, basis)
        )
    out = []
    for agency in agencies:
        added = {c for d in described if agency.classes & d.member_classes for c in d.classes}
        out.append(replace(agency, classes=agency.classes | added) if added else agency)
    return out
