"""The add-checkpoint wire format (renkei.tlog.witness_protocol), against the spec's example."""

from __future__ import annotations

import base64

import pytest

from renkei.tlog import witness_protocol as wire

# c2sp.org/tlog-witness, "Example request body" (C2SP/C2SP tlog-witness.md).
SPEC_EXAMPLE = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurm"
    "RDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZ"
    "dXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
).encode()


def test_the_spec_example_parses_and_formats_back() -> None:
    parsed = wire.parse_request(SPEC_EXAMPLE)
    assert parsed.old_size == 20852014
    assert len(parsed.proof) == 4
    assert parsed.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
    assert parsed.checkpoint.startswith(b"example.com/behind-the-sofa\n20852163\n")
    assert parsed.checkpoint.endswith(b"zm9Q=\n")
    assert wire.format_request(parsed.old_size, parsed.proof, parsed.checkpoint) == SPEC_EXAMPLE


def test_no_proof_lines() -> None:
    parsed = wire.parse_request(b"old 0\n\nlog\n0\nAAAA\n\n- sig\n")
    assert (parsed.old_size, parsed.proof) == (0, ())


H = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"old 5\nlog\n", "no empty line"),
        (b"\n\ncheckpoint", "line 1: want 'old <size>'"),
        (b"new 5\n\ncheckpoint", "line 1: want 'old <size>'"),
        (b"old 05\n\ncheckpoint", "leading zeros"),
        (b"old -1\n\ncheckpoint", "not a decimal"),
        (b"old  5\n\ncheckpoint", "not a decimal"),
        (b"old 5 \n\ncheckpoint", "not a decimal"),
        (b"old 18446744073709551616\n\ncheckpoint", "exceeds 2\\^64-1"),
        (b"old \xd9\xa3\n\ncheckpoint", "not ASCII"),
        (f"old 5\n{H[:-1]}\n\ncheckpoint".encode(), "line 2 \\(proof hash\\): not base64"),
        (b"old 5\nAAAA\n\ncheckpoint", "line 2 \\(proof hash\\): 3 bytes"),
        (f"old 5\n{H}\nAB==\n\ncheckpoint".encode(), "line 3 .*canonical"),
        (f"old 5\n{H}\r\n\ncheckpoint".encode(), "line 2"),
        (("old 5\n" + f"{H}\n" * 64 + "\ncheckpoint").encode(), "64 consistency proof lines"),
        (b"old 5\n\n", "no checkpoint"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_line(body: bytes, why: str) -> None:
    with pytest.raises(wire.WireFormatError, match=why):
        wire.parse_request(body)


def test_63_proof_lines_are_allowed() -> None:
    body = ("old 5\n" + f"{H}\n" * 63 + "\ncheckpoint").encode()
    assert len(wire.parse_request(body).proof) == 63


def test_an_oversized_body_is_refused_before_it_is_read() -> None:
    with pytest.raises(wire.WireFormatError, match="over the limit"):
        wire.parse_request(b"old 0\n\n" + b"x" * wire.MAX_REQUEST_BYTES)


def test_format_refuses_what_parse_would() -> None:
    with pytest.raises(wire.WireFormatError):
        wire.format_request(-1, [], b"x")
    with pytest.raises(wire.WireFormatError):
        wire.format_request(True, [], b"x")  # a bool is an int, but not a size
    with pytest.raises(wire.WireFormatError, match="31 bytes"):
        wire.format_request(1, [bytes(31)], b"x")
    with pytest.raises(wire.WireFormatError, match="over the limit"):
        wire.format_request(1, [bytes(32)] * 64, b"x")


def test_size_body() -> None:
    assert wire.format_size(20852014) == b"20852014\n"
    assert wire.parse_size(b"20852014\n") == 20852014
    for bad in (b"12", b"012\n", b"12 \n", b"", b"\xff\n"):
        with pytest.raises(wire.WireFormatError):
            wire.parse_size(bad)
