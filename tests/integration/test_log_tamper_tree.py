"""The tamper suite, tree side: a fork and a truncated tail are caught (issue 14).

The hub's operator holds the checkpoint key, so it can sign any tree it likes.
What it cannot get is the witness's cosignature on a tree that does not extend
the last one the witness cosigned: the witness refuses a fork (same size,
another root) and a rollback, every agency then refuses the checkpoint, and an
agency's own consistency check (even one that trusted no witness) and the
offline bundle check name the fork or the rollback with both sizes.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import sqlalchemy as sa
from support.aio import LoopThread
from support.topology import CITY, PENSION, Topology, query

from comm_server import log_commands
from comm_server.config import CommConfig
from comm_server.log_verify import FORK, ROLLBACK, WITNESS, Keys, VerifyReport
from hub_server import keys as hub_keys
from hub_server.log_tree import TreeReader, entries, hashes, tree
from renkei.keystore import KeyStore, load_master_key
from renkei.tlog import checkpoint, merkle
from renkei.tlog.bundle import Bundle, verify_bundle
from renkei.tlog.witness_client import WitnessClient, WitnessRefused

PENSION_INFO = "年金給付関係情報"
pytestmark = pytest.mark.dishonest


def _exchanges(loop: LoopThread, topo: Topology, count: int) -> None:
    async def run() -> None:
        async with topo.channel(CITY, CITY) as ch:
            for n in range(count):
                await topo.requester_stub(ch).Query(
                    query(CITY, topo.people[n % 2], PENSION, PENSION_INFO, "二十七"), timeout=10
                )

    loop.run(run())


def _witnessed(loop: LoopThread, topo: Topology) -> int:
    checkpoints, writer = topo.hub.checkpointer, topo.hub_log().tree
    assert checkpoints is not None
    assert writer is not None

    async def wait() -> int:
        for _ in range(200):
            if checkpoints.witnessed and checkpoints.signed_size == writer.head[0]:
                return checkpoints.signed_size
            await asyncio.sleep(0.05)
        raise AssertionError("no witnessed checkpoint of the whole tree within 10 s")

    return loop.run(wait())


def _config(topo: Topology, *, witness: bool = True) -> CommConfig:
    config = topo.comms[CITY].config
    assert config.log is not None
    return config if witness else replace(config, log=replace(config.log, require_witness=False))


def _verify(loop: LoopThread, config: CommConfig) -> VerifyReport:
    report = loop.run(log_commands.verify_once(config, whole=True))
    assert isinstance(report, VerifyReport), report
    return report


def _signer(topo: Topology) -> checkpoint.CheckpointSigner:
    """The hub's own checkpoint key: its operator has it."""
    config = topo.hub.config
    store = KeyStore(topo.hub_log().engine, load_master_key(config.master_key))
    return checkpoint.CheckpointSigner(hub_keys.checkpoint_signer(store, config.log.origin))


def _offline(topo: Topology, trusted: bytes, served: bytes, *, witness: bool) -> list[str]:
    log = _config(topo).log
    assert log is not None
    keys = Keys.from_config(log)
    bundle = Bundle(served, [], previous=trusted)
    report = verify_bundle(
        bundle,
        keys.hub,
        list(keys.witnesses),  # type: ignore[arg-type]  # cosignature verifiers, parsed so
        require_witness=witness,
    )
    return list(report.problems)


async def _offer(topo: Topology, old: int, proof: list[bytes], signed: bytes) -> None:
    tls = topo.hub.config.tls
    assert tls is not None
    async with WitnessClient(
        f"https://127.0.0.1:{topo.witness.port}",
        roots=tls.ca_cert,
        server_name="witness.service.renkei.internal",
    ) as client:
        await client.add_checkpoint(old, proof, signed)


@pytest.fixture(scope="module")
def trusted(loop: LoopThread, topo: Topology) -> tuple[int, bytes]:
    """A clean run first: the city trusts the witnessed checkpoint of the whole tree."""
    _exchanges(loop, topo, 6)
    size = _witnessed(loop, topo)
    report = _verify(loop, _config(topo))
    assert report.problems == ()
    assert report.size == size
    return size, report.checkpoint


def test_a_fork_of_the_same_size_is_caught(
    loop: LoopThread, topo: Topology, trusted: tuple[int, bytes]
) -> None:
    size, honest = trusted
    checkpoints = topo.hub.checkpointer
    assert checkpoints is not None
    # Another history of the same size: one entry rewritten, the tree recomputed, signed.
    with topo.hub_log().engine.connect() as conn:
        stored = [
            bytes(e)
            for e in conn.execute(
                sa.select(entries.c.entry).order_by(entries.c.leaf_index).limit(size)
            ).scalars()
        ]
    stored[1] = stored[1].replace(b'"outcome":"OK"', b'"outcome":"DENIED"')
    forged = _signer(topo).sign(size, merkle.root(merkle.leaf_hash(e) for e in stored))
    assert forged != honest

    # The witness will not cosign it.
    with pytest.raises(WitnessRefused) as refused:
        loop.run(_offer(topo, size, [], forged))
    assert refused.value.status == 422

    saved = checkpoints.published
    checkpoints.published = (size, forged)  # the hub serves the forged head
    try:
        (problem,) = _verify(loop, _config(topo)).problems
        assert problem.kind == WITNESS
        # An agency that trusted no witness still catches it by its own consistency check.
        # (And its receipts are not in the forged tree: each is named too.)
        problems = _verify(loop, _config(topo, witness=False)).problems
        (problem,) = [p for p in problems if p.kind == FORK]
        assert str(size) in problem.text
        offline = _offline(topo, honest, forged, witness=False)
        assert offline
        assert any(str(size) in p for p in offline)
    finally:
        checkpoints.published = saved
    assert _verify(loop, _config(topo)).problems == ()


def test_a_truncated_tail_is_caught(
    loop: LoopThread, topo: Topology, trusted: tuple[int, bytes]
) -> None:
    size, honest = trusted
    keep = size - 4
    engine = topo.hub_log().engine
    writer, checkpoints = topo.hub_log().tree, topo.hub.checkpointer
    assert writer is not None
    assert checkpoints is not None
    # The operator cuts the last four entries and their nodes, and the hub goes on from there.
    with engine.begin() as conn:
        conn.execute(sa.delete(entries).where(entries.c.leaf_index >= keep))
        conn.execute(sa.delete(hashes).where(hashes.c.id >= merkle.stored_hash_count(keep)))
        conn.execute(tree.update().values(size=keep))
        writer.load(conn)
    assert TreeReader(engine).size() == keep
    assert loop.run(checkpoints.step())  # signed; the witness, at `size`, refuses to roll back
    assert checkpoints.published is not None
    assert checkpoints.published[0] == keep
    assert not checkpoints.witnessed
    truncated = checkpoints.published[1]

    (problem,) = _verify(loop, _config(topo)).problems
    assert problem.kind == WITNESS
    problems = _verify(loop, _config(topo, witness=False)).problems
    assert [p.kind for p in problems if p.kind == ROLLBACK] == [ROLLBACK]
    rollback = next(p for p in problems if p.kind == ROLLBACK)
    assert str(size) in rollback.text
    assert str(keep) in rollback.text
    offline = _offline(topo, honest, truncated, witness=False)
    assert any(str(size) in p and str(keep) in p for p in offline)
