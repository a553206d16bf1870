"""Unit tests for renkei.codes: ID codes and link codes.

The central property: a link code never translates to a wrong person. Every
single-character alteration of a valid code is tried (not sampled), plus a
seeded random sample of multi-character damage, and each must be refused with
one of the documented reasons.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

import grpc
import pytest

from renkei.codes import (
    ID_CODE_BYTES,
    LINK_CODE_BYTES,
    MAX_LINK_CODE_CHARS,
    AgencyKeys,
    IdCodeIssuer,
    LinkCodec,
    format_link_code,
    new_key,
    parse_link_code,
)
from renkei.errors import FailedPrecondition, InvalidArgument, PermissionDenied, RenkeiError

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase + "_-."
B64_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
REFUSALS = {
    "LINK_CODE_MALFORMED",
    "LINK_CODE_CORRUPT",
    "LINK_CODE_KEY_UNKNOWN",
    "LINK_CODE_FOREIGN",
}

# Fixed keys (not new_key()) so a failure reproduces byte for byte.
ID_KEY = bytes(range(64))
KEY_CITY_1 = bytes([1]) * 64
KEY_CITY_2 = bytes([2]) * 64
KEY_PENSION = bytes([3]) * 64
KEY_TAX = bytes([4]) * 64

RESIDENT = "12345678901"


def _codec() -> LinkCodec:
    return LinkCodec(
        {
            "city-001": AgencyKeys(current=1, keys={1: KEY_CITY_1}),
            "pension": AgencyKeys(current=1, keys={1: KEY_PENSION}),
            "nta.tax": AgencyKeys(current=1, keys={1: KEY_TAX}),
        }
    )


def _id_code(resident: str = RESIDENT) -> bytes:
    return IdCodeIssuer({1: ID_KEY}, 1).issue(resident)


def _refusal(codec: LinkCodec, agency_id: str, link_code: str) -> RenkeiError:
    """The error decoding raises; fails the test if the code decodes."""
    try:
        decoded = codec.decode(agency_id, link_code)
    except RenkeiError as err:
        return err
    pytest.fail(f"{link_code!r} decoded for {agency_id} to {decoded!r}; expected a refusal")


# ------------------------------------------------------------------ ID codes


def test_new_key_is_64_random_bytes() -> None:
    a, b = new_key(), new_key()
    assert len(a) == len(b) == 64
    assert a != b


def test_id_code_is_deterministic_and_reversible() -> None:
    issuer = IdCodeIssuer({1: ID_KEY}, 1)
    code = issuer.issue(RESIDENT)
    assert isinstance(code, bytes)
    assert len(code) == ID_CODE_BYTES
    assert issuer.issue(RESIDENT) == code
    assert IdCodeIssuer({1: ID_KEY}, 1).issue(RESIDENT) == code  # a fresh issuer, same key
    assert issuer.resident_code(code) == RESIDENT
    assert RESIDENT.encode() not in code


def test_id_codes_differ_per_person_and_per_key() -> None:
    issuer = IdCodeIssuer({1: ID_KEY}, 1)
    residents = ["00000000000", "00000000001", "99999999999", RESIDENT]
    codes = [issuer.issue(r) for r in residents]
    assert len(set(codes)) == len(residents)
    assert [issuer.resident_code(c) for c in codes] == residents
    assert IdCodeIssuer({1: bytes(64)}, 1).issue(RESIDENT) != issuer.issue(RESIDENT)


@pytest.mark.parametrize(
    "resident",
    [
        "",
        "1234567890",  # 10 digits
        "123456789012",  # 12 digits
        "1234567890a",
        " 12345678901",
        "12345678901 ",
        "1234-567-8901",
        "".join(chr(0xFF10 + int(d)) for d in "12345678901"),  # full-width
        "".join(chr(0x0660 + int(d)) for d in "12345678901"),  # Arabic-Indic
        "12345678901\x00",
    ],
)
def test_malformed_resident_codes_are_refused(resident: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        IdCodeIssuer({1: ID_KEY}, 1).issue(resident)
    assert info.value.reason == "RESIDENT_CODE_MALFORMED"
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.metadata == {"field": "resident_code"}


def test_resident_code_with_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        IdCodeIssuer({1: ID_KEY}, 1).issue(RESIDENT + "\n")
    assert info.value.reason == "RESIDENT_CODE_MALFORMED"


def test_id_code_under_another_key_or_altered_does_not_reverse() -> None:
    code = _id_code()
    with pytest.raises(InvalidArgument) as info:
        IdCodeIssuer({1: bytes(64)}, 1).resident_code(code)
    assert info.value.reason == "ID_CODE_INVALID"
    issuer = IdCodeIssuer({1: ID_KEY}, 1)
    for i in range(len(code)):
        damaged = code[:i] + bytes([code[i] ^ 0x01]) + code[i + 1 :]
        with pytest.raises(InvalidArgument) as info:
            issuer.resident_code(damaged)
        assert info.value.reason == "ID_CODE_INVALID"
    for damaged in (b"", code[:-1], code + b"\0"):
        with pytest.raises(InvalidArgument):
            issuer.resident_code(damaged)


# ------------------------------------------------------------------ link codes: good path


def test_link_code_round_trip() -> None:
    codec = _codec()
    id_code = _id_code()
    for agency in ("city-001", "pension", "nta.tax"):
        link = codec.encode(agency, id_code)
        assert codec.decode(agency, link) == (id_code, 1)


def test_link_code_format_carries_key_version() -> None:
    link = _codec().encode("city-001", _id_code())
    version, _, body = link.partition(".")
    assert version == "1"
    assert len(body) == (LINK_CODE_BYTES * 8 + 5) // 6  # unpadded base64
    assert set(body) <= set(B64_ALPHABET)
    assert "=" not in link
    assert len(link) <= MAX_LINK_CODE_CHARS
    assert parse_link_code(link)[0] == 1
    assert len(parse_link_code(link)[1]) == LINK_CODE_BYTES


def test_link_codes_differ_per_agency_for_the_same_id_code() -> None:
    codec = _codec()
    id_code = _id_code()
    links = {codec.encode(a, id_code) for a in ("city-001", "pension", "nta.tax")}
    assert len(links) == 3
    # The same key under two agency ids still yields different codes (agency id is AD).
    shared = LinkCodec(
        {
            "a": AgencyKeys(current=1, keys={1: KEY_CITY_1}),
            "b": AgencyKeys(current=1, keys={1: KEY_CITY_1}),
        }
    )
    assert shared.encode("a", id_code) != shared.encode("b", id_code)


def test_link_codes_differ_per_person() -> None:
    codec = _codec()
    assert codec.encode("city-001", _id_code("00000000001")) != codec.encode(
        "city-001", _id_code("00000000002")
    )


def test_link_code_is_deterministic_per_agency_and_version() -> None:
    id_code = _id_code()
    first = _codec().encode("city-001", id_code)
    assert _codec().encode("city-001", id_code) == first  # a fresh codec, same keys
    codec = _codec()
    assert codec.encode("city-001", id_code) == codec.encode("city-001", id_code) == first


def test_codec_agencies_and_current_version() -> None:
    codec = LinkCodec(
        {
            "city-001": AgencyKeys(current=2, keys={1: KEY_CITY_1, 2: KEY_CITY_2}),
            "pension": AgencyKeys(current=1, keys={1: KEY_PENSION}),
        }
    )
    assert codec.agencies() == frozenset({"city-001", "pension"})
    assert codec.current_version("city-001") == 2
    assert codec.current_version("pension") == 1
    with pytest.raises(FailedPrecondition) as info:
        codec.current_version("nobody")
    assert info.value.reason == "AGENCY_HAS_NO_KEY"


def test_agency_keys_cipher_only_for_known_versions() -> None:
    keys = AgencyKeys(current=1, keys={1: KEY_CITY_1})
    assert keys.cipher(1) is not None
    assert keys.cipher(1) is keys.cipher(1)  # cached
    assert keys.cipher(2) is None
    assert keys.cipher(0) is None


# ------------------------------------------------------------------ link codes: refusals


def test_code_presented_by_another_agency_is_foreign() -> None:
    codec = _codec()
    link = codec.encode("city-001", _id_code())
    for other in ("pension", "nta.tax"):
        err = _refusal(codec, other, link)
        assert isinstance(err, PermissionDenied)
        assert err.reason == "LINK_CODE_FOREIGN"
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        assert "city-001" not in err.message  # does not say whose code it is
        assert err.metadata == {"field": "link_code"}


def test_every_single_character_substitution_is_refused() -> None:
    codec = LinkCodec(
        {
            "city-001": AgencyKeys(current=1, keys={1: KEY_CITY_1}),
            "pension": AgencyKeys(current=1, keys={1: KEY_PENSION}),
        }
    )
    link = codec.encode("city-001", _id_code())
    dot = link.index(".")
    last = len(link) - 1
    tried = 0
    for pos, original in enumerate(link):
        for ch in ALPHABET:
            if ch == original:
                continue
            altered = link[:pos] + ch + link[pos + 1 :]
            err = _refusal(codec, "city-001", altered)
            tried += 1
            assert err.reason in REFUSALS, (pos, ch, err)
            if pos < dot:  # the version digit
                expected = "LINK_CODE_KEY_UNKNOWN" if ch in "23456789" else "LINK_CODE_MALFORMED"
                assert err.reason == expected, (pos, ch, err)
            elif pos == dot or ch == ".":
                assert err.reason == "LINK_CODE_MALFORMED", (pos, ch, err)
            elif pos < last:
                # A changed character keeps length and canonical form: only the tag catches it.
                assert err.reason == "LINK_CODE_CORRUPT", (pos, ch, err)
            else:
                assert err.reason in {"LINK_CODE_CORRUPT", "LINK_CODE_MALFORMED"}, (pos, ch, err)
    assert tried == len(link) * (len(ALPHABET) - 1)


def test_every_single_character_substitution_is_refused_with_rotated_keys() -> None:
    # With versions 1 and 2 both present, '1' -> '2' reaches the v2 key and must fail the tag.
    codec = LinkCodec({"city-001": AgencyKeys(current=1, keys={1: KEY_CITY_1, 2: KEY_CITY_2})})
    link = codec.encode("city-001", _id_code())
    for pos, original in enumerate(link):
        for ch in ALPHABET:
            if ch != original:
                err = _refusal(codec, "city-001", link[:pos] + ch + link[pos + 1 :])
                assert err.reason in REFUSALS, (pos, ch, err)
    err = _refusal(codec, "city-001", "2" + link[1:])
    assert err.reason == "LINK_CODE_CORRUPT"


def test_random_multi_character_damage_is_refused() -> None:
    rng = random.Random(20240601)
    codec = _codec()
    for _ in range(300):
        id_code = _id_code(f"{rng.randrange(10**11):011d}")
        agency = rng.choice(["city-001", "pension", "nta.tax"])
        link = codec.encode(agency, id_code)
        chars = list(link)
        for pos in rng.sample(range(len(chars)), rng.randint(2, 6)):
            chars[pos] = rng.choice([c for c in ALPHABET if c != chars[pos]])
        err = _refusal(codec, agency, "".join(chars))
        assert err.reason in REFUSALS


def test_random_single_bit_flips_of_ciphertext_are_corrupt() -> None:
    rng = random.Random(7)
    codec = _codec()
    link = codec.encode("pension", _id_code())
    version, raw = parse_link_code(link)
    for _ in range(200):
        bit = rng.randrange(len(raw) * 8)
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        err = _refusal(codec, "pension", format_link_code(version, bytes(damaged)))
        assert err.reason == "LINK_CODE_CORRUPT"


def test_non_canonical_base64_is_malformed() -> None:
    codec = _codec()
    link = codec.encode("city-001", _id_code())
    # 44 bytes = 352 bits; the 59th character carries 4 of them and 2 unused low bits.
    unused = 59 * 6 - LINK_CODE_BYTES * 8
    assert unused == 2
    last = B64_ALPHABET.index(link[-1])
    assert last & 0b11 == 0  # canonical: unused bits are zero
    for low in range(1, 4):
        alias = link[:-1] + B64_ALPHABET[last | low]
        err = _refusal(codec, "city-001", alias)
        assert err.reason == "LINK_CODE_MALFORMED", (alias, err)
        assert isinstance(err, InvalidArgument)


@pytest.mark.parametrize(
    "make",
    [
        lambda link: link + "=",  # padding
        lambda link: link + "==",
        lambda link: link[:-1],  # one character short
        lambda link: link[:-4],  # three bytes short
        lambda link: link + "AAAA",  # three bytes long
        lambda link: link.replace("-", "+").replace("_", "/") if "-" in link or "_" in link else "",
        lambda link: link.split(".")[1],  # no version
        lambda link: "." + link.split(".")[1],
        lambda link: "0" + link[1:],  # version 0
        lambda link: "0" + link,  # leading zero
        lambda link: "1234567" + link[1:],  # version of 7 digits
        lambda link: "-1" + link[1:],
        lambda link: "1." + link,
        lambda link: " " + link,
        lambda link: link + " ",
        lambda link: link.upper() if link != link.upper() else "",
        lambda link: "",
        lambda link: "1.",
        lambda link: "1",
    ],
)
def test_malformed_shapes_are_refused(make: Callable[[str], str]) -> None:
    codec = _codec()
    link = codec.encode("city-001", _id_code())
    bad = make(link)
    assert bad != link
    err = _refusal(codec, "city-001", bad)
    assert err.reason in {"LINK_CODE_MALFORMED", "LINK_CODE_CORRUPT"}
    if bad.upper() != link.upper():  # case change keeps the shape; all others break it
        assert err.reason == "LINK_CODE_MALFORMED"
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.metadata.get("field") == "link_code"


def test_link_code_with_trailing_newline_is_refused() -> None:
    codec = _codec()
    link = codec.encode("city-001", _id_code())
    err = _refusal(codec, "city-001", link + "\n")
    assert err.reason == "LINK_CODE_MALFORMED"


def test_over_long_input_is_malformed() -> None:
    codec = _codec()
    link = codec.encode("city-001", _id_code())
    for bad in (link + "A" * (MAX_LINK_CODE_CHARS - len(link) + 1), "1." + "A" * 10_000):
        assert len(bad) > MAX_LINK_CODE_CHARS
        err = _refusal(codec, "city-001", bad)
        assert isinstance(err, InvalidArgument)
        assert err.reason == "LINK_CODE_MALFORMED"
        assert str(MAX_LINK_CODE_CHARS) in err.message
    # Exactly at the limit the length check passes and the shape check refuses it.
    at_limit = "1." + "A" * (MAX_LINK_CODE_CHARS - 2)
    assert _refusal(codec, "city-001", at_limit).reason == "LINK_CODE_MALFORMED"


def test_unknown_key_version() -> None:
    codec = _codec()
    _, raw = parse_link_code(codec.encode("city-001", _id_code()))
    for version in (2, 9, 999999):
        err = _refusal(codec, "city-001", format_link_code(version, raw))
        assert isinstance(err, InvalidArgument)
        assert err.reason == "LINK_CODE_KEY_UNKNOWN"
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.metadata == {"field": "link_code", "key_version": str(version)}
        assert err.to_status().code == grpc.StatusCode.INVALID_ARGUMENT


def test_agency_without_keys() -> None:
    codec = _codec()
    link = codec.encode("city-001", _id_code())
    with pytest.raises(FailedPrecondition) as info:
        codec.encode("unknown-agency", _id_code())
    assert info.value.reason == "AGENCY_HAS_NO_KEY"
    assert info.value.metadata == {"agency_id": "unknown-agency"}
    err = _refusal(codec, "unknown-agency", link)
    assert isinstance(err, FailedPrecondition)
    assert err.reason == "AGENCY_HAS_NO_KEY"
    assert LinkCodec({}).agencies() == frozenset()


def test_key_rotation_decodes_old_codes_and_issues_new_ones() -> None:
    id_code = _id_code()
    before = LinkCodec({"city-001": AgencyKeys(current=1, keys={1: KEY_CITY_1})})
    old = before.encode("city-001", id_code)
    assert old.startswith("1.")

    after = LinkCodec({"city-001": AgencyKeys(current=2, keys={1: KEY_CITY_1, 2: KEY_CITY_2})})
    new = after.encode("city-001", id_code)
    assert new.startswith("2.")
    assert new != old
    assert after.decode("city-001", old) == (id_code, 1)
    assert after.decode("city-001", new) == (id_code, 2)
    assert after.encode("city-001", id_code) == new  # deterministic under v2 as well

    # Before rotation the v2 code names a key the hub does not yet have.
    assert _refusal(before, "city-001", new).reason == "LINK_CODE_KEY_UNKNOWN"
    # After retiring v1, old codes are refused as unknown-key, not misread.
    retired = LinkCodec({"city-001": AgencyKeys(current=2, keys={2: KEY_CITY_2})})
    assert _refusal(retired, "city-001", old).reason == "LINK_CODE_KEY_UNKNOWN"
    assert retired.decode("city-001", new) == (id_code, 2)


def test_version_is_authenticated_not_just_a_key_selector() -> None:
    # Same key registered under two versions: relabelling the version must not decode.
    codec = LinkCodec({"city-001": AgencyKeys(current=1, keys={1: KEY_CITY_1, 2: KEY_CITY_1})})
    link = codec.encode("city-001", _id_code())
    assert _refusal(codec, "city-001", "2" + link[1:]).reason == "LINK_CODE_CORRUPT"


def test_foreign_detection_with_rotated_keys() -> None:
    codec = LinkCodec(
        {
            "city-001": AgencyKeys(current=2, keys={1: KEY_CITY_1, 2: KEY_CITY_2}),
            "pension": AgencyKeys(current=1, keys={1: KEY_PENSION}),
        }
    )
    id_code = _id_code()
    v2 = codec.encode("city-001", id_code)
    # pension has no v2 key: it cannot even try.
    assert _refusal(codec, "pension", v2).reason == "LINK_CODE_KEY_UNKNOWN"
    v1_pension = codec.encode("pension", id_code)
    assert _refusal(codec, "city-001", v1_pension).reason == "LINK_CODE_FOREIGN"


def test_encoding_arbitrary_bytes_round_trips_only_at_id_code_length() -> None:
    codec = _codec()
    # An ID code of the wrong length yields a ciphertext parse_link_code refuses.
    link = codec.encode("city-001", b"x" * (ID_CODE_BYTES + 1))
    assert _refusal(codec, "city-001", link).reason == "LINK_CODE_MALFORMED"


def test_parse_and_format_link_code() -> None:
    raw = bytes(range(LINK_CODE_BYTES))
    text = format_link_code(42, raw)
    assert text.startswith("42.")
    assert parse_link_code(text) == (42, raw)
    with pytest.raises(InvalidArgument) as info:
        parse_link_code(format_link_code(1, raw[:-1]))
    assert info.value.reason == "LINK_CODE_MALFORMED"


def test_id_code_carries_its_key_version_and_reissues_under_the_current_one() -> None:
    old = IdCodeIssuer({1: ID_KEY}, 1)
    rotated = IdCodeIssuer({1: ID_KEY, 2: KEY_CITY_2}, 2)
    code_v1 = old.issue(RESIDENT)
    assert code_v1[0] == 1
    code_v2 = rotated.reissue(code_v1)
    assert code_v2[0] == 2
    assert code_v2 != code_v1
    assert rotated.resident_code(code_v1) == rotated.resident_code(code_v2) == RESIDENT
    with pytest.raises(InvalidArgument) as info:
        old.resident_code(code_v2)
    assert info.value.reason == "ID_CODE_INVALID"


def test_an_old_key_version_is_accepted_inside_its_window_and_refused_after() -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2026, 4, 1, tzinfo=UTC)]
    until = now[0] + timedelta(days=30)
    v1 = LinkCodec({"city-001": AgencyKeys(current=1, keys={1: KEY_CITY_1})})
    old_code = v1.encode("city-001", _id_code())
    codec = LinkCodec(
        {"city-001": AgencyKeys(2, {1: KEY_CITY_1, 2: KEY_CITY_2}, {1: until})}, lambda: now[0]
    )
    assert codec.decode("city-001", old_code) == (_id_code(), 1)
    version = codec.newest_version("city-001")
    new_code = codec.encode("city-001", codec.decode("city-001", old_code)[0], version)
    assert version == 2
    assert codec.decode("city-001", new_code) == (_id_code(), 2)
    now[0] = until
    err = _refusal(codec, "city-001", old_code)
    assert isinstance(err, FailedPrecondition)
    assert err.reason == "LINK_CODE_KEY_RETIRED"
    assert err.metadata["key_version"] == "1"
    assert codec.decode("city-001", new_code) == (_id_code(), 2)


def test_during_a_rotation_the_newest_version_is_made_only_for_the_rekey() -> None:
    codec = LinkCodec({"city-001": AgencyKeys(1, {1: KEY_CITY_1, 2: KEY_CITY_2})})
    assert codec.current_version("city-001") == 1
    assert codec.newest_version("city-001") == 2
    assert codec.encode("city-001", _id_code()).startswith("1.")
    newest = codec.newest_version("city-001")
    assert codec.encode("city-001", _id_code(), newest).startswith("2.")


# ------------------------------------------------------------------ many at once (bulk relay)


def _each(codec: LinkCodec, agency_id: str, link_code: str) -> tuple[bytes, int] | tuple[str, str]:
    try:
        return codec.decode(agency_id, link_code)
    except RenkeiError as err:
        return (err.code.name, err.reason)


def _many(codec: LinkCodec, agency_id: str, link_codes: list[str]) -> list[object]:
    return [
        (got.code.name, got.reason) if isinstance(got, RenkeiError) else got
        for got in codec.decode_many(agency_id, link_codes)
    ]


def test_encode_many_is_encode_for_each_in_order() -> None:
    codec = _codec()
    ids = [_id_code(f"{n:011d}") for n in range(5)]
    assert codec.encode_many("pension", ids) == [codec.encode("pension", i) for i in ids]
    assert codec.encode_many("pension", []) == []


def test_decode_many_is_decode_for_each_with_each_refusal_in_place() -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2026, 4, 1, tzinfo=UTC)]
    until = now[0] + timedelta(days=30)
    codec = LinkCodec(
        {
            "city-001": AgencyKeys(2, {1: KEY_CITY_1, 2: KEY_CITY_2}, {1: until}),
            "pension": AgencyKeys(current=1, keys={1: KEY_PENSION}),
        },
        lambda: now[0],
    )
    good = codec.encode("city-001", _id_code())
    old = codec.encode("city-001", _id_code("10987654321"), 1)
    other = codec.encode("city-001", _id_code("11111111111"))
    foreign = codec.encode("pension", _id_code())
    corrupt = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    codes = [
        good,
        "",
        "not a code",
        corrupt,
        foreign,
        "7." + good.split(".")[1],  # a version the agency does not have
        old,
        "x" * (MAX_LINK_CODE_CHARS + 1),
        other,
        good,
    ]
    expected = [_each(codec, "city-001", c) for c in codes]
    assert _many(codec, "city-001", codes) == expected
    assert [e[1] for e in expected[1:8]] == [
        "LINK_CODE_MALFORMED",
        "LINK_CODE_MALFORMED",
        "LINK_CODE_CORRUPT",
        "LINK_CODE_FOREIGN",
        "LINK_CODE_KEY_UNKNOWN",
        1,
        "LINK_CODE_MALFORMED",
    ]
    now[0] = until  # version 1 retires: that person alone is refused
    got = _many(codec, "city-001", codes)
    assert got[6] == ("FAILED_PRECONDITION", "LINK_CODE_KEY_RETIRED")
    assert got == [_each(codec, "city-001", c) for c in codes]


def test_decode_many_for_an_agency_without_keys_refuses_every_code() -> None:
    codec = _codec()
    code = codec.encode("city-001", _id_code())
    assert (
        _many(codec, "nobody", [code, code]) == [("FAILED_PRECONDITION", "AGENCY_HAS_NO_KEY")] * 2
    )
