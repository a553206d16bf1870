"""renkei.tlog.tiles_http: the log over HTTP by C2SP tlog-tiles, on aiohttp's test server.

Over a MemoryHashStore: tiles byte for byte as merkle.tile_hashes reads them,
bundles in the spec's layout, nothing past the latest checkpoint, every bad
path a 400 naming what is wrong, entries refused (403, the same answer for
every entry path) to a caller ``may_read_entries`` does not admit.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ed25519
from yarl import URL

from renkei.tlog import checkpoint, merkle, note, tiles
from renkei.tlog.tiles_http import (
    ENTRIES_REFUSED,
    IMMUTABLE,
    MUTABLE,
    StoreTileSource,
    tiles_app,
)

LOG = note.Ed25519Signer(
    "renkei.example/hub-log", ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
)
OVERSIGHT = "oversight"


class _Store(merkle.MemoryHashStore):
    """Notes the threads that read it."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def get_hashes(self, coords: Sequence[merkle.Coord]) -> list[bytes]:
        self.threads.add(threading.get_ident())
        return super().get_hashes(coords)


@dataclass
class Log:
    """A log of entries b'entry <i>' whose checkpoint lags what is stored, as a hub's may."""

    store: _Store = field(default_factory=_Store)
    entries: list[bytes] = field(default_factory=list)
    size: int = 0
    note: bytes = b""
    threads: set[int] = field(default_factory=set)

    def grow(self, stored: int, checkpointed: int) -> None:
        new = [b"entry %d" % i for i in range(len(self.entries), stored)]
        merkle.CompactRange.from_store(self.store, len(self.entries)).append(
            [merkle.leaf_hash(e) for e in new]
        )
        self.entries += new
        self.size = checkpointed
        root = merkle.stored_root(self.store, checkpointed)
        self.note = checkpoint.CheckpointSigner(LOG).sign(checkpointed, root)

    def source(self, executor: ThreadPoolExecutor | None = None) -> StoreTileSource:
        def cp() -> bytes:
            self.threads.add(threading.get_ident())
            return self.note

        def size() -> int:
            self.threads.add(threading.get_ident())
            return self.size

        def entries(start: int, count: int) -> list[bytes]:
            self.threads.add(threading.get_ident())
            return self.entries[start : start + count]

        return StoreTileSource(self.store, cp, size, entries, executor)


def _oversight(request: web.Request) -> bool:
    # The hub checks the mTLS client certificate; a header stands in for it here.
    return request.headers.get("X-Test-Caller") == OVERSIGHT


def run(
    log: Log, test: Callable[[TestClient[web.Request, web.Application]], Awaitable[None]]
) -> None:
    async def go() -> None:
        async with TestClient(
            TestServer(tiles_app(log.source(), may_read_entries=_oversight))
        ) as c:
            await test(c)

    asyncio.run(go())


@pytest.fixture
def log() -> Log:
    made = Log()
    made.grow(stored=700, checkpointed=600)  # 600: two full level-0 tiles and one of 88
    return made


async def _get(
    client: TestClient[web.Request, web.Application], path: str, oversight: bool = False
) -> tuple[int, bytes, dict[str, str]]:
    headers = {"X-Test-Caller": OVERSIGHT} if oversight else {}
    # encoded: yarl would otherwise decode %30 to 0 before sending.
    async with client.get(URL(path, encoded=True), headers=headers) as response:
        return response.status, await response.read(), dict(response.headers)


# --- checkpoint and hash tiles -------------------------------------------------------


def test_the_checkpoint_is_served_as_text_for_seconds(log: Log) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        status, body, headers = await _get(c, "/checkpoint")
        assert status == 200
        assert body == log.note
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["Cache-Control"] == MUTABLE == "public, max-age=2"

    run(log, test)


def test_full_and_partial_tiles_are_the_stores_hashes(log: Log) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        for path, (level, index, width), cache in [
            ("/tile/0/000", (0, 0, 256), IMMUTABLE),
            ("/tile/0/001", (0, 1, 256), IMMUTABLE),
            ("/tile/0/002.p/88", (0, 2, 88), MUTABLE),
            ("/tile/1/000.p/2", (1, 0, 2), MUTABLE),
            # Narrower than the tree's: the tile of an older checkpoint a client verifies.
            ("/tile/0/002.p/10", (0, 2, 10), MUTABLE),
            ("/tile/0/000.p/1", (0, 0, 1), MUTABLE),
        ]:
            status, body, headers = await _get(c, path)
            assert status == 200, path
            assert body == merkle.tile_hashes(log.store, level, index, width), path
            assert len(body) == 32 * width
            assert headers["Content-Type"] == "application/octet-stream"
            assert headers["Cache-Control"] == cache
        assert IMMUTABLE == "public, max-age=31536000, immutable"
        # The level-1 tile's hashes are the roots of the full level-0 tiles.
        _, level1, _ = await _get(c, "/tile/1/000.p/2")
        assert level1 == merkle.root(
            [merkle.leaf_hash(e) for e in log.entries[:256]]
        ) + merkle.root([merkle.leaf_hash(e) for e in log.entries[256:512]])

    run(log, test)


def test_nothing_beyond_the_latest_checkpoint_is_served(log: Log) -> None:
    # The store holds 700 leaves; the checkpoint commits to 600 of them.
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        for path, message in [
            (
                "/tile/0/002",
                "tile/0/002: the latest checkpoint (tree size 600) covers 88 of its 256",
            ),
            ("/tile/0/002.p/89", "covers 88 of its 89 hashes"),
            ("/tile/0/002.p/100", "covers 88 of its 100 hashes"),  # stored, not checkpointed
            ("/tile/0/003", "tile/0/003: beyond the latest checkpoint (tree size 600)"),
            ("/tile/0/003.p/1", "beyond the latest checkpoint"),
            ("/tile/1/000", "covers 2 of its 256 hashes"),
            ("/tile/2/000.p/1", "beyond the latest checkpoint"),
            ("/tile/63/000.p/1", "beyond the latest checkpoint"),
            ("/tile/0/x072/x057/x594/x037/x927/935", "beyond the latest checkpoint"),
        ]:
            status, body, _ = await _get(c, path)
            assert status == 404, path
            assert message in body.decode(), path

    run(log, test)


def test_a_growing_log_serves_the_new_tiles_once_checkpointed(log: Log) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        assert (await _get(c, "/tile/0/002"))[0] == 404
        log.grow(stored=800, checkpointed=768)
        status, body, headers = await _get(c, "/tile/0/002")
        assert status == 200
        assert body == merkle.tile_hashes(log.store, 0, 2, 256)
        assert headers["Cache-Control"] == IMMUTABLE
        assert (await _get(c, "/tile/1/000.p/3"))[1] == merkle.tile_hashes(log.store, 1, 0, 3)
        assert (await _get(c, "/checkpoint"))[1] == log.note

    run(log, test)


def test_an_empty_log_serves_its_checkpoint_and_no_tile() -> None:
    empty = Log()
    empty.grow(stored=0, checkpointed=0)

    async def test(c: TestClient[web.Request, web.Application]) -> None:
        assert (await _get(c, "/checkpoint"))[:2] == (200, empty.note)
        assert (await _get(c, "/tile/0/000.p/1"))[0] == 404
        assert (await _get(c, "/tile/entries/000.p/1", oversight=True))[0] == 404

    run(empty, test)


# --- bad paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/tile/00/000", "tile level '00' is not 'entries' or a decimal without leading zeros"),
        ("/tile/64/000", "tile level 64 is not 0 to 63"),
        ("/tile/0/1", "index group '1' is not three digits"),
        ("/tile/0/x000/001", "leading zero group"),
        ("/tile/0/001/002", "before the last lacks its 'x'"),
        ("/tile/0/000.p/256", "partial width 256 is not 1 to 255"),
        ("/tile/0/000.p/0", "partial width '0'"),
        ("/tile/0/000.p/07", "partial width '07'"),
        ("/tile/0/x072/x057/x594/x037/x927/936", "starts beyond the largest tree"),
        ("/tile/0/" + "x001/" * 10 + "001", "11 groups"),
        ("/tile/0/%30%30%30", "percent-encoding is not part of a tile path"),
        ("/tile/entries/00", "index group '00' is not three digits"),
        ("/tile/entries/000.p/256", "partial width 256"),
        ("/tile/", "not 'checkpoint'"),
        ("/tile/data/000", "tile level 'data'"),
    ],
)
def test_a_malformed_path_is_400_naming_what_is_wrong(log: Log, path: str, reason: str) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        for oversight in (False, True):
            status, body, headers = await _get(c, path, oversight)
            assert status == 400, path
            assert reason in body.decode(), body
            assert headers["Content-Type"].startswith("text/plain")

    run(log, test)


def test_other_paths_and_methods(log: Log) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        status, body, _ = await _get(c, "/")
        assert status == 404
        assert b"not a tlog-tiles resource" in body
        assert (await _get(c, "/checkpoint/"))[0] == 404
        assert (await _get(c, "/tiles/0/000"))[0] == 404
        async with c.post("/checkpoint", data=b"x") as response:
            assert response.status == 405
        async with c.head("/tile/0/000") as response:
            assert response.status == 200

    run(log, test)


# --- entry bundles ----------------------------------------------------------------------


def test_entry_bundles_only_for_the_caller_admitted_and_nothing_else_told(log: Log) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        answers = set()
        for path in (
            "/tile/entries/000",  # served to the oversight body
            "/tile/entries/002.p/88",
            "/tile/entries/002.p/99",  # stored, not checkpointed
            "/tile/entries/002",
            "/tile/entries/x001/000",  # far beyond
        ):
            status, body, headers = await _get(c, path)
            assert status == 403, path
            answers.add((body, headers["Content-Type"], headers.get("Cache-Control")))
        # The same answer for each: no hint of which entries exist.
        assert answers == {(ENTRIES_REFUSED.encode() + b"\n", "text/plain; charset=utf-8", None)}

    run(log, test)


def test_entry_bundles_for_the_oversight_body_in_the_specs_layout(log: Log) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        for path, start, width in [
            ("/tile/entries/000", 0, 256),
            ("/tile/entries/001", 256, 256),
            ("/tile/entries/002.p/88", 512, 88),
            ("/tile/entries/002.p/3", 512, 3),
        ]:
            status, body, headers = await _get(c, path, oversight=True)
            assert status == 200, path
            want = log.entries[start : start + width]
            assert tiles.decode_bundle(body) == want
            assert body == b"".join(len(e).to_bytes(2, "big") + e for e in want)
            # Each entry hashes to its hash in the level-0 tile.
            tile = merkle.tile_hashes(log.store, 0, start // 256, width)
            assert b"".join(merkle.leaf_hash(e) for e in want) == tile
            assert headers["Content-Type"] == "application/octet-stream"
            # Entries are not public: no shared cache may keep them.
            assert headers["Cache-Control"].startswith("private, ")
        for path in ("/tile/entries/002", "/tile/entries/002.p/89", "/tile/entries/003.p/1"):
            assert (await _get(c, path, oversight=True))[0] == 404, path

    run(log, test)


def test_entry_bundles_are_gzipped_when_the_client_takes_it(log: Log) -> None:
    async def test(c: TestClient[web.Request, web.Application]) -> None:
        headers = {"X-Test-Caller": OVERSIGHT, "Accept-Encoding": "gzip"}
        async with c.get("/tile/entries/000", headers=headers, auto_decompress=False) as r:
            assert r.status == 200
            assert r.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(await r.read())
        assert tiles.decode_bundle(body) == log.entries[:256]

    run(log, test)


def test_a_source_short_of_entries_is_a_server_error(log: Log) -> None:
    log.entries = log.entries[:300]  # the log lost entries its tree commits to

    async def test(c: TestClient[web.Request, web.Application]) -> None:
        status, body, _ = await _get(c, "/tile/entries/001", oversight=True)
        assert status == 500
        assert b"the log returned 44 entries for 256" in body

    run(log, test)


def test_the_store_source_runs_the_sync_calls_in_its_executor(log: Log) -> None:
    async def go() -> None:
        loop_thread = threading.get_ident()
        want = merkle.tile_hashes(log.store, 0, 2, 88)
        log.store.threads.clear()
        with ThreadPoolExecutor(1) as executor:
            source = log.source(executor)
            assert await source.checkpoint() == log.note
            assert await source.tree_size() == 600
            assert await source.entries(3, 2) == [b"entry 3", b"entry 4"]
            assert await source.hash_tile(0, 2, 88) == want
        assert loop_thread not in log.threads | log.store.threads
        assert len(log.threads | log.store.threads) == 1

    asyncio.run(go())


# --- Go's tiles, served -------------------------------------------------------------------

GO_PATHS = json.loads(
    (Path(__file__).parents[1] / "unit" / "fixtures" / "merkle" / "go_tile_paths.json").read_text(
        "utf-8"
    )
)


@pytest.mark.parametrize("size", [2000, 3000])
def test_the_tiles_served_are_gos_byte_for_byte(size: int) -> None:
    # Go's tree of 3,000 records (go_tile_paths_gen), checkpointed at 2,000 and then at 3,000.
    go = Log()
    go.entries = [b"renkei tile vector %d" % i for i in range(GO_PATHS["size"])]
    merkle.CompactRange(go.store).append([merkle.leaf_hash(e) for e in go.entries])
    go.size = size
    go.note = checkpoint.CheckpointSigner(LOG).sign(size, merkle.stored_root(go.store, size))
    here = [t for t in GO_PATHS["tiles"] if size in t["published_at_sizes"]]
    assert len(here) == {2000: 9, 3000: 13}[size]

    async def test(c: TestClient[web.Request, web.Application]) -> None:
        for tile in here:
            status, body, _ = await _get(c, "/" + tile["path"])
            assert status == 200, tile["path"]
            assert body.hex() == tile["data_hex"], tile["path"]
        for b in GO_PATHS["entry_bundles"]:
            if b["start"] + b["width"] <= size:
                status, body, _ = await _get(c, "/" + b["path"], oversight=True)
                assert (status, body.hex()) == (200, b["data_hex"]), b["path"]

    run(go, test)


def test_mounted_under_the_logs_prefix(log: Log) -> None:
    # The hub mounts the app under its log's prefix; paths are read after it.
    async def go() -> None:
        hub = web.Application()
        hub.add_subapp("/hub-log/", tiles_app(log.source(), may_read_entries=_oversight))
        async with TestClient(TestServer(hub)) as c:
            assert (await _get(c, "/hub-log/checkpoint"))[:2] == (200, log.note)
            status, body, _ = await _get(c, "/hub-log/tile/0/002.p/88")
            assert (status, body) == (200, merkle.tile_hashes(log.store, 0, 2, 88))
            status, body, _ = await _get(c, "/hub-log/tile/0/02")
            assert status == 400
            assert body.startswith(b"'tile/0/02': ")
            assert (await _get(c, "/checkpoint"))[0] == 404

    asyncio.run(go())


def test_a_source_short_of_hashes_is_a_server_error(log: Log) -> None:
    class Short(StoreTileSource):
        async def hash_tile(self, level: int, index: int, width: int) -> bytes:
            return (await super().hash_tile(level, index, width))[:-1]

    async def go() -> None:
        source = Short(log.store, lambda: log.note, lambda: log.size, lambda s, n: [], None)
        async with TestClient(TestServer(tiles_app(source, may_read_entries=_oversight))) as c:
            status, body, _ = await _get(c, "/tile/0/000")
            assert status == 500
            assert b"the log returned 8191 bytes for 256 hashes" in body

    asyncio.run(go())
