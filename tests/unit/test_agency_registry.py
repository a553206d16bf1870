"""Unit tests for hub_server.agencies: the registry of agencies the statute names."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import hub_server.agencies
from hub_server.agencies import (
    AgencyRegistry,
    AmbiguousAgencyName,
    LocalGovernmentDataError,
    UnknownAgency,
    check_digit,
    is_valid_code,
    parse_local_governments,
)
from hub_server.annex import Compiled, compile_annex
from hub_server.directory import AGENCY_ID_RE
from hub_server.policy import TablePolicy

PACKAGE_DATA = Path(hub_server.agencies.__file__).parent / "data"
PACKAGE_CSV = Path(__file__).parents[2] / "renkei" / "data" / "local_governments.csv"
SHARED_CSV = Path(__file__).parents[3] / "shared" / "data" / "local_governments.csv"


@pytest.fixture(scope="module")
def registry() -> AgencyRegistry:
    return AgencyRegistry.load()


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_annex()


@pytest.fixture(scope="module")
def policy(compiled: Compiled) -> TablePolicy:
    return compiled.policy()


def _classes_used(compiled: Compiled) -> set[str]:
    used: set[str] = set()
    for item in compiled.items:
        used |= item.requester_classes
        for provision in item.provisions:
            used |= provision.provider_classes
    return used


# ------------------------------------------------------------------ the local government file


def test_csv_is_a_copy_of_the_shared_data() -> None:
    if not SHARED_CSV.exists():
        pytest.skip(f"{SHARED_CSV} is not present in this checkout")
    assert PACKAGE_CSV.read_bytes() == SHARED_CSV.read_bytes()


def test_check_digit_examples() -> None:
    assert check_digit("14100") == "3"  # 横浜市 141003
    assert check_digit("13101") == "6"  # 千代田区 131016
    assert check_digit("01000") == "6"  # 北海道 010006
    assert is_valid_code("141003")
    assert not is_valid_code("141004")
    assert not is_valid_code("14100")
    assert not is_valid_code("１４１００３")


def test_every_code_in_the_shipped_file_checks() -> None:
    rows = parse_local_governments(PACKAGE_CSV.read_text(encoding="utf-8"))
    assert len(rows) == 47 + 1741 + 175
    assert all(is_valid_code(g.code) for g in rows)


def _tampered(tmp_path: Path, code: str, new_code: str) -> Path:
    text = PACKAGE_CSV.read_text(encoding="utf-8")
    assert text.count(f"\n{code},") == 1
    path = tmp_path / "local_governments.csv"
    path.write_text(text.replace(f"\n{code},", f"\n{new_code},"), encoding="utf-8")
    return path


def test_tampered_check_digit_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = _tampered(tmp_path, "141003", "141004")
    line = next(
        n
        for n, row in enumerate(csv.reader(io.StringIO(PACKAGE_CSV.read_text())), start=1)
        if row[0] == "141003"
    )
    with pytest.raises(LocalGovernmentDataError) as err:
        AgencyRegistry.load(local_governments=path)
    message = str(err.value)
    assert f"line {line} (141004 横浜市)" in message
    assert "check digit 4 is wrong, 14100 needs 3" in message


def test_other_malformed_files_are_refused(tmp_path: Path) -> None:
    header = "code,kind,prefecture,name,name_kana\n"
    pref = "140007,prefecture,神奈川県,神奈川県,かながわけん\n"
    cases = {
        "duplicate": header + pref + pref,
        "kind": header + pref + "141003,town,神奈川県,横浜市,よこはまし\n",
        "prefecture": header + pref + "131016,municipality,東京都,千代田区,ちよだく\n",
        "city": header + pref + "141011,ward,神奈川県,横浜市 鶴見区,つるみく\n",
        "digits": header + pref + "14100X,municipality,神奈川県,横浜市,よこはまし\n",
    }
    for name, text in cases.items():
        with pytest.raises(LocalGovernmentDataError, match=r"line [23]"):
            parse_local_governments(text, name)


# ------------------------------------------------------------------ counts and ids


def test_counts(registry: AgencyRegistry) -> None:
    counts = registry.counts()
    assert counts["prefectures"] == 47
    assert counts["municipalities"] == 1741
    assert counts["wards"] == 175
    assert len(registry.by_class("都道府県知事")) == 47
    assert len(registry.by_class("市町村長")) == 1741
    assert len(registry) == counts["agencies"] == len(list(registry))
    assert len(registry.by_class("特別区の区長")) == 23
    assert len(registry.by_class("後期高齢者医療広域連合")) == 47


def test_ids_are_valid_and_local_ids_are_codes(registry: AgencyRegistry) -> None:
    for agency in registry:
        assert AGENCY_ID_RE.match(agency.agency_id), agency
        if agency.kind in ("prefecture", "municipality"):
            assert agency.agency_id == agency.code
            assert is_valid_code(agency.code)
    assert registry.get("kouki-14").display_name == "神奈川県後期高齢者医療広域連合"
    assert registry.get("mhlw").display_name == "厚生労働大臣"
    assert registry.get("nenkin").classes >= {"日本年金機構"}
    assert registry.get("kyoukai-kenpo").classes >= {"全国健康保険協会"}
    with pytest.raises(UnknownAgency):
        registry.get("nobody")
    assert "141003" in registry
    assert "nobody" not in registry


# ------------------------------------------------------------------ names


def test_display_names_and_find(registry: AgencyRegistry) -> None:
    yokohama = registry.get("141003")
    assert (yokohama.display_name, yokohama.name) == ("横浜市長", "横浜市")
    for name in (
        "横浜市",
        "横浜市長",
        "神奈川県横浜市",
        "横浜市 中区",
        "横浜市中区",
        "神奈川県横浜市中区",
    ):
        assert registry.find(name) is yokohama, name
    kanagawa = registry.get("140007")
    assert kanagawa.display_name == "神奈川県知事"
    assert registry.find("神奈川県") is kanagawa
    assert registry.find("神奈川県知事") is kanagawa
    assert registry.find("厚生労働大臣").agency_id == "mhlw"
    assert registry.find("厚生労働省").agency_id == "mhlw"
    assert registry.find("千代田区長").agency_id == "131016"
    assert registry.find("東京都知事").agency_id == "130001"
    with pytest.raises(UnknownAgency):
        registry.find("架空市")


def test_ambiguous_names(registry: AgencyRegistry) -> None:
    with pytest.raises(AmbiguousAgencyName) as err:
        registry.find("府中市")
    assert {a.agency_id for a in err.value.candidates} == {"132063", "342084"}
    assert registry.find("東京都府中市").agency_id == "132063"
    assert registry.find("広島県府中市長").agency_id == "342084"
    # a ward's bare name is not an agency name: "中央区" is Tokyo's special ward, not
    # one of the wards of that name in 札幌市, 千葉市, 新潟市, 大阪市, 神戸市, 福岡市, ...
    assert registry.find("中央区").agency_id == "131024"
    with pytest.raises(UnknownAgency):
        registry.find("青葉区")


def test_wards_belong_to_their_city(registry: AgencyRegistry) -> None:
    yokohama = registry.get("141003")
    assert len(yokohama.wards) == 18
    assert {w.name for w in yokohama.wards} >= {"中区", "鶴見区", "青葉区"}
    assert registry.by_code("141046") is yokohama  # 横浜市 中区
    assert registry.by_code("141003") is yokohama
    assert {a.kind for a in registry} == {"prefecture", "municipality", "body"}  # no wards
    cities = [a for a in registry if a.wards]
    assert len(cities) == 20  # the designated cities
    assert sum(len(a.wards) for a in cities) == 175


# ------------------------------------------------------------------ classes


def test_every_class_the_table_uses_has_agencies(
    registry: AgencyRegistry, compiled: Compiled
) -> None:
    used = _classes_used(compiled)
    assert used == set(compiled.classes)
    missing = sorted(c for c in used if not registry.by_class(c))
    assert missing == []


def test_every_class_the_registry_gives_is_a_class_of_the_table(
    registry: AgencyRegistry, compiled: Compiled
) -> None:
    assert sorted(registry.classes() - set(compiled.classes)) == []


def test_classes_of_mayors(registry: AgencyRegistry) -> None:
    assert registry.find("横浜市").classes >= {"市町村長", "市長", "保健所を設置する市の長"}
    chiyoda = registry.find("千代田区")
    assert chiyoda.classes >= {"市町村長", "特別区の区長", "保健所を設置する市の長"}
    assert "市長" not in chiyoda.classes
    town = registry.find("広島県海田町")
    assert town.classes >= {"市町村長", "福祉に関する事務所を管理する町村長"}
    assert "市長" not in town.classes
    assert registry.by_class("広島市長") == (registry.find("広島市"),)
    assert registry.by_class("長崎市長") == (registry.find("長崎市"),)
    assert len(registry.by_class("保健所を設置する市の長")) == 20 + 62 + 5 + 23


def test_mutual_aid_and_insurers_are_separate_agencies(registry: AgencyRegistry) -> None:
    assert registry.find("日本私立学校振興・共済事業団").classes >= {"日本私立学校振興・共済事業団"}
    assert registry.find("国家公務員共済組合連合会").classes >= {"国家公務員共済組合連合会"}
    assert len(registry.by_class("健康保険組合")) >= 2
    assert len(registry.by_class("国民健康保険組合")) >= 2
    assert len(registry.by_class("地方公務員共済組合")) >= 2
    assert len(registry.by_class("国家公務員共済組合")) >= 2


def test_illustrative_agencies_are_marked(registry: AgencyRegistry) -> None:
    illustrative = [a for a in registry if a.illustrative]
    assert illustrative
    assert all("例示" in a.display_name and a.note for a in illustrative)
    entries = registry.to_directory_entries(include_illustrative=False)
    assert len(entries) == len(registry) - len(illustrative)


def test_directory_entries(registry: AgencyRegistry) -> None:
    entries = registry.to_directory_entries()
    assert len(entries) == len(registry)
    by_id = {e["id"]: e for e in entries}
    assert by_id["141003"] == {
        "id": "141003",
        "name": "横浜市長",
        "classes": sorted(registry.get("141003").classes),
    }
    assert all(set(e) == {"id", "name", "classes"} for e in entries)


# ------------------------------------------------------------------ decisions end to end


def _decide(
    policy: TablePolicy,
    registry: AgencyRegistry,
    requester: str,
    provider: str,
    kind: str,
    item: str,
) -> tuple[bool, str]:
    decision = policy.decide(
        registry.find(requester).to_agency(), registry.find(provider).to_agency(), kind, item
    )
    return decision.approved, decision.reason


def test_decisions_end_to_end(policy: TablePolicy, registry: AgencyRegistry) -> None:
    assert _decide(policy, registry, "厚生労働大臣", "横浜市", "地方税関係情報", "一") == (True, "")
    assert _decide(policy, registry, "厚生労働大臣", "横浜市 中区", "住民票関係情報", "一") == (
        True,
        "",
    )
    assert _decide(policy, registry, "横浜市長", "厚生労働大臣", "地方税関係情報", "一") == (
        False,
        "REQUESTER_NOT_IN_ITEM",
    )
    # item 二: the association asks a health insurance society and a 広域連合
    for provider in (
        "トヨタ自動車健康保険組合",
        "神奈川県後期高齢者医療広域連合",
        "財務省共済組合",
    ):
        assert _decide(
            policy, registry, "全国健康保険協会", provider, "医療保険給付関係情報", "二"
        ) == (True, ""), provider
    assert _decide(
        policy, registry, "全国健康保険協会", "文部科学大臣", "医療保険給付関係情報", "二"
    ) == (
        False,
        "PROVIDER_NOT_IN_ITEM",
    )
    assert _decide(
        policy, registry, "全国健康保険協会", "日本年金機構", "医療保険給付関係情報", "二"
    ) == (
        False,
        "INFO_KIND_NOT_LISTED",
    )
    # item 二十七: a mayor asks the pension service; not for an unlisted kind
    assert _decide(
        policy, registry, "千代田区長", "日本年金機構", "年金給付関係情報", "二十七"
    ) == (
        True,
        "",
    )
    assert _decide(
        policy, registry, "千代田区長", "日本年金機構", "生活保護関係情報", "二十七"
    ) == (
        False,
        "INFO_KIND_NOT_LISTED",
    )
    # item 二十六: public assistance by 都道府県知事等 -- a city mayor yes, a plain town no
    assert _decide(policy, registry, "横浜市", "厚生労働大臣", "失業等給付関係情報", "二十六") == (
        True,
        "",
    )
    assert _decide(
        policy, registry, "北海道当別町", "厚生労働大臣", "失業等給付関係情報", "二十六"
    ) == (False, "REQUESTER_NOT_IN_ITEM")
    assert _decide(
        policy, registry, "広島県海田町", "厚生労働大臣", "失業等給付関係情報", "二十六"
    ) == (
        True,
        "",
    )
    # item 二十六 names 広島市長 and 長崎市長 one by one
    kind = "原子爆弾被爆者に対する援護に関する法律による手当等の支給に関する情報"
    assert _decide(policy, registry, "長崎県知事", "長崎市", kind, "二十六") == (True, "")
    # 佐世保市長 is a provider in item 二十六 (as 市町村長), but not of this kind
    assert _decide(policy, registry, "長崎県知事", "佐世保市", kind, "二十六") == (
        False,
        "INFO_KIND_NOT_LISTED",
    )


def test_bodies_file_is_checked(tmp_path: Path) -> None:
    bodies = tmp_path / "agencies.toml"
    bodies.write_text('[[agency]]\nid = "x"\nname = "X"\nclasess = ["厚生労働大臣"]\n')
    with pytest.raises(ValueError, match="unknown key"):
        AgencyRegistry.load(bodies=bodies)
    bodies.write_text('[[agency]]\nid = "x"\nname = "X"\nclasses = ["厚生労働大臣"]\n')
    assert AgencyRegistry.load(bodies=bodies).find("X").classes == {"厚生労働大臣"}
    bodies.write_text('[municipal]\nwelfare_office_towns = ["広島県 広島市"]\n')
    with pytest.raises(ValueError, match="is a city"):
        AgencyRegistry.load(bodies=bodies)
    bodies.write_text('[municipal]\nhealth_centre_cities = ["東京都 横浜市"]\n')
    with pytest.raises(ValueError, match="no municipality"):
        AgencyRegistry.load(bodies=bodies)
