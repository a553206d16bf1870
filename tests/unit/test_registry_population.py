"""The synthetic population: reproducible, real places, names with katakana readings."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from legacy_stubs.registry import places
from legacy_stubs.registry.model import Address, Name, check_address, check_name, is_katakana_name
from legacy_stubs.registry.population import (
    CHUNK,
    MAX_AGE_DAYS,
    REFERENCE_DATE,
    generate,
    name_data,
    towns,
)
from legacy_stubs.registry.resident_code import is_valid
from renkei.errors import InvalidArgument

PACKAGE_CSV = Path(__file__).parents[2] / "renkei" / "data" / "local_governments.csv"
SHARED_CSV = Path(__file__).parents[3] / "shared" / "data" / "local_governments.csv"

SAMPLE = list(generate(seed=11, count=5000))


def full_width(ascii_digits: str) -> str:
    """The same digits in full width (U+FF10-U+FF19), as typed with a Japanese IME."""
    return "".join(chr(0xFF10 + int(d)) for d in ascii_digits)


def _csv_rows() -> dict[str, dict[str, str]]:
    with PACKAGE_CSV.open(encoding="utf-8", newline="") as f:
        return {row["code"]: row for row in csv.DictReader(f)}


def test_same_seed_gives_the_same_population() -> None:
    assert list(generate(11, 2000)) == SAMPLE[:2000]
    assert list(generate(11, 2000)) == list(generate(11, 2000))


def test_a_shorter_run_is_a_prefix_of_a_longer_one_across_chunks() -> None:
    assert len(SAMPLE) > CHUNK
    assert list(generate(11, CHUNK + 3)) == SAMPLE[: CHUNK + 3]
    assert list(generate(11, 1)) == SAMPLE[:1]


def test_different_seeds_give_different_populations() -> None:
    other = list(generate(12, 2000))
    assert other != SAMPLE[:2000]
    assert not {r.resident_code for r in other} & {r.resident_code for r in SAMPLE}


def test_count_is_exact_and_zero_is_allowed() -> None:
    assert len(SAMPLE) == 5000
    assert list(generate(11, 0)) == []
    with pytest.raises(ValueError, match="negative"):
        list(generate(11, -1))


def test_codes_are_unique_and_valid() -> None:
    codes = [r.resident_code for r in SAMPLE]
    assert len(set(codes)) == len(codes)
    assert all(is_valid(c) for c in codes)


def test_every_address_is_a_real_municipality_or_ward_of_its_prefecture() -> None:
    rows = _csv_rows()
    for r in SAMPLE:
        a = r.address
        row = rows[a.municipality_code]
        assert row["prefecture"] == a.prefecture
        assert row["name"] == a.municipality
        assert row["kind"] in ("municipality", "ward")
        assert check_address(a) is a
        assert 1 <= a.chome <= 9
        assert 1 <= a.banchi <= 30
        assert 1 <= a.go <= 30
        assert a.town in towns()


def test_designated_cities_with_wards_appear_only_as_their_wards() -> None:
    codes = {g.code for g in places.residential()}
    assert "141003" not in codes  # 横浜市 itself
    assert "141011" in codes  # 横浜市 鶴見区
    assert "131016" in codes  # 千代田区, a special ward of Tokyo, is a municipality
    assert "024066" in codes  # 横浜町 (青森県), not to be confused with 横浜市
    assert len(codes) == 1741 - 20 + 175
    used = Counter(r.address.municipality_code for r in SAMPLE)
    assert used.keys() <= codes
    assert len(used) > 1000  # spread, not a handful


def test_names_have_katakana_readings_and_match_the_sex() -> None:
    data = name_data()
    male = {kanji for kanji, _ in data.male}
    female = {kanji for kanji, _ in data.female}
    for r in SAMPLE:
        assert is_katakana_name(r.name.kana), r.name
        assert check_name(r.name) is r.name
        assert r.name.kanji.count(" ") == 1
        assert r.name.kana.count(" ") == 1
        assert r.name.given_kanji in (male if r.sex == "1" else female)
        family = dict(data.families)
        assert family[r.name.family_kanji] == r.name.family_kana


def test_sexes_are_about_even_and_birth_dates_span_a_century() -> None:
    sexes = Counter(r.sex for r in SAMPLE)
    assert set(sexes) == {"1", "2"}
    assert 0.45 < sexes["1"] / len(SAMPLE) < 0.55
    births = [r.birth_date for r in SAMPLE]
    assert min(births) >= REFERENCE_DATE - timedelta(days=MAX_AGE_DAYS)
    assert max(births) < REFERENCE_DATE
    assert min(births) < date(1936, 1, 1)
    assert max(births) > date(2016, 1, 1)
    assert all(r.status == "alive" and r.died_on is None for r in SAMPLE)


def test_address_text_drops_the_space_of_a_ward_name() -> None:
    a = Address("神奈川県", "141011", "横浜市 鶴見区", "豊岡町", 3, 12, 5)
    assert a.text == "神奈川県横浜市鶴見区豊岡町3丁目12番5号"
    assert check_address(a) is a
    assert Address.from_dict(a.to_dict()) == a


@pytest.mark.parametrize(
    ("address", "field"),
    [
        (Address("神奈川県", "141003", "横浜市", "豊岡町", 1, 1, 1), "address.municipality_code"),
        (Address("神奈川県", "999999", "どこか", "豊岡町", 1, 1, 1), "address.municipality_code"),
        (
            Address("神奈川県", full_width("141011"), "横浜市 鶴見区", "豊岡町", 1, 1, 1),
            "address.municipality_code",
        ),
        (Address("東京都", "141011", "横浜市 鶴見区", "豊岡町", 1, 1, 1), "address.prefecture"),
        (Address("神奈川県", "141011", "横浜市鶴見区", "豊岡町", 1, 1, 1), "address.municipality"),
        (Address("神奈川県", "141011", "横浜市 鶴見区", "", 1, 1, 1), "address.town"),
        (Address("神奈川県", "141011", "横浜市 鶴見区", "豊岡町", 0, 1, 1), "address.chome"),
    ],
)
def test_check_address_names_the_bad_field(address: Address, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_address(address)
    assert err.value.metadata == {"field": field}


@pytest.mark.parametrize(
    ("name", "field"),
    [
        (Name("山田太郎", "ヤマダ タロウ"), "name.kanji"),
        (Name("山田　太郎", "ヤマダ タロウ"), "name.kanji"),  # full-width space
        (Name("山田 太郎", "やまだ たろう"), "name.kana"),  # hiragana
        (Name("山田 太郎", "ﾔﾏﾀﾞ ﾀﾛｳ"), "name.kana"),  # half-width katakana
        (Name("山田 太郎", "ヤマダタロウ"), "name.kana"),
    ],
)
def test_check_name_names_the_bad_field(name: Name, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_name(name)
    assert err.value.metadata == {"field": field}


def test_the_packaged_table_is_the_shared_file_unchanged() -> None:
    if not SHARED_CSV.exists():
        pytest.skip("shared/ is not beside this checkout")
    assert PACKAGE_CSV.read_bytes() == SHARED_CSV.read_bytes()
