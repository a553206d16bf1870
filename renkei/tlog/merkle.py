"""The RFC 9162 (Certificate Transparency 2.0) Merkle tree, SHA-256, section 2.1.

Hashes: a leaf is ``H(0x00 || entry)``, an inner node ``H(0x01 || left || right)``
and the empty tree ``H("")``; the two prefixes keep a leaf from passing for a node.

Every hash a proof needs is the hash of a range ``[lo, hi)`` of leaves that the
RFC's recursion (split at the largest power of two below the width) produces,
and each such range is a few *perfect* subtrees side by side: ``2**level``
leaves starting at ``index * 2**level``. Those are the only hashes ever stored,
named by ``(level, index)``, level 0 being the leaf hashes; the hashes over the
ragged right edge of a tree are recomputed for each proof (they change with
every append). So one proof algorithm serves both a list of leaf hashes in
memory and a :class:`HashStore` that never holds all leaves, such as a table of
node hashes. A store can key them by :func:`stored_hash_index`, the dense
numbering of Go's golang.org/x/mod/sumdb/tlog; and :func:`tile_hashes` reads a
C2SP tlog-tiles hash tile (tile L/n: level 8L nodes ``256 n .. 256 n + 255``)
from the same store.

Bad arguments (a negative size, an index beyond the tree, a hash that is not 32
bytes) raise ``ValueError``; a proof that does not verify raises
:class:`ProofError`, a ``ValueError`` too since proofs come from outside.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

HASH_SIZE = 32
TILE_HEIGHT = 8  # C2SP tlog-tiles: a tile spans 8 levels, 256 hashes
EMPTY_ROOT = hashlib.sha256(b"").digest()

Coord = tuple[int, int]  # (level, index) of a perfect subtree
Node = tuple[int, int, bytes]  # (level, index, hash)
Reader = Callable[[Sequence[Coord]], list[bytes]]


class ProofError(ValueError):
    """A proof did not verify; the message says which check failed."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- arguments --------------------------------------------------------------


def _size(name: str, value: int) -> int:
    # bool is an int to Python; a True tree size is a bug upstream, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
    return value


def _hash(name: str, value: bytes, error: type[ValueError] = ValueError) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise error(f"{name} must be a {HASH_SIZE}-byte hash, not {got}")
    return value


def _proof(proof: Sequence[bytes]) -> list[bytes]:
    return [_hash(f"proof[{i}]", p, ProofError) for i, p in enumerate(proof)]


def _split(width: int) -> int:
    """The RFC's k: the largest power of two strictly below ``width`` (> 1)."""
    return 1 << ((width - 1).bit_length() - 1)


# --- the stored numbering ----------------------------------------------------


def stored_hash_index(level: int, index: int) -> int:
    """Go sumdb/tlog's StoredHashIndex: where node (level, index) sits in a dense sequence.

    Hashes are numbered in the order an append-only log completes them: leaf n,
    then every subtree that leaf completes, bottom up. So a store written in
    order is append-only too, and its size after n leaves is
    :func:`stored_hash_count` (n).
    """
    if level < 0 or index < 0:
        _size("level", level)
        _size("index", index)
    # Node (L, n) is completed by its rightmost leaf, (n + 1) 2^L - 1, and written
    # L places after it, once the nodes below it on that leaf's way up are written.
    # That leaf is preceded by n + n/2 + n/4 + ... hashes, which is 2n - popcount(n).
    leaf = ((index + 1) << level) - 1
    return 2 * leaf - leaf.bit_count() + level


def split_stored_hash_index(stored: int) -> Coord:
    """The inverse of :func:`stored_hash_index`."""
    _size("stored", stored)
    n = stored // 2  # stored_hash_index(0, n) < 2n, so the leaf is at least here
    at = stored_hash_index(0, n)
    while True:
        # Leaf n brings 1 + (trailing ones of n) hashes: itself and the subtrees it completes.
        following = at + 1 + ((n + 1) & -(n + 1)).bit_length() - 1
        if following > stored:
            break
        n, at = n + 1, following
    level = stored - at
    return level, n >> level


def stored_hash_count(size: int) -> int:
    """How many hashes a tree of ``size`` leaves has stored: leaves and perfect subtrees."""
    _size("size", size)
    return 2 * size - size.bit_count()


# --- ranges and the proofs' shape --------------------------------------------


def _perfect(lo: int, hi: int) -> list[Coord]:
    """The perfect subtrees that make up an RFC range [lo, hi), left to right.

    RFC ranges start at a multiple of a power of two at least their width, so
    taking the largest power of two that fits, again and again, stays aligned.
    """
    out = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def _inclusion_ranges(index: int, size: int) -> list[Coord]:
    """RFC 9162 2.1.3.1 PATH(index, D[0:size]) as leaf ranges, from the leaf up."""
    lo, hi, out = 0, size, []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    return out[::-1]


def _consistency_ranges(old: int, new: int) -> list[Coord]:
    """RFC 9162 2.1.4.1 SUBPROOF(old, D[0:new], true) as leaf ranges, in proof order."""
    lo, hi, complete, siblings = 0, new, True, []
    while old != hi:
        k = _split(hi - lo)
        if old <= lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
            complete = False
    # SUBPROOF(m, D[lo:hi], b) with hi == m is [] when b (the old tree is this subtree, the
    # verifier has its hash), else the subtree's own hash; then the siblings
    # innermost first.
    head = [] if complete else [(lo, hi)]
    return head + siblings[::-1]


def _hash_ranges(ranges: Sequence[Coord], read: Reader) -> list[bytes]:
    """The hash of each range, reading all its perfect subtrees in one call (one query)."""
    parts = [_perfect(lo, hi) for lo, hi in ranges]
    hashes = read([c for p in parts for c in p])
    if len(hashes) != sum(len(p) for p in parts):
        raise ValueError("the hash store returned the wrong number of hashes")
    out, at = [], 0
    for p in parts:
        chunk = hashes[at : at + len(p)]
        at += len(p)
        h = chunk[-1]
        for left in reversed(chunk[:-1]):  # fold the right edge: MTH(a, MTH(b, c))
            h = node_hash(left, h)
        out.append(h)
    return out


def _perfect_hash(leaves: Sequence[bytes], level: int, index: int) -> bytes:
    """Hash of a perfect subtree straight from leaf hashes, pairwise, no recursion."""
    row = list(leaves[index << level : (index + 1) << level])
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def _leaf_reader(leaf_hashes: Sequence[bytes], size: int) -> Reader:
    if len(leaf_hashes) < size:
        raise ValueError(f"leaf_hashes has {len(leaf_hashes)} hashes, fewer than size {size}")
    return lambda coords: [_perfect_hash(leaf_hashes, lv, i) for lv, i in coords]


# --- from a list of leaf hashes ----------------------------------------------


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH(D[0:n]) of RFC 9162 2.1.1, in one pass with O(log n) memory."""
    tree = CompactRange()
    # Not append(): that keeps every completed node, O(n), for a store.
    tree.size, tree.edge = tree._grow(leaf_hashes, None)
    return tree.root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    O(size) hashing, since the path's subtrees cover every leaf; a log serves
    proofs with :func:`stored_inclusion_proof`, O(log size) stored hashes.
    """
    _check_index(index, size)
    return _hash_ranges(_inclusion_ranges(index, size), _leaf_reader(leaf_hashes, size))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of that of ``new_size``.

    O(new_size) hashing, as :func:`inclusion_proof`; see :func:`stored_consistency_proof`.
    """
    _check_sizes(old_size, new_size)
    return _hash_ranges(
        _consistency_ranges(old_size, new_size), _leaf_reader(leaf_hashes, new_size)
    )


def _check_index(index: int, size: int) -> None:
    _size("index", index)
    if index >= _size("size", size):
        raise ValueError(f"index {index} is not in a tree of size {size}")


def _check_sizes(old_size: int, new_size: int) -> None:
    _size("old_size", old_size)
    if old_size > _size("new_size", new_size):
        raise ValueError(f"old_size {old_size} is larger than new_size {new_size}")
    if old_size == 0:
        # RFC 9162 defines consistency proofs for 0 < old_size: the empty tree
        # is a prefix of every tree, and a proof of it would prove nothing.
        raise ValueError("old_size is 0: there is no consistency proof from the empty tree")


# --- verification -------------------------------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2, step by step; returns None or raises :class:`ProofError`."""
    _hash("leaf_hash", leaf_hash)
    _hash("root", root)
    _size("index", index)
    _size("size", size)
    path = _proof(proof)
    if index >= size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            raise ProofError(f"inclusion proof is too long: {len(path)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof is too short: {len(path)} hashes")
    if r != root:
        raise ProofError("inclusion proof leads to a root other than the given root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2, step by step; returns None or raises :class:`ProofError`."""
    _hash("old_root", old_root)
    _hash("new_root", new_root)
    _size("old_size", old_size)
    _size("new_size", new_size)
    path = _proof(proof)
    if old_size > new_size:
        raise ProofError(f"old_size {old_size} is larger than new_size {new_size}")
    if old_size == 0:
        raise ProofError("old_size is 0: a consistency proof from the empty tree proves nothing")
    if old_size == new_size:
        # SUBPROOF(m, D[0:m], true) is empty: the trees are the same, and so their roots.
        if path:
            raise ProofError(f"sizes are equal, yet the proof has {len(path)} hashes")
        if old_root != new_root:
            raise ProofError("sizes are equal, yet old_root differs from new_root")
        return
    if not path:
        raise ProofError("consistency proof is empty")
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new: its root is the proof's
        # first hash, left out since the verifier has it.
        path = [old_root, *path]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof is too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof is too short: {len(proof)} hashes")
    if fr != old_root:
        raise ProofError("consistency proof leads to an old root other than old_root")
    if sr != new_root:
        raise ProofError("consistency proof leads to a new root other than new_root")


# --- an append-only tree over a store of node hashes -------------------------


class HashStore(Protocol):
    """Node hashes by (level, index) of perfect subtrees; level 0 holds the leaf hashes.

    Batched both ways so that an SQL store costs one query per proof and one
    write per appended batch.
    """

    def get_hashes(self, coords: Sequence[Coord]) -> list[bytes]:
        """The hash at each (level, index), in order; KeyError if one was never put."""
        ...

    def put_hashes(self, nodes: Sequence[Node]) -> None:
        """Stores (level, index, hash); an existing node is never rewritten with another hash."""
        ...


class MemoryHashStore:
    """A :class:`HashStore` in a dict keyed by :func:`stored_hash_index`, for tests and tools."""

    def __init__(self) -> None:
        self.hashes: dict[int, bytes] = {}

    def get_hashes(self, coords: Sequence[Coord]) -> list[bytes]:
        out = []
        for level, index in coords:
            h = self.hashes.get(stored_hash_index(level, index))
            if h is None:
                raise KeyError(f"no hash stored at level {level}, index {index}")
            out.append(h)
        return out

    def put_hashes(self, nodes: Sequence[Node]) -> None:
        for level, index, h in nodes:
            at = stored_hash_index(level, index)
            if self.hashes.setdefault(at, h) != h:
                # An append-only log never changes a node: this is a bug or a fork.
                raise ValueError(f"level {level}, index {index} already holds another hash")


class CompactRange:
    """The tree's right edge: one hash per perfect subtree of [0, size), largest first.

    That is all it takes to append leaves and know the new root (O(log n)
    hashes). With a store, every node that an append completes is written to
    it, so that proofs for any earlier size can be served from the store.
    """

    def __init__(
        self, store: HashStore | None = None, size: int = 0, edge: Sequence[bytes] = ()
    ) -> None:
        _size("size", size)
        if len(edge) != bin(size).count("1"):
            raise ValueError(
                f"edge has {len(edge)} hashes, a tree of size {size} has {size.bit_count()}"
            )
        self.store = store
        self.size = size
        self.edge = [_hash(f"edge[{i}]", h) for i, h in enumerate(edge)]

    @classmethod
    def from_store(cls, store: HashStore, size: int) -> CompactRange:
        """Picks up a tree of ``size`` leaves from its store, as after a restart."""
        _size("size", size)
        return cls(store, size, store.get_hashes(_perfect(0, size)))

    def append(self, leaf_hashes: Iterable[bytes]) -> list[Node]:
        """Adds leaves; returns (and stores) the nodes they complete, leaves included.

        All or nothing: a bad leaf hash or a store that refuses the batch leaves
        the tree as it was, so it never runs ahead of what is stored.
        """
        nodes: list[Node] = []
        size, edge = self._grow(leaf_hashes, nodes.append)
        if self.store is not None and nodes:
            self.store.put_hashes(nodes)
        self.size, self.edge = size, edge
        return nodes

    def _grow(
        self, leaf_hashes: Iterable[bytes], emit: Callable[[Node], None] | None
    ) -> tuple[int, list[bytes]]:
        size, edge = self.size, list(self.edge)
        for h in leaf_hashes:
            n = size
            _hash(f"leaf hash {n}", h)
            if emit:
                emit((0, n, h))
            level = 0
            # Each trailing 1 bit of n is a perfect subtree that leaf n completes.
            while (n >> level) & 1:
                h = node_hash(edge.pop(), h)
                level += 1
                if emit:
                    emit((level, n >> level, h))
            edge.append(h)
            size = n + 1
        return size, edge

    def root(self) -> bytes:
        if not self.edge:
            return EMPTY_ROOT
        h = self.edge[-1]
        for left in reversed(self.edge[:-1]):
            h = node_hash(left, h)
        return h


def stored_root(store: HashStore, size: int) -> bytes:
    """The root of the tree's first ``size`` leaves, from ``size``'s perfect subtrees."""
    if _size("size", size) == 0:
        return EMPTY_ROOT
    return _hash_ranges([(0, size)], store.get_hashes)[0]


def stored_inclusion_proof(store: HashStore, index: int, size: int) -> list[bytes]:
    """:func:`inclusion_proof` from a store holding (at least) the first ``size`` leaves."""
    _check_index(index, size)
    return _hash_ranges(_inclusion_ranges(index, size), store.get_hashes)


def stored_consistency_proof(store: HashStore, old_size: int, new_size: int) -> list[bytes]:
    """:func:`consistency_proof` from a store holding (at least) ``new_size`` leaves."""
    _check_sizes(old_size, new_size)
    return _hash_ranges(_consistency_ranges(old_size, new_size), store.get_hashes)


# --- hash tiles (C2SP tlog-tiles) ----------------------------------------------


def tile_width(size: int, level: int, index: int) -> int:
    """How many hashes tile ``level``/``index`` of a tree of ``size`` leaves holds.

    256 for a full tile; fewer for the partial tile on the right edge (its
    ``.p/W`` path); 0 when the tree does not reach it. Only complete nodes of
    level 8 x ``level`` are in a tile, so a tile never changes once full.
    """
    _size("size", size)
    _size("level", level)
    _size("index", index)
    complete = size >> (TILE_HEIGHT * level)
    return max(0, min(1 << TILE_HEIGHT, complete - (index << TILE_HEIGHT)))


def tile_hashes(store: HashStore, level: int, index: int, width: int) -> bytes:
    """The tile's contents: nodes ``256 index .. 256 index + width - 1`` of level 8 ``level``."""
    _size("level", level)
    _size("index", index)
    if not 0 < _size("width", width) <= 1 << TILE_HEIGHT:
        raise ValueError(f"width must be 1 to {1 << TILE_HEIGHT}, not {width}")
    first = index << TILE_HEIGHT
    coords = [(TILE_HEIGHT * level, first + i) for i in range(width)]
    return b"".join(store.get_hashes(coords))
