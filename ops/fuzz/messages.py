"""Inputs made from the descriptors: plausible messages, hostile ones, mutated bytes.

Everything is drawn from one ``random.Random``, so a seed gives the same inputs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from renkei.limits import MAX_MESSAGE_BYTES

F = FieldDescriptor
INT32 = (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32)
INT64 = (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64)
UINT32 = (F.TYPE_UINT32, F.TYPE_FIXED32)
UINT64 = (F.TYPE_UINT64, F.TYPE_FIXED64)
FLOATS = (F.TYPE_DOUBLE, F.TYPE_FLOAT)
TIMESTAMP = "google.protobuf.Timestamp"

# The huge repeated field of issue 12: this many entries.
HUGE_REPEATED = 100_000

HOSTILE_TEXT: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "a\x1fb",
    "\x7f\x85\x9f",
    "\u202e\u200b\ufeff",
    "１２３４５６",
    "e\u0301\u0301\u0301",
    "\U0010ffff\U0001f600",
    "../../../../etc/passwd",
    "%s%s%n%x",
    "' OR 1=1 --",
    "${jndi:ldap://x}",
    "[/][bold]",
    "9" * 5000,
    "-1",
    "18446744073709551616",
    "0x7fffffff",
    "NaN",
    "あ" * 2000,
    "a" * 300_000,
    "\r\n\r\n",
    "\"'<>&;",
)
INT32_EDGES = (0, 1, -1, 2**31 - 1, -(2**31), 2**31 - 2, 1000, 10**9)
INT64_EDGES = (0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1, -(2**53), 2**31, 10**18)
UINT32_EDGES = (0, 1, 2**32 - 1, 2**31, 1000)
UINT64_EDGES = (0, 1, 2**64 - 1, 2**63, 2**63 - 1)
FLOAT_EDGES = (math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324, 0.5)
TIMESTAMP_SECONDS = (
    253_402_300_800,  # 10000-01-01: one past Timestamp's range
    253_402_300_799,
    -62_135_596_801,
    -62_135_596_800,
    2**63 - 1,
    -(2**63),
    0,
    -1,
    1_800_000_000,
)
TIMESTAMP_NANOS = (0, -1, 10**9, 999_999_999, 2**31 - 1, -(2**31))


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


class Generator:
    """Messages of any type, from its descriptor; ``plausible`` values come from ``words``."""

    def __init__(self, rng: random.Random, words: Sequence[str]) -> None:
        self.rng = rng
        self.words = tuple(words)

    # -- plausible: what a correct client might send --------------------------------------

    def plausible(self, descriptor: Descriptor, depth: int = 0) -> Message:
        message = message_class(descriptor)()
        for f in descriptor.fields:
            if self.rng.random() < 0.15:
                continue  # left unset
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                target = getattr(message, f.name)
                for _ in range(self.rng.randint(0, 2)):
                    target[self._word()] = self._word()
                continue
            count = self.rng.randint(1, 3) if _repeated(f) else 1
            for _ in range(count):
                self._set(message, f, self._plausible_value(f, depth))
        return message

    def _word(self) -> str:
        return self.rng.choice(self.words) if self.words else "x"

    def _plausible_value(self, f: FieldDescriptor, depth: int) -> object:
        if f.message_type is not None:
            if f.message_type.full_name == TIMESTAMP:
                ts = message_class(f.message_type)()
                ts.seconds = self.rng.randint(1_600_000_000, 1_900_000_000)  # type: ignore[attr-defined]
                return ts
            if depth > 5:
                return message_class(f.message_type)()
            return self.plausible(f.message_type, depth + 1)
        if f.enum_type is not None:
            return self.rng.choice(f.enum_type.values).number
        if f.type == F.TYPE_BOOL:
            return self.rng.random() < 0.5
        if f.type == F.TYPE_STRING:
            return self._word()
        if f.type == F.TYPE_BYTES:
            return self._word().encode()
        if f.type in FLOATS:
            return self.rng.uniform(0, 1000)
        return self.rng.randint(0, 100)

    # -- hostile: well-formed bytes, values no correct client sends -----------------------

    def hostile(self, descriptor: Descriptor, depth: int = 0) -> Message:
        message = self.plausible(descriptor, depth) if self.rng.random() < 0.5 else None
        if message is None:
            message = message_class(descriptor)()
        fields = list(descriptor.fields)
        if not fields:
            return message
        chosen = self.rng.sample(fields, self.rng.randint(1, len(fields)))
        for f in chosen:
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                target = getattr(message, f.name)
                for _ in range(self.rng.choice((1, 3, 1000))):
                    target[self._hostile_text()] = self._hostile_text()
                continue
            if _repeated(f):
                getattr(message, f.name).__delitem__(slice(None))
                for _ in range(self.rng.choice((0, 1, 2, 50, 1000))):
                    self._set(message, f, self._hostile_value(f, depth))
            else:
                self._set(message, f, self._hostile_value(f, depth))
        return message

    def _hostile_text(self) -> str:
        r = self.rng.random()
        if r < 0.25:
            return self._word() + self.rng.choice(HOSTILE_TEXT)[:100]
        if r < 0.35:
            return self._word() * self.rng.choice((2, 100))
        return self.rng.choice(HOSTILE_TEXT)

    def _hostile_value(self, f: FieldDescriptor, depth: int) -> object:
        rng = self.rng
        if f.message_type is not None:
            if f.message_type.full_name == TIMESTAMP:
                ts = message_class(f.message_type)()
                ts.seconds = rng.choice(TIMESTAMP_SECONDS)  # type: ignore[attr-defined]
                ts.nanos = rng.choice(TIMESTAMP_NANOS)  # type: ignore[attr-defined]
                return ts
            if depth > 5 or rng.random() < 0.3:
                return message_class(f.message_type)()  # an empty submessage
            return self.hostile(f.message_type, depth + 1)
        if f.enum_type is not None:
            return rng.choice(
                (-1, 999, 2**31 - 1, -(2**31), *(v.number for v in f.enum_type.values))
            )
        if f.type == F.TYPE_BOOL:
            return rng.random() < 0.5
        if f.type == F.TYPE_STRING:
            return self._hostile_text()
        if f.type == F.TYPE_BYTES:
            size = rng.choice((0, 1, 16, 1000, 200_000))
            return rng.randbytes(size)
        if f.type in FLOATS:
            return rng.choice(FLOAT_EDGES)
        if f.type in INT32:
            return rng.choice(INT32_EDGES)
        if f.type in INT64:
            return rng.choice(INT64_EDGES)
        if f.type in UINT32:
            return rng.choice(UINT32_EDGES)
        return rng.choice(UINT64_EDGES)

    # -- tweak: a correct message with one or two of its fields (at any depth) changed -----

    def tweak(self, message: Message) -> Message:
        for _ in range(self.rng.randint(1, 2)):
            self._tweak_one(message, 0)
        return message

    def _tweak_one(self, message: Message, depth: int) -> None:
        rng = self.rng
        fields: list[FieldDescriptor] = list(message.DESCRIPTOR.fields)  # type: ignore[arg-type]
        if not fields:
            return
        f = rng.choice(fields)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            getattr(message, f.name)[self._hostile_text()] = self._hostile_text()
            return
        value = getattr(message, f.name)
        if f.message_type is not None and depth < 6 and rng.random() < 0.6:
            if _repeated(f) and len(value):
                self._tweak_one(rng.choice(value), depth + 1)
                return
            if not _repeated(f) and message.HasField(f.name):
                self._tweak_one(value, depth + 1)
                return
        new = self._hostile_value(f, depth) if rng.random() < 0.7 else self._plausible_value(f, 1)
        if _repeated(f):
            action = rng.random()
            if action < 0.3 and len(value):
                del value[rng.randrange(len(value))]
            elif action < 0.6 and len(value):
                value.extend([value[rng.randrange(len(value))]] * rng.choice((1, 10, 5000)))
            else:
                self._set(message, f, new)
        else:
            self._set(message, f, new)

    def _set(self, message: Message, f: FieldDescriptor, value: object) -> None:
        if _repeated(f):
            target = getattr(message, f.name)
            if f.message_type is not None:
                target.add().CopyFrom(value)
            else:
                target.append(value)
        elif f.message_type is not None:
            getattr(message, f.name).CopyFrom(value)
        else:
            setattr(message, f.name, value)

    # -- the 100k-entry repeated field, on the wire (building it as objects is slow) ------

    def huge_repeated(self, descriptor: Descriptor) -> bytes | None:
        """A plausible message with one repeated field holding ``HUGE_REPEATED`` entries."""
        repeated = [f for f in descriptor.fields if _repeated(f)]
        if not repeated:
            return None
        f = self.rng.choice(repeated)
        base = self.plausible(descriptor)
        one = message_class(descriptor)()
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            getattr(one, f.name)[self._word()] = self._word()
        else:
            self._set(one, f, self._plausible_value(f, 1))
        entry = one.SerializeToString()
        room = MAX_MESSAGE_BYTES * 2 // max(1, len(entry))  # over the limit now and then
        return base.SerializeToString() + entry * min(HUGE_REPEATED, room)


def _repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)


# -- bytes ---------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def mutate(rng: random.Random, data: bytes, others: Sequence[bytes] = ()) -> bytes:
    """``data`` with 1-4 byte-level mutations (flips, cuts, insertions, splices, odd fields)."""
    raw = bytearray(data)
    actions: tuple[Callable[[bytearray], None], ...] = (
        lambda b: _flip(rng, b),
        lambda b: _flip(rng, b),
        lambda b: _truncate(rng, b),
        lambda b: _insert(rng, b),
        lambda b: _splice(rng, b, others),
        lambda b: _odd_field(rng, b),
        lambda b: _duplicate(rng, b),
    )
    for _ in range(rng.randint(1, 4)):
        rng.choice(actions)(raw)
    return bytes(raw)


def _flip(rng: random.Random, raw: bytearray) -> None:
    if raw:
        at = rng.randrange(len(raw))
        if rng.random() < 0.5:
            raw[at] ^= 1 << rng.randrange(8)
        else:
            raw[at] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))


def _truncate(rng: random.Random, raw: bytearray) -> None:
    if raw:
        del raw[rng.randrange(len(raw)) :]


def _insert(rng: random.Random, raw: bytearray) -> None:
    at = rng.randint(0, len(raw))
    raw[at:at] = rng.randbytes(rng.randint(1, 8))


def _splice(rng: random.Random, raw: bytearray, others: Sequence[bytes]) -> None:
    if others:
        other = rng.choice(others)
        at = rng.randint(0, len(raw))
        start = rng.randint(0, len(other))
        raw[at:at] = other[start : start + rng.randint(1, 64)]


def _odd_field(rng: random.Random, raw: bytearray) -> None:
    """A field the schema does not know, or a known number with the wrong wire type."""
    number = rng.choice((1, 2, 3, 4, 5, 15, 16, 1000, 536_870_911))
    wire = rng.choice((0, 1, 2, 3, 4, 5, 6, 7))
    key = _varint((number << 3) | wire)
    if wire == 0:
        body = _varint(rng.choice((0, 1, 2**63, 2**64 - 1)))
    elif wire == 1:
        body = rng.randbytes(8)
    elif wire == 2:
        length = rng.choice((0, 3, 2**31, 2**63))
        body = _varint(length) + rng.randbytes(min(length, 3))
    elif wire == 5:
        body = rng.randbytes(4)
    else:
        body = b""
    at = rng.choice((0, len(raw)))
    raw[at:at] = key + body


def _duplicate(rng: random.Random, raw: bytearray) -> None:
    if raw:
        start = rng.randrange(len(raw))
        raw.extend(raw[start : start + rng.randint(1, 32)])


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 2, 5, 16, 64, 512)))
