"""The wire format of c2sp.org/tlog-witness add-checkpoint, for the witness and its clients.

The request body is an old size line (``old <decimal>``), at most 63 base64
consistency-proof lines, an empty line, then the signed checkpoint. A 409
answer's body is the witness's size in decimal and a newline, with the media
type ``text/x.tlog.size``. Both sides read and write through here, so the log
and the witness can never disagree on a byte of it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from renkei.tlog import note
from renkei.tlog.checkpoint import MAX_TREE_SIZE
from renkei.tlog.merkle import HASH_SIZE

ADD_CHECKPOINT_PATH = "/add-checkpoint"
SIZE_MEDIA_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63  # the spec: "The client MUST NOT send more than 63 consistency proof lines."
# The old size line, every proof line and the note: what a request can hold at most.
MAX_REQUEST_BYTES = 64 + MAX_PROOF_LINES * 64 + note.MAX_NOTE_BYTES

_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)


class WireFormatError(ValueError):
    """The bytes are not an add-checkpoint request (or a size body); the message says where."""


@dataclass(frozen=True)
class AddCheckpointRequest:
    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, as sent


def _size(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise WireFormatError(f"{what}: {text[:40]!r} is not a decimal without leading zeros")
    value = int(text)
    if value > MAX_TREE_SIZE:
        raise WireFormatError(f"{what}: {value} exceeds 2^64-1")
    return value


def format_request(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    if type(old_size) is not int or not 0 <= old_size <= MAX_TREE_SIZE:
        raise WireFormatError(f"old size {old_size!r} is not a tree size")
    if len(proof) > MAX_PROOF_LINES:
        raise WireFormatError(f"{len(proof)} proof hashes, over the limit of {MAX_PROOF_LINES}")
    for i, h in enumerate(proof, 1):
        if len(h) != HASH_SIZE:
            raise WireFormatError(f"proof hash {i} is {len(h)} bytes, want {HASH_SIZE}")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof), ""]
    return "".join(line + "\n" for line in lines).encode() + checkpoint


def parse_request(body: bytes) -> AddCheckpointRequest:
    """The request, or WireFormatError naming the line that is wrong (an HTTP 400)."""
    if len(body) > MAX_REQUEST_BYTES:
        raise WireFormatError(f"body is {len(body)} bytes, over the limit of {MAX_REQUEST_BYTES}")
    # The header is ASCII; the checkpoint after the first empty line is the note's business.
    header, blank, checkpoint = body.partition(b"\n\n")
    if not blank:
        raise WireFormatError("no empty line between the old size and proof lines and the note")
    try:
        lines = header.decode("ascii").split("\n")
    except UnicodeDecodeError as err:
        raise WireFormatError(f"byte {err.start} before the checkpoint is not ASCII") from None
    first = lines[0]
    if not first.startswith("old "):
        raise WireFormatError(f"line 1: want 'old <size>', got {first[:40]!r}")
    old_size = _size(first.removeprefix("old "), "line 1 (old size)")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WireFormatError(
            f"{len(lines) - 1} consistency proof lines, over the limit of {MAX_PROOF_LINES}"
        )
    proof = []
    for number, line in enumerate(lines[1:], 2):
        try:
            h = note.b64decode_exact(line)
        except ValueError as err:
            raise WireFormatError(f"line {number} (proof hash): {err}") from None
        if len(h) != HASH_SIZE:
            raise WireFormatError(f"line {number} (proof hash): {len(h)} bytes, want {HASH_SIZE}")
        proof.append(h)
    if not checkpoint:
        raise WireFormatError("no checkpoint after the empty line")
    return AddCheckpointRequest(old_size, tuple(proof), checkpoint)


def format_size(size: int) -> bytes:
    """The body of a 409 Conflict: the witness's latest size, a newline."""
    return f"{size}\n".encode()


def parse_size(body: bytes) -> int:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise WireFormatError("size body is not ASCII") from None
    if not text.endswith("\n"):
        raise WireFormatError("size body does not end with a newline")
    return _size(text[:-1], "size body")
