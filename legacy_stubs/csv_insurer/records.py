"""The insurer's data: insured people and one benefit per person per treatment month."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from legacy_stubs.people import Person, generate

INSURER_NUMBER = "01140016"  # 保険者番号 of the demo's 全国健康保険協会 branch


@dataclass(frozen=True)
class Benefit:
    month: str  # 診療年月 YYYYMM
    kind: str  # 給付種別 01..04
    ratio: int  # 自己負担割合, percent
    amount: int  # 給付額, yen


@dataclass
class Insured:
    number: str  # 被保険者番号
    person: Person
    benefits: dict[str, Benefit] = field(default_factory=dict)  # by month


NAMED = {
    "named-1": (
        "K-0001", [Benefit("202603", "01", 30, 12_450), Benefit("202604", "02", 30, 80_100)],
    ),
    "named-2": ("K-0002", [Benefit("202604", "01", 30, 5_230)]),
    "named-3": ("K-0003", []),
    "named-4": ("K-0004", [Benefit("202602", "01", 10, 3_300)]),
}  # fmt: skip


def generate_insured(seed: int, count: int) -> list[Insured]:
    rng = random.Random(seed * 7 + 3)
    insured = []
    for n, person in enumerate(generate(seed, count)):
        if person.key in NAMED:
            number, benefits = NAMED[person.key]
        else:
            number = f"K-{n + 1:04d}"
            age = 2026 - person.birth_date.year
            ratio = 10 if age >= 75 else 20 if age >= 70 else 30
            benefits = [
                Benefit(
                    f"2026{m:02d}",
                    rng.choice(("01", "01", "01", "02", "04")),
                    ratio,
                    rng.randint(1_000, 200_000),
                )
                for m in sorted(rng.sample(range(1, 7), rng.randint(0, 3)))
            ]
        insured.append(Insured(number, person, {b.month: b for b in benefits}))
    return insured


def to_json(insured: list[Insured]) -> dict[str, Any]:
    return {
        "format": "csv_insurer",
        "insured": [
            {
                "number": i.number,
                "person": i.person.to_json(),
                "benefits": [
                    {"month": b.month, "kind": b.kind, "ratio": b.ratio, "amount": b.amount}
                    for _, b in sorted(i.benefits.items())
                ],
            }
            for i in insured
        ],
    }


def from_json(data: Any) -> list[Insured]:
    if not isinstance(data, dict) or data.get("format") != "csv_insurer":
        raise ValueError('not a csv_insurer data file (want {"format": "csv_insurer", ...})')
    insured = []
    for entry in data.get("insured", []):
        try:
            benefits = [Benefit(**b) for b in entry.get("benefits", [])]
            insured.append(
                Insured(
                    str(entry["number"]),
                    Person.from_json(entry["person"]),
                    {b.month: b for b in benefits},
                )
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"insured: missing or ill-typed field {exc}") from None
    return insured
