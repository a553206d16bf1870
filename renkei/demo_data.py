"""The demo's small world: three residents, what each agency's legacy system holds, the queries."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from comm_server.bulk_bind import LocalRecord
from legacy_stubs.registry.model import Address, Name, Sex
from legacy_stubs.registry.model import Resident as RegistryResident
from legacy_stubs.registry.resident_code import new_resident_code


@dataclass(frozen=True)
class Resident:
    resident_code: str
    name: str
    kana: str
    # Each agency's own number for this person (宛名番号, 基礎年金番号, ...).
    local_ids: dict[str, str]
    birth_date: date = date(1960, 1, 1)
    sex: Sex = "1"

    def registry_entry(self, n: int) -> RegistryResident:
        """The person as the resident registry holds them (four facts)."""
        return RegistryResident(
            self.resident_code,
            Name(self.name, self.kana),
            self.birth_date,
            self.sex,
            Address("神奈川県", "141046", "横浜市 中区", "港町", n + 1, n + 2, n + 3),
        )


@dataclass(frozen=True)
class DemoQuery:
    title: str
    requester: str
    local_person_id: str
    provider: str
    info_kind: str
    item: str
    purpose: str
    staff_id: str
    terminal_id: str
    query: bytes = b""
    slow_provider_ms: int = 0


def residents(seed: int = 2026) -> list[Resident]:
    rng = random.Random(seed)
    taken: set[str] = set()

    def code() -> str:
        return new_resident_code(rng, taken)

    return [
        Resident(
            code(),
            "山田 太郎",
            "ヤマダ タロウ",
            {
                "141003": "A0001001",
                "nenkin": "1234-567890",
                "mhlw": "K-0001",
                "kyoukai-kenpo": "K-0001",
                "131130": "S-0001",
            },
            date(1958, 5, 14),
            "1",
        ),
        Resident(
            code(),
            "佐藤 花子",
            "サトウ ハナコ",
            {
                "141003": "A0001002",
                "nenkin": "2345-678901",
                "mhlw": "K-0002",
                "kyoukai-kenpo": "K-0002",
                "131130": "S-0002",
            },
            date(1962, 11, 3),
            "2",
        ),
        Resident(
            code(),
            "鈴木 一郎",
            "スズキ イチロウ",
            {"141003": "A0001003", "kyoukai-kenpo": "K-0003", "131130": "S-0003"},
            date(1990, 2, 28),
            "1",
        ),
    ]


def legacy_records(people: list[Resident]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Per agency: local id -> kind of information -> record."""
    city: dict[str, dict[str, dict[str, Any]]] = {}
    pension: dict[str, dict[str, dict[str, Any]]] = {}
    for n, person in enumerate(people):
        city[person.local_ids["141003"]] = {
            "地方税関係情報": {
                "課税年度": 2026,
                "総所得金額": 3_850_000 + 410_000 * n,
                "市町村民税所得割額": 231_000 + 24_600 * n,
                "非課税": False,
            },
            "住民票関係情報": {
                "氏名": person.name,
                "住所": f"神奈川県横浜市中区港町{n + 1}丁目{n + 2}番{n + 3}号",
                "世帯主": n != 1,
            },
        }
        if "nenkin" in person.local_ids:
            pension[person.local_ids["nenkin"]] = {
                "年金給付関係情報": {
                    "年金種別": "老齢基礎年金",
                    "年金額": 795_000 - 12_000 * n,
                    "支給開始年月": f"202{4 - n}-04",
                }
            }
    return {"141003": city, "nenkin": pension, "mhlw": {}}


def queries(people: list[Resident]) -> list[DemoQuery]:
    yamada, sato, suzuki = people
    return [
        DemoQuery(
            "lawful: the city asks the pension service (item 二十七)",
            "141003",
            yamada.local_ids["141003"],
            "nenkin",
            "年金給付関係情報",
            "二十七",
            "令和8年度 市町村民税の賦課",
            "Y-1203",
            "YOK-TAX-07",
        ),
        DemoQuery(
            "lawful: the minister asks the city (item 四十八)",
            "mhlw",
            sato.local_ids["mhlw"],
            "141003",
            "地方税関係情報",
            "四十八",
            "国民年金保険料の免除審査",
            "M-0420",
            "MHLW-NP-02",
            query=b"fiscal_year=2026",
        ),
        DemoQuery(
            "unlawful: the pension service asks the city under the minister's item",
            "nenkin",
            yamada.local_ids["nenkin"],
            "141003",
            "地方税関係情報",
            "四十八",
            "(none given)",
            "N-7781",
            "NK-OPS-11",
        ),
        DemoQuery(
            "no record: the pension service has nobody bound for this person",
            "141003",
            suzuki.local_ids["141003"],
            "nenkin",
            "年金給付関係情報",
            "二十七",
            "令和8年度 市町村民税の賦課",
            "Y-1203",
            "YOK-TAX-07",
        ),
        DemoQuery(
            "slow legacy system: the pension service's records answer too late",
            "141003",
            sato.local_ids["141003"],
            "nenkin",
            "年金給付関係情報",
            "二十七",
            "令和8年度 市町村民税の賦課",
            "Y-1203",
            "YOK-TAX-07",
            slow_provider_ms=3000,
        ),
    ]


def legacy_record(person: Resident, n: int, agency_id: str) -> LocalRecord:
    """The person as one agency's old file writes them: each agency its own way."""
    entry = person.registry_entry(n)
    a = entry.address
    wide = str.maketrans("0123456789-", "０１２３４５６７８９－")
    by_agency = {
        # The city: era dates, full-width digits, 丁目・番・号 numbers with "-".
        "141003": (
            f"{person.name.replace(' ', '　')}",
            f"{a.municipality.replace(' ', '')}{a.town}{a.chome}-{a.banchi}-{a.go}".translate(wide),
            f"昭和{person.birth_date.year - 1925}年{person.birth_date.month}月"
            f"{person.birth_date.day}日"
            if person.birth_date.year < 1989
            else f"平成{person.birth_date.year - 1988}年{person.birth_date.month}月"
            f"{person.birth_date.day}日",
        ),
        # The pension service: ISO dates, the full address in kanji numerals.
        "nenkin": (
            person.name,
            f"{a.prefecture}{a.municipality.replace(' ', '')}{a.town}"
            f"{_KANJI[a.chome]}丁目{a.banchi}番地{a.go}号",
            person.birth_date.isoformat(),
        ),
    }
    name, address, born = by_agency.get(
        agency_id, (person.name, a.text, person.birth_date.strftime("%Y/%m/%d"))
    )
    return LocalRecord(
        local_person_id=person.local_ids[agency_id],
        name=name,
        kana=person.kana,
        address=address,
        birth_date=born,
        sex="男" if person.sex == "1" else "女",
    )


_KANJI = dict(enumerate("〇一二三四五六七八九", start=0))
