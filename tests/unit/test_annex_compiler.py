"""Unit tests for hub_server.annex: Annex Table 2 of the My Number Act compiled into rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hub_server.annex
from hub_server.annex import Compiled, compile_annex, compile_table, parse_parties, split_kinds
from hub_server.annex.__main__ import main
from hub_server.annex.compiler import (
    Definition,
    Explanation,
    parse_definitions,
    parse_explanations,
    policy_version,
    table_text,
)
from hub_server.annex.text import item_key, kanji_number
from hub_server.directory import Agency
from hub_server.policy import TablePolicy

SHARED_TSV = Path(__file__).parents[3] / "shared" / "data" / "annex_table_2_2015.tsv"
PACKAGE_DATA = Path(hub_server.annex.__file__).parent / "data"
HEADER = "item\trequester\taffair\tprovider\tinfo\n"
SUFFIX = "であって主務省令で定めるもの"

MEDICAL_INSURERS = {
    "全国健康保険協会",
    "健康保険組合",
    "日本私立学校振興・共済事業団",
    "国家公務員共済組合",
    "地方公務員共済組合",
    "市町村長",
    "国民健康保険組合",
}


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_annex()


@pytest.fixture(scope="module")
def policy(compiled: Compiled) -> TablePolicy:
    return compiled.policy()


def _agency(agency_id: str, *classes: str) -> Agency:
    return Agency(agency_id, agency_id, frozenset(classes), "", b"")


def _table(*rows: tuple[str, str, str, str, str]) -> str:
    return HEADER + "".join("\t".join(r) + "\n" for r in rows)


def _rules(compiled: Compiled, item: str) -> set[tuple[str, str, str]]:
    return {(r, p, k) for (i, r, p, k) in compiled.rules if i == item}


# ------------------------------------------------------------------ the shipped statute


def test_table_is_a_byte_for_byte_copy_of_the_shared_data() -> None:
    if not SHARED_TSV.exists():
        pytest.skip(f"{SHARED_TSV} is not present in this checkout")
    assert (PACKAGE_DATA / "annex_table_2_2015.tsv").read_bytes() == SHARED_TSV.read_bytes()
    assert table_text() == SHARED_TSV.read_text(encoding="utf-8")


def test_counts(compiled: Compiled) -> None:
    counts = compiled.counts()
    assert counts["rows"] == 259
    assert counts["items"] == 120
    assert "三十六" not in {i.item for i in compiled.items}  # deleted from the Act
    assert "五十六の二" in {i.item for i in compiled.items}  # inserted
    assert counts["rules"] == len(compiled.rules) > 1000


def test_report_is_empty(compiled: Compiled) -> None:
    assert compiled.report == []
    # nothing is hidden behind explanations either
    assert compiled.explained == []
    assert parse_explanations((PACKAGE_DATA / "report_explanations.toml").read_text()) == []


def test_every_row_yields_a_rule(compiled: Compiled) -> None:
    assert len(compiled.rows) == 259
    for row in compiled.rows:
        assert row.requester, row
        assert row.provider, row
        assert row.kinds, row
    covered = {row.row for row in compiled.rows if row.requester and row.provider and row.kinds}
    assert covered == set(range(1, 260))


def test_items_in_statute_order_with_one_provision_per_row(compiled: Compiled) -> None:
    keys = [item_key(i.item) for i in compiled.items]
    assert keys == sorted(keys)
    item_one = compiled.item("一")
    assert len(item_one.provisions) == 3  # the table has three rows for item 一
    assert sum(len(i.provisions) for i in compiled.items) == 259


def test_no_bogus_classes(compiled: Compiled) -> None:
    for name in compiled.classes:
        assert not re.search(r"[（）「」、]|以下|をいう|に限る|を含む", name), name
        assert not name.startswith(("公営住宅法", "住宅地区改良法", "医療保険各法")), name
    # terms expand; they are not classes themselves
    for term in ("医療保険者", "共済組合等", "都道府県知事等", "社会福祉協議会", "共済組合"):
        assert term not in compiled.classes
        assert term in compiled.terms


def test_plain_body_names_are_classes(compiled: Compiled) -> None:
    for name in (
        "厚生労働大臣",
        "市町村長",
        "都道府県知事",
        "日本年金機構",
        "全国健康保険協会",
        "健康保険組合",
        "国民健康保険組合",
        "後期高齢者医療広域連合",
        "国家公務員共済組合",
        "地方公務員共済組合",
        "文部科学大臣",
        "都道府県教育委員会",
        "市町村教育委員会",
        "広島市長",
        "長崎市長",
    ):
        assert compiled.classes[name].kind == "body", name


# ------------------------------------------------------------------ specific cases of the statute


def test_item_one_minister_may_ask_mayors_for_tax_and_residence(compiled: Compiled) -> None:
    rules = _rules(compiled, "一")
    for kind in ("地方税関係情報", "住民票関係情報", "介護保険給付等関係情報"):
        assert ("厚生労働大臣", "市町村長", kind) in rules
    assert compiled.item("一").requester_classes == {"厚生労働大臣"}


def test_item_one_pension_information_from_mutual_aid(compiled: Compiled) -> None:
    rules = _rules(compiled, "一")
    for provider in (
        "厚生労働大臣",
        "日本年金機構",
        "日本私立学校振興・共済事業団",
        "国家公務員共済組合連合会",
        "地方公務員共済組合",
        "全国市町村職員共済組合連合会",
    ):
        assert ("厚生労働大臣", provider, "年金給付関係情報") in rules


def test_item_two_kyokai_may_ask_medical_insurers(compiled: Compiled) -> None:
    rules = _rules(compiled, "二")
    for provider in MEDICAL_INSURERS | {"後期高齢者医療広域連合"}:
        assert ("全国健康保険協会", provider, "医療保険給付関係情報") in rules
    assert compiled.terms["医療保険者"].classes == MEDICAL_INSURERS
    assert compiled.terms["医療保険者"].source == "row 1 (item 一) provider"


def test_reversed_direction_is_not_allowed(policy: TablePolicy) -> None:
    mayor = _agency("141003", "市町村長")
    minister = _agency("mhlw", "厚生労働大臣")
    assert policy.decide(minister, mayor, "地方税関係情報", "一").approved
    reversed_ = policy.decide(mayor, minister, "地方税関係情報", "一")
    assert not reversed_.approved
    assert reversed_.reason == "REQUESTER_NOT_IN_ITEM"


def test_unlisted_kind_is_not_allowed(policy: TablePolicy) -> None:
    mayor = _agency("141003", "市町村長")
    minister = _agency("mhlw", "厚生労働大臣")
    decision = policy.decide(minister, mayor, "年金給付関係情報", "一")
    assert (decision.approved, decision.reason) == (False, "INFO_KIND_NOT_LISTED")
    decision = policy.decide(minister, mayor, "生活保護関係情報", "一")
    assert decision.reason == "INFO_KIND_NOT_LISTED"
    # a kind item 一 lists, but only from another provider
    decision = policy.decide(minister, mayor, "医療保険給付関係情報", "一")
    assert decision.approved  # 市町村長 is a 医療保険者 (national health insurance)
    pension = _agency("nenkin", "日本年金機構")
    decision = policy.decide(minister, pension, "地方税関係情報", "一")
    assert decision.reason == "INFO_KIND_NOT_LISTED"


def test_unknown_item_and_version(policy: TablePolicy, compiled: Compiled) -> None:
    decision = policy.decide(_agency("a", "市町村長"), _agency("b", "市町村長"), "x", "三十六")
    assert decision.reason == "LEGAL_BASIS_ITEM_UNKNOWN"
    assert decision.policy_version == compiled.version


def test_short_names_resolve_where_used(compiled: Compiled) -> None:
    defined = compiled.kinds["医療保険給付関係情報"]
    assert (defined.item, defined.row, defined.short_name) == ("一", 1, True)
    assert defined.description.startswith("医療保険各法又は高齢者の医療の確保に関する法律")
    assert not defined.description.endswith(SUFFIX)
    # item 二 only says "医療保険給付関係情報であって主務省令で定めるもの"
    assert "二" in defined.used_in
    assert compiled.rows[3].item == "二"
    assert compiled.rows[3].kinds == ("医療保険給付関係情報",)
    # defined in item 十六, used later
    special = compiled.kinds["特別児童扶養手当関係情報"]
    assert special.item == "十六"
    assert {"二十六", "三十", "五十七", "百十六"} <= set(special.used_in)
    # 生活保護関係情報 is defined in item 九, a provider cell of 都道府県知事等
    assert compiled.kinds["生活保護関係情報"].item == "九"


def test_compound_info_cell_gives_three_kinds(compiled: Compiled) -> None:
    row_two = compiled.rows[1]
    assert row_two.item == "一"
    assert row_two.kinds == ("地方税関係情報", "住民票関係情報", "介護保険給付等関係情報")
    assert (
        compiled.kinds["住民票関係情報"].description == "住民基本台帳法第七条第四号に規定する事項"
    )
    kinds, errors = split_kinds("地方税関係情報、住民票関係情報又は介護保険給付等関係情報" + SUFFIX)
    assert errors == []
    assert [k.name for k in kinds] == ["地方税関係情報", "住民票関係情報", "介護保険給付等関係情報"]


def test_kind_without_short_name_keeps_its_description(compiled: Compiled) -> None:
    name = "国民年金法による障害基礎年金の支給に関する情報"
    info = compiled.kinds[name]
    assert (info.short_name, info.description, info.item) == (False, name, "十六")
    assert ("都道府県知事", "日本年金機構", name) in _rules(compiled, "十六")


def test_info_cell_with_inner_enumerations_is_split_only_between_kinds() -> None:
    # "又は" and "若しくは" inside one kind's description do not split it
    kinds, errors = split_kinds(
        "児童福祉法による障害児入所支援若しくは措置（同法第二十七条第一項第三号の措置をいう。）"
        "に関する情報又は身体障害者福祉法による身体障害者手帳、精神保健及び精神障害者福祉に関する"
        "法律による精神障害者保健福祉手帳若しくは知的障害者福祉法にいう知的障害者に関する情報"
        "（以下「障害者関係情報」という。）" + SUFFIX
    )
    assert errors == []
    assert len(kinds) == 2
    assert kinds[0].name.startswith("児童福祉法による障害児入所支援若しくは措置（")
    assert not kinds[0].defines
    assert kinds[1].name == "障害者関係情報"
    assert kinds[1].defines


def test_affairs_keep_the_original_text(compiled: Compiled) -> None:
    affair = compiled.affairs["二十七"]
    assert affair.original == affair.text + SUFFIX
    assert compiled.item("二十七").affair == affair.text
    assert affair.text == (
        "地方税法その他の地方税に関する法律及びこれらの法律に基づく条例による"
        "地方税の賦課徴収に関する事務"
    )


# ------------------------------------------------------------------ compound class descriptions


def test_split_a_or_b() -> None:
    assert parse_parties("都道府県知事又は市町村長").names == ["都道府県知事", "市町村長"]


def test_split_a_moshikuha_b_mataha_c() -> None:
    parsed = parse_parties("厚生労働大臣若しくは日本年金機構又は共済組合等")
    assert parsed.names == ["厚生労働大臣", "日本年金機構", "共済組合等"]
    parsed = parse_parties("都道府県知事又は広島市長若しくは長崎市長")
    assert parsed.names == ["都道府県知事", "広島市長", "長崎市長"]


def test_split_a_comma_b_or_c() -> None:
    parsed = parse_parties("文部科学大臣、都道府県知事又は都道府県教育委員会")
    assert parsed.names == ["文部科学大臣", "都道府県知事", "都道府県教育委員会"]
    parsed = parse_parties(
        "厚生労働大臣若しくは日本年金機構、共済組合等又は農林漁業団体職員共済組合"
    )
    assert parsed.names == [
        "厚生労働大臣",
        "日本年金機構",
        "共済組合等",
        "農林漁業団体職員共済組合",
    ]


def test_separator_inside_a_legal_reference_does_not_split() -> None:
    text = (
        "健康保険法第五十五条又は第百二十八条に規定する"
        "他の法令による給付の支給を行うこととされている者"
    )
    assert parse_parties(text).names == [text]


def test_qualifying_clause_applies_to_every_member(compiled: Compiled) -> None:
    parsed = parse_parties(
        "公営住宅法第二条第十六号に規定する事業主体である都道府県知事又は市町村長"
    )
    assert parsed.names == ["都道府県知事", "市町村長"]
    assert parsed.notes == [
        "都道府県知事、市町村長: qualified by 公営住宅法第二条第十六号に規定する事業主体である"
    ]
    assert compiled.item("三十一").requester_classes == {"都道府県知事", "市町村長"}
    assert any("事業主体である" in n for n in compiled.rows[74].notes)


def test_definition_in_a_cell_defines_the_term(compiled: Compiled) -> None:
    parsed = parse_parties(
        "医療保険者（医療保険各法（健康保険法、船員保険法、私立学校教職員共済法、国家公務員共済組合法、"
        "国民健康保険法又は地方公務員等共済組合法をいう。以下同じ。）により医療に関する給付の支給を行う"
        "全国健康保険協会、健康保険組合、日本私立学校振興・共済事業団、共済組合、市町村長又は"
        "国民健康保険組合をいう。以下同じ。）又は後期高齢者医療広域連合"
    )
    assert parsed.names == ["医療保険者", "後期高齢者医療広域連合"]
    assert [term for term, _ in parsed.definitions] == ["医療保険者"]
    laws = compiled.terms["医療保険各法"]
    assert laws.kind == "laws"
    assert "国民健康保険法" in laws.classes
    assert compiled.rows[0].provider == MEDICAL_INSURERS | {"後期高齢者医療広域連合"}
    assert compiled.classes["健康保険組合"].defined == "term 医療保険者 (row 1 (item 一) provider)"


def test_terms_defined_elsewhere_in_the_act(compiled: Compiled) -> None:
    assert compiled.terms["都道府県知事等"].classes == {
        "都道府県知事",
        "市長",
        "特別区の区長",
        "福祉に関する事務所を管理する町村長",
    }
    assert compiled.terms["共済組合等"].classes == {
        "日本私立学校振興・共済事業団",
        "国家公務員共済組合連合会",
        "地方公務員共済組合",
        "全国市町村職員共済組合連合会",
    }
    assert compiled.terms["社会福祉協議会"].classes == {
        "市町村社会福祉協議会",
        "都道府県社会福祉協議会",
    }
    assert compiled.terms["共済組合等"].source == "definitions.toml: 番号法 別表第一 二十四の項"
    # 都道府県知事等 is a requester in item 二十六 (public assistance)
    assert compiled.item("二十六").requester_classes == compiled.terms["都道府県知事等"].classes


def test_inclusion_and_described_classes(compiled: Compiled) -> None:
    assert compiled.item("七十四").requester_classes == {
        "市町村長",
        "児童手当法第十七条第一項の表の下欄に掲げる者",
    }
    assert compiled.classes["児童手当法第十七条第一項の表の下欄に掲げる者"].kind == "described"
    # "医療保険者その他の…者" includes the 医療保険者 it names
    providers = compiled.rows[35].provider
    assert providers > MEDICAL_INSURERS
    # "…に規定する存続組合" is the class 存続組合, noted as defined by that law
    assert compiled.item("九十二").requester_classes == {"存続組合", "指定基金"}
    assert compiled.classes["存続組合"].notes == (
        "as defined in 平成八年法律第八十二号附則第三十二条第二項",
    )


def test_limitation_is_a_note_not_a_class() -> None:
    parsed = parse_parties("市町村長（同法第十五条第一項の疾病に係るものに限る。）")
    assert parsed.names == ["市町村長"]
    assert parsed.notes == ["市町村長: limited to 同法第十五条第一項の疾病に係るもの"]


# ------------------------------------------------------------------ report and explanations


def test_unresolved_cells_are_reported_per_row_and_column() -> None:
    text = _table(
        ("一", "厚生労働大臣", "事務" + SUFFIX, "市町村長", "住民票関係情報" + SUFFIX),
        ("二", "厚生労働大臣", "事務" + SUFFIX, "何かの者たち", "住民票関係情報" + SUFFIX),
    )
    compiled = compile_table(text)
    assert compiled.report == [
        "row 1 (item 一) info: could not resolve '住民票関係情報': no row defines this short name",
        "row 1 (item 一) row: yields no rule",
        "row 2 (item 二) provider: could not resolve '何かの者たち'",
        "row 2 (item 二) info: could not resolve '住民票関係情報': no row defines this short name",
        "row 2 (item 二) row: yields no rule",
    ]


def test_explanations_filter_the_report_and_must_match() -> None:
    text = _table(
        ("一", "厚生労働大臣", "事務" + SUFFIX, "何かの者たち", "年金の情報" + SUFFIX),
        ("二", "厚生労働大臣", "事務" + SUFFIX, "市町村長", "年金の情報" + SUFFIX),
    )
    explanations = [
        Explanation(1, "provider", "not a body; handled by hand"),
        Explanation(1, "row", "follows from the provider"),
        Explanation(2, "provider", "stale"),
    ]
    compiled = compile_table(text, (), explanations)
    assert [why for _, why in compiled.explained] == [
        "not a body; handled by hand",
        "follows from the provider",
    ]
    assert compiled.report == [
        "report_explanations.toml: row 2 provider explains nothing "
        "(the compiler no longer reports it; remove the entry)"
    ]


def test_undefined_term_is_reported_and_definitions_resolve_it() -> None:
    row = ("一", "都道府県知事等", "事務" + SUFFIX, "市町村長", "住民に関する情報" + SUFFIX)
    bare = compile_table(_table(row))
    assert bare.report[0] == "row 1 (item 一) requester: could not resolve '都道府県知事等'"
    defined = compile_table(
        _table(row), [Definition("都道府県知事等", "都道府県知事又は市長", "test")]
    )
    assert defined.report == []
    assert defined.items[0].requester_classes == {"都道府県知事", "市長"}


def test_shipped_definitions_are_all_used(compiled: Compiled) -> None:
    definitions = parse_definitions((PACKAGE_DATA / "definitions.toml").read_text())
    names = {d.name for d in definitions}
    assert names == {"都道府県知事等", "共済組合等", "社会福祉協議会", "共済組合"}
    for d in definitions:
        assert compiled.terms[d.name].classes, d.name
        assert d.source


# ------------------------------------------------------------------ version


def test_version_is_stable_and_content_addressed(compiled: Compiled) -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", compiled.version)
    assert compile_annex().version == compiled.version
    assert policy_version(reversed(compiled.items)) == compiled.version
    assert compiled.policy().version == compiled.version
    # a different statute gives a different version
    lines = table_text().splitlines(keepends=True)
    assert compile_table("".join(lines[:-1])).version != compiled.version


# ------------------------------------------------------------------ helpers and CLI


def test_kanji_numbers() -> None:
    assert kanji_number("一") == 1
    assert kanji_number("十") == 10
    assert kanji_number("二十七") == 27
    assert kanji_number("百") == 100
    assert kanji_number("百二十") == 120
    assert item_key("五十六の二") == (56, 2)
    with pytest.raises(ValueError, match="not a kanji numeral"):
        kanji_number("1")


def test_cli_report(capsys: pytest.CaptureFixture[str], compiled: Compiled) -> None:
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "rows: 259" in out
    assert "items: 120" in out
    assert f"rules: {len(compiled.rules)}" in out
    assert "report: 0 line(s)" in out
    assert main(["kinds"]) == 0
    assert "医療保険給付関係情報" in capsys.readouterr().out
