"""Unit tests for renkei.tlog.checkpoint: C2SP checkpoints and cosignature/v1 witnesses.

Known answers (tests/unit/fixtures/note/vectors.json, sources named there): Go's
checksum database checkpoint, a CT log checkpoint cosigned by a public witness,
Go's witness keys from transparency-dev/formats and the C2SP spec examples.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from renkei.tlog import checkpoint as cp
from renkei.tlog import note

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "note" / "vectors.json").read_text("utf-8")
)
ORIGIN = "renkei.example/hub-log"
ROOT = bytes(range(32))
NOW = 1_780_000_000

LOG_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
LOG = note.Ed25519Signer(ORIGIN, LOG_KEY)
WITNESS_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
WITNESS = cp.CosignatureSigner("renkei.example/witness", WITNESS_KEY, clock=lambda: NOW)
OTHER_WITNESS = cp.CosignatureSigner(
    "renkei.example/other-witness",
    ed25519.Ed25519PrivateKey.from_private_bytes(b"\x03" * 32),
    clock=lambda: NOW,
)


def _witnessed(size: int = 5, root: bytes = ROOT) -> bytes:
    signed = cp.CheckpointSigner(LOG).sign(size, root)
    return cp.cosign(signed, LOG.verifier(), WITNESS)


# --- known answers -------------------------------------------------------------------


def test_go_sum_database_checkpoint_verifies_and_parses() -> None:
    v = VECTORS["go_sum_database_checkpoint"]
    log = note.parse_verifier_key(v["verifier_key"])
    got = cp.verify_checkpoint(
        v["note"].encode(), log, [], require_witness=False, origin=v["origin"]
    )
    assert got == cp.Checkpoint(v["origin"], v["size"], base64.b64decode(v["root_hash_base64"]))
    # Its origin is not its key's name: by default that is refused.
    with pytest.raises(cp.OriginMismatchError, match=r"go\.sum database tree"):
        cp.verify_checkpoint(v["note"].encode(), log, [], require_witness=False)


def test_a_real_witness_cosignature_verifies() -> None:
    v = VECTORS["witnessed_ct_checkpoint"]
    log = note.parse_verifier_key(v["log_verifier_key"])
    witness = cp.parse_cosignature_verifier_key(v["witness_verifier_key"])
    assert witness.verifier_key() == v["witness_verifier_key"]
    got = cp.verify_checkpoint(v["note"].encode(), log, [witness])
    assert got.size == v["size"]
    opened = note.open(v["note"].encode(), [log, witness])
    (cosig,) = [s for s in opened.signatures if s.name == witness.name]
    assert cp.cosignature_time(cosig) == v["witness_timestamp"]
    # Four other witnesses' lines and an RFC 6962 line are kept, unverified.
    assert len(opened.unverified) == 4


def test_a_real_cosignature_does_not_verify_over_another_size() -> None:
    v = VECTORS["witnessed_ct_checkpoint"]
    witness = cp.parse_cosignature_verifier_key(v["witness_verifier_key"])
    opened = note.open(v["note"].encode(), [witness])
    (cosig,) = opened.signatures
    text = opened.text.replace(str(v["size"]), str(v["size"] + 1))
    assert not witness.verify(text.encode(), cosig.signature)


def test_c2sp_examples_parse() -> None:
    v = VECTORS["c2sp_checkpoint_example"]
    got = cp.Checkpoint.parse(v["text"])
    assert (got.origin, got.size) == ("example.com/behind-the-sofa", 20852163)
    assert got.format() == v["text"]
    _, (line,) = note.parse((v["text"] + "\n" + v["cosignature_line"]).encode())
    assert cp.cosignature_time(line) == v["cosignature_time"]


def test_goes_witness_keys_interoperate() -> None:
    # formats reads a type-0x01 key as a cosigner; its key ID is over 0x04.
    v = VECTORS["formats_witness_keys"]
    signer = note.parse_signer_key(v["wit1_signer_key"])
    verifier = cp.parse_cosignature_verifier_key(v["wit1_verifier_key"])
    assert verifier.key_id == note.key_id("Wit1", 0x04, _raw(signer))
    assert verifier.key_id != signer.key_id
    witness = cp.CosignatureSigner("Wit1", _private(v["wit1_signer_key"]), clock=lambda: NOW)
    signed = cp.cosign(cp.CheckpointSigner(LOG).sign(3, ROOT), LOG.verifier(), witness)
    assert cp.verify_checkpoint(signed, LOG.verifier(), [verifier]).size == 3


def _private(skey: str) -> ed25519.Ed25519PrivateKey:
    seed = base64.b64decode(skey.split("+", 4)[4])[1:]
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def _raw(signer: note.Ed25519Signer) -> bytes:
    return base64.b64decode(signer.verifier().verifier_key().split("+", 2)[2])[1:]


GO_MADE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "note" / "go_generated.json").read_text("utf-8")
)


def _go_witness() -> cp.CosignatureSigner:
    return cp.CosignatureSigner(
        "renkei.example/witness",
        _private(GO_MADE["witness_signer_key"]),
        clock=lambda: int(GO_MADE["timestamp"]),
    )


@pytest.mark.parametrize("vector", GO_MADE["checkpoints"], ids=lambda v: v["text"].split("\n")[1])
def test_checkpoints_and_cosignatures_are_byte_identical_to_goes(vector: dict[str, str]) -> None:
    log = note.parse_signer_key(GO_MADE["log_signer_key"])
    assert log.verifier().verifier_key() == GO_MADE["log_verifier_key"]
    made = cp.Checkpoint.parse(vector["text"])
    signed = cp.CheckpointSigner(log).sign(made.size, made.root_hash, made.extensions)
    assert signed == vector["log_signed"].encode()
    witnessed = cp.cosign(signed, log.verifier(), _go_witness())
    assert witnessed == vector["witnessed"].encode()


@pytest.mark.parametrize("vector", GO_MADE["checkpoints"], ids=lambda v: v["text"].split("\n")[1])
def test_goes_witnessed_checkpoints_verify(vector: dict[str, str]) -> None:
    log = note.parse_verifier_key(GO_MADE["log_verifier_key"])
    for vkey in (GO_MADE["witness_verifier_key"], GO_MADE["witness_verifier_key_type01"]):
        witness = cp.parse_cosignature_verifier_key(vkey)
        got = cp.verify_checkpoint(vector["witnessed"].encode(), log, [witness])
        assert got.format() == vector["text"]
    with pytest.raises(cp.MissingCosignatureError):
        cp.verify_checkpoint(vector["log_signed"].encode(), log, [witness])


def test_the_go_witness_key_formats_as_go_made_it() -> None:
    assert _go_witness().verifier().verifier_key() == GO_MADE["witness_verifier_key"]


# --- the cosignature format, by the spec -----------------------------------------------


def test_cosignature_line_is_key_id_timestamp_signature_over_the_spec_message() -> None:
    text = cp.Checkpoint(ORIGIN, 5, ROOT).format()
    raw = WITNESS.sign(text.encode())
    assert len(raw) == 8 + 64
    assert int.from_bytes(raw[:8], "big") == NOW
    message = f"cosignature/v1\ntime {NOW}\n{text}".encode()
    pub = WITNESS_KEY.public_key()
    pub.verify(raw[8:], message)  # raises if the message differs from the spec's
    line = note.Signature(WITNESS.name, WITNESS.key_id, raw).line()
    blob = base64.b64decode(line.split()[-1])
    assert blob[:4] == WITNESS.key_id.to_bytes(4, "big")
    assert WITNESS.key_id == note.key_id(WITNESS.name, 0x04, pub.public_bytes_raw())


def test_cosignature_vkey_round_trips_with_type_04() -> None:
    vkey = WITNESS.verifier().verifier_key()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert cp.parse_cosignature_verifier_key(vkey).key_id == WITNESS.key_id


def test_bad_witness_vkeys_are_refused() -> None:
    vkey = WITNESS.verifier().verifier_key()
    name, kid, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob)
    wrong_alg = note.format_verifier_key(name, 0x02, raw[1:])
    short = note.format_verifier_key(name, 0x04, raw[1:-1])
    for bad, match in [
        (f"{name}+{int(kid, 16) ^ 1:08x}+{blob}", "does not match"),
        (wrong_alg, "unknown algorithm 0x02"),
        (short, "31 bytes"),
        (f"{name}+{kid}", "parts"),
    ]:
        with pytest.raises(note.MalformedKeyError, match=match):
            cp.parse_cosignature_verifier_key(bad)


@pytest.mark.parametrize("timestamp", [-1, 1 << 63])
def test_cosignature_time_out_of_range_is_refused(timestamp: int) -> None:
    with pytest.raises(cp.CheckpointError, match="out of range"):
        cp.cosigned_message(timestamp, cp.Checkpoint(ORIGIN, 1, ROOT).format())


def test_a_witness_signs_checkpoints_only() -> None:
    with pytest.raises(cp.CheckpointFormatError):
        WITNESS.sign(b"not a checkpoint\n")


def test_cosign_needs_the_logs_signature() -> None:
    forged = note.sign(
        cp.Checkpoint(ORIGIN, 5, ROOT).format(), [note.Ed25519Signer.generate(ORIGIN)]
    )
    with pytest.raises(note.UnknownKeyError):
        cp.cosign(forged, LOG.verifier(), WITNESS)


def test_the_witness_answers_its_line_and_the_log_appends_it() -> None:
    # tlog-witness: add-checkpoint answers signature lines only.
    signed = cp.CheckpointSigner(LOG).sign(5, ROOT)
    answer = cp.cosignature_lines(signed, LOG.verifier(), WITNESS)
    assert answer.startswith("— renkei.example/witness ")
    assert answer.endswith("\n")
    assert answer.count("\n") == 1
    witnessed = cp.add_cosignatures(signed, answer)
    assert witnessed == signed + answer.encode()
    assert cp.verify_checkpoint(witnessed, LOG.verifier(), [WITNESS.verifier()]).size == 5


def test_a_new_answer_replaces_the_witness_s_old_line_and_keeps_the_order() -> None:
    signed = cp.CheckpointSigner(LOG).sign(5, ROOT)
    later = cp.CosignatureSigner(WITNESS.name, WITNESS_KEY, clock=lambda: NOW + 60)
    first = cp.add_cosignatures(signed, cp.cosignature_lines(signed, LOG.verifier(), WITNESS))
    both = cp.add_cosignatures(first, cp.cosignature_lines(signed, LOG.verifier(), OTHER_WITNESS))
    again = cp.add_cosignatures(both, cp.cosignature_lines(signed, LOG.verifier(), later))
    _, lines = note.parse(again)
    assert [s.name for s in lines] == [ORIGIN, OTHER_WITNESS.name, WITNESS.name]
    assert cp.cosignature_time(lines[-1]) == NOW + 60


def test_an_answer_naming_a_witness_twice_adds_its_line_once() -> None:
    signed = cp.CheckpointSigner(LOG).sign(5, ROOT)
    answer = cp.cosignature_lines(signed, LOG.verifier(), WITNESS)
    _, lines = note.parse(cp.add_cosignatures(signed, answer + answer))
    assert [s.name for s in lines] == [ORIGIN, WITNESS.name]


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ("", "no signature lines"),
        ("— w AAAA", "does not end with a newline"),
        ("w AAAAAAAA\n", "em dash"),
        ("— w AAAAAAAA\n\n", "signature line 2"),
        ("— w AAAAAAAA\r\n", "control character"),
    ],
)
def test_a_malformed_witness_answer_is_refused(answer: str, match: str) -> None:
    signed = cp.CheckpointSigner(LOG).sign(5, ROOT)
    with pytest.raises(note.MalformedNoteError, match=match):
        cp.add_cosignatures(signed, answer)


# --- verify_checkpoint -----------------------------------------------------------------


def test_log_signed_and_witnessed_checkpoint_verifies() -> None:
    got = cp.verify_checkpoint(_witnessed(), LOG.verifier(), [WITNESS.verifier()])
    assert got == cp.Checkpoint(ORIGIN, 5, ROOT)


def test_no_cosignature_is_refused_when_a_witness_is_required() -> None:
    signed = cp.CheckpointSigner(LOG).sign(5, ROOT)
    with pytest.raises(cp.MissingCosignatureError, match=r"renkei\.example/witness"):
        cp.verify_checkpoint(signed, LOG.verifier(), [WITNESS.verifier()])
    got = cp.verify_checkpoint(signed, LOG.verifier(), [WITNESS.verifier()], require_witness=False)
    assert got.size == 5


def test_a_cosignature_by_an_unknown_witness_is_not_counted() -> None:
    signed = cp.cosign(cp.CheckpointSigner(LOG).sign(5, ROOT), LOG.verifier(), OTHER_WITNESS)
    with pytest.raises(cp.MissingCosignatureError):
        cp.verify_checkpoint(signed, LOG.verifier(), [WITNESS.verifier()])


def test_a_witness_key_used_as_a_plain_note_key_is_not_counted() -> None:
    # Same witness key, but a type-0x01 line: another key ID, so unknown.
    plain = note.Ed25519Signer(WITNESS.name, WITNESS_KEY)
    signed = cp.CheckpointSigner(LOG).sign(5, ROOT)
    opened = note.open(signed, [LOG.verifier()])
    both = note.sign(opened.text, [plain], keep=opened.signatures)
    with pytest.raises(cp.MissingCosignatureError):
        cp.verify_checkpoint(both, LOG.verifier(), [WITNESS.verifier()])


def test_witnessed_but_not_log_signed_is_refused() -> None:
    text = cp.Checkpoint(ORIGIN, 5, ROOT).format()
    only_witness = note.sign(text, [WITNESS])
    with pytest.raises(cp.MissingLogSignatureError, match=re.escape(ORIGIN)):
        cp.verify_checkpoint(only_witness, LOG.verifier(), [WITNESS.verifier()])


def test_a_bad_cosignature_by_a_trusted_witness_refuses_the_checkpoint() -> None:
    signed = _witnessed(size=5)
    opened = note.open(signed, [LOG.verifier(), WITNESS.verifier()])
    cosig = next(s for s in opened.signatures if s.name == WITNESS.name)
    moved = note.Signature(cosig.name, cosig.key_id, NOW.to_bytes(8, "big") + b"\x00" * 64)
    tampered = note.sign(opened.text, [LOG], keep=[moved])
    with pytest.raises(note.InvalidSignatureError, match=r"renkei\.example/witness"):
        cp.verify_checkpoint(tampered, LOG.verifier(), [WITNESS.verifier()])


def test_a_cosignature_with_a_changed_timestamp_fails() -> None:
    signed = _witnessed()
    opened = note.open(signed, [LOG.verifier(), WITNESS.verifier()])
    cosig = next(s for s in opened.signatures if s.name == WITNESS.name)
    later = note.Signature(
        cosig.name, cosig.key_id, (NOW + 1).to_bytes(8, "big") + cosig.signature[8:]
    )
    tampered = note.sign(opened.text, [LOG], keep=[later])
    with pytest.raises(note.InvalidSignatureError):
        cp.verify_checkpoint(tampered, LOG.verifier(), [WITNESS.verifier()])


def test_the_log_key_cannot_double_as_a_witness() -> None:
    with pytest.raises(cp.CheckpointError, match="log's and a witness's"):
        cp.verify_checkpoint(_witnessed(), LOG.verifier(), [LOG.verifier()])


def test_any_of_several_witnesses_suffices() -> None:
    witnesses = [OTHER_WITNESS.verifier(), WITNESS.verifier()]
    assert cp.verify_checkpoint(_witnessed(), LOG.verifier(), witnesses).size == 5


def test_a_cosigned_checkpoint_keeps_extension_lines_signed() -> None:
    signed = cp.CheckpointSigner(LOG).sign(5, ROOT, ["ext one", "ext two"])
    witnessed = cp.cosign(signed, LOG.verifier(), WITNESS)
    got = cp.verify_checkpoint(witnessed, LOG.verifier(), [WITNESS.verifier()])
    assert got.extensions == ("ext one", "ext two")


# --- checkpoint text ---------------------------------------------------------------------

_R = base64.b64encode(ROOT).decode()
# The same 32 bytes spelled with a padding bit set ("...Hh8=" → "...Hh9="):
# base64 decoders that do not check padding bits take it.
_R_TWIN = _R[:-2] + "9="
assert _R.endswith("8=")
assert base64.b64decode(_R_TWIN) == ROOT


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f"{ORIGIN}\n5\n{_R}", "does not end with a newline"),
        (f"{ORIGIN}\n5\n", "2 lines"),
        (f"\n5\n{_R}\n", "line 1 \\(origin\\): empty"),
        (f"{ORIGIN}\n05\n{_R}\n", "line 2 \\(tree size\\): '05'"),
        (f"{ORIGIN}\n00\n{_R}\n", "line 2"),
        (f"{ORIGIN}\n-5\n{_R}\n", "line 2"),
        (f"{ORIGIN}\n+5\n{_R}\n", "line 2"),
        (f"{ORIGIN}\n 5\n{_R}\n", "line 2"),
        (f"{ORIGIN}\n1_000\n{_R}\n", "line 2"),
        (f"{ORIGIN}\n٣\n{_R}\n", "line 2"),
        (f"{ORIGIN}\n\n{_R}\n", "line 2"),
        (f"{ORIGIN}\n{1 << 64}\n{_R}\n", "line 2 \\(tree size\\): .* exceeds"),
        (f"{ORIGIN}\n5\n{_R[:-1]}\n", "line 3 \\(root hash\\): not base64"),
        (f"{ORIGIN}\n5\n{_R_TWIN}\n", "line 3 \\(root hash\\): not the canonical"),
        (f"{ORIGIN}\n5\nYmFuYW5hcw==\n", "line 3 \\(root hash\\): 7 bytes"),
        (f"{ORIGIN}\n5\n{_R}\n\n", "line 4 \\(extension\\): empty"),
        (f"{ORIGIN}\n5\n{_R}\next\n\n", "line 5 \\(extension\\): empty"),
    ],
)
def test_malformed_checkpoints_are_refused_naming_the_line(text: str, match: str) -> None:
    with pytest.raises(cp.CheckpointFormatError, match=match):
        cp.Checkpoint.parse(text)


def test_formats_own_vectors_parse_where_the_hash_is_32_bytes() -> None:
    # transparency-dev/formats log/checkpoint_test.go accepts 7-byte "hashes";
    # an RFC 9162 root is 32 bytes, so those are refused here (see the table above).
    text = f"Log\n0\n{_R}\nHere's some associated data.\n"
    got = cp.Checkpoint.parse(text)
    assert (got.size, got.extensions) == (0, ("Here's some associated data.",))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"size": -1}, "tree size"),
        ({"size": 1 << 64}, "tree size"),
        ({"root_hash": b"x" * 31}, "root hash"),
        ({"extensions": ("",)}, "line 4"),
        ({"extensions": ("a", "b\nc")}, "line 5"),
        ({"origin": "tab\tlog"}, "control character"),
        # True is an int, but would be written "True": no reader parses that size.
        ({"size": True}, "must be an int"),
        ({"root_hash": "x" * 32}, "must be an int, the root hash bytes"),
    ],
)
def test_a_checkpoint_no_reader_would_accept_cannot_be_made(
    kwargs: dict[str, Any], match: str
) -> None:
    fields: dict[str, Any] = {"origin": ORIGIN, "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(cp.CheckpointFormatError, match=match):
        cp.Checkpoint(**fields)


def test_checkpoint_errors_are_note_errors() -> None:
    for cls in (
        cp.CheckpointFormatError,
        cp.MissingLogSignatureError,
        cp.MissingCosignatureError,
        cp.OriginMismatchError,
    ):
        assert issubclass(cls, note.NoteError)


# --- properties --------------------------------------------------------------------------

_LINE = st.text(
    st.characters(exclude_categories=["Cs"], min_codepoint=0x20), min_size=1, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    origin=_LINE,
    size=st.integers(0, (1 << 64) - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=3),
)
def test_checkpoints_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    made = cp.Checkpoint(origin, size, root, tuple(extensions))
    assert cp.Checkpoint.parse(made.format()) == made
    signer = note.Ed25519Signer("renkei.example/log", LOG_KEY)
    signed = cp.CheckpointSigner(signer, origin=origin).sign(size, root, extensions)
    witnessed = cp.cosign(signed, signer.verifier(), WITNESS)
    got = cp.verify_checkpoint(witnessed, signer.verifier(), [WITNESS.verifier()], origin=origin)
    assert got == made


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 1 << 40), data=st.data())
def test_any_one_byte_change_of_a_witnessed_checkpoint_fails(
    size: int, data: st.DataObject
) -> None:
    witnessed = _witnessed(size=size)
    i = data.draw(st.integers(0, len(witnessed) - 1), label="index")
    b = data.draw(st.integers(0, 255).filter(lambda b: b != witnessed[i]), label="byte")
    changed = witnessed[:i] + bytes([b]) + witnessed[i + 1 :]
    with pytest.raises(note.NoteError):
        cp.verify_checkpoint(changed, LOG.verifier(), [WITNESS.verifier()])


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_raises_only_checkpoint_format_errors(text: str) -> None:
    with contextlib.suppress(cp.CheckpointFormatError):
        cp.Checkpoint.parse(text)
