"""C2SP signed notes (https://c2sp.org/signed-note), interoperable with Go's sumdb/note.

A signed note is a UTF-8 text ending in a newline, a blank line, then one line per
signature: "— <key name> <base64(4-byte key ID || signature)>". Key strings are
the ones golang.org/x/mod/sumdb/note reads and writes, so a key made here works in
Go tools and the other way round:

    verifier key  <name>+<hex key ID>+<base64(algorithm byte || public key)>
    signer key    PRIVATE+KEY+<name>+<hex key ID>+<base64(algorithm byte || seed)>

`open` follows Go's `note.Open`: signatures by keys the caller does not know are
kept but marked unverified; one bad signature by a known key refuses the whole
note; a note with no verified signature is refused. Unlike Go, base64 must be the
canonical encoding (Go accepts non-zero padding bits), so that no byte of a signed
note can change without the verification failing. Ed25519 comes from
`cryptography`; nothing here does arithmetic on keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

# Signature types of c2sp.org/signed-note ("Signature types").
ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04  # c2sp.org/tlog-cosignature, timestamped Ed25519 (checkpoint.py)

# The spec asks verifiers to bound a note's size and to accept at least 16
# signatures. 1 MiB is far above any checkpoint (a few hundred bytes) and far
# below what could hurt a server that parses notes from the network; 100
# signatures is Go's own limit, so a note Go accepts is not refused here for it.
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100

_SIG_PREFIX = "— "  # em dash U+2014, space
_ED25519_KEY_BYTES = 32
_KEY_ID_BYTES = 4
# Python's str.isspace() is Unicode's White_Space less a few; Go's unicode.IsSpace
# is White_Space exactly (U+0085 and U+00A0 are in both). Spelled out so that a
# name Go refuses is refused here.
_UNICODE_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, signature or key string refused; the message names what failed."""


class MalformedNoteError(NoteError):
    """The bytes are not a signed note (encoding, layout, size, a signature line)."""


class MalformedKeyError(NoteError):
    """A verifier or signer key string cannot be read, or its key ID does not match."""


class InvalidSignatureError(NoteError):
    """A signature by a key the caller trusts does not verify: the note is refused."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


class UnknownKeyError(NoteError):
    """No signature of the note is by a key the caller knows (Go: UnverifiedNoteError)."""

    def __init__(self, unverified: Sequence[Signature]) -> None:
        keys = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified)
        super().__init__(f"note has no signature by a known key (signed by: {keys or 'nobody'})")
        self.unverified = tuple(unverified)


class AmbiguousKeyError(NoteError):
    """Two different known verifiers share a name and key ID that a signature uses."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"ambiguous key {name}+{key_id:08x}")


class Verifier(Protocol):
    """Checks signatures of one key; `verify` takes the signature without the key ID."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def verify(self, message: bytes, signature: bytes) -> bool: ...


class Signer(Protocol):
    """Signs with one key; `sign` returns the signature without the key ID."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(_KEY_ID_BYTES, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the signatures verified, those by unknown keys."""

    text: str
    signatures: tuple[Signature, ...]
    unverified: tuple[Signature, ...] = field(default=())


def valid_name(name: str) -> bool:
    """Key names are non-empty and hold no Unicode space and no '+' (as Go's isValidName)."""
    return name != "" and "+" not in name and not any(c in _UNICODE_SPACES for c in name)


def key_id(name: str, algorithm: int, public_key: bytes) -> int:
    """SHA-256(name || "\\n" || algorithm byte || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([algorithm]) + public_key).digest()
    return int.from_bytes(digest[:_KEY_ID_BYTES], "big")


def b64decode_exact(text: str) -> bytes:
    """Standard padded base64 in its one canonical spelling, or ValueError."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"not base64: {err}") from None
    # validate=True still accepts non-zero padding bits ("AB==" and "AC==" both
    # decode to one byte); a note must have one spelling per signature.
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not the canonical base64 encoding")
    return raw


class Ed25519Verifier:
    """Plain Ed25519 note signatures (type 0x01) over the note text."""

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey) -> None:
        if not valid_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        self._name = name
        self._public_key = public_key
        self._key_id = key_id(name, ALG_ED25519, public_key.public_bytes_raw())

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public_key

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verifier_key(self) -> str:
        return format_verifier_key(self._name, ALG_ED25519, self._public_key.public_bytes_raw())


class Ed25519Signer:
    """Plain Ed25519 note signatures (type 0x01); Ed25519 is deterministic."""

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey) -> None:
        if not valid_name(name):
            raise MalformedKeyError(f"invalid key name {name!r}")
        self._name = name
        self._private_key = private_key
        self._key_id = key_id(name, ALG_ED25519, private_key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str) -> Ed25519Signer:
        return cls(name, ed25519.Ed25519PrivateKey.generate())

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self._name, self._private_key.public_key())

    def signer_key(self) -> str:
        """The PRIVATE+KEY+... string Go's note.NewSigner reads; it is a secret."""
        seed = self._private_key.private_bytes_raw()
        return "PRIVATE+KEY+" + format_verifier_key(self._name, ALG_ED25519, seed, self._key_id)


def format_verifier_key(
    name: str, algorithm: int, material: bytes, key_hash: int | None = None
) -> str:
    """<name>+<hex key ID>+<base64(algorithm || material)>; the ID is of the public key."""
    if not valid_name(name):
        raise MalformedKeyError(f"invalid key name {name!r}")
    kid = key_id(name, algorithm, material) if key_hash is None else key_hash
    return f"{name}+{kid:08x}+{base64.b64encode(bytes([algorithm]) + material).decode()}"


def split_key(text: str, what: str) -> tuple[str, int, int, bytes]:
    """Read <name>+<hex ID>+<base64(alg || material)> into (name, ID, alg, material).

    The ID is not checked here: for a verifier key it is the hash of the material,
    for a signer key of the public key derived from it.
    """
    parts = text.split("+", 2)  # base64 holds '+' too: cut twice, as Go
    if len(parts) != 3:
        raise MalformedKeyError(f"{what} key: want <name>+<key ID>+<key>, got {len(parts)} parts")
    name, hex_id, blob = parts
    if not valid_name(name):
        raise MalformedKeyError(f"{what} key: invalid key name {name!r}")
    # Go formats the ID with %08x (lowercase); it parses upper case too, but a key
    # string is copied, not typed, so one spelling is enough.
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise MalformedKeyError(f"{what} key {name}: key ID {hex_id!r} is not 8 lowercase hex")
    try:
        raw = b64decode_exact(blob)
    except ValueError as err:
        raise MalformedKeyError(f"{what} key {name}: key material {err}") from None
    if len(raw) < 1:
        raise MalformedKeyError(f"{what} key {name}: empty key material")
    return name, int(hex_id, 16), raw[0], raw[1:]


def parse_verifier_key(vkey: str) -> Ed25519Verifier:
    """An Ed25519 (type 0x01) verifier from a vkey string, as Go's note.NewVerifier."""
    name, kid, alg, material = split_key(vkey, "verifier")
    if alg != ALG_ED25519:
        raise MalformedKeyError(f"verifier key {name}: unknown algorithm 0x{alg:02x}")
    if len(material) != _ED25519_KEY_BYTES:
        raise MalformedKeyError(f"verifier key {name}: Ed25519 key is {len(material)} bytes")
    if key_id(name, alg, material) != kid:
        raise MalformedKeyError(f"verifier key {name}: key ID {kid:08x} does not match the key")
    return Ed25519Verifier(name, ed25519.Ed25519PublicKey.from_public_bytes(material))


def parse_signer_key(skey: str) -> Ed25519Signer:
    """An Ed25519 signer from Go's PRIVATE+KEY+<name>+<ID>+<base64(0x01 || seed)>."""
    prefix = "PRIVATE+KEY+"
    if not skey.startswith(prefix):
        raise MalformedKeyError("signer key: does not start with PRIVATE+KEY+")
    # Never echo the string: it is a secret.
    name, kid, alg, seed = split_key(skey.removeprefix(prefix), "signer")
    if alg != ALG_ED25519:
        raise MalformedKeyError(f"signer key {name}: unknown algorithm 0x{alg:02x}")
    if len(seed) != _ED25519_KEY_BYTES:
        raise MalformedKeyError(f"signer key {name}: Ed25519 seed is {len(seed)} bytes")
    signer = Ed25519Signer(name, ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    if signer.key_id != kid:
        raise MalformedKeyError(f"signer key {name}: key ID {kid:08x} does not match the key")
    return signer


def generate_key(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key as (signer key, verifier key), as Go's note.GenerateKey."""
    signer = Ed25519Signer.generate(name)
    return signer.signer_key(), signer.verifier().verifier_key()


def check_text(text: str, what: str) -> None:
    """Refuse control characters but newline (a str is valid Unicode already)."""
    for i, c in enumerate(text):
        if c < " " and c != "\n":
            raise MalformedNoteError(f"{what}: control character U+{ord(c):04X} at character {i}")


def sign(text: str, signers: Iterable[Signer], keep: Iterable[Signature] = ()) -> bytes:
    """The signed note of `text` by every signer, after the signatures in `keep`.

    As Go's note.Sign: signatures kept come first (one by a key that signs now is
    replaced), the new ones after them, in the order given. `keep` lets a witness
    add its cosignature to a note the log signed.
    """
    if not text.endswith("\n"):
        raise MalformedNoteError("note text does not end with a newline")
    check_text(text, "note text")
    message = text.encode()
    new: list[Signature] = []
    for s in signers:
        if not valid_name(s.name):
            raise MalformedKeyError(f"invalid signer name {s.name!r}")
        new.append(Signature(s.name, s.key_id, s.sign(message)))
    signing = {(n.name, n.key_id) for n in new}
    lines = [k for k in keep if (k.name, k.key_id) not in signing] + new
    for kept in lines:
        if not valid_name(kept.name):
            raise MalformedNoteError(f"invalid key name {kept.name!r} in a kept signature")
    if not lines:
        raise MalformedNoteError("a note needs at least one signature")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"{len(lines)} signatures, over the limit of {MAX_SIGNATURES}")
    note = message + b"\n" + "".join(line.line() for line in lines).encode()
    if len(note) > MAX_NOTE_BYTES:
        raise MalformedNoteError(f"note is {len(note)} bytes, over the limit of {MAX_NOTE_BYTES}")
    return note


def _parse_signature_line(line: str, number: int) -> Signature:
    where = f"signature line {number}"
    if not line.startswith(_SIG_PREFIX):
        raise MalformedNoteError(f"{where}: does not start with an em dash and a space")
    name, space, blob = line.removeprefix(_SIG_PREFIX).partition(" ")
    if not space or not valid_name(name):
        raise MalformedNoteError(f"{where}: want '— <key name> <signature>'")
    try:
        raw = b64decode_exact(blob)
    except ValueError as err:
        raise MalformedNoteError(f"{where} ({name}): signature {err}") from None
    if len(raw) <= _KEY_ID_BYTES:
        raise MalformedNoteError(f"{where} ({name}): signature holds no more than a key ID")
    return Signature(name, int.from_bytes(raw[:_KEY_ID_BYTES], "big"), raw[_KEY_ID_BYTES:])


def parse(note: bytes) -> tuple[str, list[Signature]]:
    """Split a signed note into its text and its signature lines, verifying nothing."""
    if len(note) > MAX_NOTE_BYTES:
        raise MalformedNoteError(f"note is {len(note)} bytes, over the limit of {MAX_NOTE_BYTES}")
    try:
        decoded = note.decode("utf-8")  # strict: refuses surrogates and overlongs, as Go
    except UnicodeDecodeError as err:
        raise MalformedNoteError(f"note is not valid UTF-8 (byte {err.start})") from None
    check_text(decoded, "note")
    # The text may hold blank lines; the signatures start after the last one.
    split = decoded.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("no blank line between the text and the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    return text, parse_signature_lines(block)


def parse_signature_lines(block: str) -> list[Signature]:
    """Signature lines alone, each ending in a newline: what a witness answers (tlog-witness)."""
    if not block:
        raise MalformedNoteError("no signature lines after the blank line")
    if not block.endswith("\n"):
        raise MalformedNoteError("the last signature line does not end with a newline")
    check_text(block, "signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"{len(lines)} signatures, over the limit of {MAX_SIGNATURES}")
    return [_parse_signature_line(line, i) for i, line in enumerate(lines, 1)]


def open(note: bytes, known: Iterable[Verifier]) -> Note:
    """Verify a signed note against the keys the caller trusts.

    Raises MalformedNoteError, InvalidSignatureError (a known key's signature is
    bad), AmbiguousKeyError, or UnknownKeyError (nothing verified). Signatures by
    other keys come back unverified; a repeated signature counts once. The name
    is Go's (note.Open); call it as `note.open`.
    """
    text, sigs = parse(note)
    verifiers: dict[tuple[str, int], list[Verifier]] = {}
    for v in known:
        same = verifiers.setdefault((v.name, v.key_id), [])
        # One verifier object listed twice is one key (Go calls even that
        # ambiguous); two objects under one name and ID may be two keys.
        if all(v is not w for w in same):
            same.append(v)
    message = text.encode()
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for sig in sigs:
        key = (sig.name, sig.key_id)
        candidates = verifiers.get(key)
        if candidates is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if len(candidates) > 1:
            raise AmbiguousKeyError(*key)
        # The spec: a known key's signature MUST be verified, so unlike Go (which
        # checks a key's first line only) a repeated line is checked too.
        if not candidates[0].verify(message, sig.signature):
            raise InvalidSignatureError(*key)
        if all((s.name, s.key_id) != key for s in verified):
            verified.append(sig)
    if not verified:
        raise UnknownKeyError(unverified)
    return Note(text, tuple(verified), tuple(unverified))
