"""The tax office's data and its 256-byte cp932 records (docs/legacy-formats.md section 1)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

from legacy_stubs.people import Person, era_date, generate

RECORD_LEN: Final = 256
TAX_KIND: Final = "01"
RESIDENT_KIND: Final = "02"
FISCAL_YEARS: Final = (2024, 2025, 2026)


@dataclass(frozen=True)
class Tax:
    fiscal_year: int
    total_income: int
    income_levy: int
    per_capita_levy: int
    exempt: bool
    dependents: int

    def to_json(self) -> dict[str, Any]:
        return {
            "fiscal_year": self.fiscal_year,
            "total_income": self.total_income,
            "income_levy": self.income_levy,
            "per_capita_levy": self.per_capita_levy,
            "exempt": self.exempt,
            "dependents": self.dependents,
        }


@dataclass
class Resident:
    atena: str  # 宛名番号, at most 10 ASCII characters
    person: Person
    taxes: dict[int, Tax] = field(default_factory=dict)


def _tax(rng: random.Random, year: int, dependents: int, base: int) -> Tax:
    income = max(0, base + rng.randint(-300_000, 300_000))
    exempt = income < 1_000_000
    if exempt:
        return Tax(year, income, 0, 0, True, dependents)
    taxable = max(0, income - 430_000 - 380_000 * dependents)
    return Tax(year, income, taxable * 6 // 100 // 100 * 100, 6_200, False, dependents)


def generate_residents(seed: int, count: int) -> list[Resident]:
    rng = random.Random(seed * 7 + 1)
    residents = []
    for n, person in enumerate(generate(seed, count)):
        atena = f"A{1001 + n:07d}" if n < 4 else f"A{2000000 + n:07d}"
        if person.key == "named-4":
            continue  # lives in 渋谷区: not in 横浜市's tax files
        if person.key == "named-1":
            taxes = {
                2024: Tax(2024, 3_720_000, 219_000, 6_200, False, 1),
                2025: Tax(2025, 3_790_000, 223_200, 6_200, False, 1),
                2026: Tax(2026, 3_850_000, 231_000, 6_200, False, 1),
            }
        elif person.key == "named-3":
            taxes = {2026: Tax(2026, 0, 0, 0, True, 0)}
        else:
            dependents = rng.randint(0, 3)
            base = rng.choice((0, 800_000, 2_500_000, 4_000_000, 7_000_000, 12_000_000))
            taxes = {y: _tax(rng, y, dependents, base) for y in FISCAL_YEARS}
        residents.append(Resident(atena, person, taxes))
    return residents


def to_json(residents: list[Resident]) -> dict[str, Any]:
    return {
        "format": "fixed_tax",
        "residents": [
            {
                "atena": r.atena,
                "person": r.person.to_json(),
                "taxes": [t.to_json() for _, t in sorted(r.taxes.items())],
            }
            for r in residents
        ],
    }


def from_json(data: Any) -> list[Resident]:
    if not isinstance(data, dict) or data.get("format") != "fixed_tax":
        raise ValueError('not a fixed_tax data file (want {"format": "fixed_tax", ...})')
    residents = []
    for entry in data.get("residents", []):
        try:
            taxes = {int(t["fiscal_year"]): Tax(**t) for t in entry.get("taxes", [])}
            resident = Resident(str(entry["atena"]), Person.from_json(entry["person"]), taxes)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"resident: missing or ill-typed field {exc}") from None
        encode_resident(resident)  # refuse what cannot be written
        for tax in taxes.values():
            encode_tax(resident.atena, tax)
        residents.append(resident)
    return residents


def ascii_field(text: str, length: int) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > length:
        raise ValueError(f"{text!r} longer than {length} bytes")
    return raw.ljust(length, b" ")


def wide_field(text: str, chars: int) -> bytes:
    """Full-width text padded with U+3000 to ``chars`` characters, 2 bytes each in cp932."""
    if len(text) > chars:
        raise ValueError(f"{text!r} longer than {chars} characters")
    raw = text.ljust(chars, "\u3000").encode("cp932")
    if len(raw) != 2 * chars:
        raise ValueError(f"{text!r} is not all full-width characters")
    return raw


def encode_tax(atena: str, tax: Tax) -> bytes:
    sign = "-" if tax.total_income < 0 else "+"
    record = (
        ascii_field(atena, 10)
        + f"{tax.fiscal_year:04d}".encode("ascii")
        + f"{sign}{abs(tax.total_income):010d}".encode("ascii")
        + f"{tax.income_levy:09d}".encode("ascii")
        + f"{tax.per_capita_levy:07d}".encode("ascii")
        + (b"1" if tax.exempt else b"0")
        + f"{tax.dependents:02d}".encode("ascii")
    )
    if len(record) != 44:
        raise ValueError(f"tax record of {atena!r} overflows its fields")
    return record.ljust(RECORD_LEN, b" ")


def encode_resident(resident: Resident) -> bytes:
    p = resident.person
    record = (
        ascii_field(resident.atena, 10)
        + wide_field(p.kana, 20)
        + wide_field(p.name, 20)
        + era_date(p.birth_date).encode("ascii")
        + (b"1" if p.sex == "male" else b"2")
        + ascii_field(p.municipality_code, 6)
        + wide_field(p.address, 60)
        + (b"1" if p.household_head else b"0")
        + era_date(p.moved_in).encode("ascii")
    )
    if len(record) != 232:
        raise ValueError(f"resident record of {resident.atena!r} overflows its fields")
    return record.ljust(RECORD_LEN, b" ")
