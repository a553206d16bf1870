"""renkei.tlog.merkle: proofs for every small tree, properties for large ones, the store.

The oracle is a from-scratch transcription of RFC 9162's recursive definitions
(MTH, PATH, SUBPROOF) over lists, and of what a verifier of those definitions
must conclude: code that shares nothing with the library. It checks every
proof of the trees of up to 64 leaves, and the proofs the property tests draw
from trees of up to 3000. Known answers from another
implementation are in test_merkle_vectors.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renkei.tlog import merkle
from renkei.tlog.merkle import ProofError

SMALL = 64
BIG = 3000


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- the reference: RFC 9162 2.1.1, 2.1.3.1 and 2.1.4.1 as written -----------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return _sha(b"")
    if len(d) == 1:
        return _sha(b"\x00" + d[0])
    k = _k(len(d))
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_accepts_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Rebuild the root by walking PATH's recursion with the proof's hashes in its places."""
    if not 0 <= index < size:
        return False
    it = iter(proof)

    def up(m: int, n: int) -> bytes | None:
        if n == 1:
            return leaf
        k = _k(n)
        inner = up(m, k) if m < k else up(m - k, n - k)
        sibling = next(it, None)
        if inner is None or sibling is None:
            return None
        if m < k:
            return _sha(b"\x01" + inner + sibling)
        return _sha(b"\x01" + sibling + inner)

    got = up(index, size)
    return got == root and next(it, None) is None


def ref_accepts_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Rebuild both roots by walking SUBPROOF's recursion with the proof's hashes."""
    if not 0 < old <= new:
        return False
    it = iter(proof)

    def up(m: int, n: int, b: bool) -> tuple[bytes, bytes] | None:
        if m == n:
            if b:
                return old_root, old_root
            x = next(it, None)
            return None if x is None else (x, x)
        k = _k(n)
        inner = up(m, k, b) if m <= k else up(m - k, n - k, False)
        sibling = next(it, None)
        if inner is None or sibling is None:
            return None
        o, w = inner
        if m <= k:
            return o, _sha(b"\x01" + w + sibling)
        return _sha(b"\x01" + sibling + o), _sha(b"\x01" + sibling + w)

    got = up(old, new, True)
    return got == (old_root, new_root) and next(it, None) is None


# --- trees ------------------------------------------------------------------

ENTRIES = [i.to_bytes(4, "big") for i in range(BIG)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]
STORE = merkle.MemoryHashStore()
TREE = merkle.CompactRange(STORE)
TREE.append(LEAVES)
ROOTS = [ref_mth(ENTRIES[:n]) for n in range(SMALL + 1)]


def _accepts_inclusion(*args: object) -> bool:
    try:
        merkle.verify_inclusion(*args)  # type: ignore[arg-type]
    except ProofError:
        return False
    return True


def _accepts_consistency(*args: object) -> bool:
    try:
        merkle.verify_consistency(*args)  # type: ignore[arg-type]
    except ProofError:
        return False
    return True


def test_hashes_are_rfc_9162_with_sha256() -> None:
    assert merkle.leaf_hash(b"x") == _sha(b"\x00x")
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == _sha(b"\x01" + b"a" * 32 + b"b" * 32)
    assert merkle.root([]) == _sha(b"") == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(SMALL + 1))
def test_root_of_every_small_size(size: int) -> None:
    assert merkle.root(LEAVES[:size]) == ROOTS[size]
    assert merkle.stored_root(STORE, size) == ROOTS[size]


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_inclusion_for_every_index(size: int) -> None:
    for index in range(size):
        proof = merkle.inclusion_proof(LEAVES, index, size)
        assert proof == ref_path(index, ENTRIES[:size])
        assert merkle.stored_inclusion_proof(STORE, index, size) == proof
        merkle.verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize("new", range(1, SMALL + 1))
def test_consistency_for_every_pair(new: int) -> None:
    for old in range(1, new + 1):
        proof = merkle.consistency_proof(LEAVES, old, new)
        assert proof == ref_subproof(old, ENTRIES[:new], True)
        assert merkle.stored_consistency_proof(STORE, old, new) == proof
        merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def test_the_reference_verifiers_refuse_a_flipped_bit() -> None:
    # A guard on the oracle: if it accepted anything, the properties below would be vacuous.
    proof = ref_path(5, ENTRIES[:13])
    root = ref_mth(ENTRIES[:13])
    assert ref_accepts_inclusion(LEAVES[5], 5, 13, proof, root)
    assert not ref_accepts_inclusion(LEAVES[5], 5, 13, proof, _flip(root, 0))
    assert not ref_accepts_inclusion(LEAVES[5], 6, 13, proof, root)
    cproof = ref_subproof(5, ENTRIES[:13], True)
    assert ref_accepts_consistency(5, 13, ROOTS[5], root, cproof)
    assert not ref_accepts_consistency(5, 13, ROOTS[5], root, [_flip(cproof[0], 3), *cproof[1:]])


# --- properties for large trees ------------------------------------------------


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@st.composite
def _index_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, BIG))
    return draw(st.integers(0, size - 1)), size


@st.composite
def _two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, BIG))
    return draw(st.integers(1, new)), new


SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(_index_in_tree(), st.data())
def test_inclusion_proofs_verify_and_any_change_fails(
    at: tuple[int, int], data: st.DataObject
) -> None:
    index, size = at
    proof = merkle.stored_inclusion_proof(STORE, index, size)
    root = merkle.stored_root(STORE, size)
    assert proof == merkle.inclusion_proof(LEAVES, index, size)
    # Beyond the exhaustive small trees too, the proof is RFC 9162's PATH itself.
    assert proof == ref_path(index, ENTRIES[:size])
    assert root == merkle.root(LEAVES[:size])
    merkle.verify_inclusion(LEAVES[index], index, size, proof, root)

    bit = data.draw(st.integers(0, 255), label="bit")
    assert not _accepts_inclusion(LEAVES[index], index, size, proof, _flip(root, bit))
    assert not _accepts_inclusion(_flip(LEAVES[index], bit), index, size, proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="proof hash")
        bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
        assert not _accepts_inclusion(LEAVES[index], index, size, bad, root)
        assert not _accepts_inclusion(LEAVES[index], index, size, proof[:-1], root)
    assert not _accepts_inclusion(LEAVES[index], index, size, [*proof, root], root)

    # Another index or size is refused unless it walks the very same path: the
    # tree size a proof is for comes from the signed checkpoint, not the hashes
    # (index 0 of size 3 and of size 4 hash alike), so that is all one can ask.
    other_index = data.draw(st.integers(0, BIG), label="other index")
    other_size = data.draw(st.integers(0, BIG + 1), label="other size")
    for i, n in ((other_index, size), (index, other_size), (index ^ 1, size)):
        if (i, n) == (index, size) or i >= n:
            continue
        want = ref_accepts_inclusion(LEAVES[index], i, n, proof, root)
        assert _accepts_inclusion(LEAVES[index], i, n, proof, root) == want
    if index + 1 < size:
        assert not _accepts_inclusion(LEAVES[index], index + 1, size, proof, root)


@SETTINGS
@given(_two_sizes(), st.data())
def test_consistency_proofs_verify_and_any_change_fails(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    old, new = sizes
    proof = merkle.stored_consistency_proof(STORE, old, new)
    assert proof == merkle.consistency_proof(LEAVES, old, new)
    assert proof == ref_subproof(old, ENTRIES[:new], True)  # RFC 9162's PROOF itself
    old_root, new_root = merkle.stored_root(STORE, old), merkle.stored_root(STORE, new)
    merkle.verify_consistency(old, new, old_root, new_root, proof)

    bit = data.draw(st.integers(0, 255), label="bit")
    assert not _accepts_consistency(old, new, _flip(old_root, bit), new_root, proof)
    assert not _accepts_consistency(old, new, old_root, _flip(new_root, bit), proof)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="proof hash")
        bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
        assert not _accepts_consistency(old, new, old_root, new_root, bad)
        assert not _accepts_consistency(old, new, old_root, new_root, proof[:-1])
    assert not _accepts_consistency(old, new, old_root, new_root, [*proof, new_root])
    if old < new:
        assert not _accepts_consistency(old, new, new_root, old_root, proof)  # swapped

    other_old = data.draw(st.integers(1, BIG), label="other old")
    other_new = data.draw(st.integers(1, BIG + 1), label="other new")
    for m, n in ((other_old, new), (old, other_new), (other_old, other_new)):
        if (m, n) == (old, new) or m > n:
            continue
        want = ref_accepts_consistency(m, n, old_root, new_root, proof)
        assert _accepts_consistency(m, n, old_root, new_root, proof) == want


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200), st.data())
def test_the_library_verifiers_agree_with_the_reference_on_small_trees(
    a: int, b: int, data: st.DataObject
) -> None:
    # Proofs of one (index, size) presented as another: the two must agree on each.
    index, size = min(a, b) - 1, max(a, b)
    proof = merkle.inclusion_proof(LEAVES, index, size)
    root = merkle.root(LEAVES[:size])
    i = data.draw(st.integers(0, 200), label="claimed index")
    n = data.draw(st.integers(i + 1, 201), label="claimed size")
    assert _accepts_inclusion(LEAVES[index], i, n, proof, root) == ref_accepts_inclusion(
        LEAVES[index], i, n, proof, root
    )
    old, new = min(a, b), max(a, b)
    cproof = merkle.consistency_proof(LEAVES, old, new)
    old_root = merkle.root(LEAVES[:old])
    m = data.draw(st.integers(1, 200), label="claimed old")
    w = data.draw(st.integers(m, 201), label="claimed new")
    assert _accepts_consistency(m, w, old_root, root, cproof) == ref_accepts_consistency(
        m, w, old_root, root, cproof
    )


_HASHY = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))
_SIZES = st.one_of(st.integers(-3, 70), st.integers(0, 2**70))


@settings(max_examples=300, deadline=None)
@given(_HASHY, _HASHY, _SIZES, _SIZES, st.lists(_HASHY, max_size=80))
def test_garbage_is_refused_with_a_value_error_and_nothing_else(
    a: bytes, b: bytes, x: int, y: int, proof: list[bytes]
) -> None:
    # Whatever a caller or a hostile log sends: accepted only when the oracle
    # accepts, else ProofError or ValueError, never another exception or a hang.
    if _accepts_or_refuses(lambda: merkle.verify_inclusion(a, x, y, proof, b)):
        assert ref_accepts_inclusion(a, x, y, proof, b)
    if _accepts_or_refuses(lambda: merkle.verify_consistency(x, y, a, b, proof)):
        assert ref_accepts_consistency(x, y, a, b, proof)


def _accepts_or_refuses(call: Callable[[], None]) -> bool:
    try:
        call()
    except ValueError:
        return False
    return True


# --- the incremental tree and its store ----------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=12), st.data())
def test_appending_batches_keeps_the_root_and_the_store_serves_the_same_proofs(
    batches: list[int], data: st.DataObject
) -> None:
    store = merkle.MemoryHashStore()
    tree = merkle.CompactRange(store)
    done = 0
    for count in batches:
        before, done = done, min(done + count, BIG)
        added = tree.append(LEAVES[before:done])
        assert tree.size == done
        assert tree.root() == merkle.root(LEAVES[:done])
        assert len(store.hashes) == merkle.stored_hash_count(done)
        assert len(added) == merkle.stored_hash_count(done) - merkle.stored_hash_count(before)
    if done:
        index = data.draw(st.integers(0, done - 1))
        size = data.draw(st.integers(index + 1, done))
        got = merkle.stored_inclusion_proof(store, index, size)
        assert got == merkle.inclusion_proof(LEAVES, index, size)
        old = data.draw(st.integers(1, done))
        new = data.draw(st.integers(old, done))
        got = merkle.stored_consistency_proof(store, old, new)
        assert got == merkle.consistency_proof(LEAVES, old, new)
        again = merkle.CompactRange.from_store(store, done)
        assert again.root() == tree.root()
        assert again.edge == tree.edge


def test_a_restarted_tree_appends_where_it_left_off() -> None:
    store = merkle.MemoryHashStore()
    merkle.CompactRange(store).append(LEAVES[:1000])
    tree = merkle.CompactRange.from_store(store, 1000)
    tree.append(LEAVES[1000:1500])
    assert tree.root() == merkle.root(LEAVES[:1500])
    assert merkle.stored_root(store, 1500) == tree.root()


def test_a_batch_the_store_refuses_leaves_the_tree_as_it_was() -> None:
    class Refusing(merkle.MemoryHashStore):
        def put_hashes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
            raise OSError("disk full")

    tree = merkle.CompactRange(Refusing())
    with pytest.raises(OSError, match="disk full"):
        tree.append(LEAVES[:5])
    assert (tree.size, tree.edge) == (0, [])
    plain = merkle.CompactRange()
    plain.append(LEAVES[:3])
    with pytest.raises(ValueError, match="leaf hash 4"):
        plain.append([LEAVES[3], b"short"])
    assert plain.size == 3
    assert plain.root() == merkle.root(LEAVES[:3])


def test_appended_nodes_come_in_stored_hash_index_order() -> None:
    # Go sumdb/tlog's numbering is the order an append-only log completes its
    # nodes, so a store written in order is dense: 0, 1, 2, ... with no gap.
    nodes = merkle.CompactRange().append(LEAVES[:600])
    assert [merkle.stored_hash_index(lv, i) for lv, i, _ in nodes] == list(range(len(nodes)))
    assert len(nodes) == merkle.stored_hash_count(600)
    for at in range(len(nodes)):
        assert merkle.split_stored_hash_index(at) == nodes[at][:2]


def test_a_store_never_rewrites_a_node() -> None:
    store = merkle.MemoryHashStore()
    store.put_hashes([(0, 0, LEAVES[0])])
    store.put_hashes([(0, 0, LEAVES[0])])  # the same hash again is harmless
    with pytest.raises(ValueError, match="level 0, index 0"):
        store.put_hashes([(0, 0, LEAVES[1])])
    with pytest.raises(KeyError, match="level 1, index 0"):
        store.get_hashes([(1, 0)])


def test_proofs_ask_the_store_once() -> None:
    calls: list[int] = []

    class Counting(merkle.MemoryHashStore):
        def get_hashes(self, coords: Sequence[tuple[int, int]]) -> list[bytes]:
            calls.append(len(coords))
            return super().get_hashes(coords)

    store = Counting()
    merkle.CompactRange(store).append(LEAVES[:1000])
    merkle.stored_inclusion_proof(store, 617, 999)
    merkle.stored_consistency_proof(store, 300, 999)
    assert len(calls) == 2
    assert max(calls) <= 2 * 10 + 2


# --- bad input ------------------------------------------------------------------

H = LEAVES[0]


def _bad_calls() -> Iterator[tuple[str, object, str]]:
    yield "index >= size", lambda: merkle.inclusion_proof(LEAVES, 5, 5), "index 5"
    yield "negative index", lambda: merkle.inclusion_proof(LEAVES, -1, 5), "index"
    yield "negative size", lambda: merkle.inclusion_proof(LEAVES, 0, -1), "size"
    yield "bool size", lambda: merkle.inclusion_proof(LEAVES, 0, True), "size"  # type: ignore[arg-type]
    yield "too few leaves", lambda: merkle.inclusion_proof(LEAVES[:3], 0, 4), "leaf_hashes"
    yield "old > new", lambda: merkle.consistency_proof(LEAVES, 5, 4), "old_size 5"
    yield "old 0", lambda: merkle.consistency_proof(LEAVES, 0, 4), "old_size is 0"
    yield "negative new", lambda: merkle.consistency_proof(LEAVES, 1, -4), "new_size"
    yield "stored old 0", lambda: merkle.stored_consistency_proof(STORE, 0, 4), "old_size"
    yield "stored index", lambda: merkle.stored_inclusion_proof(STORE, 9, 9), "index 9"
    yield "short leaf", lambda: merkle.verify_inclusion(H[:31], 0, 1, [], H), "leaf_hash"
    yield "long root", lambda: merkle.verify_inclusion(H, 0, 1, [], H + b"x"), "root"
    yield "str root", lambda: merkle.verify_inclusion(H, 0, 1, [], H.hex()), "root"  # type: ignore[arg-type]
    yield "short proof hash", lambda: merkle.verify_inclusion(H, 0, 2, [H[:5]], H), "proof[0]"
    yield "index >= size (verify)", lambda: merkle.verify_inclusion(H, 2, 2, [H], H), "index 2"
    yield "negative size (verify)", lambda: merkle.verify_inclusion(H, 0, -2, [H], H), "size"
    yield "old_root length", lambda: merkle.verify_consistency(1, 2, H[:1], H, [H]), "old_root"
    yield "new_root length", lambda: merkle.verify_consistency(1, 2, H, b"", [H]), "new_root"
    yield "proof hash length", lambda: merkle.verify_consistency(1, 2, H, H, [H, b"1"]), "proof[1]"
    yield "old > new (verify)", lambda: merkle.verify_consistency(3, 2, H, H, [H]), "old_size 3"
    yield "negative old", lambda: merkle.verify_consistency(-1, 2, H, H, [H]), "old_size"
    yield "old 0 (verify)", lambda: merkle.verify_consistency(0, 2, H, H, []), "old_size is 0"
    yield "equal sizes, proof", lambda: merkle.verify_consistency(2, 2, H, H, [H]), "1 hashes"
    yield "empty proof", lambda: merkle.verify_consistency(1, 2, H, H, []), "empty"
    yield "edge count", lambda: merkle.CompactRange(size=3, edge=[H]), "edge"
    yield "leaf hash length", lambda: merkle.CompactRange().append([H, b"x"]), "leaf hash 1"
    yield "tile width 0", lambda: merkle.tile_hashes(STORE, 0, 0, 0), "width"
    yield "tile width 257", lambda: merkle.tile_hashes(STORE, 0, 0, 257), "width"
    yield "tile level", lambda: merkle.tile_hashes(STORE, -1, 0, 1), "level"
    yield "tile index", lambda: merkle.tile_width(10, 0, -1), "index"


@pytest.mark.parametrize(("call", "says"), [pytest.param(c, s, id=n) for n, c, s in _bad_calls()])
def test_bad_input_is_refused_by_name(call: Callable[[], object], says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        call()


def test_verify_failures_say_what_failed() -> None:
    proof = merkle.inclusion_proof(LEAVES, 3, 10)
    root = merkle.root(LEAVES[:10])
    with pytest.raises(ProofError, match="root other than"):
        merkle.verify_inclusion(LEAVES[4], 3, 10, proof, root)
    with pytest.raises(ProofError, match="too long"):
        merkle.verify_inclusion(LEAVES[3], 3, 10, [*proof, H], root)
    with pytest.raises(ProofError, match="too short"):
        merkle.verify_inclusion(LEAVES[3], 3, 10, proof[:-1], root)
    cproof = merkle.consistency_proof(LEAVES, 3, 10)
    old_root = merkle.root(LEAVES[:3])
    with pytest.raises(ProofError, match="old root other than old_root"):
        merkle.verify_consistency(3, 10, H, root, cproof)
    with pytest.raises(ProofError, match="new root other than new_root"):
        merkle.verify_consistency(3, 10, old_root, H, cproof)
    with pytest.raises(ProofError, match="differs from new_root"):
        merkle.verify_consistency(3, 3, old_root, root, [])


def test_a_tile_beyond_the_store_is_a_key_error() -> None:
    assert merkle.tile_width(BIG, 0, 11) == BIG - 11 * 256
    assert len(merkle.tile_hashes(STORE, 0, 11, BIG - 11 * 256)) == 32 * (BIG - 11 * 256)
    with pytest.raises(KeyError, match="level 0, index 3000"):
        merkle.tile_hashes(STORE, 0, 11, 256)


def test_equal_sizes_with_equal_roots_verify() -> None:
    merkle.verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])
