"""C2SP tlog-tiles (c2sp.org/tlog-tiles): the paths a tiled log serves, and its entry bundles.

Relative to the log's prefix:

    checkpoint                  the latest signed checkpoint
    tile/<L>/<N>[.p/<W>]        hash tile N of level L (256 hashes, or W of a partial tile)
    tile/entries/<N>[.p/<W>]    entry bundle N (the entries under level-0 tile N)

L is 0 to 63 and W 1 to 255, decimal without leading zeros; N is written in
groups of three digits, all but the last prefixed with ``x`` (1234067 is
``x001/x234/067``), as Go's golang.org/x/mod/sumdb/tlog Tile.Path writes it
(without Go's height element, fixed at 8 here). Every resource has exactly one
path: :func:`parse_path` refuses any other spelling (leading zeros, a leading
``x000`` group, ``.p/256``) with :class:`TilePathError` naming what is wrong,
so a cache or a file tree never holds one resource twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from renkei.tlog import merkle

TILE_WIDTH = 1 << merkle.TILE_HEIGHT  # hashes in a full tile, entries in a full bundle
MAX_LEVEL = 63
# The largest tree a checkpoint can name (a uint64): no tile starts beyond it.
MAX_TREE_SIZE = (1 << 64) - 1
# A uint16 length prefixes each entry of a bundle.
MAX_BUNDLE_ENTRY_BYTES = (1 << 16) - 1
CHECKPOINT_PATH = "checkpoint"

_PATH_BASE = 1000
# 2**64 has 20 digits: 7 groups of three. More is refused before any arithmetic.
_MAX_GROUPS = 7
_LEVEL = re.compile(r"0|[1-9][0-9]?", re.ASCII)
_WIDTH = re.compile(r"[1-9][0-9]{0,2}", re.ASCII)
_GROUP = re.compile(r"[0-9]{3}", re.ASCII)


class TilePathError(ValueError):
    """A path that is not a tlog-tiles resource in its one canonical spelling."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The ``checkpoint`` resource."""

    def path(self) -> str:
        return CHECKPOINT_PATH


@dataclass(frozen=True, slots=True)
class HashTile:
    """Tile ``index`` of ``level``: ``width`` nodes of level 8 ``level`` from 256 ``index``."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_level(self.level)
        _check_index(self.index, self.level)
        _check_width(self.width)

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    def path(self) -> str:
        return f"tile/{self.level}/{format_index(self.index)}{_suffix(self.width)}"


@dataclass(frozen=True, slots=True)
class EntryBundle:
    """Entry bundle ``index``: entries 256 ``index`` onwards, ``width`` of them."""

    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_index(self.index, 0)
        _check_width(self.width)

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def start(self) -> int:
        """The index of the bundle's first entry."""
        return self.index * TILE_WIDTH

    def path(self) -> str:
        return f"tile/entries/{format_index(self.index)}{_suffix(self.width)}"


Resource = Checkpoint | HashTile | EntryBundle


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_level(level: int) -> None:
    if not _is_int(level) or not 0 <= level <= MAX_LEVEL:
        raise TilePathError(f"tile level {level!r} is not 0 to {MAX_LEVEL}")


def _max_index(level: int) -> int:
    # Tile N of level L starts at leaf N * 256**(L+1); no tree reaches past 2**64 - 1.
    return MAX_TREE_SIZE >> (merkle.TILE_HEIGHT * (level + 1))


def _check_index(index: int, level: int) -> None:
    if not _is_int(index) or index < 0:
        raise TilePathError(f"tile index {index!r} is not an integer >= 0")
    if index > _max_index(level):
        raise TilePathError(
            f"tile index {index} at level {level} starts beyond the largest tree (2^64 - 1 leaves)"
        )


def _check_width(width: int) -> None:
    if not _is_int(width) or not 1 <= width <= TILE_WIDTH:
        raise TilePathError(f"tile width {width!r} is not 1 to {TILE_WIDTH}")


def _suffix(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


def format_index(index: int) -> str:
    """N as tlog-tiles writes it: 3-digit groups, all but the last with an ``x``."""
    if not _is_int(index) or index < 0:
        raise TilePathError(f"tile index {index!r} is not an integer >= 0")
    text = f"{index % _PATH_BASE:03d}"
    while index >= _PATH_BASE:
        index //= _PATH_BASE
        text = f"x{index % _PATH_BASE:03d}/{text}"
    return text


def _parse_index(groups: Sequence[str], path: str) -> int:
    if not groups or groups == [""]:
        raise TilePathError(f"{path!r}: no tile index")
    if len(groups) > _MAX_GROUPS:
        raise TilePathError(
            f"{path!r}: tile index in {len(groups)} groups, no index needs more than {_MAX_GROUPS}"
        )
    index = 0
    for i, group in enumerate(groups):
        last = i == len(groups) - 1
        digits = group if last else group.removeprefix("x")
        if not last and digits == group:
            raise TilePathError(f"{path!r}: index group {group!r} before the last lacks its 'x'")
        if not _GROUP.fullmatch(digits):
            want = "three digits" if last else "'x' and three digits"
            raise TilePathError(f"{path!r}: index group {group!r} is not {want}")
        index = index * _PATH_BASE + int(digits)
    if len(groups) > 1 and groups[0] == "x000":
        raise TilePathError(f"{path!r}: index starts with the group 'x000' (a leading zero group)")
    return index


def parse_path(path: str) -> Resource:
    """The resource at ``path`` (relative to the prefix, no leading slash), or TilePathError."""
    if path == CHECKPOINT_PATH:
        return Checkpoint()
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TilePathError(
            f"{path!r}: not 'checkpoint', 'tile/<L>/<N>[.p/<W>]' or 'tile/entries/<N>[.p/<W>]'"
        )
    if parts[-1] == "" and len(parts) > 3:
        raise TilePathError(f"{path!r}: ends with a '/'")
    width = TILE_WIDTH
    if parts[-2].endswith(".p"):
        text = parts[-1]
        if not _WIDTH.fullmatch(text):
            raise TilePathError(
                f"{path!r}: partial width {text!r} is not a decimal without leading zeros"
            )
        width = int(text)
        if width >= TILE_WIDTH:
            raise TilePathError(
                f"{path!r}: partial width {width} is not 1 to {TILE_WIDTH - 1}"
                f" (a full tile has no .p suffix)"
            )
        parts = [*parts[:-2], parts[-2].removesuffix(".p")]
    elif parts[-1].endswith(".p"):
        raise TilePathError(f"{path!r}: '.p' without a width after it")
    kind, groups = parts[1], parts[2:]
    try:
        if kind == "entries":
            index = _parse_index(groups, path)
            return EntryBundle(index, width)
        if not _LEVEL.fullmatch(kind):
            raise TilePathError(
                f"{path!r}: tile level {kind!r} is not 'entries' or a decimal without leading zeros"
            )
        level = int(kind)
        if level > MAX_LEVEL:
            raise TilePathError(f"{path!r}: tile level {level} is not 0 to {MAX_LEVEL}")
        return HashTile(level, _parse_index(groups, path), width)
    except TilePathError as err:
        message = str(err)
        raise TilePathError(
            message if message.startswith(repr(path)) else f"{path!r}: {message}"
        ) from None


# --- what a tree of a given size holds ---------------------------------------------


def width_in_tree(resource: HashTile | EntryBundle, size: int) -> int:
    """How wide the tile (or bundle) is in a tree of ``size`` leaves: 0 if not there yet."""
    level = resource.level if isinstance(resource, HashTile) else 0
    return merkle.tile_width(size, level, resource.index)


def new_tiles(old_size: int, new_size: int) -> list[HashTile]:
    """The hash tiles a tree of ``new_size`` publishes that one of ``old_size`` had not.

    As Go's tlog.NewTiles (height 8): the full tiles completed since, and the
    partial tile at each level's right edge.
    """
    if not _is_int(old_size) or not _is_int(new_size) or not 0 <= old_size <= new_size:
        raise ValueError(f"sizes must be 0 <= old <= new, not {old_size!r}, {new_size!r}")
    tiles = []
    level = 0
    while new_size >> (merkle.TILE_HEIGHT * level):
        old_n = old_size >> (merkle.TILE_HEIGHT * level)
        new_n = new_size >> (merkle.TILE_HEIGHT * level)
        if old_n != new_n:
            for n in range(old_n >> merkle.TILE_HEIGHT, new_n >> merkle.TILE_HEIGHT):
                tiles.append(HashTile(level, n))
            n = new_n >> merkle.TILE_HEIGHT
            if width := new_n - (n << merkle.TILE_HEIGHT):
                tiles.append(HashTile(level, n, width))
        level += 1
    return tiles


# --- entry bundles ---------------------------------------------------------------


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Each entry as a big-endian uint16 length, then its bytes."""
    if len(entries) > TILE_WIDTH:
        raise ValueError(f"{len(entries)} entries, a bundle holds at most {TILE_WIDTH}")
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_BUNDLE_ENTRY_BYTES:
            raise ValueError(f"entry {i} is {len(entry)} bytes, over a uint16 length")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ValueError naming where it is cut short."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise ValueError(f"entry {len(entries)}: length cut short at byte {at}")
        length = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + length > len(data):
            raise ValueError(
                f"entry {len(entries)}: {length} bytes announced, {len(data) - at - 2} left"
            )
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
        if len(entries) > TILE_WIDTH:
            raise ValueError(f"more than {TILE_WIDTH} entries")
    return entries
