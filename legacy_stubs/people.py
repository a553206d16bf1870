"""The people the four mocked legacy systems know: a few named ones and seeded generated ones.

Every stub draws its own records from these (each under its own local ids),
so the same 山田 太郎 appears in the tax office, the pension body and the
insurer, as a real person would. Generation is deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

Sex = Literal["male", "female"]

# Era starts (和暦): code, name, first day.
ERAS: tuple[tuple[int, str, date], ...] = (
    (5, "令和", date(2019, 5, 1)),
    (4, "平成", date(1989, 1, 8)),
    (3, "昭和", date(1926, 12, 25)),
    (2, "大正", date(1912, 7, 30)),
    (1, "明治", date(1868, 1, 25)),
)

_FULL_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def era_date(day: date) -> str:
    """``GYYMMDD``: era code, year of the era, month, day."""
    for code, _, start in ERAS:
        if day >= start:
            return f"{code}{day.year - start.year + 1:02d}{day.month:02d}{day.day:02d}"
    raise ValueError(f"{day} is before 明治")


def full_width_digits(text: str) -> str:
    return text.translate(_FULL_DIGITS)


@dataclass(frozen=True)
class Place:
    code: str  # 6-digit local government code with its check digit
    prefix: str  # prefecture, city and ward, full-width


PLACES: tuple[Place, ...] = (
    Place("141046", "神奈川県横浜市中区"),
    Place("141011", "神奈川県横浜市鶴見区"),
    Place("131130", "東京都渋谷区"),
    Place("131016", "東京都千代田区"),
    Place("271004", "大阪府大阪市"),
    Place("011002", "北海道札幌市"),
)
TOWNS = ("港町", "山下町", "本町", "神南", "宇田川町", "栄町", "緑町", "桜木町")


@dataclass(frozen=True)
class Person:
    key: str  # stable across systems: "named-1", "gen-17"
    family: str
    given: str
    family_kana: str
    given_kana: str
    birth_date: date
    sex: Sex
    municipality_code: str
    address: str  # full-width
    household_head: bool
    moved_in: date

    @property
    def name(self) -> str:
        return f"{self.family}\u3000{self.given}"

    @property
    def kana(self) -> str:
        return f"{self.family_kana}\u3000{self.given_kana}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "family": self.family,
            "given": self.given,
            "family_kana": self.family_kana,
            "given_kana": self.given_kana,
            "birth_date": self.birth_date.isoformat(),
            "sex": self.sex,
            "municipality_code": self.municipality_code,
            "address": self.address,
            "household_head": self.household_head,
            "moved_in": self.moved_in.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Person:
        try:
            sex = data["sex"]
            if sex not in ("male", "female"):
                raise ValueError(f"sex: {sex!r} is not male or female")
            return cls(
                key=str(data["key"]),
                family=str(data["family"]),
                given=str(data["given"]),
                family_kana=str(data["family_kana"]),
                given_kana=str(data["given_kana"]),
                birth_date=date.fromisoformat(data["birth_date"]),
                sex=sex,
                municipality_code=str(data["municipality_code"]),
                address=str(data["address"]),
                household_head=bool(data["household_head"]),
                moved_in=date.fromisoformat(data["moved_in"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"person: missing or ill-typed field {exc}") from None


def _address(place: Place, town: str, a: int, b: int, c: int) -> str:
    return place.prefix + town + full_width_digits(f"{a}丁目{b}番{c}号")


NAMED: tuple[Person, ...] = (
    Person(
        "named-1", "山田", "太郎", "ヤマダ", "タロウ", date(1958, 5, 14), "male", "141046",
        _address(PLACES[0], "港町", 1, 2, 3), True, date(2001, 4, 1),
    ),
    Person(
        "named-2", "佐藤", "花子", "サトウ", "ハナコ", date(1962, 11, 3), "female", "141046",
        _address(PLACES[0], "港町", 2, 3, 4), True, date(1995, 10, 16),
    ),
    Person(
        "named-3", "鈴木", "一郎", "スズキ", "イチロウ", date(1990, 2, 28), "male", "141046",
        _address(PLACES[0], "港町", 3, 4, 5), False, date(2019, 6, 3),
    ),
    Person(
        "named-4", "高橋", "ハル", "タカハシ", "ハル", date(1925, 1, 10), "female", "131130",
        _address(PLACES[2], "神南", 1, 19, 11), True, date(1960, 3, 1),
    ),
)  # fmt: skip
"""The people tests and the demo name; present in every generated data set."""

_FAMILY = (
    ("佐々木", "ササキ"), ("伊藤", "イトウ"), ("渡辺", "ワタナベ"), ("中村", "ナカムラ"),
    ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山本", "ヤマモト"),
    ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ"), ("斎藤", "サイトウ"),
)  # fmt: skip
_GIVEN_MALE = (
    ("翔太", "ショウタ"), ("健一", "ケンイチ"), ("大輔", "ダイスケ"), ("誠", "マコト"),
    ("蓮", "レン"), ("浩二", "コウジ"),
)  # fmt: skip
_GIVEN_FEMALE = (
    ("陽子", "ヨウコ"), ("美咲", "ミサキ"), ("恵子", "ケイコ"), ("さくら", "サクラ"),
    ("結衣", "ユイ"), ("和子", "カズコ"),
)  # fmt: skip


def generate(seed: int, count: int) -> list[Person]:
    """The named people and ``count`` more, the same for the same seed."""
    rng = random.Random(seed)
    people = list(NAMED)
    for n in range(count):
        sex: Sex = rng.choice(("male", "female"))
        family, family_kana = rng.choice(_FAMILY)
        given, given_kana = rng.choice(_GIVEN_MALE if sex == "male" else _GIVEN_FEMALE)
        born = date(1920, 1, 1) + timedelta(days=rng.randrange(365 * 85))
        place = rng.choice(PLACES)
        moved = born + timedelta(days=rng.randrange(max(1, (date(2025, 1, 1) - born).days)))
        people.append(
            Person(
                f"gen-{n + 1}",
                family,
                given,
                family_kana,
                given_kana,
                born,
                sex,
                place.code,
                _address(
                    place,
                    rng.choice(TOWNS),
                    rng.randint(1, 9),
                    rng.randint(1, 30),
                    rng.randint(1, 20),
                ),
                rng.random() < 0.5,
                moved,
            )
        )
    return people
