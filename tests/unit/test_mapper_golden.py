"""Golden byte fixtures for every built-in mapper, both directions.

Each ``<name>.<ext>`` in tests/unit/fixtures/mappers/<format>/ is a legacy
record written by hand from docs/legacy-formats.md (not by the mapper), and
``<name>.txtpb`` the standard-layout record it means. decode(raw) must give the
record, and encode(record) the raw bytes, or ``<name>.encoded.<ext>`` where the
legacy record holds something the layout does not carry (a batch's request
number, the fields of a resident record a person entry leaves out).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from comm_server.mapping import layout
from comm_server.mapping.registry import load_mapper

FIXTURES = Path(__file__).parent / "fixtures" / "mappers"
KIND_OF_PREFIX = {
    "tax": "地方税関係情報",
    "resident": "住民票関係情報",
    "pension": "年金給付関係情報",
    "medical": "医療保険給付関係情報",
    "person": layout.PERSON_KIND,
}
CASES = sorted(
    p for p in FIXTURES.glob("*/*") if p.suffix != ".txtpb" and ".encoded." not in p.name
)


def _expected(raw_path: Path) -> tuple[str, layout.Record]:
    kind = KIND_OF_PREFIX[raw_path.name.split("_")[0]]
    record = layout.message_type(kind)()
    text_format.Parse(raw_path.with_suffix(".txtpb").read_text(encoding="utf-8"), record)
    return kind, record


def test_every_builtin_format_has_fixtures() -> None:
    assert {p.parent.name for p in CASES} == {
        "fixed_tax",
        "soap_pension",
        "csv_insurer",
        "json_http",
    }
    for fmt in ("fixed_tax", "soap_pension", "csv_insurer", "json_http"):
        kinds = {_expected(p)[0] for p in CASES if p.parent.name == fmt}
        assert kinds == set(load_mapper(fmt).kinds), fmt


@pytest.mark.parametrize("raw_path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_decode_golden(raw_path: Path) -> None:
    kind, expected = _expected(raw_path)
    mapper = load_mapper(raw_path.parent.name)
    assert mapper.decode(kind, raw_path.read_bytes()) == expected


@pytest.mark.parametrize("raw_path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_encode_golden(raw_path: Path) -> None:
    kind, record = _expected(raw_path)
    encoded = raw_path.with_name(f"{raw_path.stem}.encoded{raw_path.suffix}")
    want = (encoded if encoded.exists() else raw_path).read_bytes()
    assert load_mapper(raw_path.parent.name).encode(kind, record) == want
