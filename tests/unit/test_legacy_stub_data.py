"""The stubs' own data: era dates, fixed-width fields, generation, data files, faults."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from legacy_stubs import people
from legacy_stubs.csv_insurer import records as csv_records
from legacy_stubs.fixed_tax import records as tax_records
from legacy_stubs.json_http import records as json_records
from legacy_stubs.soap_pension import records as soap_records
from legacy_stubs.stubkit import Faults


@pytest.mark.parametrize(
    ("day", "era"),
    [
        (date(1912, 7, 29), "1450729"),  # 明治45
        (date(1912, 7, 30), "2010730"),  # 大正元年
        (date(1926, 12, 25), "3011225"),  # 昭和元年
        (date(1989, 1, 7), "3640107"),  # 昭和64
        (date(1989, 1, 8), "4010108"),  # 平成元年
        (date(2019, 4, 30), "4310430"),
        (date(2019, 5, 1), "5010501"),  # 令和元年
    ],
)
def test_era_dates(day: date, era: str) -> None:
    assert people.era_date(day) == era


def test_era_dates_refuse_before_meiji() -> None:
    with pytest.raises(ValueError, match="before 明治"):
        people.era_date(date(1868, 1, 24))


def test_wide_fields() -> None:
    assert tax_records.wide_field("ヤマダ", 4) == "ヤマダ\u3000".encode("cp932")
    with pytest.raises(ValueError, match="not all full-width"):
        tax_records.wide_field("ﾔﾏﾀﾞ", 20)
    with pytest.raises(ValueError, match="longer than 2 characters"):
        tax_records.wide_field("ヤマダ", 2)
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        tax_records.ascii_field("A00010010000", 10)


def test_generation_is_seeded_and_every_record_fits() -> None:
    assert people.generate(7, 40) == people.generate(7, 40)
    assert people.generate(7, 40) != people.generate(8, 40)
    for resident in tax_records.generate_residents(7, 200):
        assert len(tax_records.encode_resident(resident)) == tax_records.RECORD_LEN
        for tax in resident.taxes.values():
            assert len(tax_records.encode_tax(resident.atena, tax)) == tax_records.RECORD_LEN


def test_data_files_round_trip() -> None:
    residents = tax_records.generate_residents(3, 10)
    data = tax_records.to_json(residents)
    assert tax_records.to_json(tax_records.from_json(data)) == data
    insured = soap_records.generate_insured(3, 10)
    assert soap_records.to_json(soap_records.from_json(soap_records.to_json(insured))) == (
        soap_records.to_json(insured)
    )
    batch = csv_records.generate_insured(3, 10)
    assert csv_records.to_json(csv_records.from_json(csv_records.to_json(batch))) == (
        csv_records.to_json(batch)
    )
    citizens = json_records.generate_citizens(3, 10)
    assert json_records.to_json(json_records.from_json(json_records.to_json(citizens))) == (
        json_records.to_json(citizens)
    )


def test_tax_data_file_refusals() -> None:
    data = tax_records.to_json(tax_records.generate_residents(3, 0))
    with pytest.raises(ValueError, match="not a fixed_tax data file"):
        tax_records.from_json({"format": "json_http"})
    half_width = copy.deepcopy(data)
    half_width["residents"][0]["person"]["family"] = "Yamada"
    with pytest.raises(ValueError, match="not all full-width"):
        tax_records.from_json(half_width)
    missing = copy.deepcopy(data)
    del missing["residents"][0]["atena"]
    with pytest.raises(ValueError, match="missing or ill-typed field 'atena'"):
        tax_records.from_json(missing)
    bad_sex = copy.deepcopy(data)
    bad_sex["residents"][0]["person"]["sex"] = "1"
    with pytest.raises(ValueError, match="sex: '1' is not male or female"):
        tax_records.from_json(bad_sex)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"slow": True}, "unknown fault field 'slow'"),
        ({"delay_ms": -1}, "delay_ms: must be an integer"),
        ({"delay_ms": True}, "delay_ms: must be an integer"),
        ({"drop": "yes"}, "drop: must be true or false"),
        ({"garbage": 1}, "garbage: must be true or false"),
    ],
)
def test_fault_refusals_leave_faults_unchanged(body: dict[str, object], message: str) -> None:
    faults = Faults(delay_ms=5)
    with pytest.raises(ValueError, match=message):
        faults.update(body)
    assert faults == Faults(delay_ms=5)


def test_faults_update_keeps_absent_fields() -> None:
    faults = Faults(delay_ms=5, drop=True)
    faults.update({"garbage": True})
    assert faults == Faults(delay_ms=5, drop=True, garbage=True)
