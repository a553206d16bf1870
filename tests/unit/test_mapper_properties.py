"""Property tests: decode(encode(x)) == x for every built-in mapper and kind, and a
fuzz of every decoder: any bytes give a record or a MappingError, nothing else."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comm_server.mapping import layout
from comm_server.mapping.errors import MappingError
from comm_server.mapping.registry import load_mapper
from renkei.layout.v1 import layout_pb2

FIXTURES = Path(__file__).parent / "fixtures" / "mappers"
FORMATS = ("fixed_tax", "soap_pension", "csv_insurer", "json_http")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KANJI = "山田太郎花子佐藤鈴木高橋渡邉潤一髙﨑神奈川県横浜市中区本町丁目番地号東京都渋谷区"
KANA = (
    "アイウエオカキクケコサシスセソタチツテトナニヌネノ"
    "ハヒフヘホマミムメモヤユヨラリルレロワヲンガギグゲゴヴャュョッー"
)
DIGITS_FW = "０１２３４５６７８９"
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
# Characters that survive cp932 both ways (no ～/〜 style many-to-one mappings).
CP932_TEXT = KANJI + KANA + DIGITS_FW + ASCII + "\u3000・"


def _fw_text(alphabet: str, max_chars: int) -> st.SearchStrategy[str]:
    """Full-width text for a fixed-width field: no padding at the end."""
    return st.text(alphabet=alphabet, max_size=max_chars).filter(lambda s: not s.endswith("\u3000"))


ascii_id = st.text(alphabet=ASCII, min_size=1, max_size=10).filter(lambda s: not s.endswith(" "))
iso_dates = st.dates(date(1873, 1, 1), date(2099, 12, 31)).map(date.isoformat)
months = st.dates(date(1900, 1, 1), date(2100, 12, 31)).map(lambda d: d.strftime("%Y-%m"))
unicode_text = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\ufffe\uffff")
)
cp932_text = st.text(alphabet=CP932_TEXT)
sexes = st.sampled_from([layout_pb2.SEX_MALE, layout_pb2.SEX_FEMALE])
INT64 = 2**63 - 1


def _std(kind: str, pid: str, **info: object) -> layout_pb2.StandardRecord:
    record = layout.new_record(kind)
    assert isinstance(record, layout_pb2.StandardRecord)
    record.local_person_id = pid
    sub = getattr(record, layout.INFO_KINDS[kind])
    for key, value in info.items():
        setattr(sub, key, value)
    return record


def _tax(
    pid: st.SearchStrategy[str], *, income: int, levy: int, per: int, dep: int
) -> st.SearchStrategy[layout.Record]:
    return st.builds(
        lambda p, y, t, i, c, e, d: _std(
            "地方税関係情報",
            p,
            fiscal_year=y,
            total_income=t,
            income_levy=i,
            per_capita_levy=c,
            tax_exempt=e,
            dependents=d,
        ),
        pid,
        st.integers(1900, 9999),
        st.integers(-income, income),
        st.integers(0, levy),
        st.integers(0, per),
        st.booleans(),
        st.integers(0, dep),
    )


def _resident(
    pid: st.SearchStrategy[str],
    text: st.SearchStrategy[str],
    kana: st.SearchStrategy[str],
    moved: st.SearchStrategy[str],
    address: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[layout.Record]:
    return st.builds(
        lambda p, n, k, b, s, m, a, h, mv: _std(
            "住民票関係情報",
            p,
            name=n,
            name_kana=k,
            birth_date=b,
            sex=s,
            municipality_code=m,
            address=a,
            household_head=h,
            moved_in_date=mv,
        ),
        pid,
        text,
        kana,
        iso_dates,
        sexes,
        st.text(alphabet="0123456789", min_size=6, max_size=6),
        text if address is None else address,
        st.booleans(),
        moved,
    )


def _person(
    pid: st.SearchStrategy[str],
    text: st.SearchStrategy[str],
    kana: st.SearchStrategy[str],
    born: st.SearchStrategy[str],
    sex: st.SearchStrategy[str],
) -> st.SearchStrategy[layout.Record]:
    return st.builds(
        lambda p, n, k, b, s, a: layout_pb2.PersonRecord(
            local_person_id=p, name=n, name_kana=k, birth_date=b, sex=s, address=a
        ),
        pid,
        text,
        kana,
        born,
        sex,
        text,
    )


def _pension(pid: st.SearchStrategy[str]) -> st.SearchStrategy[layout.Record]:
    return st.builds(
        lambda p, k, a, m, s: _std(
            "年金給付関係情報",
            p,
            pension_kind=k,
            annual_amount_yen=a,
            first_payment_month=m,
            suspended=s,
        ),
        pid,
        st.sampled_from([1, 2, 3, 11]),
        st.integers(0, INT64),
        months,
        st.booleans(),
    )


def _medical(pid: st.SearchStrategy[str]) -> st.SearchStrategy[layout.Record]:
    return st.builds(
        lambda p, i, k, c, a, m: _std(
            "医療保険給付関係情報",
            p,
            insurer_number=i,
            benefit_kind=k,
            copayment_percent=c,
            benefit_amount_yen=a,
            service_month=m,
        ),
        pid,
        st.text(alphabet="0123456789", min_size=1, max_size=8),
        st.sampled_from([1, 2, 3, 4]),
        st.integers(0, 100),
        st.integers(0, INT64),
        months,
    )


def _with_hint(record: layout.Record, hint: str) -> layout.Record:
    assert isinstance(record, layout_pb2.PersonRecord)
    record.municipality_hint = hint
    return record


_fw = _fw_text(KANJI + DIGITS_FW + "\u3000", 20)
_fw_address = _fw_text(KANJI + DIGITS_FW + "\u3000", 60)
_kana = _fw_text(KANA + "\u3000", 20)
_digits = st.text(alphabet="0123456789", min_size=1)
_csv_text = st.text(alphabet=CP932_TEXT + '",')

STRATEGIES: dict[tuple[str, str], st.SearchStrategy[layout.Record]] = {
    ("fixed_tax", "地方税関係情報"): _tax(
        ascii_id, income=10**10 - 1, levy=10**9 - 1, per=10**7 - 1, dep=99
    ),
    ("fixed_tax", "住民票関係情報"): _resident(
        ascii_id, _fw, _kana, st.one_of(st.just(""), iso_dates), _fw_address
    ),
    ("fixed_tax", layout.PERSON_KIND): st.builds(
        _with_hint,
        _person(
            ascii_id,
            _fw,
            _kana,
            st.text(alphabet="0123456789", min_size=7, max_size=7),
            st.text(alphabet="0123456789", min_size=1, max_size=1),
        ),
        st.text(alphabet="0123456789", min_size=6, max_size=6),
    ),
    ("soap_pension", "年金給付関係情報"): _pension(st.text(alphabet=ASCII)),
    ("soap_pension", layout.PERSON_KIND): _person(
        st.text(alphabet=ASCII), unicode_text, unicode_text, unicode_text, unicode_text
    ),
    ("csv_insurer", "医療保険給付関係情報"): _medical(st.text(alphabet=ASCII)),
    ("csv_insurer", layout.PERSON_KIND): _person(
        st.text(alphabet=ASCII), _csv_text, _csv_text, _csv_text, _csv_text
    ),
    ("json_http", "住民票関係情報"): _resident(
        st.just(""),
        # Names part by U+3000 in the layout, by an ASCII space in this format.
        unicode_text.filter(lambda s: " " not in s),
        unicode_text.filter(lambda s: all("\u30a1" <= c <= "\u30fc" or c == "\u3000" for c in s)),
        iso_dates,
        address=unicode_text,
    ),
    ("json_http", "地方税関係情報"): _tax(st.just(""), income=INT64, levy=INT64, per=INT64, dep=99),
    ("json_http", layout.PERSON_KIND): _person(
        unicode_text, unicode_text, unicode_text, unicode_text, unicode_text
    ),
}


def test_every_mapper_kind_has_a_strategy() -> None:
    wanted = {(fmt, kind) for fmt in FORMATS for kind in load_mapper(fmt).kinds}
    assert wanted == set(STRATEGIES)


@pytest.mark.parametrize(("fmt", "kind"), sorted(STRATEGIES))
def test_decode_encode_round_trip(fmt: str, kind: str) -> None:
    mapper = load_mapper(fmt)

    @SETTINGS
    @given(STRATEGIES[(fmt, kind)])
    def round_trip(record: layout.Record) -> None:
        assert mapper.decode(kind, mapper.encode(kind, record)) == record

    round_trip()


def _decodes_or_refuses(fmt: str, kind: str, raw: bytes) -> None:
    refused: MappingError | None = None
    try:
        load_mapper(fmt).decode(kind, raw)
    except MappingError as err:
        refused = err
    if refused is not None:
        assert refused.reason == "LEGACY_RECORD_INVALID"
        assert refused.message


@pytest.mark.parametrize(("fmt", "kind"), sorted(STRATEGIES))
def test_fuzz_decoder_with_arbitrary_bytes(fmt: str, kind: str) -> None:
    @SETTINGS
    @given(st.one_of(st.binary(max_size=300), st.binary(min_size=256, max_size=256)))
    def fuzz(raw: bytes) -> None:
        _decodes_or_refuses(fmt, kind, raw)

    fuzz()


@pytest.mark.parametrize(("fmt", "kind"), sorted(STRATEGIES))
def test_fuzz_decoder_with_mutated_records(fmt: str, kind: str) -> None:
    """Flip, cut and splice bytes of valid records: closer to real garbage than random bytes."""
    mapper = load_mapper(fmt)

    @SETTINGS
    @given(STRATEGIES[(fmt, kind)], st.data())
    def fuzz(record: layout.Record, data: st.DataObject) -> None:
        raw = bytearray(mapper.encode(kind, record))
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
            action = data.draw(st.sampled_from(["set", "cut", "insert"]))
            byte = data.draw(st.integers(0, 255))
            if action == "set" and raw:
                raw[at] = byte
            elif action == "cut":
                del raw[at : at + data.draw(st.integers(1, 8))]
            else:
                raw[at:at] = bytes([byte])
        _decodes_or_refuses(fmt, kind, bytes(raw))

    fuzz()
