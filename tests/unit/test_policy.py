"""Unit tests for hub_server.policy: the table-driven legal-basis policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hub_server
from hub_server.directory import Agency
from hub_server.policy import Decision, LegalBasisPolicy, TablePolicy, items_version

DEMO = Path(hub_server.__file__).parent / "data" / "legal_basis_demo.toml"

AFFAIR_27 = (
    "地方税法その他の地方税に関する法律及びこれらの法律に基づく条例による"
    "地方税の賦課徴収に関する事務"
)


def _agency(agency_id: str, display_name: str, *classes: str) -> Agency:
    return Agency(
        agency_id=agency_id,
        display_name=display_name,
        classes=frozenset(classes),
        endpoint="127.0.0.1:1",
        sealing_public_key=b"\0" * 32,
    )


CITY = _agency("city-001", "札幌市長", "市町村長")
PENSION = _agency("jpn-pension", "日本年金機構", "日本年金機構")
MHLW = _agency("mhlw", "厚生労働大臣", "厚生労働大臣")
TAX = _agency("nta", "国税庁長官", "国税庁長官")
NOBODY = _agency("nobody", "無所属")


@pytest.fixture(scope="module")
def policy() -> TablePolicy:
    return TablePolicy.load(DEMO)


def _denied(decision: Decision, reason: str, policy: TablePolicy) -> None:
    assert decision.approved is False
    assert decision.reason == reason
    assert decision.policy_version == policy.version
    assert decision.message


# ------------------------------------------------------------------ loading and version


def test_version_is_sha256_and_stable(policy: TablePolicy) -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", policy.version)
    assert TablePolicy.load(DEMO).version == policy.version
    assert policy.version == items_version(policy.items())


def test_version_changes_with_content(tmp_path: Path) -> None:
    copy = tmp_path / "copy.toml"
    copy.write_bytes(DEMO.read_bytes())
    same = TablePolicy.load(copy)
    assert same.version == TablePolicy.load(DEMO).version
    # The version hashes the rules, not the bytes: a comment leaves it alone ...
    copy.write_bytes(DEMO.read_bytes() + b"\n# a comment\n")
    assert TablePolicy.load(copy).version == same.version
    # ... and a changed rule changes it.
    copy.write_bytes(DEMO.read_bytes().replace("住民票関係情報".encode(), "X情報".encode()))
    assert TablePolicy.load(copy).version != same.version


def test_table_policy_satisfies_protocol(policy: TablePolicy) -> None:
    as_protocol: LegalBasisPolicy = policy
    assert as_protocol.version == policy.version


# ------------------------------------------------------------------ decisions


def test_city_asks_pension_for_pension_info_under_27(policy: TablePolicy) -> None:
    decision = policy.decide(CITY, PENSION, "年金給付関係情報", "二十七")
    assert decision == Decision(
        approved=True,
        reason="",
        message="approved",
        item="二十七",
        affair=AFFAIR_27,
        policy_version=policy.version,
    )


@pytest.mark.parametrize("provider", [PENSION, MHLW])
def test_other_approvals(policy: TablePolicy, provider: Agency) -> None:
    assert policy.decide(CITY, provider, "年金給付関係情報", "二十七").approved
    assert policy.decide(MHLW, provider, "年金給付関係情報", "一").approved


@pytest.mark.parametrize("kind", ["地方税関係情報", "住民票関係情報"])
def test_mhlw_asks_city_under_48(policy: TablePolicy, kind: str) -> None:
    decision = policy.decide(MHLW, CITY, kind, "四十八")
    assert decision.approved
    assert decision.item == "四十八"
    assert decision.affair.startswith("国民年金法による")


def test_reversed_direction_requester_not_in_item(policy: TablePolicy) -> None:
    # The minister may ask the city under 四十八; the city, a requester elsewhere, may not ask back.
    decision = policy.decide(CITY, MHLW, "地方税関係情報", "四十八")
    _denied(decision, "REQUESTER_NOT_IN_ITEM", policy)
    assert decision.item == "四十八"
    assert decision.affair.startswith("国民年金法による")
    assert "札幌市長" in decision.message


def test_a_body_no_item_names_as_requester_is_told_so(policy: TablePolicy) -> None:
    decision = policy.decide(PENSION, CITY, "地方税関係情報", "四十八")
    _denied(decision, "NO_ITEM_FOR_REQUESTER", policy)
    assert "日本年金機構" in decision.message
    # The mirror of an approved request is refused too.
    _denied(
        policy.decide(PENSION, CITY, "年金給付関係情報", "二十七"), "NO_ITEM_FOR_REQUESTER", policy
    )


def test_requester_without_classes(policy: TablePolicy) -> None:
    _denied(
        policy.decide(NOBODY, PENSION, "年金給付関係情報", "二十七"),
        "NO_ITEM_FOR_REQUESTER",
        policy,
    )


@pytest.mark.parametrize("provider", [TAX, CITY, NOBODY])
def test_provider_outside_class(policy: TablePolicy, provider: Agency) -> None:
    decision = policy.decide(CITY, provider, "年金給付関係情報", "二十七")
    _denied(decision, "PROVIDER_NOT_IN_ITEM", policy)
    assert decision.affair == AFFAIR_27
    assert provider.display_name in decision.message


def test_unlisted_kind(policy: TablePolicy) -> None:
    decision = policy.decide(CITY, PENSION, "地方税関係情報", "二十七")
    _denied(decision, "INFO_KIND_NOT_LISTED", policy)
    assert decision.affair == AFFAIR_27
    assert "地方税関係情報" in decision.message


def test_kind_listed_only_for_another_provider(policy: TablePolicy) -> None:
    # Item 一 lists 住民票関係情報 from 市町村長, not from 日本年金機構.
    assert policy.decide(MHLW, CITY, "住民票関係情報", "一").approved
    _denied(policy.decide(MHLW, PENSION, "住民票関係情報", "一"), "INFO_KIND_NOT_LISTED", policy)
    _denied(policy.decide(MHLW, CITY, "年金給付関係情報", "一"), "INFO_KIND_NOT_LISTED", policy)


def test_kind_match_is_exact(policy: TablePolicy) -> None:
    for kind in ("年金給付関係情報 ", "年金給付", "", "年金給付関係情報\n"):
        _denied(policy.decide(CITY, PENSION, kind, "二十七"), "INFO_KIND_NOT_LISTED", policy)


@pytest.mark.parametrize("item", ["九十九", "", "27", "二十七 ", "二十"])
def test_unknown_item(policy: TablePolicy, item: str) -> None:
    decision = policy.decide(CITY, PENSION, "年金給付関係情報", item)
    _denied(decision, "LEGAL_BASIS_ITEM_UNKNOWN", policy)
    assert decision.item == item
    assert decision.affair == ""


def test_agency_with_several_classes(policy: TablePolicy) -> None:
    both = _agency("both", "兼務", "国税庁長官", "市町村長")
    assert policy.decide(both, PENSION, "年金給付関係情報", "二十七").approved
    many = _agency("many", "複数", "国税庁長官", "日本年金機構")
    assert policy.decide(CITY, many, "年金給付関係情報", "二十七").approved


def test_unknown_item_is_checked_before_agencies(policy: TablePolicy) -> None:
    _denied(policy.decide(NOBODY, NOBODY, "x", "nope"), "LEGAL_BASIS_ITEM_UNKNOWN", policy)


def test_requester_is_checked_before_provider(policy: TablePolicy) -> None:
    _denied(policy.decide(TAX, TAX, "x", "二十七"), "NO_ITEM_FOR_REQUESTER", policy)
    _denied(policy.decide(MHLW, TAX, "x", "二十七"), "REQUESTER_NOT_IN_ITEM", policy)


# ------------------------------------------------------------------ malformed files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD_ITEM = """
[[item]]
item = "一"
affair = "事務"
requester = ["A"]
  [[item.provides]]
  provider = ["B"]
  info = ["K"]
"""


def test_minimal_file_loads(tmp_path: Path) -> None:
    policy = TablePolicy.load(_write(tmp_path, GOOD_ITEM))
    a, b = _agency("a", "A", "A"), _agency("b", "B", "B")
    assert policy.decide(a, b, "K", "一").approved


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        (GOOD_ITEM.replace('affair = "事務"\n', ""), "affair"),
        (GOOD_ITEM.replace('item = "一"\n', ""), "item"),
        (GOOD_ITEM.replace('requester = ["A"]\n', ""), "requester"),
        (GOOD_ITEM.split("  [[item.provides]]")[0], "provides"),
        (GOOD_ITEM.replace('  provider = ["B"]\n', ""), "provider"),
        (GOOD_ITEM.replace('  info = ["K"]\n', ""), "info"),
    ],
)
def test_item_missing_key(tmp_path: Path, text: str, missing: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match="item") as err:
        TablePolicy.load(path)
    assert str(path) in str(err.value)
    assert "item[0]" in str(err.value)
    assert missing in str(err.value)


def test_second_item_missing_key_is_numbered(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_ITEM + GOOD_ITEM.replace('affair = "事務"\n', ""))
    with pytest.raises(ValueError, match=r"item\[1\]") as err:
        TablePolicy.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment\n", 'title = "no items"\n', "item = []\n"],
)
def test_no_items(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match="no") as err:
        TablePolicy.load(path)
    assert str(path) in str(err.value)


def test_wrong_types_raise_value_error(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_ITEM.replace('requester = ["A"]', "requester = 5"))
    with pytest.raises(ValueError, match="item") as err:
        TablePolicy.load(path)
    assert str(path) in str(err.value)


def test_invalid_toml_raises_value_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[item]\nitem = ")
    with pytest.raises(ValueError, match=str(path)):
        TablePolicy.load(path)


def test_string_instead_of_list_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_ITEM.replace('requester = ["A"]', 'requester = "市町村長"'))
    with pytest.raises(ValueError, match="requester"):
        TablePolicy.load(path)
