"""``record_keys``: the registry's per-field checks before normalizing a record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_binding.records import MAX_FIELD_CHARS, record_keys
from renkei.fourfacts.normalize import FourFacts

_GOOD = {"name": "山田 太郎", "address": "横浜市中区港町1-2-3", "birth_date": "1958-05-14"}


def _expected_refusal(value: str) -> str | None:
    """The checks one by one, in the order they are reported."""
    if len(value) > MAX_FIELD_CHARS:
        return f"is {len(value)} characters; at most {MAX_FIELD_CHARS}"
    if any(ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F for c in value):
        return "contains control characters"
    if "\ufffd" in value:
        return f"has U+FFFD at character {value.index(chr(0xFFFD))} (undecodable bytes)"
    return None


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("山a \x00\x1f\x7f\x85\x9f\ufffd\xa0"), max_size=8),
    st.integers(min_value=0, max_value=MAX_FIELD_CHARS + 2),
)
def test_the_kana_field_is_judged_as_the_checks_say(text: str, padding: int) -> None:
    # One fast scan decides the common case; whatever it lets through or not, the
    # refusal (and its order: length, control characters, U+FFFD) is unchanged.
    kana = "ア" * padding + text
    want = _expected_refusal(kana)
    if want is None:
        record_keys(FourFacts(**_GOOD, kana=kana, sex="1"), "iso5218")
    else:
        with pytest.raises(ValueError, match=r"^kana: ") as err:
            record_keys(FourFacts(**_GOOD, kana=kana, sex="1"), "iso5218")
        assert str(err.value) == f"kana: {want}"
