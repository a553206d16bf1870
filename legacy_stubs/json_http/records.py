"""The modern municipality's data: residents and their local tax by fiscal year."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from legacy_stubs.people import Person, generate


@dataclass
class Citizen:
    person_id: str
    person: Person
    taxes: dict[int, dict[str, Any]] = field(default_factory=dict)  # fiscalYear -> record

    def resident_record(self) -> dict[str, Any]:
        p = self.person
        return {
            "name": f"{p.family} {p.given}",
            "nameKana": f"{p.family_kana} {p.given_kana}",
            "birthDate": p.birth_date.isoformat(),
            "sex": p.sex,
            "municipalityCode": p.municipality_code,
            "address": p.address,
            "householdHead": p.household_head,
            "movedInDate": p.moved_in.isoformat(),
        }

    def person_entry(self) -> dict[str, Any]:
        record = self.resident_record()
        return {
            "personId": self.person_id,
            **{k: record[k] for k in ("name", "nameKana", "birthDate", "sex", "address")},
        }


NAMED_TAX = {"named-1": (3_850_000, 231_000, 1), "named-4": (1_450_000, 61_200, 0)}


def _tax(rng: random.Random, year: int) -> dict[str, Any]:
    income = rng.choice((0, 900_000, 3_000_000, 5_500_000, 9_000_000)) + rng.randint(0, 99) * 1000
    exempt = income < 1_000_000
    return {
        "fiscalYear": year,
        "totalIncome": income,
        "incomeLevy": 0 if exempt else (income - 430_000) * 6 // 100 // 100 * 100,
        "perCapitaLevy": 0 if exempt else 5_000,
        "taxExempt": exempt,
        "dependents": rng.randint(0, 3),
    }


def generate_citizens(seed: int, count: int) -> list[Citizen]:
    rng = random.Random(seed * 7 + 4)
    citizens = []
    for n, person in enumerate(generate(seed, count)):
        if person.key in NAMED_TAX:
            income, levy, dependents = NAMED_TAX[person.key]
            taxes = {
                2026: {
                    "fiscalYear": 2026,
                    "totalIncome": income,
                    "incomeLevy": levy,
                    "perCapitaLevy": 5_000,
                    "taxExempt": False,
                    "dependents": dependents,
                }
            }
        else:
            taxes = {y: _tax(rng, y) for y in (2025, 2026)}
        citizens.append(Citizen(f"S-{n + 1:04d}", person, taxes))
    return citizens


def to_json(citizens: list[Citizen]) -> dict[str, Any]:
    return {
        "format": "json_http",
        "citizens": [
            {
                "person_id": c.person_id,
                "person": c.person.to_json(),
                "taxes": [t for _, t in sorted(c.taxes.items())],
            }
            for c in citizens
        ],
    }


def from_json(data: Any) -> list[Citizen]:
    if not isinstance(data, dict) or data.get("format") != "json_http":
        raise ValueError('not a json_http data file (want {"format": "json_http", ...})')
    citizens = []
    for entry in data.get("citizens", []):
        try:
            taxes = {int(t["fiscalYear"]): dict(t) for t in entry.get("taxes", [])}
            citizens.append(
                Citizen(str(entry["person_id"]), Person.from_json(entry["person"]), taxes)
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"citizen: missing or ill-typed field {exc}") from None
    return citizens
