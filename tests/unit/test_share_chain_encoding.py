"""The log share's chain encoding and its signed heads (no database)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from comm_server import share_chain
from comm_server.share_heads import HeadError, SignedHead, key_name, open_head, parse_text
from renkei.tlog import note

AT = datetime(2026, 4, 1, 9, 30, 0, 123456, tzinfo=UTC)
ROW: tuple[object, ...] = (
    42,
    "requester",
    AT,
    "nenkin",
    "年金給付関係情報",
    "二十七",
    "A1",
    "Y-1",
    "T-1",
    '{"年金額":1}',
    "賦課",
    "OK",
    "",
    None,
)


def test_a_row_encodes_as_a_versioned_array_of_its_id_and_every_column() -> None:
    encoded = share_chain.encode_row(7, ROW)
    doc = json.loads(encoded)
    assert doc[0] == share_chain.ENCODING_VERSION
    assert doc[1] == 7
    assert len(doc) == 2 + len(share_chain.COLUMNS)
    assert doc[2 + share_chain.COLUMNS.index("logged_at")] == "2026-04-01T09:30:00.123456Z"
    assert "年金" in encoded.decode("utf-8")  # UTF-8 as is, not \\u escapes


def test_the_same_instant_in_another_zone_encodes_the_same() -> None:
    jst = timezone(timedelta(hours=9))
    other = list(ROW)
    other[2] = AT.astimezone(jst)
    assert share_chain.encode_row(7, ROW) == share_chain.encode_row(7, other)


@pytest.mark.parametrize("column", range(len(share_chain.COLUMNS)))
def test_every_column_and_the_id_change_the_encoding(column: int) -> None:
    changed = list(ROW)
    value = changed[column]
    if isinstance(value, datetime):
        changed[column] = value + timedelta(microseconds=1)
    elif isinstance(value, int):
        changed[column] = value + 1
    elif value is None:
        changed[column] = ""
    else:
        changed[column] = str(value) + "x"
    assert share_chain.encode_row(7, changed) != share_chain.encode_row(7, ROW)
    assert share_chain.encode_row(8, ROW) != share_chain.encode_row(7, ROW)


def test_null_and_empty_and_field_boundaries_are_distinct() -> None:
    a = list(ROW)
    b = list(ROW)
    a[12], a[13] = "", None
    b[12], b[13] = None, ""
    assert share_chain.encode_row(1, a) != share_chain.encode_row(1, b)
    a[9], a[10] = "ab", "c"
    b[9], b[10] = "a", "bc"
    assert share_chain.encode_row(1, a) != share_chain.encode_row(1, b)


def test_a_link_is_sha256_of_tag_previous_and_row() -> None:
    previous = bytes(32)
    encoded = share_chain.encode_row(1, ROW)
    want = hashlib.sha256(share_chain.LINK_TAG + previous + encoded).digest()
    assert share_chain.link(previous, encoded) == want


def test_chain_in_one_pass_equals_link_by_link() -> None:
    rows = [share_chain.encode_row(i, ROW) for i in range(1, 6)]
    start = share_chain.genesis(0, 0)
    digests = share_chain.chain(start, rows)
    previous = start
    for encoded, digest in zip(rows, digests, strict=True):
        previous = share_chain.link(previous, encoded)
        assert digest == previous


def test_genesis_names_where_the_chain_starts() -> None:
    assert share_chain.genesis(0, 0) != share_chain.genesis(3, 3)
    assert share_chain.genesis(3, 3) != share_chain.genesis(3, 4)


# -- signed heads ---------------------------------------------------------------


HEAD = SignedHead(
    "mhlw", 60, hashlib.sha256(b"x").digest(), datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
)


def test_a_signed_head_verifies_with_its_key_and_reads_back() -> None:
    signer = note.Ed25519Signer.generate(key_name("mhlw"))
    data = note.sign(HEAD.text(), [signer])
    assert data.decode().startswith("renkei agency log share mhlw\n60\n")
    assert open_head(data, "mhlw", [signer.verifier()]) == HEAD


def test_a_signed_head_fails_with_another_key() -> None:
    signer = note.Ed25519Signer.generate(key_name("mhlw"))
    other = note.Ed25519Signer.generate(key_name("mhlw"))
    data = note.sign(HEAD.text(), [signer])
    with pytest.raises(HeadError, match="no signature by a known key"):
        open_head(data, "mhlw", [other.verifier()])


def test_a_changed_head_fails_its_signature() -> None:
    signer = note.Ed25519Signer.generate(key_name("mhlw"))
    data = note.sign(HEAD.text(), [signer]).replace(b"\n60\n", b"\n61\n")
    with pytest.raises(HeadError, match="invalid signature"):
        open_head(data, "mhlw", [signer.verifier()])


def test_another_agencys_head_is_refused() -> None:
    with pytest.raises(HeadError, match="origin"):
        parse_text(replace(HEAD, agency_id="nenkin").text(), "mhlw")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("renkei agency log share mhlw\n60\n", "4 lines"),
        ("renkei agency log share mhlw\n060\nAAAA\n2026-04-01T09:30:00Z\n", "count"),
        ("renkei agency log share mhlw\n-1\nAAAA\n2026-04-01T09:30:00Z\n", "count"),
        ("renkei agency log share mhlw\n1\nAAAA\n2026-04-01T09:30:00Z\n", "3 bytes"),
        ("renkei agency log share mhlw\n1\n!!\n2026-04-01T09:30:00Z\n", "digest"),
        (HEAD.text().replace("2026-04-01T09:30:00Z", "yesterday"), "time"),
    ],
)
def test_malformed_heads_are_refused_saying_what(text: str, match: str) -> None:
    with pytest.raises(HeadError, match=match):
        parse_text(text, "mhlw")
