"""Bad records: each gets a MappingError naming the field, where it sits and the raw bytes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format

from comm_server.mapping import layout
from comm_server.mapping.errors import MappingError, UnknownFormat
from comm_server.mapping.registry import known_formats, load_mapper
from renkei.errors import InvalidArgument
from renkei.layout.v1 import layout_pb2

FIXTURES = Path(__file__).parent / "fixtures" / "mappers"
TAX = "地方税関係情報"
RESIDENT = "住民票関係情報"
PENSION = "年金給付関係情報"
MEDICAL = "医療保険給付関係情報"


def _raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _record(name: str, kind: str) -> layout.Record:
    record = layout.message_type(kind)()
    text_format.Parse((FIXTURES / name).read_text(encoding="utf-8"), record)
    return record


def _refused(fmt: str, kind: str, raw: bytes) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapper(fmt).decode(kind, raw)
    err = caught.value
    assert isinstance(err, InvalidArgument)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "LEGACY_RECORD_INVALID"
    return err


def _splice(raw: bytes, offset: int, new: bytes) -> bytes:
    return raw[:offset] + new + raw[offset + len(new) :]


def test_truncated_fixed_width_record() -> None:
    err = _refused("fixed_tax", TAX, _raw("fixed_tax/tax_typical.bin")[:200])
    assert "truncated record: 200 bytes, expected 256" in err.message
    assert "hex 30 30 30 30 30 31 32 33 34 36" in err.message


def test_wrong_encoding_names_field_offset_and_bytes() -> None:
    # 0x81 0x20 is a cp932 lead byte followed by a byte that cannot trail it.
    raw = _splice(_raw("fixed_tax/resident_heisei_gannen.bin"), 50, b"\x81\x20")
    err = _refused("fixed_tax", RESIDENT, raw)
    assert err.field == "氏名"
    assert err.where == "at bytes 50-89 (offset 50, length 40)"
    assert "not valid cp932 at byte 50" in err.message
    assert "81 20" in err.message
    assert err.metadata == {"field": "氏名", "where": err.where, "mapper": "fixed_tax"}


def test_bad_era_date() -> None:
    # 平成31年5月1日 does not exist: 令和 began that day.
    raw = _splice(_raw("fixed_tax/resident_heisei_gannen.bin"), 90, b"4310501")
    err = _refused("fixed_tax", RESIDENT, raw)
    assert err.message == (
        "fixed_tax 生年月日 at bytes 90-96 (offset 90, length 7): 平成31年5月1日 does not"
        " exist: 平成 ran from 1989-01-08 to 2019-04-30; raw b'4310501'"
        " (hex 34 33 31 30 35 30 31)"
    )
    raw = _splice(_raw("fixed_tax/resident_heisei_gannen.bin"), 90, b"9010101")
    assert "era code '9' is not 1-5" in _refused("fixed_tax", RESIDENT, raw).message


def test_unknown_code() -> None:
    raw = _splice(_raw("fixed_tax/resident_heisei_gannen.bin"), 97, b"9")
    err = _refused("fixed_tax", RESIDENT, raw)
    assert err.field == "性別"
    assert "unknown code '9'; known: '1', '2'" in err.message


def test_signed_amount_without_sign() -> None:
    raw = _splice(_raw("fixed_tax/tax_typical.bin"), 14, b" 0003850000")
    err = _refused("fixed_tax", TAX, raw)
    assert err.field == "総所得金額"
    assert "offset 14, length 11" in err.message


def test_half_width_kana_is_not_full_width() -> None:
    raw = _splice(_raw("fixed_tax/resident_heisei_gannen.bin"), 10, "ｻ".encode("cp932") + b" ")
    err = _refused("fixed_tax", RESIDENT, raw)
    assert err.field == "氏名カナ"
    assert "'ｻ' is not full-width katakana" in err.message


def test_field_out_of_range() -> None:
    err = _refused("csv_insurer", MEDICAL, b"R1,0,01130012,12345678,01,150,1000,202604")
    assert err.field == "自己負担割合"
    assert err.where == "in column 6"
    assert "150 is above the maximum 100" in err.message


def test_csv_refusals() -> None:
    err = _refused("csv_insurer", MEDICAL, b"R1,0,01130012")
    assert "3 columns, expected 8" in err.message
    err = _refused("csv_insurer", MEDICAL, b"R1,1,,,,,,")
    assert err.field == "結果"
    assert "expected '0', got '1'" in err.message
    err = _refused("csv_insurer", MEDICAL, b"R1,0,01130012,12345678,01,30,1000,2026-04")
    assert err.field == "診療年月"
    assert "is not a year-month '%Y%m'" in err.message
    assert "not valid cp932 at byte 3" in _refused("csv_insurer", MEDICAL, b"R1,\x81\x20").message


def test_xml_refusals() -> None:
    good = _raw("soap_pension/pension_old_age.xml")
    err = _refused(
        "soap_pension", PENSION, good.replace(b"<nk:NengakuYen>795000</nk:NengakuYen>", b"")
    )
    assert err.field == "年額"
    assert err.where == "at nk:NengakuYen"
    assert "missing, expected one" in err.message
    err = _refused("soap_pension", PENSION, good.replace(b">01<", b">99<"))
    assert "unknown code '99'" in err.message
    assert "not well-formed XML" in _refused("soap_pension", PENSION, good[:-5]).message
    assert (
        "a DTD (<!DOCTYPE>): DTDs and entity declarations are refused"
        in _refused("soap_pension", PENSION, b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + good).message
    )
    err = _refused("soap_pension", PENSION, good.replace(b"nk:Benefit", b"nk:Other"))
    assert "record element is {urn:renkei:stub:nenkin:v1}Other, expected nk:Benefit" in err.message


def test_json_refusals() -> None:
    err = _refused("json_http", TAX, b'{"fiscalYear":"2026"}')
    assert "unexpected members" not in err.message
    good = _raw("json_http/tax_loss.json")
    err = _refused("json_http", TAX, good.replace(b'"fiscalYear":2026', b'"fiscalYear":"2026"'))
    assert err.field == "fiscalYear"
    assert err.where == "at /fiscalYear"
    assert "expected a JSON integer, got str" in err.message
    err = _refused("json_http", TAX, good.replace(b'"dependents":0', b'"dependents":100'))
    assert "100 is above the maximum 99" in err.message
    err = _refused("json_http", TAX, good.replace(b"}", b',"extra":1}'))
    assert "unexpected members ['extra']" in err.message
    assert "nested deeper than 64 levels" in _refused("json_http", TAX, b"[" * 100_000).message
    assert "expected a JSON object, got list" in _refused("json_http", TAX, b"[]").message


def test_unknown_kind() -> None:
    with pytest.raises(MappingError) as caught:
        load_mapper("json_http").decode(PENSION, b"{}")
    assert caught.value.reason == "MAPPER_KIND_UNKNOWN"
    assert "this format carries 住民票関係情報, 地方税関係情報, PERSONS" in caught.value.message


def test_unknown_format_lists_known() -> None:
    assert known_formats() == ["csv_insurer", "fixed_tax", "json_http", "soap_pension"]
    with pytest.raises(UnknownFormat) as caught:
        load_mapper("cobol_batch")
    assert caught.value.reason == "MAPPER_FORMAT_UNKNOWN"
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.message == (
        "no mapper for format 'cobol_batch' in entry-point group renkei.mappers;"
        " known: csv_insurer, fixed_tax, json_http, soap_pension"
    )


def _unencodable(fmt: str, kind: str, record: layout.Record) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapper(fmt).encode(kind, record)
    assert caught.value.reason == "STANDARD_RECORD_UNENCODABLE"
    return caught.value


def test_encode_refusals() -> None:
    record = _record("fixed_tax/resident_heisei_gannen.txtpb", RESIDENT)
    assert isinstance(record, layout_pb2.StandardRecord)
    record.resident_record.name = "𠮷田　花子"  # not in cp932
    err = _unencodable("fixed_tax", RESIDENT, record)
    assert err.field == "氏名"
    assert "'𠮷' cannot be written in cp932" in err.message
    record.resident_record.name = "佐藤" * 11
    assert "44 bytes do not fit in 40" in _unencodable("fixed_tax", RESIDENT, record).message
    record.resident_record.name = "佐藤"
    record.resident_record.sex = layout_pb2.SEX_UNSPECIFIED
    assert "'SEX_UNSPECIFIED' has no code" in _unencodable("fixed_tax", RESIDENT, record).message
    tax = _record("fixed_tax/tax_typical.txtpb", TAX)
    assert isinstance(tax, layout_pb2.StandardRecord)
    tax.local_tax.total_income = -(10**10)
    assert "has more than 10 digits" in _unencodable("fixed_tax", TAX, tax).message
    tax.layout_version = "2.0"
    assert "layout version '2.0'" in _unencodable("fixed_tax", TAX, tax).message
    assert "kind 住民票関係情報 needs info resident_record, the record has local_tax" in (
        _unencodable("fixed_tax", RESIDENT, _record("fixed_tax/tax_typical.txtpb", TAX)).message
    )


def test_era_date_hook_unknown_moving_in_date() -> None:
    mapper = load_mapper("fixed_tax")
    raw = _raw("fixed_tax/resident_showa64_unknown_move.bin")
    record = mapper.decode(RESIDENT, raw)
    assert isinstance(record, layout_pb2.StandardRecord)
    assert record.resident_record.moved_in_date == ""
    assert raw[225:232] == b"0000000"
    bad = _splice(raw, 225, b"0000001")
    assert "era code '0' is not 1-5" in _refused("fixed_tax", RESIDENT, bad).message


def test_record_kind_helpers() -> None:
    assert (
        layout.kind_of(load_mapper("fixed_tax").decode(TAX, _raw("fixed_tax/tax_typical.bin")))
        == TAX
    )
    assert layout.kind_of(layout_pb2.PersonRecord()) == layout.PERSON_KIND
    with pytest.raises(ValueError, match="info is not set"):
        layout.kind_of(layout_pb2.StandardRecord())
    assert set(layout.INFO_KINDS.values()) == {
        f.name for f in layout_pb2.StandardRecord.DESCRIPTOR.oneofs_by_name["info"].fields
    }
