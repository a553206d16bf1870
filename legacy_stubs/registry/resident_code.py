"""The 11-digit resident code (住民票コード): ten random digits and a check digit.

The official check-digit formula is not public, so this mock uses **its own
choice**, not the official formula:

* modulus 11;
* weights 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, applied from the *rightmost* of the ten
  digits (so, left to right, the weights are 5, 4, 3, 2, 7, 6, 5, 4, 3, 2);
* check = 11 - (weighted sum mod 11), except that remainders 0 and 1 give 0.

It is deliberately not the Number's formula (the 12-digit Number weights eleven
digits 2..7, 2..6 from the right). The weights cycle the same way, but the
lengths and weight vectors differ, and nothing in the mock relies on the two
agreeing.

The "remainders 0 and 1 both give 0" rule has a blind spot: a single changed
digit that moves the remainder from 0 to 1 (or back) keeps the check digit.
``new_resident_code`` therefore never issues a code whose remainder is 0 or 1;
every code it issues turns invalid when any one digit changes. ``is_valid``
still accepts such codes, because they satisfy the formula.
"""

from __future__ import annotations

import functools
import random
import re

from renkei.errors import invalid_field

# From the rightmost of the ten digits leftwards.
WEIGHTS = (2, 3, 4, 5, 6, 7, 2, 3, 4, 5)
MODULUS = 11
BODY_SPACE = 10**10
"""How many ten-digit bodies there are."""

# re.ASCII: without it \d (and even str.isdigit) accepts full-width and other scripts' digits.
_CODE_RE = re.compile(r"[0-9]{11}", re.ASCII)
_BODY_RE = re.compile(r"[0-9]{10}", re.ASCII)


def _remainder(ten: str) -> int:
    return sum(w * int(d) for w, d in zip(WEIGHTS, reversed(ten), strict=True)) % MODULUS


def _digit_for(remainder: int) -> str:
    return "0" if remainder <= 1 else str(MODULUS - remainder)


def check_digit(ten: str) -> str:
    """The check digit for ten ASCII digits (``ValueError`` for anything else)."""
    if not _BODY_RE.fullmatch(ten):
        raise ValueError(f"expected ten ASCII digits, got {ten!r}")
    return _digit_for(_remainder(ten))


def is_valid(code: object) -> bool:
    """Whether ``code`` is eleven ASCII digits whose last one checks the first ten."""
    return (
        isinstance(code, str)
        and _CODE_RE.fullmatch(code) is not None
        and check_digit(code[:10]) == code[10]
    )


def validate(code: object, field: str = "resident_code") -> str:
    """``code`` if it is a valid resident code, else ``InvalidArgument`` naming ``field``."""
    if not isinstance(code, str):
        raise invalid_field(field, "must be a string of 11 digits")
    if len(code) != 11:
        raise invalid_field(field, f"must be 11 digits, got {len(code)} characters")
    if not _CODE_RE.fullmatch(code):
        raise invalid_field(field, "must be 11 ASCII digits 0-9")
    if check_digit(code[:10]) != code[10]:
        raise invalid_field(field, "check digit does not match")
    return code


@functools.cache
def remainder_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Weighted sums mod 11 of the high and low five digits, for issuing codes in bulk.

    A body ``b`` has remainder ``(HIGH[b // 100000] + LOW[b % 100000]) % 11``;
    two table look-ups are several times faster than a digit loop per code.
    """
    w = WEIGHTS
    low = tuple(
        (a * w[4] + b * w[3] + c * w[2] + d * w[1] + e * w[0]) % MODULUS
        for a in range(10)
        for b in range(10)
        for c in range(10)
        for d in range(10)
        for e in range(10)
    )
    high = tuple(
        (a * w[9] + b * w[8] + c * w[7] + d * w[6] + e * w[5]) % MODULUS
        for a in range(10)
        for b in range(10)
        for c in range(10)
        for d in range(10)
        for e in range(10)
    )
    return high, low


def issuable_body(body: int) -> str | None:
    """The code for the ten-digit ``body`` (an int below 10**10), or None if we never issue it."""
    high, low = remainder_tables()
    remainder = (high[body // 100000] + low[body % 100000]) % MODULUS
    if remainder <= 1:
        return None
    return f"{body:010d}{MODULUS - remainder}"


def new_resident_code(rng: random.Random, taken: set[str] | None = None) -> str:
    """A fresh code drawn from ``rng``: never one in ``taken``, never one with remainder 0 or 1.

    ``taken`` is only read; the caller adds the result if it keeps one.
    """
    while True:
        code = issuable_body(rng.randrange(BODY_SPACE))
        if code is not None and (taken is None or code not in taken):
            return code
