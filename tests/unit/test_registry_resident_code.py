"""The resident code's check digit (our own choice of formula) and its validation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from legacy_stubs.registry import resident_code as rc
from renkei.errors import InvalidArgument

# Worked by hand. Weights, left to right over the ten digits: 5 4 3 2 7 6 5 4 3 2.
#   1234567890: 5+8+9+8+35+36+35+32+27+0 = 195; 195 mod 11 = 8;  11-8  = 3
#   9999999999: 9*(5+4+3+2+7+6+5+4+3+2) = 9*41 = 369; mod 11 = 6; 11-6 = 5
#   0000000001: 1*2 = 2;   mod 11 = 2;  11-2 = 9
#   1000000000: 1*5 = 5;   mod 11 = 5;  11-5 = 6
#   0000000005: 5*2 = 10;  mod 11 = 10; 11-10 = 1
#   0000000006: 6*2 = 12;  mod 11 = 1  -> 0 (remainders 0 and 1 give 0)
#   0000000000: 0;         mod 11 = 0  -> 0
HAND_WORKED = [
    ("1234567890", "3"),
    ("9999999999", "5"),
    ("0000000001", "9"),
    ("1000000000", "6"),
    ("0000000005", "1"),
    ("0000000006", "0"),
    ("0000000000", "0"),
]


def full_width(ascii_digits: str) -> str:
    """The same digits in full width (U+FF10-U+FF19), as typed with a Japanese IME."""
    return "".join(chr(0xFF10 + int(d)) for d in ascii_digits)


@pytest.mark.parametrize(("ten", "check"), HAND_WORKED)
def test_check_digit_matches_hand_worked_examples(ten: str, check: str) -> None:
    assert rc.check_digit(ten) == check
    assert rc.is_valid(ten + check)
    assert rc.validate(ten + check) == ten + check


@pytest.mark.parametrize(
    "bad", ["", "123456789", "12345678901", full_width("1234567890"), "12345a7890"]
)
def test_check_digit_wants_ten_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="ten ASCII digits"):
        rc.check_digit(bad)


def _refusal(code: object, field: str = "resident_code") -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        rc.validate(code, field)
    assert err.value.reason == "INVALID_FIELD"
    assert err.value.metadata == {"field": field}
    assert err.value.message.startswith(f"{field}: ")
    assert err.value.code.name == "INVALID_ARGUMENT"
    assert not rc.is_valid(code)
    return err.value


@pytest.mark.parametrize("code", ["", "1234567890", "123456789033", "1" * 40])
def test_wrong_length_is_refused(code: str) -> None:
    assert "11 digits" in _refusal(code).message


def test_full_width_digits_are_refused() -> None:
    # "12345678903" (valid in ASCII) written in full-width digits.
    assert "ASCII" in _refusal(full_width("12345678903")).message


def test_arabic_indic_digits_are_refused() -> None:
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in "12345678903")
    assert arabic_indic.isdigit()  # why a plain isdigit() check would not do
    assert "ASCII" in _refusal(arabic_indic).message


@pytest.mark.parametrize("code", ["1234567890a", "abcdefghijk", "12345 78903", "+1234567890"])
def test_letters_and_signs_are_refused(code: str) -> None:
    assert "ASCII" in _refusal(code).message


def test_wrong_check_digit_is_refused_and_names_the_field() -> None:
    err = _refusal("12345678904", field="new")
    assert "check digit" in err.message


def test_a_non_string_is_refused() -> None:
    _refusal(12345678903)


def test_remainders_zero_and_one_share_a_check_digit_so_such_codes_are_not_issued() -> None:
    # 0000000006 has remainder 1 and 0000000000 remainder 0: both end in 0, so the
    # one-digit slip between them passes the check. That is why neither is issued.
    assert rc.is_valid("00000000060")
    assert rc.is_valid("00000000000")
    assert rc.issuable_body(6) is None
    assert rc.issuable_body(0) is None
    assert rc.issuable_body(1234567890) == "12345678903"


def test_new_resident_code_avoids_taken_codes() -> None:
    first = rc.new_resident_code(random.Random(3))
    again = rc.new_resident_code(random.Random(3), taken={first})
    assert again != first
    assert rc.is_valid(again)


@given(st.integers(min_value=0, max_value=2**64))
def test_every_issued_code_is_valid(seed: int) -> None:
    code = rc.new_resident_code(random.Random(seed))
    assert rc.validate(code) == code


@given(
    st.integers(min_value=0, max_value=2**64),
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=1, max_value=9),
)
def test_changing_any_one_digit_of_an_issued_code_makes_it_invalid(
    seed: int, position: int, shift: int
) -> None:
    code = rc.new_resident_code(random.Random(seed))
    digit = str((int(code[position]) + shift) % 10)
    changed = code[:position] + digit + code[position + 1 :]
    assert changed != code
    assert not rc.is_valid(changed)
    with pytest.raises(InvalidArgument):
        rc.validate(changed)
