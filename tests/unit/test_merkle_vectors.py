"""renkei.tlog.merkle against known answers computed elsewhere.

- fixtures/merkle/transparency_dev.json (source and commit inside):
  transparency-dev/merkle's leaves, node and root hashes of trees of sizes 0 to
  8 and its verifier probes: a happy path and its corruptions (a bit flipped, a
  hash added or dropped, index or size changed, roots swapped) for inclusion
  and consistency.
- fixtures/merkle/go_tlog.json: roots of trees of 1 to 300 records and record
  and tree proofs (324 each) for 67 sizes up to 300, from Go's golang.org/x/mod/sumdb/tlog
  (generator in fixtures/merkle/go_tlog_gen/main.go).
- fixtures/merkle/go_tiles.json: the same library's stored hash numbering and
  the height-8 hash tiles (C2SP tlog-tiles) of a tree of 70,000 records
  (generator in fixtures/merkle/go_tiles_gen/main.go).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from renkei.tlog import merkle

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "merkle" / "transparency_dev.json").read_text("utf-8")
)
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in FIXTURE["leaf_inputs_hex"]]
GO = json.loads((Path(__file__).parent / "fixtures" / "merkle" / "go_tlog.json").read_text("utf-8"))
GO_LEAVES = [
    merkle.leaf_hash(f"renkei tlog vector {i}".encode()) for i in range(len(GO["roots_hex"]))
]
GO_STORE = merkle.MemoryHashStore()
merkle.CompactRange(GO_STORE).append(GO_LEAVES)
# transparency-dev compares the roots of two equal sizes whatever their length;
# renkei refuses any hash that is not 32 bytes before looking further.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def _b(value: str | None) -> bytes:
    return b"" if value is None else bytes.fromhex(value)


def _refusal(call: Callable[[], None]) -> str | None:
    """The verifier's reason for refusing, or None if it accepted."""
    try:
        call()
    except ValueError as e:  # ProofError, or an argument that is not a hash
        return str(e)
    return None


def test_the_fixture_names_its_source() -> None:
    source = FIXTURE["source"]
    assert source["repo"] == "github.com/transparency-dev/merkle"
    assert len(source["commit"]) == 40


@pytest.mark.parametrize("size", range(9))
def test_roots_of_sizes_0_to_8(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == FIXTURE["root_hashes_hex"][size]


def test_empty_root_is_the_hash_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == FIXTURE["root_hashes_hex"][0]


def test_every_perfect_subtree_hash_from_the_store() -> None:
    store = merkle.MemoryHashStore()
    merkle.CompactRange(store).append(LEAVES)
    for level, row in enumerate(FIXTURE["node_hashes_hex"]):
        coords = [(level, i) for i in range(len(row))]
        assert [h.hex() for h in store.get_hashes(coords)] == row


def _probe_id(probe: dict[str, Any]) -> str:
    return str(probe["file"]).removeprefix("testdata/")


@pytest.mark.parametrize("probe", FIXTURE["inclusion_probes"], ids=_probe_id)
def test_inclusion_probe(probe: dict[str, Any]) -> None:
    args = (
        _b(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        [_b(p) for p in probe["proof"]],
        _b(probe["root"]),
    )
    refusal = _refusal(lambda: merkle.verify_inclusion(*args))
    assert (refusal is not None) == probe["wantErr"], refusal
    if probe["desc"] == "happy path":
        got = merkle.inclusion_proof(LEAVES, probe["leafIdx"], probe["treeSize"])
        assert [h.hex() for h in got] == probe["proof"]


@pytest.mark.parametrize("probe", FIXTURE["consistency_probes"], ids=_probe_id)
def test_consistency_probe(probe: dict[str, Any]) -> None:
    args = (
        probe["size1"],
        probe["size2"],
        _b(probe["root1"]),
        _b(probe["root2"]),
        [_b(p) for p in probe["proof"]],
    )
    refusal = _refusal(lambda: merkle.verify_consistency(*args))
    assert (refusal is not None) == (probe["wantErr"] or probe["file"] in STRICTER), refusal
    if probe["desc"] == "happy path":
        got = merkle.consistency_proof(LEAVES, probe["size1"], probe["size2"])
        assert [h.hex() for h in got] == probe["proof"]


def test_the_stricter_cases_are_still_in_the_fixture() -> None:
    assert {p["file"] for p in FIXTURE["consistency_probes"]} >= STRICTER


# --- Go's sumdb/tlog, trees of up to 300 records ---------------------------------


def test_go_fixture_names_its_source() -> None:
    assert GO["source"]["path"] == "sumdb/tlog/tlog.go"
    assert len(GO["source"]["commit"]) == 40


def test_go_roots_of_sizes_1_to_300() -> None:
    roots = [merkle.stored_root(GO_STORE, n).hex() for n in range(1, len(GO_LEAVES) + 1)]
    assert roots == GO["roots_hex"]
    assert merkle.root(GO_LEAVES).hex() == GO["roots_hex"][-1]


def test_go_record_proofs() -> None:
    assert len(GO["inclusion_proofs"]) == 324
    for case in GO["inclusion_proofs"]:
        index, size, want = case["index"], case["size"], case["proof"]
        assert [h.hex() for h in merkle.inclusion_proof(GO_LEAVES, index, size)] == want, case
        assert [h.hex() for h in merkle.stored_inclusion_proof(GO_STORE, index, size)] == want
        root = bytes.fromhex(GO["roots_hex"][size - 1])
        merkle.verify_inclusion(
            GO_LEAVES[index], index, size, [bytes.fromhex(h) for h in want], root
        )


def test_go_tree_proofs() -> None:
    assert len(GO["consistency_proofs"]) == 324
    for case in GO["consistency_proofs"]:
        old, new, want = case["old"], case["new"], case["proof"]
        assert [h.hex() for h in merkle.consistency_proof(GO_LEAVES, old, new)] == want, case
        assert [h.hex() for h in merkle.stored_consistency_proof(GO_STORE, old, new)] == want
        merkle.verify_consistency(
            old,
            new,
            bytes.fromhex(GO["roots_hex"][old - 1]),
            bytes.fromhex(GO["roots_hex"][new - 1]),
            [bytes.fromhex(h) for h in want],
        )


# --- Go's stored hash numbering and hash tiles -----------------------------------

TILES = json.loads(
    (Path(__file__).parent / "fixtures" / "merkle" / "go_tiles.json").read_text("utf-8")
)


def test_stored_hash_index_is_gos_numbering() -> None:
    for level, row in enumerate(TILES["stored_hash_index"]):
        assert [merkle.stored_hash_index(level, n) for n in range(len(row))] == row
        assert [merkle.split_stored_hash_index(x) for x in row] == [
            (level, n) for n in range(len(row))
        ]


def test_hash_tiles_of_a_tree_of_70000_leaves_are_gos() -> None:
    size = TILES["size"]
    store = merkle.MemoryHashStore()
    tree = merkle.CompactRange(store)
    for at in range(0, size, 1000):
        tree.append(
            [merkle.leaf_hash(f"renkei tlog vector {i}".encode()) for i in range(at, at + 1000)]
        )
    assert tree.root().hex() == TILES["root_hex"]
    assert len(store.hashes) == merkle.stored_hash_count(size) == TILES["stored_hash_count"]
    assert TILES["tiles"]
    for tile in TILES["tiles"]:
        level, index, width = tile["level"], tile["index"], tile["width"]
        assert merkle.tile_width(size, level, index) == width, tile["path"]
        assert merkle.tile_hashes(store, level, index, width).hex() == tile["data_hex"]
    assert merkle.tile_width(size, 0, 274) == 0
    assert merkle.tile_width(size, 3, 0) == 0
