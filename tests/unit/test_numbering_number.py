"""The 12-digit Number: check digit, validation, generation (numbering/number.py)."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from numbering import number
from renkei.errors import InvalidArgument

PUBLISHED = ("123456789018", "621498320257", "111111111118")

elevens = st.text(alphabet="0123456789", min_size=11, max_size=11)
digits = st.sampled_from("0123456789")


def wide(ascii_digits: str) -> str:
    """The same digits in full width (U+FF10-U+FF19), as typed with a Japanese IME."""
    return ascii_digits.translate({ord("0") + i: 0xFF10 + i for i in range(10)})


def arabic_indic(ascii_digits: str) -> str:
    """The same digits as Arabic-Indic digits: str.isdigit() accepts them too."""
    return ascii_digits.translate({ord("0") + i: 0x0660 + i for i in range(10)})


def _residue(eleven: str) -> int:
    return sum(int(d) * w for d, w in zip(eleven, number.WEIGHTS, strict=True)) % 11


# ------------------------------------------------------------------ check digit


@pytest.mark.parametrize("valid", PUBLISHED)
def test_published_examples_are_valid(valid: str) -> None:
    assert number.check_digit(valid[:11]) == int(valid[11])
    assert number.is_valid(valid)
    assert number.validate(valid) == valid


@pytest.mark.parametrize(
    "invalid",
    [
        "123456789010",  # wrong check digit
        "123456789019",
        "621498320258",
        "111111111110",
        "213456789018",  # first two digits swapped
    ],
)
def test_wrong_check_digit_is_invalid(invalid: str) -> None:
    assert not number.is_valid(invalid)
    with pytest.raises(InvalidArgument) as exc:
        number.validate(invalid)
    assert exc.value.reason == "INVALID_FIELD"
    assert exc.value.metadata == {"field": "number"}
    assert exc.value.message.startswith("number: check digit")


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("", "is required"),
        ("12345678901", "must be 12 digits"),
        ("1234567890180", "must be 12 digits"),
        (wide("123456789018"), "ASCII digits"),  # full-width
        (arabic_indic("123456789018"), "ASCII digits"),  # Arabic-Indic: str.isdigit() says yes
        ("12345678901a", "ASCII digits"),
        ("1234 5678 90", "ASCII digits"),
        ("-12345678901", "ASCII digits"),
        ("12345678901\n", "ASCII digits"),
    ],
)
def test_malformed_number_names_the_field(bad: str, problem: str) -> None:
    assert not number.is_valid(bad)
    with pytest.raises(InvalidArgument) as exc:
        number.validate(bad, field="old_number")
    assert exc.value.reason == "INVALID_FIELD"
    assert exc.value.metadata == {"field": "old_number"}
    assert exc.value.message.startswith("old_number: ")
    assert problem in exc.value.message


def test_check_digit_wants_eleven_ascii_digits() -> None:
    for bad in ("1234567890", "123456789012", wide("12345678901"), "1234567890x"):
        with pytest.raises(ValueError, match="11 ASCII digits"):
            number.check_digit(bad)


@given(elevens)
def test_check_digit_round_trip(eleven: str) -> None:
    full = number.with_check_digit(eleven)
    assert number.is_valid(full)
    assert full[:11] == eleven
    for other in "0123456789":
        if other != full[11]:
            assert not number.is_valid(eleven + other)


@given(elevens)
def test_check_digit_follows_the_ordinance(eleven: str) -> None:
    r = _residue(eleven)
    assert number.check_digit(eleven) == (0 if r in (0, 1) else 11 - r)


# ----------------------------------------------- what the check digit detects


@given(elevens, st.integers(0, 10), digits)
@example("59574890682", 0, "7")  # both residues hit 0/1: the undetected case
def test_single_substitution_is_detected_unless_residues_are_0_and_1(
    eleven: str, position: int, new_digit: str
) -> None:
    """Not every single-digit substitution is caught, and this says exactly which.

    Each weight is a unit mod 11 and a digit changes by at most 9, so the
    residue r always changes. The check digit maps r = 0 and r = 1 to the same
    value 0, so a substitution between those two residues slips through; every
    other one changes the check digit. A changed check digit itself is always
    caught.
    """
    valid = number.with_check_digit(eleven)
    if valid[position] == new_digit:
        return
    altered = valid[:position] + new_digit + valid[position + 1 :]
    if position == 11:
        assert not number.is_valid(altered)
        return
    residues = {_residue(valid[:11]), _residue(altered[:11])}
    assert len(residues) == 2  # r always moves
    assert number.is_valid(altered) == (residues == {0, 1})


def test_an_undetected_substitution_exists() -> None:
    # 5 -> 7 at the first digit (weight 6) moves r from 0 to 1: both check to 0.
    assert number.is_valid("595748906820")
    assert number.is_valid("795748906820")


# ------------------------------------------------------------------ generation


@given(st.integers(0, 10**11 - 1))
def test_new_number_is_always_valid(drawn: int) -> None:
    # Feed every part of the random space through new_number, not just what
    # the CSPRNG happens to give in one run.
    with mock.patch("secrets.randbelow", return_value=drawn) as rand:
        fresh = number.new_number()
    rand.assert_called_once_with(10**11)
    assert number.is_valid(fresh)
    assert fresh[:11] == f"{drawn:011d}"


def test_new_number_uses_the_csprng() -> None:
    fresh = {number.new_number() for _ in range(2000)}
    assert all(number.is_valid(n) for n in fresh)
    assert len(fresh) == 2000  # 2000 draws from 10^11: a repeat is a broken source


# ------------------------------------------------------------------ resident codes


@given(elevens)
def test_any_eleven_ascii_digits_are_a_resident_code_shape(code: str) -> None:
    assert number.validate_resident_code(code) == code


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("", "is required"),
        ("1234567890", "must be 11 digits"),
        ("123456789012", "must be 11 digits"),
        (wide("12345678901"), "ASCII digits"),
        ("1234567890a", "ASCII digits"),
        ("1234567890\n", "ASCII digits"),
    ],
)
def test_malformed_resident_code_names_the_field(bad: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        number.validate_resident_code(bad)
    assert exc.value.reason == "INVALID_FIELD"
    assert exc.value.metadata == {"field": "resident_code"}
    assert exc.value.message.startswith("resident_code: ")
    assert problem in exc.value.message


def test_format_is_four_four_four() -> None:
    assert number.format_number("123456789018") == "1234 5678 9018"
