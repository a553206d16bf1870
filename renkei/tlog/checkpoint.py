"""C2SP checkpoints (c2sp.org/tlog-checkpoint) and Ed25519 cosignatures (c2sp.org/tlog-cosignature).

A checkpoint is a signed note whose text is the log's origin, its tree size and
its root hash, then optional extension lines. The log signs it with a plain note
signature (type 0x01); a witness that has checked it is consistent with what it
saw before adds a cosignature/v1 line (type 0x04): its key ID, an 8-byte
big-endian POSIX timestamp and an Ed25519 signature over

    cosignature/v1
    time <timestamp>
    <the whole checkpoint text>

`verify_checkpoint` is what a reader of the log calls: it answers a Checkpoint only
when the log's key and (when asked) a trusted witness both signed it, so a log
showing two trees to two readers needs the witness's key too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from renkei.tlog import note
from renkei.tlog.merkle import HASH_SIZE

MAX_TREE_SIZE = (1 << 64) - 1  # Go's tlog and formats read the size as a uint64
# tlog-cosignature: the timestamp "MUST NOT exceed 2^63 - 1".
MAX_COSIGNATURE_TIME = (1 << 63) - 1

_COSIGNATURE_HEADER = "cosignature/v1\n"
_TIMESTAMP_BYTES = 8
_ED25519_SIGNATURE_BYTES = 64
# ASCII digits only: int() would take "٣", "1_000" and " 7".
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)


class CheckpointError(note.NoteError):
    """A checkpoint refused: its text, its log signature or its witnesses."""


class CheckpointFormatError(CheckpointError):
    """The note text is not a checkpoint; the message names the line."""


class MissingLogSignatureError(CheckpointError):
    """The note verified, but not by the log's key (only by witnesses)."""


class MissingCosignatureError(CheckpointError):
    """The log signed the checkpoint, but no trusted witness cosigned it."""


class OriginMismatchError(CheckpointError):
    """The checkpoint names another log than the one the caller asked for."""


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash, extension lines (without newlines)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Refuse at construction what parse refuses, so format(parse(x)) == x and
        # a log can never sign a checkpoint its readers will refuse (True is an int,
        # but formats as "True").
        if type(self.size) is not int or not isinstance(self.root_hash, bytes):
            raise CheckpointFormatError("the tree size must be an int, the root hash bytes")
        if not isinstance(self.origin, str) or self.origin == "" or "\n" in self.origin:
            raise CheckpointFormatError("line 1 (origin): empty or holds a newline")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointFormatError(f"line 2 (tree size): {self.size} is out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointFormatError(
                f"line 3 (root hash): {len(self.root_hash)} bytes, want {HASH_SIZE}"
            )
        for i, ext in enumerate(self.extensions, 4):
            if ext == "" or "\n" in ext:
                raise CheckpointFormatError(f"line {i} (extension): empty or holds a newline")
        try:
            note.check_text(self.format(), "checkpoint")
        except note.MalformedNoteError as err:
            raise CheckpointFormatError(str(err)) from None

    def format(self) -> str:
        """The note text: one line each, every line ending with a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "".join(line + "\n" for line in [*lines, *self.extensions])

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise CheckpointFormatError("checkpoint text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointFormatError(f"{len(lines)} lines, want origin, tree size and root hash")
        origin, size, root = lines[:3]
        if not _DECIMAL.fullmatch(size):
            raise CheckpointFormatError(
                f"line 2 (tree size): {size!r} is not a decimal without leading zeros"
            )
        if int(size) > MAX_TREE_SIZE:
            raise CheckpointFormatError(f"line 2 (tree size): {size} exceeds 2^64-1")
        try:
            root_hash = note.b64decode_exact(root)
        except ValueError as err:
            raise CheckpointFormatError(f"line 3 (root hash): {err}") from None
        # The origin, the root's length and the extension lines: __post_init__.
        return cls(origin, int(size), root_hash, tuple(lines[3:]))


def cosigned_message(timestamp: int, text: str) -> bytes:
    """What a cosignature/v1 signs: the header, the time line, the checkpoint text."""
    if not 0 <= timestamp <= MAX_COSIGNATURE_TIME:
        raise CheckpointError(f"cosignature time {timestamp} is out of range")
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


class CosignatureVerifier:
    """A witness's Ed25519 key for cosignature/v1 lines (key ID over type 0x04)."""

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey) -> None:
        if not note.valid_name(name):
            raise note.MalformedKeyError(f"invalid key name {name!r}")
        self._name = name
        self._public_key = public_key
        self._key_id = note.key_id(name, note.ALG_COSIGNATURE_V1, public_key.public_bytes_raw())

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    def verify(self, message: bytes, signature: bytes) -> bool:
        """`signature` is the timestamp and the Ed25519 signature (after the key ID)."""
        if len(signature) != _TIMESTAMP_BYTES + _ED25519_SIGNATURE_BYTES:
            return False
        timestamp = int.from_bytes(signature[:_TIMESTAMP_BYTES], "big")
        if timestamp > MAX_COSIGNATURE_TIME:
            return False
        try:
            # The witness signs checkpoints only: a text that is not one is refused
            # even under a good signature, as Go's formatEd25519CosignatureV1 does.
            Checkpoint.parse(message.decode())
            self._public_key.verify(
                signature[_TIMESTAMP_BYTES:], cosigned_message(timestamp, message.decode())
            )
        except (InvalidSignature, CheckpointFormatError, UnicodeDecodeError):
            return False
        return True

    def verifier_key(self) -> str:
        return note.format_verifier_key(
            self._name, note.ALG_COSIGNATURE_V1, self._public_key.public_bytes_raw()
        )


class CosignatureSigner:
    """A witness's cosignature/v1 signer; `clock` gives POSIX seconds (injected for tests)."""

    def __init__(
        self, name: str, private_key: ed25519.Ed25519PrivateKey, clock: Callable[[], int]
    ) -> None:
        self._verifier = CosignatureVerifier(name, private_key.public_key())
        self._private_key = private_key
        self._clock = clock

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> int:
        return self._verifier.key_id

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        text = message.decode()
        Checkpoint.parse(text)  # a witness states things about checkpoints only
        timestamp = self._clock()
        signed = cosigned_message(timestamp, text)
        return timestamp.to_bytes(_TIMESTAMP_BYTES, "big") + self._private_key.sign(signed)


def parse_cosignature_verifier_key(vkey: str) -> CosignatureVerifier:
    """A witness vkey: type 0x04 as the spec says, or 0x01 read as 0x04 as Go's formats does.

    Either way the key ID in the string must be the one of its own type byte, and the
    verifier's key ID (the one on cosignature lines) is computed with 0x04.
    """
    name, kid, alg, material = note.split_key(vkey, "witness verifier")
    if alg not in (note.ALG_COSIGNATURE_V1, note.ALG_ED25519):
        raise note.MalformedKeyError(f"witness verifier key {name}: unknown algorithm 0x{alg:02x}")
    if len(material) != 32:
        raise note.MalformedKeyError(
            f"witness verifier key {name}: Ed25519 key is {len(material)} bytes"
        )
    if note.key_id(name, alg, material) != kid:
        raise note.MalformedKeyError(
            f"witness verifier key {name}: key ID {kid:08x} does not match the key"
        )
    return CosignatureVerifier(name, ed25519.Ed25519PublicKey.from_public_bytes(material))


def cosignature_time(signature: note.Signature) -> int:
    """The timestamp a cosignature/v1 line carries (verify the line before trusting it)."""
    if len(signature.signature) != _TIMESTAMP_BYTES + _ED25519_SIGNATURE_BYTES:
        raise note.MalformedNoteError(f"{signature.name}: not a cosignature/v1 signature")
    return int.from_bytes(signature.signature[:_TIMESTAMP_BYTES], "big")


class CheckpointSigner:
    """The log's side: sign checkpoints of `origin` with its note key."""

    def __init__(self, signer: note.Signer, origin: str | None = None) -> None:
        # The spec: "The log's key name in its signature line SHOULD match the origin line."
        self._signer = signer
        self._origin = signer.name if origin is None else origin

    @property
    def origin(self) -> str:
        return self._origin

    def sign(self, size: int, root_hash: bytes, extensions: Sequence[str] = ()) -> bytes:
        checkpoint = Checkpoint(self._origin, size, root_hash, tuple(extensions))
        return note.sign(checkpoint.format(), [self._signer])


def cosign(signed: bytes, log_verifier: note.Verifier, witness: CosignatureSigner) -> bytes:
    """A witness adds its cosignature to a checkpoint the log signed, keeping every line.

    The log's signature is verified first: a witness vouches for a log's statement,
    never for text nobody signed. (Consistency with earlier checkpoints is the
    witness's own business and not checked here.)
    """
    return add_cosignatures(signed, cosignature_lines(signed, log_verifier, witness))


def cosignature_lines(
    signed: bytes, log_verifier: note.Verifier, witness: CosignatureSigner
) -> str:
    """The witness's answer to add-checkpoint (c2sp.org/tlog-witness): its line alone."""
    opened = note.open(signed, [log_verifier])
    sig = note.Signature(witness.name, witness.key_id, witness.sign(opened.text.encode()))
    return sig.line()


def add_cosignatures(signed: bytes, lines: str) -> bytes:
    """The log's side: the note with a witness's answer appended (one line per key).

    Nothing is verified here; readers verify with `verify_checkpoint`. The lines
    must be well-formed, so a witness cannot make the log publish a broken note.
    """
    text, kept = note.parse(signed)
    # The last line of each key counts, so an answer naming a key twice adds it once.
    added = list({(s.name, s.key_id): s for s in note.parse_signature_lines(lines)}.values())
    fresh = {(s.name, s.key_id) for s in added}
    merged = [s for s in kept if (s.name, s.key_id) not in fresh] + added
    return note.sign(text, [], keep=merged)


def verify_checkpoint(
    signed: bytes,
    log_verifier: note.Verifier,
    witness_verifiers: Iterable[note.Verifier],
    require_witness: bool = True,
    *,
    origin: str | None = None,
) -> Checkpoint:
    """The checkpoint, if the log signed it and (when required) a trusted witness cosigned it.

    `origin` defaults to the log key's name (the spec's SHOULD); pass it for logs
    whose origin differs (Go's checksum database: "go.sum database tree", signed
    by sum.golang.org). A bad signature by any trusted key refuses the note.
    """
    witnesses = list(witness_verifiers)
    log_key = (log_verifier.name, log_verifier.key_id)
    if any((w.name, w.key_id) == log_key for w in witnesses):
        raise CheckpointError(
            f"key {log_key[0]}+{log_key[1]:08x} is both the log's and a witness's"
        )
    opened = note.open(signed, [log_verifier, *witnesses])
    signers = {(s.name, s.key_id) for s in opened.signatures}
    if log_key not in signers:
        raise MissingLogSignatureError(
            f"checkpoint not signed by the log key {log_key[0]}+{log_key[1]:08x}"
        )
    checkpoint = Checkpoint.parse(opened.text)
    want = log_verifier.name if origin is None else origin
    if checkpoint.origin != want:
        raise OriginMismatchError(f"checkpoint origin {checkpoint.origin!r}, want {want!r}")
    if require_witness and not any((w.name, w.key_id) in signers for w in witnesses):
        names = ", ".join(w.name for w in witnesses) or "none configured"
        raise MissingCosignatureError(
            f"checkpoint {checkpoint.origin} {checkpoint.size} has no cosignature by a"
            f" trusted witness ({names})"
        )
    return checkpoint
