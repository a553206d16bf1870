"""The log read-only over HTTP, as c2sp.org/tlog-tiles serves it (paths in renkei.tlog.tiles).

Only what the latest checkpoint commits to is served: a tile or bundle the
tree does not reach yet is 404, so nobody learns of entries before they are
checkpointed. A partial tile is served at any width the tree covers (the
spec: a log MUST serve the partial tiles of every size it checkpointed, and a
client verifying an older checkpoint asks for a narrower one); a wider one
is 404. Full tiles never change and are cached for a year; the checkpoint and
partial tiles change as the log grows and are cached for seconds.

Entry bundles hold the entries themselves, so they go only to callers that
``may_read_entries`` admits (the hub: the oversight body's client
certificate); anybody else gets 403 for any entry path, served or not, and
learns nothing, not even how far the entries go. Their responses are
``private``: no shared cache may hand them on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Protocol

from aiohttp import web

from renkei.tlog import merkle, tiles

CHECKPOINT_TYPE = "text/plain; charset=utf-8"
TILE_TYPE = "application/octet-stream"
IMMUTABLE = "public, max-age=31536000, immutable"
MUTABLE = "public, max-age=2"  # the spec: no caching "beyond a few seconds"
ENTRIES_IMMUTABLE = "private, max-age=31536000, immutable"
ENTRIES_MUTABLE = "private, max-age=2"
ENTRIES_REFUSED = (
    "entry bundles are served only to the oversight body's client certificate;"
    " this connection did not present it"
)


class TileSource(Protocol):
    """What the log serves, from the latest checkpoint."""

    async def checkpoint(self) -> bytes:
        """The latest signed checkpoint note, with its cosignatures."""
        ...

    async def tree_size(self) -> int:
        """The size that checkpoint commits to."""
        ...

    async def hash_tile(self, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of the tile, concatenated."""
        ...

    async def entries(self, start: int, count: int) -> list[bytes]:
        """Entries ``start`` to ``start + count - 1``, as the leaves commit to them."""
        ...


class StoreTileSource:
    """A :class:`TileSource` over a node-hash store and three sync calls, run in ``executor``.

    The store and the callbacks may block (SQL); the event loop never waits on them.
    """

    def __init__(
        self,
        store: merkle.HashStore,
        checkpoint: Callable[[], bytes],
        size: Callable[[], int],
        entries: Callable[[int, int], list[bytes]],
        executor: Executor | None,
    ) -> None:
        self._store = store
        self._checkpoint = checkpoint
        self._size = size
        self._entries = entries
        self._executor = executor

    async def checkpoint(self) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)

    async def tree_size(self) -> int:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._size)

    async def hash_tile(self, level: int, index: int, width: int) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, merkle.tile_hashes, self._store, level, index, width
        )

    async def entries(self, start: int, count: int) -> list[bytes]:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._entries, start, count
        )


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


def tiles_app(
    source: TileSource, *, may_read_entries: Callable[[web.Request], bool]
) -> web.Application:
    """The log's tlog-tiles resources at the application's root (mount it under the prefix)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if "%" in request.raw_path:
            # Decoding would give one resource two paths; the grammar has no escapes.
            return _text(400, f"{request.raw_path!r}: percent-encoding is not part of a tile path")
        path = request.match_info["path"]
        if path != tiles.CHECKPOINT_PATH and not path.startswith("tile/"):
            return _text(404, f"{path!r}: not a tlog-tiles resource (checkpoint or tile/...)")
        try:
            resource = tiles.parse_path(path)
        except tiles.TilePathError as err:
            return _text(400, str(err))
        if isinstance(resource, tiles.Checkpoint):
            note = await source.checkpoint()
            return web.Response(
                body=note, headers={"Content-Type": CHECKPOINT_TYPE, "Cache-Control": MUTABLE}
            )
        if isinstance(resource, tiles.EntryBundle) and not may_read_entries(request):
            # Before anything about the tree is looked at: a refusal says nothing of the entries.
            return _text(403, ENTRIES_REFUSED)
        size = await source.tree_size()
        there = tiles.width_in_tree(resource, size)
        if resource.width > there:
            return _text(404, _beyond(resource, there, size))
        if isinstance(resource, tiles.HashTile):
            body = await source.hash_tile(resource.level, resource.index, resource.width)
            if len(body) != merkle.HASH_SIZE * resource.width:
                raise web.HTTPInternalServerError(
                    text=f"the log returned {len(body)} bytes for {resource.width} hashes"
                )
            cache = MUTABLE if resource.partial else IMMUTABLE
            return web.Response(
                body=body, headers={"Content-Type": TILE_TYPE, "Cache-Control": cache}
            )
        got = await source.entries(resource.start, resource.width)
        if len(got) != resource.width:
            raise web.HTTPInternalServerError(
                text=f"the log returned {len(got)} entries for {resource.width}"
            )
        response = web.Response(
            body=tiles.encode_bundle(got),
            headers={
                "Content-Type": TILE_TYPE,
                "Cache-Control": ENTRIES_MUTABLE if resource.partial else ENTRIES_IMMUTABLE,
            },
        )
        # The spec: bundles SHOULD be compressed at the HTTP layer (as Accept-Encoding allows).
        response.enable_compression()
        return response

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    return app


def _beyond(resource: tiles.HashTile | tiles.EntryBundle, there: int, size: int) -> str:
    what = resource.path()
    if there == 0:
        return f"{what}: beyond the latest checkpoint (tree size {size})"
    return (
        f"{what}: the latest checkpoint (tree size {size}) covers {there} of its"
        f" {resource.width} {'entries' if isinstance(resource, tiles.EntryBundle) else 'hashes'}"
    )
