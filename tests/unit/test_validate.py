"""Unit tests for renkei.validate: each refusal is INVALID_FIELD and names its field."""

from __future__ import annotations

import grpc
import pytest

from renkei import validate
from renkei.errors import InvalidArgument


def _assert_invalid_field(err: InvalidArgument, field: str, fragment: str) -> None:
    assert type(err) is InvalidArgument
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "INVALID_FIELD"
    assert err.metadata == {"field": field}
    assert err.message.startswith(f"{field}: ")
    assert field in str(err)
    assert fragment in err.message


# ------------------------------------------------------------------ text


@pytest.mark.parametrize("value", ["a", "札幌市", "x" * 10, "a b|c.d-e_f", "\u3000全角空白"])
def test_text_accepts_and_returns_value(value: str) -> None:
    assert validate.text("purpose", value, max_chars=11) == value


def test_text_required() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate.text("staff_id", "", max_chars=64)
    _assert_invalid_field(err.value, "staff_id", "is required")


def test_text_optional_empty_is_returned() -> None:
    assert validate.text("terminal_id", "", max_chars=64, required=False) == ""


def test_text_optional_still_checked_when_present() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate.text("terminal_id", "x" * 65, max_chars=64, required=False)
    _assert_invalid_field(err.value, "terminal_id", "65 characters; at most 64")
    with pytest.raises(InvalidArgument) as err:
        validate.text("terminal_id", "a\tb", max_chars=64, required=False)
    _assert_invalid_field(err.value, "terminal_id", "control characters")


def test_text_too_long() -> None:
    assert validate.text("info_kind", "x" * 200, max_chars=200)
    with pytest.raises(InvalidArgument) as err:
        validate.text("info_kind", "x" * 201, max_chars=200)
    _assert_invalid_field(err.value, "info_kind", "is 201 characters; at most 200")


def test_text_length_counts_characters_not_bytes() -> None:
    assert validate.text("info_kind", "情" * 8, max_chars=8) == "情" * 8
    with pytest.raises(InvalidArgument) as err:
        validate.text("info_kind", "情" * 9, max_chars=8)
    _assert_invalid_field(err.value, "info_kind", "9 characters")


@pytest.mark.parametrize("code", [*range(0x20), 0x7F])
def test_text_control_characters(code: int) -> None:
    for value in (chr(code), f"abc{chr(code)}", f"{chr(code)}abc", f"a{chr(code)}b"):
        with pytest.raises(InvalidArgument) as err:
            validate.text("legal_basis_item", value, max_chars=32)
        _assert_invalid_field(err.value, "legal_basis_item", "contains control characters")


def test_text_length_is_checked_before_control_characters() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate.text("purpose", "\n" * 5, max_chars=4)
    assert "at most 4" in err.value.message


@pytest.mark.parametrize("code", [0x80, 0x85, 0x9B, 0x9F])
def test_text_c1_control_characters(code: int) -> None:
    with pytest.raises(InvalidArgument):
        validate.text("purpose", f"a{chr(code)}b", max_chars=32)


# ------------------------------------------------------------------ blob


def test_blob_accepts_and_returns_value() -> None:
    assert validate.blob("sealed_query", b"\0" * 16, max_bytes=16) == b"\0" * 16
    assert validate.blob("sealed_query", b"", max_bytes=16) == b""


def test_blob_required() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate.blob("sealed_answer", b"", max_bytes=16, required=True)
    _assert_invalid_field(err.value, "sealed_answer", "is required")
    assert validate.blob("sealed_answer", b"x", max_bytes=16, required=True) == b"x"


def test_blob_too_long() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate.blob("sealed_answer", b"x" * 17, max_bytes=16)
    _assert_invalid_field(err.value, "sealed_answer", "is 17 bytes; at most 16")


def test_control_pattern_is_exactly_unicode_category_cc() -> None:
    import sys
    import unicodedata

    from renkei.validate import CONTROL

    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        assert (CONTROL.search(ch) is not None) == (unicodedata.category(ch) == "Cc"), hex(code)


# ------------------------------------------------------------------ timestamps, integers


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (-62_135_596_800, 0, "0001-01-01T00:00:00+00:00"),
        (253_402_300_799, 999_999_999, "9999-12-31T23:59:59.999999+00:00"),
        (0, 1500, "1970-01-01T00:00:00.000001+00:00"),
    ],
)
def test_timestamp_edges_convert_to_aware_utc(seconds: int, nanos: int, expected: str) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    assert validate.timestamp("time", Timestamp(seconds=seconds, nanos=nanos)).isoformat() == (
        expected
    )


@pytest.mark.parametrize(
    ("seconds", "nanos", "fragment"),
    [
        (253_402_300_800, 0, "seconds"),
        (-62_135_596_801, 0, "seconds"),
        (2**63 - 1, 0, "seconds"),
        (0, -1, "nanos"),
        (0, 1_000_000_000, "nanos"),
    ],
)
def test_timestamp_out_of_range_is_invalid_field(seconds: int, nanos: int, fragment: str) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    with pytest.raises(InvalidArgument) as exc:
        validate.timestamp("consent.consented_at", Timestamp(seconds=seconds, nanos=nanos))
    _assert_invalid_field(exc.value, "consent.consented_at", fragment)


def test_integer_range() -> None:
    assert validate.integer("serial", 2**63 - 1) == 2**63 - 1
    for value in (-1, 2**63):
        with pytest.raises(InvalidArgument) as exc:
            validate.integer("serial", value)
        _assert_invalid_field(exc.value, "serial", "must be 0 to")


@pytest.mark.parametrize("value", ["", "-1", "1e3", " 1", "١٢", "9223372036854775808", "0" * 20])
def test_digits_refuses_what_is_not_an_int64(value: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate.digits("cursor", value, problem="is not a cursor")
    _assert_invalid_field(exc.value, "cursor", "is not a cursor")


def test_digits_reads_up_to_int64() -> None:
    assert validate.digits("cursor", "9223372036854775807") == 2**63 - 1
    assert validate.digits("cursor", "0042") == 42
