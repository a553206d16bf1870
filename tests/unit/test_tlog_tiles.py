"""renkei.tlog.tiles: the C2SP tlog-tiles paths, one spelling per resource, and entry bundles.

Cross-checked with Go's golang.org/x/mod/sumdb/tlog (fe2ec04), whose paths are
ours with Go's height element ``8/`` taken out: fixtures/merkle/go_tiles.json
(Tile.Path of NewTiles(8, 0, 70000), go_tiles_gen/main.go) and
fixtures/merkle/go_tile_paths.json (go_tile_paths_gen/main.go: the tiles, paths
and contents of a tree of 3,000 records at eight of its sizes, Tile.Path of
large indexes, ParseTilePath's verdict on candidate paths, and entry bundles).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renkei.tlog import merkle, tiles
from renkei.tlog.tiles import Checkpoint, EntryBundle, HashTile, TilePathError

FIXTURES = Path(__file__).parent / "fixtures" / "merkle"
GO_TILES = json.loads((FIXTURES / "go_tiles.json").read_text("utf-8"))
GO_PATHS = json.loads((FIXTURES / "go_tile_paths.json").read_text("utf-8"))
# Paths Go's ParseTilePath takes and the spec does not: L is 0 to 63, and no tile
# starts past a uint64 tree size (Go reads N as an int64 and L as any int).
STRICTER_THAN_GO = {
    "tile/64/000": "tile level 64 is not 0 to 63",
    "tile/99/000.p/1": "tile level 99 is not 0 to 63",
    "tile/7/001": "index 1 at level 7 starts beyond the largest tree",
    "tile/0/x072/x057/x594/x037/x927/936": "starts beyond the largest tree",
}


# --- good paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("checkpoint", Checkpoint()),
        ("tile/0/000", HashTile(0, 0)),
        ("tile/0/001.p/5", HashTile(0, 1, 5)),
        ("tile/1/999", HashTile(1, 999)),
        ("tile/0/x001/000", HashTile(0, 1000)),
        # The spec's example, and Go's tile.go's Tile{H: 3, L: 4, N: 1234067, W: 1}.
        ("tile/4/x001/x234/067", HashTile(4, 1234067)),
        ("tile/4/x001/x234/067.p/1", HashTile(4, 1234067, 1)),
        ("tile/63/000.p/255", HashTile(63, 0, 255)),
        ("tile/entries/000", EntryBundle(0)),
        ("tile/entries/x123/x456/789.p/17", EntryBundle(123456789, 17)),
        # The last level-0 tile of the largest tree, 2**64 - 1 leaves.
        ("tile/0/x072/x057/x594/x037/x927/935.p/255", HashTile(0, (2**64 - 1) >> 8, 255)),
        ("tile/entries/x072/x057/x594/x037/x927/935", EntryBundle((2**64 - 1) >> 8)),
        ("tile/6/255", HashTile(6, 255)),
        ("tile/7/000.p/255", HashTile(7, 0, 255)),
    ],
)
def test_canonical_paths_parse_and_format_back(path: str, resource: tiles.Resource) -> None:
    assert tiles.parse_path(path) == resource
    assert resource.path() == path


def test_gos_tile_paths_are_ours_without_the_height() -> None:
    assert GO_TILES["tiles"]
    for tile in GO_TILES["tiles"]:
        ours = HashTile(tile["level"], tile["index"], tile["width"])
        assert tile["path"].startswith("tile/8/")
        assert ours.path() == "tile/" + tile["path"].removeprefix("tile/8/")
        assert tiles.parse_path(ours.path()) == ours


def _go_records(size: int) -> merkle.MemoryHashStore:
    store = merkle.MemoryHashStore()
    merkle.CompactRange(store).append(
        [merkle.leaf_hash(b"renkei tile vector %d" % i) for i in range(size)]
    )
    return store


def test_gos_tiles_of_a_tree_of_3000_records_at_each_size() -> None:
    size = GO_PATHS["size"]
    store = _go_records(size)
    assert merkle.stored_root(store, size).hex() == GO_PATHS["root_hex"]
    published: dict[int, set[HashTile]] = {}
    for tile in GO_PATHS["tiles"]:
        ours = HashTile(tile["level"], tile["index"], tile["width"])
        assert ours.path() == tile["path"] == "tile/" + tile["go_path"].removeprefix("tile/8/")
        assert tiles.parse_path(tile["path"]) == ours
        assert (
            merkle.tile_hashes(store, ours.level, ours.index, ours.width).hex() == tile["data_hex"]
        )
        for n in tile["published_at_sizes"]:
            published.setdefault(n, set()).add(ours)
            assert tiles.width_in_tree(ours, n) == ours.width
    assert sorted(published) == [1, 255, 256, 257, 511, 2000, 2999, 3000]
    for n, want in published.items():
        assert set(tiles.new_tiles(0, n)) == want, n


def test_gos_paths_of_large_indexes() -> None:
    assert len(GO_PATHS["paths_level_3"]) == 36
    beyond = 0
    for key, path in GO_PATHS["paths_level_3"].items():
        index, width = map(int, key.split())
        suffix = "" if width == 256 else f".p/{width}"
        assert f"tile/3/{tiles.format_index(index)}{suffix}" == path
        if index < 2**32:  # level-3 tile 2**32 would start at leaf 2**64
            assert HashTile(3, index, width).path() == path
            assert tiles.parse_path(path) == HashTile(3, index, width)
        else:
            beyond += 1
            with pytest.raises(TilePathError, match="starts beyond the largest tree"):
                tiles.parse_path(path)
    assert beyond == 3 * 3  # 2**40, 2**56 - 1 and 10**18, full and partial


def test_what_gos_parse_tile_path_takes_and_refuses() -> None:
    assert len(GO_PATHS["parse_verdicts"]) > 40
    for v in GO_PATHS["parse_verdicts"]:
        path = v["path"]
        if path in STRICTER_THAN_GO:
            assert v["go_accepts"], path
            with pytest.raises(TilePathError, match=STRICTER_THAN_GO[path]):
                tiles.parse_path(path)
        elif v["go_accepts"]:
            want = HashTile(v.get("level", 0), v.get("index", 0), v["width"])
            assert tiles.parse_path(path) == want
        else:
            with pytest.raises(TilePathError):
                tiles.parse_path(path)


def test_entry_bundles_as_go_writes_them() -> None:
    for b in GO_PATHS["entry_bundles"]:
        records = [b"renkei tile vector %d" % (b["start"] + i) for i in range(b["width"])]
        assert tiles.encode_bundle(records).hex() == b["data_hex"]
        assert tiles.decode_bundle(bytes.fromhex(b["data_hex"])) == records
        assert EntryBundle(b["start"] // 256, b["width"]).path() == b["path"]


def test_new_tiles_is_gos_new_tiles_and_the_specs_example() -> None:
    size = GO_TILES["size"]
    published = tiles.new_tiles(0, size)
    # The fixture kept every tile of level 1 and up, and the first and last two of level 0.
    kept = [t for t in published if t.level > 0 or t.index == 0 or t.index >= 272]
    assert [t.path() for t in kept] == [
        "tile/" + t["path"].removeprefix("tile/8/") for t in GO_TILES["tiles"]
    ]
    # The spec: 70,000 leaves are 273 full level-0 tiles, one of width 112, one full
    # level-1 tile, one of width 17 and one level-2 tile of width 1.
    assert sum(1 for t in published if t.level == 0 and not t.partial) == 273
    assert [t for t in published if t.partial or t.level > 0] == [
        HashTile(0, 273, 112),
        HashTile(1, 0),
        HashTile(1, 1, 17),
        HashTile(2, 0, 1),
    ]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial
    # level 1 tile of width 1."
    assert tiles.new_tiles(0, 256) == [HashTile(0, 0), HashTile(1, 0, 1)]


def test_new_tiles_from_an_older_size_and_every_width_in_tree() -> None:
    # Go's tile_test.go cases are of height 10; these are Go's rules at height 8.
    assert tiles.new_tiles(5, 5) == []
    assert tiles.new_tiles(100, 101) == [HashTile(0, 0, 101)]
    assert tiles.new_tiles(255, 257) == [HashTile(0, 0), HashTile(0, 1, 1), HashTile(1, 0, 1)]
    for t in tiles.new_tiles(0, 70_000):
        assert tiles.width_in_tree(t, 70_000) == t.width
    assert tiles.width_in_tree(HashTile(0, 274), 70_000) == 0
    assert tiles.width_in_tree(HashTile(9, 0), 2**64 - 1) == 0
    assert tiles.width_in_tree(EntryBundle(273, 5), 70_000) == 112
    with pytest.raises(ValueError, match="sizes"):
        tiles.new_tiles(6, 5)


@given(
    st.integers(0, tiles.MAX_LEVEL).flatmap(
        lambda level: st.tuples(
            st.just(level),
            st.integers(0, (2**64 - 1) >> (8 * (level + 1))),
            st.integers(1, 256),
        )
    )
)
def test_every_tile_round_trips(t: tuple[int, int, int]) -> None:
    tile = HashTile(*t)
    assert tiles.parse_path(tile.path()) == tile
    if tile.level == 0:
        bundle = EntryBundle(tile.index, tile.width)
        assert tiles.parse_path(bundle.path()) == bundle


@given(st.text(alphabet="tile/entrsx0123456789.p", max_size=40))
def test_any_path_is_refused_or_is_the_one_spelling_of_its_resource(path: str) -> None:
    try:
        resource = tiles.parse_path(path)
    except TilePathError:
        return
    assert resource.path() == path


# --- bad paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "not 'checkpoint'"),
        ("checkpoint/", "not 'checkpoint'"),
        ("tiles/0/000", "not 'checkpoint'"),
        ("tile/0", "not 'checkpoint'"),
        ("tile/00/000", "level '00' is not 'entries' or a decimal without leading zeros"),
        ("tile/01/000", "level '01'"),
        ("tile/-1/000", "level '-1'"),
        ("tile/64/000", "level 64 is not 0 to 63"),
        ("tile/99/000", "level 99 is not 0 to 63"),
        ("tile/data/000", "level 'data'"),  # Go's sumdb spelling of entries, not the spec's
        ("tile/8/0/000", "index group '0' before the last lacks its 'x'"),  # Go's height element
        ("tile/ 0/000", "level ' 0'"),
        ("tile/٣/000", "level '٣'"),
        ("tile/0/", "no tile index"),
        ("tile/entries/", "no tile index"),
        ("tile/0/1", "index group '1' is not three digits"),
        ("tile/0/0001", "index group '0001' is not three digits"),
        ("tile/0/x001", "index group 'x001' is not three digits"),
        ("tile/0/001/002", "index group '001' before the last lacks its 'x'"),
        ("tile/0/x000/001", "index starts with the group 'x000' (a leading zero group)"),
        ("tile/0/x000/x001/002", "leading zero group"),
        ("tile/0/x01/002", "index group 'x01' is not 'x' and three digits"),
        ("tile/0/xx001/002", "index group 'xx001'"),
        ("tile/0/x001//002", "index group ''"),
        ("tile/0/00a", "index group '00a'"),
        ("tile/0/000.p", "'.p' without a width after it"),
        ("tile/0/000.p/", "ends with a '/'"),
        ("tile/0/000.p/0", "partial width '0'"),
        ("tile/0/000.p/05", "partial width '05'"),
        ("tile/0/000.p/256", "partial width 256 is not 1 to 255 (a full tile has no .p suffix)"),
        ("tile/0/000.p/1000", "partial width '1000'"),
        ("tile/0/000.p/+5", "partial width '+5'"),
        ("tile/0/000.p/5/", "ends with a '/'"),
        ("tile/0/000/", "ends with a '/'"),
        ("tile/0/.p/5", "no tile index"),
        # Absurd indexes: past the largest tree, or more groups than any index needs.
        ("tile/0/x072/x057/x594/x037/x927/936", "starts beyond the largest tree"),
        ("tile/entries/x072/x057/x594/x037/x927/936", "starts beyond the largest tree"),
        ("tile/7/001", "index 1 at level 7 starts beyond the largest tree"),
        ("tile/63/001", "starts beyond the largest tree"),
        ("tile/0/x001/x002/x003/x004/x005/x006/x007/008", "8 groups, no index needs more than 7"),
        ("tile/0/" + "x999/" * 5000 + "999", "5001 groups"),
    ],
)
def test_bad_paths_are_refused_saying_what_is_wrong(path: str, reason: str) -> None:
    with pytest.raises(TilePathError) as refused:
        tiles.parse_path(path)
    assert reason in str(refused.value)
    if path and len(path) < 100:
        assert str(refused.value).startswith(repr(path))


def test_resources_refuse_impossible_coordinates() -> None:
    for bad in (
        lambda: HashTile(-1, 0),
        lambda: HashTile(64, 0),
        lambda: HashTile(0, -1),
        lambda: HashTile(0, 0, 0),
        lambda: HashTile(0, 0, 257),
        lambda: HashTile(True, 0),  # a bool is an int to Python, not a level
        lambda: HashTile(1, 2**56),
        lambda: EntryBundle(2**56),
    ):
        with pytest.raises(TilePathError):
            bad()
    with pytest.raises(TilePathError):
        tiles.format_index(-1)


# --- entry bundles -------------------------------------------------------------------


def test_entry_bundles_are_uint16_length_prefixed() -> None:
    entries = [b"", b"a", b"\x00" * 300, b"\xab" * 65535]
    data = tiles.encode_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert data[5:7] == (300).to_bytes(2, "big")
    assert data[307:309] == b"\xff\xff"
    assert len(data) == 2 * 4 + 1 + 300 + 65535
    assert tiles.decode_bundle(data) == entries
    assert tiles.decode_bundle(b"") == []


def test_entry_bundles_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="over a uint16 length"):
        tiles.encode_bundle([b"x" * 65536])
    assert tiles.decode_bundle(tiles.encode_bundle([b"x" * 65535])) == [b"x" * 65535]
    with pytest.raises(ValueError, match="at most 256"):
        tiles.encode_bundle([b""] * 257)
    with pytest.raises(ValueError, match="entry 1: length cut short at byte 3"):
        tiles.decode_bundle(b"\x00\x01a\x00")
    with pytest.raises(ValueError, match="entry 0: 5 bytes announced, 2 left"):
        tiles.decode_bundle(b"\x00\x05ab")
    with pytest.raises(ValueError, match="more than 256"):
        tiles.decode_bundle(b"\x00\x00" * 257)


def test_tile_contents_are_the_level_nodes_of_the_store() -> None:
    # The server reads merkle.tile_hashes; the level-1 tile is the roots of full level-0 tiles.
    store = merkle.MemoryHashStore()
    leaves = [merkle.leaf_hash(b"%d" % i) for i in range(600)]
    merkle.CompactRange(store).append(leaves)
    level1 = merkle.tile_hashes(store, 1, 0, tiles.width_in_tree(HashTile(1, 0), 600))
    assert level1 == merkle.root(leaves[:256]) + merkle.root(leaves[256:512])
