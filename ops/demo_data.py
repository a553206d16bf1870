"""The demo's small world: three residents, what each agency's legacy system holds, the queries."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from comm_server.binding.records import LocalRecord
from legacy_stubs.registry.model import Address, Name, Sex
from legacy_stubs.registry.model import Resident as RegistryResident
from legacy_stubs.registry.resident_code import new_resident_code
from renkei.comm.v1 import comm_pb2


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
    # False: the staff member is not in the requester's staff register (a refusal to show).
    staff_registered: bool = True

    def query_request(self) -> comm_pb2.QueryRequest:
        """The query as its requester's staff send it (RequesterService.Query)."""
        return comm_pb2.QueryRequest(
            local_person_id=self.local_person_id,
            provider_agency_id=self.provider,
            info_kind=self.info_kind,
            legal_basis_item=self.item,
            purpose=self.purpose,
            staff_id=self.staff_id,
            terminal_id=self.terminal_id,
            query=self.query,
        )

    def bulk_query_request(self) -> comm_pb2.BulkQueryRequest:
        """The same query as a bulk query of one person (RequesterService.BulkQuery)."""
        return comm_pb2.BulkQueryRequest(
            provider_agency_id=self.provider,
            info_kind=self.info_kind,
            legal_basis_item=self.item,
            purpose=self.purpose,
            staff_id=self.staff_id,
            terminal_id=self.terminal_id,
            items=[comm_pb2.BulkQueryItem(local_person_id=self.local_person_id, query=self.query)],
        )


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
    """The demo's queries, each lawful one approved by the real Annex Table 2
    (``renkei policy explain`` names the item), one through each legacy system."""
    yamada, sato, suzuki = people
    city, pension, insurer, shibuya, minister = (
        "141003",
        "nenkin",
        "kyoukai-kenpo",
        "131130",
        "mhlw",
    )
    city_staff = ("令和8年度 市町村民税の賦課", "Y-1203", "YOK-TAX-07")
    shibuya_staff = ("障害児通所給付費の支給決定", "SB-0311", "SBY-FUKU-02")
    return [
        DemoQuery(
            "SOAP pension body: the city asks for a pension (item 二十七)",
            city,
            yamada.local_ids[city],
            pension,
            "年金給付関係情報",
            "二十七",
            *city_staff,
        ),
        DemoQuery(
            "fixed-width tax system: 渋谷区 asks 横浜市 for local tax (item 十一)",
            shibuya,
            yamada.local_ids[shibuya],
            city,
            "地方税関係情報",
            "十一",
            *shibuya_staff,
            query=b"fiscal_year=2026",
        ),
        DemoQuery(
            "CSV insurer: 渋谷区 asks 全国健康保険協会 for medical benefits (item 二十六)",
            shibuya,
            yamada.local_ids[shibuya],
            insurer,
            "医療保険給付関係情報",
            "二十六",
            "生活保護の決定",
            "SB-0420",
            "SBY-SEIHO-01",
            query=b"treatment_month=202604",
        ),
        DemoQuery(
            "JSON system: 全国健康保険協会 asks 渋谷区 for the resident record (item 二)",
            insurer,
            sato.local_ids[insurer],
            shibuya,
            "住民票関係情報",
            "二",
            "健康保険の保険給付の支給",
            "KK-2001",
            "KK-KYUFU-03",
        ),
        DemoQuery(
            "both directions: 横浜市 asks 渋谷区 for the resident record (item 十一)",
            city,
            yamada.local_ids[city],
            shibuya,
            "住民票関係情報",
            "十一",
            "障害福祉サービスの提供",
            "Y-2208",
            "YOK-FUKU-03",
        ),
        DemoQuery(
            "lawful: the minister asks the city (item 四十八)",
            minister,
            sato.local_ids[minister],
            city,
            "地方税関係情報",
            "四十八",
            "国民年金保険料の免除審査",
            "M-0420",
            "MHLW-NP-02",
            query=b"fiscal_year=2026",
        ),
        DemoQuery(
            "unlawful: the pension service asks the city under the minister's item",
            pension,
            yamada.local_ids[pension],
            city,
            "地方税関係情報",
            "四十八",
            "(none given)",
            "N-7781",
            "NK-OPS-11",
        ),
        DemoQuery(
            "staff refusal: someone not in the city's staff register asks",
            city,
            yamada.local_ids[city],
            pension,
            "年金給付関係情報",
            "二十七",
            "(curiosity)",
            "Y-9999",
            "YOK-TAX-07",
            staff_registered=False,
        ),
        DemoQuery(
            "no record: the pension body pays 鈴木 一郎 no benefit",
            city,
            suzuki.local_ids[city],
            pension,
            "年金給付関係情報",
            "二十七",
            *city_staff,
        ),
        DemoQuery(
            "slow legacy system: the pension body's SOAP service answers too late",
            city,
            sato.local_ids[city],
            pension,
            "年金給付関係情報",
            "二十七",
            *city_staff,
            slow_provider_ms=3000,
        ),
        DemoQuery(
            "answer later: the insurer's batch answers after the answer time",
            shibuya,
            sato.local_ids[shibuya],
            insurer,
            "医療保険給付関係情報",
            "二十六",
            "生活保護の決定",
            "SB-0420",
            "SBY-SEIHO-01",
            query=b"treatment_month=202604",
            slow_provider_ms=2000,
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
