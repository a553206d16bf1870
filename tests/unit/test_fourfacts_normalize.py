"""The four facts as matching keys: every spelling variant the normalizers promise to fold."""

from __future__ import annotations

import doctest
import importlib
import tomllib
import unicodedata
from datetime import date
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renkei.fourfacts import eras
from renkei.fourfacts._text import itaiji_table
from renkei.fourfacts.normalize import (
    FourFacts,
    NormalizedAddress,
    SexEncoding,
    normalize,
    normalize_address,
    normalize_date,
    normalize_kana,
    normalize_name,
    normalize_sex,
    normalize_town,
    parse_number,
)
from renkei.fourfacts.places import gazetteer


@pytest.mark.parametrize("module", ["normalize", "eras", "places", "_text"])
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"renkei.fourfacts.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("山田 太郎", "山田太郎"),
        ("山田　太郎", "山田太郎"),  # full-width space
        ("山田太郎", "山田太郎"),
        ("  山田 \t 太郎 ", "山田太郎"),
        ("山田\u200b太郎", "山田太郎"),  # zero-width space
        ("髙橋 一郎", "高橋一郎"),
        ("山﨑 花子", "山崎花子"),
        ("山嵜 花子", "山崎花子"),
        ("渡邊 健", "渡辺健"),
        ("渡邉 健", "渡辺健"),
        ("齋藤 学", "斎藤学"),
        ("齊藤 學", "斉藤学"),
        ("澤田 實", "沢田実"),
        ("濱田 惠", "浜田恵"),
        ("廣瀬 眞", "広瀬真"),
        ("國分 壽", "国分寿"),
        ("德川 榮", "徳川栄"),
        ("櫻井 靜", "桜井静"),
        ("龍 德", "竜徳"),
        ("佐々木 菜々子", "佐佐木菜菜子"),
        ("々木", "々木"),  # a repeat mark with nothing to repeat stays
        ("\ufa19田 太郎", "神田太郎"),  # CJK compatibility ideograph, folded by NFKC
        ("ﾀﾅｶ ﾊﾅｺ", "タナカハナコ"),
        ("ｓｍｉｔｈ　ｊｏｈｎ", "SMITHJOHN"),
        ("Smith John", "SMITHJOHN"),
        ("鈴木 あすか", "鈴木あすか"),  # hiragana given names stay hiragana
    ],
)
def test_normalize_name(written: str, key: str) -> None:
    assert normalize_name(written) == key


def test_different_characters_stay_apart() -> None:
    # 斉 and 斎 are two characters in the 常用漢字表, each with its own old form.
    assert normalize_name("斉藤") != normalize_name("斎藤")
    assert normalize_name("齊藤") == normalize_name("斉藤")
    assert normalize_name("齋藤") == normalize_name("斎藤")
    assert normalize_name("島田") != normalize_name("鳥田")


def test_itaiji_table_is_well_formed() -> None:
    raw = resources.files("renkei.fourfacts").joinpath("data/itaiji.toml").read_text("utf-8")
    sections = tomllib.loads(raw)
    assert set(sections) == {"old_forms", "variants"}
    table = itaiji_table()
    assert len(table) >= 60
    assert sum(len(pairs) for pairs in sections.values()) == len(table)  # no key twice
    for variant, canonical in table.items():
        assert len(variant) == len(canonical) == 1
        assert variant != canonical
        assert unicodedata.normalize("NFKC", variant) == variant, variant
        assert unicodedata.normalize("NFKC", canonical) == canonical, canonical
        assert canonical not in table, f"{canonical} is mapped again"
    for old, new in [("髙", "高"), ("﨑", "崎"), ("邊", "辺"), ("邉", "辺"), ("齋", "斎")]:
        assert table[old] == new
    for old, new in [("澤", "沢"), ("濱", "浜"), ("廣", "広"), ("國", "国"), ("德", "徳")]:
        assert table[old] == new
    assert table["櫻"] == "桜"
    assert table["龍"] == "竜"


# -- kana --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("ヤマダ タロウ", "ヤマダタロウ"),
        ("やまだ　たろう", "ヤマダタロウ"),
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダタロウ"),
        ("ﾔﾏﾀﾞﾀﾛｳ", "ヤマダタロウ"),
        ("ヤマダ　たろう", "ヤマダタロウ"),
        ("キッカワ", "キッカワ"),  # small kana kept
        ("きっかわ", "キッカワ"),
        ("ｷｯｶﾜ", "キッカワ"),
        ("ヴァイオレット", "ヴァイオレット"),
        ("ゔぁいおれっと", "ヴァイオレット"),
        ("ﾊﾟｰｸ", "パーク"),
        ("ユースケ", "ユースケ"),
        ("ユ－スケ", "ユースケ"),  # full-width hyphen-minus
        ("ユｰスケ", "ユースケ"),  # half-width long-vowel mark
        ("ユ‐スケ", "ユースケ"),  # U+2010 hyphen
        ("ユ-スケ", "ユースケ"),
        ("ユ―スケ", "ユースケ"),  # U+2015 horizontal bar
        ("ゆーすけ", "ユースケ"),
        ("カ\u3099ク", "ガク"),  # combining voiced mark
    ],
)
def test_normalize_kana(written: str, key: str) -> None:
    assert normalize_kana(written) == key


def test_small_and_large_kana_differ() -> None:
    assert normalize_kana("キッカワ") != normalize_kana("キツカワ")
    assert normalize_kana("シュウ") != normalize_kana("シユウ")


# -- idempotence (hypothesis) ------------------------------------------------------------------

_TRICKY = [
    *itaiji_table(),
    *" 　\t゛゜\u3099\u309a\u200bかきはヽゝ々ヶケがガのノつツ大字ｶﾞｰ-－‐ーｱ",
    "\ufa19",
    "ǆ",
    "ß",
    "ﬀ",
    "㍻",
]
_TEXT = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(_TRICKY)), max_size=16)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_name_normalization_is_idempotent(text: str) -> None:
    once = normalize_name(text)
    assert normalize_name(once) == once


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_kana_normalization_is_idempotent(text: str) -> None:
    once = normalize_kana(text)
    assert normalize_kana(once) == once


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_town_normalization_is_idempotent(text: str) -> None:
    once = normalize_town(text)
    assert normalize_town(once) == once


# -- numbers and towns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("12", 12),
        ("一", 1),
        ("十", 10),
        ("十一", 11),
        ("二十", 20),
        ("二十三", 23),
        ("百", 100),
        ("百五", 105),
        ("三百二十一", 321),
        ("千二百", 1200),
        ("一〇", 10),
        ("二〇二", 202),
    ],
)
def test_parse_number(text: str, value: int) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "三一", "十十", "一二三", "x", "１"])
def test_parse_number_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a number"):
        parse_number(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("霞ヶ関", "霞ケ関"),
        ("霞ヶ関", "霞が関"),
        ("霞ヶ関", "霞ガ関"),
        ("丸の内", "丸ノ内"),
        ("一ツ橋", "一つ橋"),
        ("大字丸の内", "丸ノ内"),
        ("代々木", "代代木"),
        ("中澤", "中沢"),
        ("鶴ヶ丘", "鶴が丘"),
    ],
)
def test_town_variants_share_a_key(a: str, b: str) -> None:
    assert normalize_town(a) == normalize_town(b)


def test_town_kana_words_are_left_alone() -> None:
    # Only a particle between two ideographs is unified.
    assert normalize_town("ケヤキ台") == "ケヤキ台"
    assert normalize_town("がくえん町") == "がくえん町"


# -- addresses ---------------------------------------------------------------------------------

NAKA = "141046"  # 横浜市 中区

_ADDRESS_CASES: list[tuple[str, str | None, NormalizedAddress]] = [
    (
        "神奈川県横浜市中区港町1-2-3",
        None,
        NormalizedAddress("神奈川県", "横浜市 中区", "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "神奈川県横浜市中区港町3丁目12番5号",
        None,
        NormalizedAddress("神奈川県", "横浜市 中区", "港町", 3, 12, 5, "", frozenset({NAKA})),
    ),
    (
        "横浜市中区港町一丁目2番地3号",
        None,
        NormalizedAddress(None, "横浜市 中区", "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "横浜市中区港町二十三丁目百番地十一号",
        None,
        NormalizedAddress(None, "横浜市 中区", "港町", 23, 100, 11, "", frozenset({NAKA})),
    ),
    (
        "神奈川県横浜市中区港町１－２－３",
        None,
        NormalizedAddress("神奈川県", "横浜市 中区", "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "神奈川県 横浜市 中区 港町 １丁目 ２番 ３号",
        None,
        NormalizedAddress("神奈川県", "横浜市 中区", "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "横浜市中区港町1丁目2番地の3",
        None,
        NormalizedAddress(None, "横浜市 中区", "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "横浜市中区港町1ー2ー3",  # the long-vowel mark used as a dash
        None,
        NormalizedAddress(None, "横浜市 中区", "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "横浜市中区港町1丁目2-3 港ハイツ101",
        None,
        NormalizedAddress(None, "横浜市 中区", "港町", 1, 2, 3, "港ハイツ101", frozenset({NAKA})),
    ),
    (
        "港町1丁目2番3号",  # neither prefecture nor municipality, no hint
        None,
        NormalizedAddress(None, None, "港町", 1, 2, 3, "", frozenset()),
    ),
    (
        "港町1丁目2番3号",
        "横浜市中区",
        NormalizedAddress(None, None, "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "港町1丁目2番3号",
        NAKA,
        NormalizedAddress(None, None, "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "港町1丁目2番3号",
        "14104",  # JIS X 0402 without the check digit
        NormalizedAddress(None, None, "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "中区港町1-2-3",  # a ward without its city, narrowed by the hint
        "横浜市",
        NormalizedAddress(None, "中区", "港町", 1, 2, 3, "", frozenset({NAKA})),
    ),
    (
        "北海道上川郡東川町北町二十三番地の4",  # county present, no 丁目
        None,
        NormalizedAddress("北海道", "東川町", "北町", None, 23, 4, "", frozenset({"014583"})),
    ),
    (
        "北海道東川町北町1丁目2-3",  # county left out
        None,
        NormalizedAddress("北海道", "東川町", "北町", 1, 2, 3, "", frozenset({"014583"})),
    ),
    (
        "兵庫県赤穂郡上郡町竹万1-2-3",  # a town whose own name has 郡
        None,
        NormalizedAddress("兵庫県", "上郡町", "竹万", 1, 2, 3, "", frozenset({"284815"})),
    ),
    (
        "福島県郡山市朝日1-2-3",
        None,
        NormalizedAddress("福島県", "郡山市", "朝日", 1, 2, 3, "", frozenset({"072036"})),
    ),
    (
        "東京都千代田区霞が関一丁目二番三号",
        None,
        NormalizedAddress("東京都", "千代田区", "霞ケ関", 1, 2, 3, "", frozenset({"131016"})),
    ),
    (
        "千代田区四番町一丁目2番3号",  # a town name with a numeral in it
        None,
        NormalizedAddress(None, "千代田区", "四番町", 1, 2, 3, "", frozenset({"131016"})),
    ),
    (
        "府中市宮町1-2-3",  # two cities of that name, no prefecture to choose
        None,
        NormalizedAddress(None, "府中市", "宮町", 1, 2, 3, "", frozenset({"132063", "342084"})),
    ),
    (
        "東京都府中市宮町1-2-3",
        None,
        NormalizedAddress("東京都", "府中市", "宮町", 1, 2, 3, "", frozenset({"132063"})),
    ),
    (
        "府中町1-2-3",  # a town that happens to be a municipality's name: no town left
        "東京都府中市",
        NormalizedAddress(None, None, "府中町", 1, 2, 3, "", frozenset({"132063"})),
    ),
    (
        "茅ケ崎市中海岸1-2-3",  # the table writes 茅ヶ崎市
        None,
        NormalizedAddress(None, "茅ヶ崎市", "中海岸", 1, 2, 3, "", frozenset({"142077"})),
    ),
    (
        "竜ケ崎市馴柴町1-2-3",  # the table writes 龍ケ崎市
        None,
        NormalizedAddress(None, "龍ケ崎市", "馴柴町", 1, 2, 3, "", frozenset({"082082"})),
    ),
    (
        "大阪府堺市北区百舌鳥1-2-3",  # a town that starts with a numeral
        None,
        NormalizedAddress("大阪府", "堺市 北区", "百舌鳥", 1, 2, 3, "", frozenset({"271462"})),
    ),
    (
        "横浜市中区港町1-2",  # two numbers: 丁目-番 or 番-号? Not guessed
        None,
        NormalizedAddress(None, "横浜市 中区", "港町1-2", None, None, None, "", frozenset({NAKA})),
    ),
]


@pytest.mark.parametrize(("text", "hint", "expected"), _ADDRESS_CASES)
def test_normalize_address(text: str, hint: str | None, expected: NormalizedAddress) -> None:
    assert normalize_address(text, municipality_hint=hint) == expected


def test_ward_without_city_or_hint_names_every_such_ward() -> None:
    a = normalize_address("中区港町1-2-3")
    assert a.municipality == "中区"
    assert NAKA in a.municipality_codes
    assert len(a.municipality_codes) > 1
    assert all(gazetteer().by_code[c].short_name == "中区" for c in a.municipality_codes)


def test_designated_city_without_ward_names_all_its_wards() -> None:
    a = normalize_address("神奈川県横浜市港町1-2-3")
    assert a.municipality == "横浜市"
    assert a.municipality_codes == frozenset(w.code for w in gazetteer().wards_of["141003"])
    assert len(a.municipality_codes) == 18
    assert a.is_complete


def test_completeness() -> None:
    assert normalize_address("横浜市中区港町1-2-3").is_complete
    assert not normalize_address("港町1-2-3").is_complete  # no municipality
    assert not normalize_address("横浜市中区港町1丁目2番").is_complete  # no 号
    assert not normalize_address("横浜市中区港町2番地3").is_complete  # no 丁目


@pytest.mark.parametrize("hint", ["神奈川県", "130001", "どこか市", "999999"])
def test_bad_municipality_hint(hint: str) -> None:
    with pytest.raises(ValueError, match=r"prefecture|municipality|code"):
        normalize_address("港町1-2-3", municipality_hint=hint)


def test_every_residential_place_is_recognised_in_its_own_address() -> None:
    gaz = gazetteer()
    for code in gaz.residential_codes:
        place = gaz.by_code[code]
        a = normalize_address(f"{place.prefecture}{place.name}本町1丁目2番3号")
        assert a.municipality_codes == frozenset({code}), place
        assert (a.town, a.chome, a.banchi, a.go) == ("本町", 1, 2, 3), place


def test_place_table_is_the_projects_one_table() -> None:
    from legacy_stubs.registry import places

    assert [p.code for p in gazetteer().places] == [g.code for g in places.all_local_governments()]
    # Where people live (wards, and municipalities without wards) is worked out twice,
    # by the normalizer and by the registry's population: the two must agree.
    assert gazetteer().residential_codes == places.residential_codes()


# -- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1958-05-14", date(1958, 5, 14)),
        ("1958/5/14", date(1958, 5, 14)),
        ("1958.5.14", date(1958, 5, 14)),
        ("19580514", date(1958, 5, 14)),
        ("1958年5月14日", date(1958, 5, 14)),
        ("１９５８－０５－１４", date(1958, 5, 14)),
        ("昭和33年5月14日", date(1958, 5, 14)),
        ("昭和３３年５月１４日", date(1958, 5, 14)),
        ("昭和三十三年五月十四日", date(1958, 5, 14)),
        ("S33.5.14", date(1958, 5, 14)),
        ("s33.5.14", date(1958, 5, 14)),
        ("Ｓ３３．５．１４", date(1958, 5, 14)),
        ("S33/05/14", date(1958, 5, 14)),
        ("S330514", date(1958, 5, 14)),
        ("昭33.05.14", date(1958, 5, 14)),
        ("昭 33. 5. 14", date(1958, 5, 14)),
        ("3330514", date(1958, 5, 14)),  # resident-register era code 3 = 昭和
        ("㍼33年5月14日", date(1958, 5, 14)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("H1.1.8", date(1989, 1, 8)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("R1.5.1", date(2019, 5, 1)),
        ("㋿元年5月1日", date(2019, 5, 1)),
        ("昭和元年12月25日", date(1926, 12, 25)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("大正元年7月30日", date(1912, 7, 30)),
        ("T15.12.24", date(1926, 12, 24)),
        ("明治6年1月1日", date(1873, 1, 1)),
        ("M45.7.29", date(1912, 7, 29)),
        (date(1958, 5, 14), date(1958, 5, 14)),
    ],
)
def test_normalize_date(text: str | date, value: date) -> None:
    assert normalize_date(text) == value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("平成31年5月1日", "平成 ran from 1989-01-08 to 2019-04-30"),
        ("H31.5.1", "平成 ran from"),
        ("昭和64年1月8日", "昭和 ran from 1926-12-25 to 1989-01-07"),
        ("大正元年7月29日", "大正 ran from 1912-07-30"),
        ("昭和元年12月24日", "昭和 ran from"),
        ("令和元年4月30日", "令和 ran from 2019-05-01 to today"),
        ("明治45年7月30日", "明治 ran from"),
        ("平成0年1月1日", "era years start at 1"),
        ("明治5年12月2日", "lunisolar"),
        ("2023-02-29", "no such day"),
        ("昭和33年2月30日", "no such day"),
        ("S33.13.1", "no such day"),
        ("19581340", "no such day"),
        ("", "not a date"),
        ("昨日", "not a date"),
        ("X33.5.14", "not a date"),
        ("6330514", "not a date"),  # no era has code 6
    ],
)
def test_impossible_dates_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        normalize_date(text)


def test_era_table_is_contiguous() -> None:
    for earlier, later in zip(eras.ERAS, eras.ERAS[1:], strict=False):
        assert earlier.last_day is not None
        assert later.first_day.toordinal() == earlier.last_day.toordinal() + 1
    assert [e.first_day for e in eras.ERAS] == [
        date(1868, 1, 25),
        date(1912, 7, 30),
        date(1926, 12, 25),
        date(1989, 1, 8),
        date(2019, 5, 1),
    ]


@settings(max_examples=300, deadline=None)
@given(st.dates(min_value=date(1873, 1, 1), max_value=date(2100, 12, 31)))
def test_era_round_trip(value: date) -> None:
    era, year = eras.era_of(value)
    assert normalize_date(f"{era.name}{year}年{value.month}月{value.day}日") == value
    assert normalize_date(f"{era.letter}{year}.{value.month}.{value.day}") == value
    if year < 100:
        compact = f"{era.code}{year:02d}{value.month:02d}{value.day:02d}"
        assert normalize_date(compact) == value


# -- sex ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoding", "sex"),
    [
        ("1", "iso5218", "1"),
        ("2", "iso5218", "2"),
        (1, "iso5218", "1"),
        (2, "iso5218", "2"),
        ("01", "iso5218", "1"),
        ("１", "iso5218", "1"),
        ("0", "iso5218", None),  # ISO 5218: not known
        ("9", "iso5218", None),  # ISO 5218: not applicable
        (0, "iso5218", None),
        ("M", "iso5218", "1"),
        ("m", "iso5218", "1"),
        ("Ｆ", "iso5218", "2"),
        ("男", "iso5218", "1"),
        ("女", "iso5218", "2"),
        ("男性", "iso5218", "1"),
        ("女性", "iso5218", "2"),
        ("male", "iso5218", "1"),
        ("Female", "iso5218", "2"),
        (" 男 ", "iso5218", "1"),
        ("0", "male0_female1", "1"),
        ("1", "male0_female1", "2"),
        (0, "female0_male1", "2"),
        (1, "female0_male1", "1"),
        ("2", "male0_female1", None),  # not a code of that encoding
        ("M", "female0_male1", "1"),  # words mean the same in every encoding
        ("", "iso5218", None),
        ("X", "iso5218", None),
        ("3", "iso5218", None),
        (None, "iso5218", None),
        (True, "iso5218", None),
    ],
)
def test_normalize_sex(value: str | int | None, encoding: SexEncoding, sex: str | None) -> None:
    assert normalize_sex(value, encoding=encoding) == sex


# -- whole records -----------------------------------------------------------------------------


def test_normalize_record() -> None:
    keys = normalize(
        FourFacts(
            name="髙橋　一郎",
            kana="ﾀｶﾊｼ ｲﾁﾛｳ",
            address="横浜市中区港町一丁目2番地3号",
            birth_date="S33.5.14",
            sex="男",
        )
    )
    assert keys.name == "高橋一郎"
    assert keys.kana == "タカハシイチロウ"
    assert keys.birth_date == date(1958, 5, 14)
    assert keys.sex == "1"
    assert (keys.address.town, keys.address.chome, keys.address.banchi, keys.address.go) == (
        "港町",
        1,
        2,
        3,
    )


def test_normalize_record_with_a_0_1_sex_field() -> None:
    facts = FourFacts(name="山田 花子", address="港町1-2-3", birth_date="1990-01-01", sex="1")
    assert normalize(facts, sex_encoding="male0_female1").sex == "2"
    assert normalize(facts).sex == "1"


def test_blank_kana_is_no_kana() -> None:
    facts = FourFacts(name="山田 花子", kana="　", address="", birth_date="1990-01-01", sex="2")
    assert normalize(facts).kana is None


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        (FourFacts(name=" 　", address="", birth_date="1990-01-01", sex="1"), "name is empty"),
        (FourFacts(name="山田 花子", address="", birth_date="H31.5.1", sex="2"), "平成 ran"),
    ],
)
def test_invalid_records(facts: FourFacts, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        normalize(facts)
