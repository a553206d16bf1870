"""``renkei mapper check``: the table, the differences and the exit codes; and the
tutorial's example mapper (docs/examples/town_kokuho), so the tutorial cannot rot."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from comm_server.mapping.errors import MappingError
from comm_server.mapping.mapper import SpecMapper
from ops.cli import main
from renkei.layout.v1 import layout_pb2

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "mappers"
EXAMPLE = ROOT / "docs" / "examples" / "town_kokuho"


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["mapper", "check", *args])
    return code, capsys.readouterr().out


def test_round_trips_print_fields_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(capsys, "fixed_tax", str(FIXTURES / "fixed_tax" / "tax_typical.bin"))
    assert code == 0
    assert "fixed_tax" in out
    assert "kind 地方税関係情報: 1 records" in out
    assert "総所得金額" in out
    assert "'+0003850000'" in out
    assert "3850000" in out
    assert "local_tax.total_income" in out
    assert "1 of 1 records round-trip" in out


def test_every_format_checks_its_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    for fmt, name, kind in [
        ("soap_pension", "pension_old_age.xml", "年金給付関係情報"),
        ("csv_insurer", "medical_high_cost.csv", "医療保険給付関係情報"),
        ("json_http", "resident_shibuya.json", "住民票関係情報"),
        ("fixed_tax", "person_showa.bin", "PERSONS"),
    ]:
        code, out = _check(capsys, fmt, str(FIXTURES / fmt / name), "--kind", kind)
        assert code == 0, out
    # The person entry leaves out fields of the resident record: shown, not counted.
    assert "not carried: 世帯主区分から予備 at bytes 224-255" in out


def test_whole_soap_answer_and_csv_file_are_samples(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    envelope = tmp_path / "answer.xml"
    benefit = (FIXTURES / "soap_pension" / "pension_old_age.xml").read_text(encoding="utf-8")
    envelope.write_text(
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:nk="urn:renkei:stub:nenkin:v1"><soap:Body><nk:GetBenefitResponse>\n  '
        + benefit.replace(' xmlns:nk="urn:renkei:stub:nenkin:v1"', "").replace("><", ">\n    <")
        + "\n</nk:GetBenefitResponse></soap:Body></soap:Envelope>",
        encoding="utf-8",
    )
    code, out = _check(capsys, "soap_pension", str(envelope))
    assert code == 0, out
    assert "1 of 1 records round-trip" in out
    answer = tmp_path / "answer.csv"
    answer.write_bytes(
        "要求番号,結果,保険者番号,被保険者番号,給付種別,自己負担割合,給付額,診療年月\r\n"
        "R1,0,01130012,12345678,02,30,84000,202604\r\n"
        "R2,0,01130012,12345679,01,20,1000,202604\r\n".encode("cp932")
    )
    code, out = _check(capsys, "csv_insurer", str(answer))
    assert code == 0, out
    assert "2 of 2 records round-trip" in out


def test_bad_record_exits_1_and_names_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = bytearray((FIXTURES / "fixed_tax" / "tax_typical.bin").read_bytes())
    raw[41:42] = b"7"
    sample = tmp_path / "bad.dat"
    sample.write_bytes((FIXTURES / "fixed_tax" / "tax_typical.bin").read_bytes() + bytes(raw))
    code, out = _check(capsys, "fixed_tax", str(sample))
    assert code == 1
    assert (
        "record 2: fixed_tax 非課税区分 at bytes 41-41 (offset 41, length 1): unknown code" in out
    )
    assert "1 of 2 records round-trip; 1 do not" in out


def test_changed_field_exits_1_and_shows_the_difference(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sample = tmp_path / "a.csv"
    sample.write_bytes(b"R1,0,01130012,12345678,02,30,0084000,202604")  # re-encoded as 84000
    code, out = _check(capsys, "csv_insurer", str(sample))
    assert code == 1
    assert "record 1: differs: 給付額 in column 7: '0084000' -> '84000'" in out
    assert "not carried: 要求番号 in column 1: 'R1' -> ''" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sample = FIXTURES / "fixed_tax" / "tax_typical.bin"
    code, out = _check(capsys, "cobol_batch", str(sample))
    assert code == 2
    assert "no mapper for format 'cobol_batch'" in out
    assert "known: csv_insurer, fixed_tax, json_http, soap_pension" in out
    code, out = _check(capsys, "fixed_tax", str(sample), "--kind", "年金給付関係情報")
    assert code == 2
    assert "fixed_tax has no kind '年金給付関係情報'" in out
    code, out = _check(capsys, "fixed_tax", str(tmp_path / "missing.dat"))
    assert code == 2
    bad_spec = tmp_path / "bad.toml"
    bad_spec.write_text('format = "x"\nlayout = "fixed"\n', encoding="utf-8")
    code, out = _check(capsys, str(bad_spec), str(sample))
    assert code == 2
    assert "a fixed layout needs a positive record_length" in out


# -- the tutorial's example ------------------------------------------------------------------


@pytest.fixture
def town_kokuho(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("town_kokuho")


def test_tutorial_example_is_short() -> None:
    lines = [
        line
        for path in (EXAMPLE / "town_kokuho.toml", EXAMPLE / "town_kokuho.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(lines) < 50


def test_tutorial_example_checks(town_kokuho: object, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(capsys, str(EXAMPLE / "town_kokuho.toml"), str(EXAMPLE / "sample.dat"))
    assert code == 0, out
    assert "2 of 2 records round-trip" in out
    assert "hex 00 00 12 80 0c" in out


def test_tutorial_example_maps_both_ways(town_kokuho: object) -> None:
    mapper = town_kokuho.mapper()  # type: ignore[attr-defined]  # the example module
    assert isinstance(mapper, SpecMapper)
    kind = "医療保険給付関係情報"
    first = (EXAMPLE / "sample.dat").read_bytes()[:64]
    record = mapper.decode(kind, first)
    assert record == layout_pb2.StandardRecord(
        layout_version="1.0",
        local_person_id="K0001234",
        medical_insurance_benefit=layout_pb2.MedicalInsuranceBenefitInfo(
            insurer_number="39141004",
            benefit_kind=layout_pb2.BENEFIT_KIND_MEDICAL_CARE,
            copayment_percent=30,
            benefit_amount_yen=12800,
            service_month="2024-04",
        ),
    )
    assert mapper.encode(kind, record) == first
    with pytest.raises(MappingError, match=r"診療年月 .*: 令和1年4月 does not exist"):
        mapper.decode(kind, first[:25] + b"50104" + first[30:])


def test_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    """The mapper benchmark runs for every built-in mapper and kind (no timing assertions)."""
    from ops.bench import mappers as bench

    rows = bench.run(seconds=0.001)
    assert [(r["mapper"], r["kind"]) for r in rows][:2] == [
        ("(baseline) protobuf", "住民票関係情報"),
        ("fixed_tax", "地方税関係情報"),
    ]
    assert len(rows) == 1 + 10
    assert bench.main(["--seconds", "0.001"]) == 0
    assert "decoded / s" in capsys.readouterr().out


def test_json_and_line_separated_samples(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    person = (FIXTURES / "json_http" / "person_yamada.json").read_text(encoding="utf-8")
    listing = tmp_path / "persons.json"
    listing.write_text(f'{{"persons": [{person}, {person}], "next": null}}', encoding="utf-8")
    code, out = _check(capsys, "json_http", str(listing), "--kind", "PERSONS")
    assert code == 0, out
    assert "2 of 2 records round-trip" in out
    answer = tmp_path / "answer.json"
    record = (FIXTURES / "json_http" / "tax_loss.json").read_text(encoding="utf-8")
    answer.write_text(
        f'{{"personId": "P-1", "kind": "local-tax", "record": {record}}}', encoding="utf-8"
    )
    code, out = _check(capsys, "json_http", str(answer), "--kind", "地方税関係情報")
    assert code == 0, out
    lines = tmp_path / "records.jsonl"
    lines.write_text(f"{record}\n{record}\n", encoding="utf-8")
    code, out = _check(capsys, "json_http", str(lines), "--kind", "地方税関係情報")
    assert code == 0, out
    assert "2 of 2 records round-trip" in out
    fixed = tmp_path / "records.txt"
    tax = (FIXTURES / "fixed_tax" / "tax_typical.bin").read_bytes()
    fixed.write_bytes(tax + b"\r\n" + tax + b"\r\n")
    code, out = _check(capsys, "fixed_tax", str(fixed))
    assert code == 0, out
    assert "2 of 2 records round-trip" in out
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    code, out = _check(capsys, "fixed_tax", str(empty))
    assert code == 1
    assert "0 of 0 records round-trip" in out
