"""Unit tests for renkei.tlog.note: C2SP signed notes, against Go's known answers.

The vectors (tests/unit/fixtures/note/vectors.json) are copied from golang.org/x/mod's
sumdb/note tests, the C2SP spec and transparency-dev/formats; each names its source.
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from renkei.tlog import note

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "note" / "vectors.json").read_text("utf-8")
)
GO = VECTORS["go_sumdb_note"]
PETER = note.parse_verifier_key(GO["peter_verifier_key"])
ENOCH = note.parse_verifier_key(GO["enoch_verifier_key"])
PETER_SIGNER = note.parse_signer_key(GO["peter_signer_key"])
TEXT: str = GO["text"]
PETER_LINE: str = GO["peter_signature_line"]
ENOCH_LINE: str = GO["enoch_signature_line"]

# One key for the property tests: generating a key per example would be slow.
SIGNER = note.Ed25519Signer(
    "example.com/renkei-test", ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
)


# --- Go's known answers ------------------------------------------------------------


def test_go_keys_parse_and_format_back_byte_for_byte() -> None:
    assert PETER.name == "PeterNeumann"
    assert PETER.key_id == 0xC74F20A3
    assert PETER.verifier_key() == GO["peter_verifier_key"]
    assert PETER_SIGNER.signer_key() == GO["peter_signer_key"]
    assert PETER_SIGNER.verifier().verifier_key() == GO["peter_verifier_key"]
    assert ENOCH.verifier_key() == GO["enoch_verifier_key"]


def test_signing_goes_text_gives_goes_signature_byte_for_byte() -> None:
    # Ed25519 is deterministic: same key, same text, same bytes as Go's TestSign.
    assert note.sign(TEXT, [PETER_SIGNER]) == GO["signed_by_peter"].encode()


def test_goes_signed_note_opens() -> None:
    opened = note.open(GO["signed_by_peter"].encode(), [PETER])
    assert opened.text == TEXT
    assert [s.line() for s in opened.signatures] == [PETER_LINE]
    assert opened.unverified == ()


def test_go_open_one_verified_one_not() -> None:
    # TestOpen: Enoch's signature is kept, unverified, when only Peter is known.
    opened = note.open((TEXT + "\n" + PETER_LINE + ENOCH_LINE).encode(), [PETER])
    assert [s.line() for s in opened.signatures] == [PETER_LINE]
    assert [s.line() for s in opened.unverified] == [ENOCH_LINE]


def test_go_open_both_verified() -> None:
    opened = note.open((TEXT + "\n" + PETER_LINE + ENOCH_LINE).encode(), [PETER, ENOCH])
    assert [s.line() for s in opened.signatures] == [PETER_LINE, ENOCH_LINE]
    assert opened.unverified == ()


def test_go_open_none_known_is_refused_and_names_the_signers() -> None:
    with pytest.raises(note.UnknownKeyError, match=r"PeterNeumann\+c74f20a3") as err:
        note.open((TEXT + "\n" + PETER_LINE + ENOCH_LINE).encode(), [])
    assert [s.line() for s in err.value.unverified] == [PETER_LINE, ENOCH_LINE]


def test_go_repeated_signatures_count_once() -> None:
    msg = TEXT + "\n" + PETER_LINE + PETER_LINE + ENOCH_LINE + ENOCH_LINE
    opened = note.open(msg.encode(), [PETER])
    assert len(opened.signatures) == 1
    assert len(opened.unverified) == 1


def test_go_ambiguous_verifier_is_refused_only_when_used() -> None:
    twin = note.parse_verifier_key(GO["enoch_verifier_key"])
    with pytest.raises(note.AmbiguousKeyError, match=r"EnochRoot\+af0cfe78"):
        note.open((TEXT + "\n" + ENOCH_LINE).encode(), [ENOCH, PETER, twin])
    assert note.open((TEXT + "\n" + PETER_LINE).encode(), [ENOCH, PETER, twin]).signatures


def test_go_corrupt_signature_of_a_known_key_refuses_the_note() -> None:
    bad = PETER_LINE[:60] + "ABCD" + PETER_LINE[60:]
    with pytest.raises(note.InvalidSignatureError, match=r"PeterNeumann\+c74f20a3"):
        note.open((TEXT + "\n" + bad).encode(), [PETER])


def test_a_repeated_line_of_a_known_key_is_verified_too() -> None:
    # Go checks a key's first line only; the spec says a known key's signature
    # MUST be verified, so a bad second line is refused here.
    bad = PETER_LINE[:60] + "ABCD" + PETER_LINE[60:]
    with pytest.raises(note.InvalidSignatureError):
        note.open((TEXT + "\n" + PETER_LINE + bad).encode(), [PETER])


def test_go_too_many_signatures() -> None:
    with pytest.raises(note.MalformedNoteError, match="over the limit of 100"):
        note.open((TEXT + "\n" + PETER_LINE * 101).encode(), [PETER])
    assert note.open((TEXT + "\n" + PETER_LINE * 100).encode(), [PETER]).signatures


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (TEXT, "no blank line"),
        (TEXT + "\n", "no signature lines"),
        (TEXT + "\n" + PETER_LINE[:-1], "does not end with a newline"),
        ("\x01" + TEXT + "\n" + PETER_LINE, "control character U\\+0001"),
        (TEXT + "\n" + PETER_LINE.replace("PeterNeumann", "Bad Name"), r"line 1 \(Bad\)"),
        (TEXT + "\n" + PETER_LINE.replace("PeterNeumann", "Peter+Neumann"), "key name"),
        (TEXT + "\n" + PETER_LINE + "Unexpected line.\n", "signature line 2: does not start"),
        (TEXT + "\n" + "— PeterNeumann\n", "signature line 1"),
        (TEXT + "\n" + "— PeterNeumann x08go/Z\n", "not base64"),
        (TEXT + "\n" + "— PeterNeumann x08go/ZJ=\n", "canonical base64"),
        (TEXT + "\n" + "— PeterNeumann x08g\n", "no more than a key ID"),
        (TEXT + "\n" + "- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZI=\n", "em dash"),
        (TEXT + "\r\n" + PETER_LINE, "control character U\\+000D"),
    ],
)
def test_go_malformed_notes_are_refused(msg: str, match: str) -> None:
    with pytest.raises(note.MalformedNoteError, match=match):
        note.open(msg.encode(), [PETER])


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(note.MalformedNoteError, match="not valid UTF-8"):
        note.open(b"\xff" + (TEXT + "\n" + PETER_LINE).encode(), [PETER])


def test_non_canonical_base64_is_refused() -> None:
    # Go accepts non-zero padding bits; here a signature has one spelling only.
    # The line ends in one "=": the last digit's two low bits are padding.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    head = PETER_LINE.removesuffix("=\n")
    twin = alphabet[alphabet.index(head[-1]) ^ 1]
    line = head[:-1] + twin + "=\n"
    assert base64.b64decode(line.split()[-1]) == base64.b64decode(PETER_LINE.split()[-1])
    with pytest.raises(note.MalformedNoteError, match="canonical"):
        note.open((TEXT + "\n" + line).encode(), [PETER])


def test_c2sp_spec_example_opens() -> None:
    example = VECTORS["c2sp_signed_note_example"]
    opened = note.open(example["note"].encode(), [note.parse_verifier_key(example["verifier_key"])])
    assert opened.text == "This is an example message.\n"


# --- keys ----------------------------------------------------------------------------


def test_go_bad_verifier_keys_are_refused() -> None:
    for vkey in GO["bad_verifier_keys"].values():  # keyed by the fixture's account of each
        with pytest.raises(note.MalformedKeyError):
            note.parse_verifier_key(vkey)


@pytest.mark.parametrize(
    ("vkey", "match"),
    [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a3", "parts"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+", "empty key material"),
    ],
)
def test_bad_verifier_keys_are_refused_with_a_reason(vkey: str, match: str) -> None:
    with pytest.raises(note.MalformedKeyError, match=match):
        note.parse_verifier_key(vkey)


def test_every_truncation_and_one_byte_change_of_goes_keys_is_refused() -> None:
    # As Go's TestNewVerifier and TestNewSigner.
    for key, parse in (
        (GO["peter_verifier_key"], note.parse_verifier_key),
        (GO["peter_signer_key"], note.parse_signer_key),
    ):
        for i in range(len(key)):
            for j in range(i + 1, len(key) + 1):
                if (i, j) != (0, len(key)):
                    with pytest.raises(note.MalformedKeyError):
                        parse(key[i:j])
        for i in range(len(key)):
            with pytest.raises(note.MalformedKeyError):
                parse(key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :])


def test_signer_key_errors_do_not_echo_the_secret() -> None:
    skey = GO["peter_signer_key"].replace("c74f20a3", "c74f20a4")
    with pytest.raises(note.MalformedKeyError) as err:
        note.parse_signer_key(skey)
    assert "AYEKFALV" not in str(err.value)


def test_generated_keys_round_trip() -> None:
    skey, vkey = note.generate_key("example.com/log")
    signed = note.sign("hello\n", [note.parse_signer_key(skey)])
    assert note.open(signed, [note.parse_verifier_key(vkey)]).text == "hello\n"
    with pytest.raises(note.UnknownKeyError):
        note.open(signed, [PETER])


# --- malformed cases named by the brief ----------------------------------------------


def test_a_signature_from_another_key_under_the_same_name_is_not_counted() -> None:
    impostor = note.Ed25519Signer("PeterNeumann", ed25519.Ed25519PrivateKey.generate())
    signed = note.sign(TEXT, [impostor])
    with pytest.raises(note.UnknownKeyError):  # same name, other key ID: unknown
        note.open(signed, [PETER])


def test_a_signature_from_another_key_under_goes_key_id_is_refused() -> None:
    impostor = note.Ed25519Signer("PeterNeumann", ed25519.Ed25519PrivateKey.generate())
    forged = note.Signature("PeterNeumann", PETER.key_id, impostor.sign(TEXT.encode()))
    with pytest.raises(note.InvalidSignatureError):
        note.open((TEXT + "\n" + forged.line()).encode(), [PETER])


def test_wrong_key_id_is_unknown() -> None:
    sig = note.open(GO["signed_by_peter"].encode(), [PETER]).signatures[0]
    moved = note.Signature(sig.name, sig.key_id ^ 1, sig.signature)
    with pytest.raises(note.UnknownKeyError, match=r"PeterNeumann\+c74f20a2"):
        note.open((TEXT + "\n" + moved.line()).encode(), [PETER])


def test_over_long_notes_are_refused() -> None:
    body = "x" * (note.MAX_NOTE_BYTES - 200) + "\n"
    assert note.open(note.sign(body, [SIGNER]), [SIGNER.verifier()]).text == body
    with pytest.raises(note.MalformedNoteError, match="over the limit"):
        note.sign("x" * note.MAX_NOTE_BYTES + "\n", [SIGNER])
    with pytest.raises(note.MalformedNoteError, match="over the limit of 1048576"):
        note.open(b"x" * (note.MAX_NOTE_BYTES + 1), [SIGNER.verifier()])


@pytest.mark.parametrize(
    ("text", "match"),
    [("no newline", "does not end with a newline"), ("tab\there\n", "U\\+0009"), ("", "newline")],
)
def test_sign_refuses_texts_no_reader_would_accept(text: str, match: str) -> None:
    with pytest.raises(note.MalformedNoteError, match=match):
        note.sign(text, [SIGNER])


def test_sign_needs_a_signature_and_valid_kept_lines() -> None:
    with pytest.raises(note.MalformedNoteError, match="at least one"):
        note.sign(TEXT, [])
    with pytest.raises(note.MalformedNoteError, match="kept"):
        note.sign(TEXT, [SIGNER], keep=[note.Signature("a+b", 1, b"x")])


def test_sign_keeps_other_lines_first_and_replaces_its_own() -> None:
    # As Go's TestSign: an old line by the signing key is replaced, others kept.
    old = note.Signature("PeterNeumann", PETER.key_id, b"BAD")
    enoch = note.open((TEXT + "\n" + ENOCH_LINE).encode(), [ENOCH]).signatures[0]
    signed = note.sign(TEXT, [PETER_SIGNER], keep=[enoch, old])
    assert signed == (TEXT + "\n" + ENOCH_LINE + PETER_LINE).encode()


def test_errors_share_one_base_class() -> None:
    for cls in (
        note.MalformedNoteError,
        note.MalformedKeyError,
        note.InvalidSignatureError,
        note.UnknownKeyError,
        note.AmbiguousKeyError,
    ):
        assert issubclass(cls, note.NoteError)
    assert issubclass(note.NoteError, ValueError)


# --- properties ----------------------------------------------------------------------

_TEXT_CHARS = st.characters(exclude_categories=["Cs"], min_codepoint=0x20) | st.just("\n")
_TEXTS = st.text(_TEXT_CHARS, max_size=300).map(lambda t: t + "\n")


@settings(max_examples=200, deadline=None)
@given(text=_TEXTS)
def test_any_text_round_trips(text: str) -> None:
    opened = note.open(note.sign(text, [SIGNER]), [SIGNER.verifier()])
    assert opened.text == text
    assert opened.unverified == ()


@settings(max_examples=300, deadline=None)
@given(text=_TEXTS, data=st.data())
def test_any_one_byte_change_fails(text: str, data: st.DataObject) -> None:
    signed = note.sign(text, [SIGNER])
    i = data.draw(st.integers(0, len(signed) - 1), label="index")
    b = data.draw(st.integers(0, 255).filter(lambda b: b != signed[i]), label="byte")
    changed = signed[:i] + bytes([b]) + signed[i + 1 :]
    with pytest.raises(note.NoteError):
        note.open(changed, [SIGNER.verifier()])


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=400) | _TEXTS.map(lambda t: (t + "\n— x AAAAAAAA\n").encode()))
def test_arbitrary_bytes_raise_only_note_errors(garbage: bytes) -> None:
    with contextlib.suppress(note.NoteError):
        note.open(garbage, [SIGNER.verifier(), PETER])
