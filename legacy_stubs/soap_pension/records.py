"""The pension body's data: insured people and their benefits."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from legacy_stubs.people import Person, generate

KINDS = ("01", "02", "03", "11")  # 老齢基礎, 障害基礎, 遺族基礎, 老齢厚生


@dataclass(frozen=True)
class Benefit:
    kind: str  # NenkinShubetsu
    yearly_yen: int
    start: str  # YYYY-MM
    suspended: bool


@dataclass(frozen=True)
class Insured:
    number: str  # 基礎年金番号 NNNN-NNNNNN
    person: Person
    benefit: Benefit | None


NAMED_NUMBERS = {
    "named-1": ("1234-567890", Benefit("01", 795_000, "2023-06", False)),
    "named-2": ("2345-678901", Benefit("03", 1_020_000, "2012-04", False)),
    "named-3": ("4567-890123", None),
    "named-4": ("3456-789012", Benefit("01", 612_000, "1990-02", True)),
}


def generate_insured(seed: int, count: int) -> list[Insured]:
    rng = random.Random(seed * 7 + 2)
    insured = []
    for person in generate(seed, count):
        if person.key in NAMED_NUMBERS:
            number, benefit = NAMED_NUMBERS[person.key]
        else:
            number = f"{rng.randint(5000, 9999)}-{rng.randint(0, 999999):06d}"
            benefit = None
            if person.birth_date.year < 1960:
                start = f"{person.birth_date.year + 65}-{person.birth_date.month:02d}"
                benefit = Benefit(
                    rng.choice(("01", "01", "11")),
                    rng.randint(400_000, 2_400_000),
                    start,
                    rng.random() < 0.05,
                )
        insured.append(Insured(number, person, benefit))
    return insured


def to_json(insured: list[Insured]) -> dict[str, Any]:
    return {
        "format": "soap_pension",
        "insured": [
            {
                "number": i.number,
                "person": i.person.to_json(),
                "benefit": None
                if i.benefit is None
                else {
                    "kind": i.benefit.kind,
                    "yearly_yen": i.benefit.yearly_yen,
                    "start": i.benefit.start,
                    "suspended": i.benefit.suspended,
                },
            }
            for i in insured
        ],
    }


def from_json(data: Any) -> list[Insured]:
    if not isinstance(data, dict) or data.get("format") != "soap_pension":
        raise ValueError('not a soap_pension data file (want {"format": "soap_pension", ...})')
    insured = []
    for entry in data.get("insured", []):
        try:
            b = entry.get("benefit")
            benefit = None if b is None else Benefit(**b)
            person = Person.from_json(entry["person"])
            insured.append(Insured(str(entry["number"]), person, benefit))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"insured: missing or ill-typed field {exc}") from None
    return insured
