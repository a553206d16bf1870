"""The hub log's entry encoding: one canonical form, salted, refused when altered."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from renkei.tlog import merkle
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry, EntryError, differences, new_salt

AT = datetime(2026, 12, 7, 5, 4, 3, 21, tzinfo=UTC)


def _entry(**changes: object) -> Entry:
    fields: dict[str, object] = {
        "kind": EXCHANGE,
        "serial": 42,
        "logged_at": AT,
        "requester": "city-a",
        "provider": "pension",
        "salt": bytes(range(16)),
        "legal_basis_item": "2-1",
        "info_kind": "年金給付関係情報",
        "policy_version": "annex-2015",
        "person": "ab" * 32,
        "outcome": "PENDING",
    }
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]  # the test's own field dict


def test_encoding_is_sorted_compact_utf8_json_and_round_trips() -> None:
    entry = _entry()
    data = entry.encode()
    assert data.startswith(b'{"info_kind":"\xe5\xb9\xb4')  # UTF-8, not \\u escapes
    assert b" " not in data
    doc = json.loads(data)
    assert list(doc) == sorted(doc)
    assert doc["logged_at"] == "2026-12-07T05:04:03.000021Z"
    assert Entry.decode(data) == entry
    assert entry.leaf_hash() == merkle.leaf_hash(data)


def test_salt_changes_the_leaf_of_the_same_event() -> None:
    assert _entry(salt=new_salt()).leaf_hash() != _entry(salt=new_salt()).leaf_hash()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"[]", "not a JSON object"),
        (b"\xff", "not JSON"),
        (b'{"v":1}', "keys: missing"),
        (_entry().encode().replace(b'"serial":42', b'"serial":42.0'), "serial"),
        (_entry().encode().replace(b'"serial":42', b'"serial": 42'), "canonical"),
        (_entry().encode().replace(b'"v":1', b'"v":2'), "version"),
        (_entry().encode().replace(b'"kind":"exchange"', b'"kind":"nope"'), "kind"),
        (b"{" + b" " * 5000 + b"}", "more than"),
    ],
)
def test_decode_refuses_what_is_not_the_one_encoding(data: bytes, why: str) -> None:
    with pytest.raises(EntryError, match=why):
        Entry.decode(data)


def test_differences_name_the_fields() -> None:
    ours = _entry()
    theirs = _entry(kind=OUTCOME, provider="insurer")
    assert differences(ours, theirs) == ["kind", "provider"]
    assert differences(ours, ours) == []


def test_entitlement_is_requester_or_provider() -> None:
    entry = _entry()
    assert entry.entitled("city-a")
    assert entry.entitled("pension")
    assert not entry.entitled("insurer")


@pytest.mark.parametrize(
    "text",
    ["", "年金", 'quote " and \\ backslash', "\x00\x1f\x7f control", "\u2028\u2029", "😀 astral"],
)
def test_the_fast_encoding_is_json_dumps_canonical_form(text: str) -> None:
    entry = _entry(info_kind=text, reason=text, person=text)
    expected = json.dumps(
        entry.document(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode("utf-8")
    assert entry.encode() == expected
    assert Entry.decode(expected) == entry
