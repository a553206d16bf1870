"""kill -9 of the hub while it integrates entries: the verifiable log survives it.

Entries and the tree's nodes are written in the transaction that makes the rows
durable, and a checkpoint is signed only over a committed tree; so after any
number of kills the tree is consistent with every checkpoint the hub ever
published, holds every entry of every acknowledged answer, and has no gap.
"""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import sqlalchemy as sa
from support.faults import CITY, Load, World, check

from hub_server import keys
from hub_server.config import HubConfig
from hub_server.log_tree import TreeReader, checkpoints, entries
from renkei.grpcutil.client import channel as open_channel
from renkei.keystore import KeyStore, load_master_key
from renkei.log.v1 import log_pb2, log_pb2_grpc
from renkei.tlog import checkpoint, merkle, note
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry


def _verifier(world: World) -> note.Verifier:
    config = HubConfig.load(world.layout.hub_config)
    engine = world.hub_engine()
    try:
        store = KeyStore(engine, load_master_key(config.master_key))
        return keys.checkpoint_signer(store, config.log.origin).verifier()
    finally:
        engine.dispose()


class _Watcher:
    """Reads the hub's checkpoint every few milliseconds, keeping each one it saw."""

    def __init__(self, world: World, verifier: note.Verifier) -> None:
        self._world = world
        self._verifier = verifier
        self.seen: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> _Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        files = self._world.layout.pki.agency(CITY)
        while not self._stop.is_set():
            try:
                target = f"127.0.0.1:{self._world.port('hub')}"
                async with open_channel(target, files, peer="hub") as ch:
                    stub = log_pb2_grpc.LogServiceStub(ch)
                    while not self._stop.is_set():
                        got = await stub.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=1)
                        cp = checkpoint.verify_checkpoint(
                            got.checkpoint, self._verifier, [], require_witness=False
                        )
                        known = self.seen.setdefault(cp.size, cp.root_hash)
                        assert known == cp.root_hash, f"two roots published for size {cp.size}"
                        await asyncio.sleep(0.02)
            except (grpc.aio.AioRpcError, OSError, ValueError, KeyError):
                await asyncio.sleep(0.05)  # the hub is down, or starting again


def test_hub_killed_while_integrating_keeps_the_tree_and_every_checkpoint(world: World) -> None:
    with _Watcher(world, _verifier(world)) as watcher, Load(world) as load:
        for _ in range(3):
            load.wait_calls(len(load.answers) + 40)
            world.kill("hub")
            time.sleep(0.3)
            world.start("hub")
            world.wait_answering()
        load.wait_calls(len(load.answers) + 40)
    check(world, load)

    engine = world.hub_engine()
    try:
        reader = TreeReader(engine)
        size = reader.size()
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(entries.c.leaf_index, entries.c.entry).order_by(entries.c.leaf_index)
            ).all()
            published = conn.execute(sa.select(checkpoints.c.size, checkpoints.c.note)).all()
        # Every entry under its index, no gap, and the tree is over exactly them.
        assert [int(r.leaf_index) for r in stored] == list(range(size))
        assert reader.root(size) == merkle.root(merkle.leaf_hash(bytes(r.entry)) for r in stored)
        # Every checkpoint ever published, seen live or kept by the hub, is a prefix of it.
        verifier = _verifier(world)
        for cp_size, text in published:
            cp = checkpoint.verify_checkpoint(text.encode(), verifier, [], require_witness=False)
            watcher.seen.setdefault(cp.size, cp.root_hash)
            assert cp.size == cp_size
        assert len(watcher.seen) > 3
        for cp_size, root in sorted(watcher.seen.items()):
            assert cp_size <= size
            assert reader.root(cp_size) == root, f"checkpoint of size {cp_size} is not a prefix"
        # Every acknowledged answer has its exchange and its outcome in the tree.
        decoded = [Entry.decode(bytes(r.entry)) for r in stored]
        ok_serials = {a.serial for a in load.answers if a.ok}
        assert ok_serials
        exchanges = {e.serial for e in decoded if e.kind == EXCHANGE}
        outcomes = {e.serial for e in decoded if e.kind == OUTCOME and e.outcome == "OK"}
        assert ok_serials <= exchanges
        assert ok_serials <= outcomes
    finally:
        engine.dispose()
