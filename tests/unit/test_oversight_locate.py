"""Locating forged hub entries by halving the tree with inclusion proofs (oversight/readers.py)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from oversight import readers
from renkei.errors import RenkeiError
from renkei.tlog import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]


def _locate(true: list[bytes], served: list[bytes]) -> tuple[list[int], int]:
    asked = []

    async def proof(index: int, size: int) -> list[bytes]:
        asked.append(index)
        return merkle.inclusion_proof(true, index, size)

    found = asyncio.run(readers._locate(served, len(true), merkle.root(true), proof))
    return found, len(asked)


@pytest.mark.parametrize(
    ("size", "forged"),
    [(1, [0]), (2, [1]), (7, [0, 6]), (256, [100]), (1000, [0, 1, 513, 999]), (1025, [1024])],
)
def test_finds_exactly_the_forged_leaves(size: int, forged: list[int]) -> None:
    true = _leaves(size)
    served = list(true)
    for i in forged:
        served[i] = hashlib.sha256(b"forged %d" % i).digest()
    found, proofs = _locate(true, served)
    assert found == forged
    assert proofs <= 2 * len(forged) * max(1, size.bit_length())


def test_nothing_forged_needs_no_proof() -> None:
    true = _leaves(300)
    assert _locate(true, list(true)) == ([], 0)


def test_proofs_that_do_not_add_up() -> None:
    true = _leaves(10)
    served = list(true)
    served[3] = b"\x00" * 32

    async def lying(index: int, size: int) -> list[bytes]:
        return [b"\x11" * 32 for _ in merkle.inclusion_proof(true, index, size)]

    with pytest.raises(RenkeiError) as err:
        asyncio.run(readers._locate(served, 10, merkle.root(true), lying))
    assert err.value.reason == "HUB_PROOF_INVALID"
