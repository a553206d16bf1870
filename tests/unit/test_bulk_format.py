"""renkei.bulk: serial ranges round-trip, answers bind to their (index, serial) pairs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renkei import bulk, limits
from renkei.errors import InvalidArgument, RenkeiError


@given(st.lists(st.integers(min_value=0, max_value=10**12), max_size=200))
def test_serial_ranges_round_trip(serials: list[int]) -> None:
    assert bulk.parse_serials(bulk.format_serials(serials)) == serials


def test_consecutive_serials_are_one_range() -> None:
    assert bulk.format_serials(list(range(101, 5101))) == "101-5100"
    assert bulk.format_serials([0, 0, 7, 8, 10]) == "0,0,7-8,10"


@pytest.mark.parametrize("text", ["x", "5-3", "1-999999", "1,,2"])
def test_bad_serial_metadata_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        bulk.parse_serials(text)
    assert caught.value.reason == "BULK_SERIALS_INVALID"


def test_answer_info_binds_every_pair_and_the_nonce() -> None:
    args = ("141003", "nenkin", "年金給付関係情報", "二十七")
    base = bulk.answer_info(*args, b"n" * 16, [(0, 10), (1, 11)])
    assert base != bulk.answer_info(*args, b"n" * 16, [(0, 11), (1, 10)])
    assert base != bulk.answer_info(*args, b"m" * 16, [(0, 10), (1, 11)])
    assert base != bulk.answer_info(*args, b"n" * 16, [(0, 10)])


@pytest.mark.parametrize("count", [0, limits.MAX_BULK_ITEMS + 1])
def test_count_limits_name_the_field(count: int) -> None:
    with pytest.raises(RenkeiError) as caught:
        bulk.check_count("items", count)
    assert caught.value.metadata["field"] == "items"
