"""Loading specs: gaps, overlaps, unknown types, targets and hooks are refused by name."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from comm_server.mapping.errors import SpecError
from comm_server.mapping.spec import load_spec

HEAD = """
format = "t"
layout = "fixed"
encoding = "cp932"
record_length = 20
[[records]]
kind = "地方税関係情報"
fields = [
"""


def _spec(tmp_path: Path, fields: str, head: str = HEAD) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(head + fields + "]\n", encoding="utf-8")
    return path


def _refused(path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.reason == "MAPPER_SPEC_INVALID"
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.message.startswith(f"{path}: ")
    return caught.value.message.removeprefix(f"{path}: ")


ID = '{ name = "id", offset = 0, length = 10, type = "ascii", target = "local_person_id" },\n'
YEAR = (
    '{ name = "year", offset = 10, length = 4, type = "unsigned",'
    ' target = "local_tax.fiscal_year" },\n'
)
REST = '{ name = "rest", offset = 14, length = 6, type = "filler" },\n'


def test_a_tiled_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, ID + YEAR + REST))
    assert [f.name for f in spec.records["地方税関係情報"].fields] == ["id", "year", "rest"]


def test_gap(tmp_path: Path) -> None:
    rest = REST.replace("offset = 14, length = 6", "offset = 15, length = 5")
    assert _refused(_spec(tmp_path, ID + YEAR + rest)) == (
        "records '地方税関係情報': gap at bytes 14-14 between field 'year' (offset 10,"
        " length 4) and field 'rest' (offset 15); declare a filler"
    )


def test_overlap(tmp_path: Path) -> None:
    year = YEAR.replace("offset = 10", "offset = 8").replace("length = 4", "length = 6")
    assert _refused(_spec(tmp_path, ID + year + REST)) == (
        "records '地方税関係情報': field 'year' (offset 8, length 6) overlaps field 'id'"
        " (offset 0, length 10), which ends at byte 9"
    )


def test_fields_short_of_record_length(tmp_path: Path) -> None:
    assert "gap: the fields end at byte 14 but record_length is 20" in _refused(
        _spec(tmp_path, ID + YEAR)
    )


def test_unknown_type(tmp_path: Path) -> None:
    message = _refused(_spec(tmp_path, ID + YEAR.replace('"unsigned"', '"zoned"') + REST))
    assert message.startswith(
        "records '地方税関係情報' field 'year' (offset 10, length 4): unknown type 'zoned'; known:"
        " ascii, digits, unsigned, signed,"
    )


def test_unknown_target(tmp_path: Path) -> None:
    message = _refused(_spec(tmp_path, ID + YEAR.replace("fiscal_year", "fiscal_yr") + REST))
    assert message.startswith(
        "records '地方税関係情報' field 'year' (offset 10, length 4): target"
        " 'local_tax.fiscal_yr': LocalTaxInfo has no field 'fiscal_yr'; known: dependents,"
    )


def test_target_of_another_kind(tmp_path: Path) -> None:
    year = YEAR.replace("local_tax.fiscal_year", "pension_benefit.annual_amount_yen")
    assert "is not part of 地方税関係情報" in _refused(_spec(tmp_path, ID + year + REST))


def test_type_does_not_fit_target(tmp_path: Path) -> None:
    year = YEAR.replace('"unsigned"', '"digits"')
    assert (
        "type 'digits' gives a str, but target renkei.layout.v1.LocalTaxInfo.fiscal_year is a int"
        in (_refused(_spec(tmp_path, ID + year + REST)))
    )


def test_code_table_must_fit_enum(tmp_path: Path) -> None:
    head = HEAD.replace("地方税関係情報", "住民票関係情報").replace(
        "record_length = 20", "record_length = 11"
    )
    sex = (
        '{ name = "sex", offset = 10, length = 1, type = "code",'
        ' target = "resident_record.sex", codes = { "1" = "MALE" } },\n'
    )
    assert "code '1' -> 'MALE': not a value of renkei.layout.v1.Sex; known: SEX_UNSPECIFIED" in (
        _refused(_spec(tmp_path, ID + sex, head))
    )


def test_hook_must_import(tmp_path: Path) -> None:
    year = YEAR.replace('type = "unsigned"', 'type = "hook", hook = "no.such.module:thing"')
    assert "hook 'no.such.module:thing': cannot import" in _refused(
        _spec(tmp_path, ID + year + REST)
    )


def test_unknown_kind_layout_and_keys(tmp_path: Path) -> None:
    assert "unknown kind; known: 地方税関係情報" in _refused(
        _spec(tmp_path, ID + YEAR + REST, HEAD.replace("地方税関係情報", "固定資産税"))
    )
    assert "layout 'cobol' is not one of fixed, csv, xml, json" in _refused(
        _spec(tmp_path, ID + YEAR + REST, HEAD.replace('"fixed"', '"cobol"'))
    )
    assert "unknown keys ['width']" in _refused(
        _spec(tmp_path, ID.replace("length = 10", "length = 10, width = 3") + YEAR + REST)
    )
    assert "not TOML" in _refused(_spec(tmp_path, "oops"))


def test_csv_columns_gap(tmp_path: Path) -> None:
    head = 'format = "c"\nlayout = "csv"\n[[records]]\nkind = "地方税関係情報"\nfields = [\n'
    fields = (
        '{ name = "id", column = 1, type = "ascii", target = "local_person_id" },\n'
        '{ name = "year", column = 3, type = "unsigned", target = "local_tax.fiscal_year" },\n'
    )
    assert "columns must be 1..2, each once (gap or overlap); got [1, 3]" in _refused(
        _spec(tmp_path, fields, head)
    )


def test_fixed_constant_must_fill_its_field(tmp_path: Path) -> None:
    rest = REST.replace('type = "filler"', 'type = "constant", value = "X"')
    assert "field 'rest' (offset 14, length 6): the constant's value must be 6 bytes" in (
        _refused(_spec(tmp_path, ID + YEAR + rest))
    )


def test_fixed_ignore_must_fill_its_field(tmp_path: Path) -> None:
    # Encoding writes an ignored field's value as it is: it must fit the field exactly.
    rest = REST.replace('type = "filler"', 'type = "ignore"')
    assert "field 'rest' (offset 14, length 6): the ignore's value must be 6 bytes" in (
        _refused(_spec(tmp_path, ID + YEAR + rest))
    )
