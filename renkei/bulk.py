"""What the hub and communication servers share about bulk queries.

A bulk request is sealed as one HPKE message each way rather than one per
person: an HPKE seal costs an X25519 key agreement, which per person would
cost more than everything else the hub does. Each answer stays bound to its
person: inside the one AEAD message it carries its index and serial, and the
``info`` binds requester, provider, kind, item, the requester's fresh nonce
and a digest of every (index, serial) pair answered, so the hub can neither
move an answer to another person nor replay an older batch.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from renkei import sealing
from renkei.errors import InvalidArgument, RenkeiError, invalid_field
from renkei.limits import MAX_BULK_ITEMS

NONCE_BYTES = 16


@dataclass(frozen=True, slots=True)
class ItemError:
    """One person's refusal: what the same refusal of a single exchange would carry."""

    code: str  # gRPC status code name
    reason: str
    message: str

    @classmethod
    def of(cls, err: RenkeiError) -> ItemError:
        return cls(err.code.name, err.reason, err.message)


def check_count(field: str, count: int) -> None:
    if count == 0:
        raise invalid_field(field, "is required: at least one person")
    if count > MAX_BULK_ITEMS:
        raise invalid_field(field, f"has {count} items; at most {MAX_BULK_ITEMS} per request")


def query_info(requester: str, provider: str, info_kind: str, item: str, count: int) -> bytes:
    return sealing.exchange_info("bulk-query", requester, provider, info_kind, item, count)


def answers_digest(pairs: Iterable[tuple[int, int]]) -> str:
    """SHA-256 of the (index, serial) pairs answered, in index order."""
    h = hashlib.sha256()
    for index, serial in pairs:
        h.update(struct.pack(">Iq", index, serial))
    return h.hexdigest()


def answer_info(
    requester: str,
    provider: str,
    info_kind: str,
    item: str,
    nonce: bytes,
    pairs: Iterable[tuple[int, int]],
) -> bytes:
    return sealing.exchange_info(
        "bulk-answer", requester, provider, info_kind, item, nonce.hex(), answers_digest(pairs)
    )


def format_serials(serials: Sequence[int]) -> str:
    """Serials in order as ranges, e.g. "101-600,700": short enough for error metadata."""
    out: list[str] = []
    i = 0
    while i < len(serials):
        j = i
        while j + 1 < len(serials) and serials[j + 1] == serials[j] + 1:
            j += 1
        out.append(str(serials[i]) if i == j else f"{serials[i]}-{serials[j]}")
        i = j + 1
    return ",".join(out)


def parse_serials(text: str) -> list[int]:
    """The serials ``format_serials`` wrote; refuses anything else."""
    serials: list[int] = []
    if not text:
        return serials
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            lo = int(first)
            hi = int(last) if last else lo
            if hi < lo or hi - lo > MAX_BULK_ITEMS:
                raise ValueError(part)
            serials.extend(range(lo, hi + 1))
    except ValueError:
        raise InvalidArgument(
            "BULK_SERIALS_INVALID", f"serials metadata {text[:40]!r} is not a list of ranges"
        ) from None
    return serials
