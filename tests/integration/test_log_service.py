"""renkei.log.v1.LogService on a running hub: checkpoints, proofs, entries, refusals.

An exchange's entries are in the tree, provably, under a checkpoint the hub
signed with its key-store key; only the exchange's own parties may read them,
and a request for anything else is refused without a word about it.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from support.aio import LoopThread
from support.lookalike import oversight_lookalike
from support.refusals import refused
from support.topology import CITY, MINISTER, PENSION, Topology, query

from hub_server.log_tree import entries
from renkei.log.v1 import log_pb2, log_pb2_grpc
from renkei.tlog import checkpoint, merkle
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry

PENSION_INFO = "年金給付関係情報"


def _log_stub(ch: grpc.aio.Channel) -> log_pb2_grpc.LogServiceAsyncStub:
    return log_pb2_grpc.LogServiceStub(ch)  # type: ignore[return-value]


async def _ask(topo: Topology, as_agency: str, method: str, request: object) -> object:
    async with topo.channel("hub", as_agency) as ch:
        return await getattr(_log_stub(ch), method)(request, timeout=10)


def _leaves_of(topo: Topology, serial: int) -> list[int]:
    with topo.hub_log().engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(entries.c.leaf_index)
                .where(entries.c.serial == serial)
                .order_by(entries.c.leaf_index)
            ).scalars()
        )


async def _checkpoint_covering(topo: Topology, size: int) -> checkpoint.Checkpoint:
    assert topo.hub.checkpointer is not None
    verifier = topo.hub.checkpointer.verifier
    for _ in range(100):
        got = await _ask(topo, CITY, "GetCheckpoint", log_pb2.GetCheckpointRequest())
        signed = got.checkpoint  # type: ignore[attr-defined]
        cp = checkpoint.verify_checkpoint(signed, verifier, [], require_witness=False)
        if cp.size >= size:
            return cp
        await asyncio.sleep(0.1)
    raise AssertionError(f"no checkpoint of size {size} within 10 s")


def _lawful(loop: LoopThread, topo: Topology) -> int:
    async def run() -> int:
        async with topo.channel(CITY, CITY) as ch:
            response = await topo.requester_stub(ch).Query(
                query(CITY, topo.people[0], PENSION, PENSION_INFO, "二十七"), timeout=10
            )
        return int(response.serial)

    return loop.run(run())


def test_an_exchange_is_two_entries_proved_in_a_signed_checkpoint(
    loop: LoopThread, topo: Topology
) -> None:
    serial = _lawful(loop, topo)
    leaves = _leaves_of(topo, serial)
    assert len(leaves) == 2

    async def run() -> None:
        cp = await _checkpoint_covering(topo, leaves[-1] + 1)
        got = await _ask(topo, CITY, "GetEntries", log_pb2.GetEntriesRequest(leaf_indices=leaves))
        found = [Entry.decode(e.entry) for e in got.entries]  # type: ignore[attr-defined]
        assert [(e.kind, e.serial, e.outcome) for e in found] == [
            (EXCHANGE, serial, "PENDING"),
            (OUTCOME, serial, "OK"),
        ]
        assert (found[0].requester, found[0].provider, found[0].info_kind) == (
            CITY,
            PENSION,
            PENSION_INFO,
        )
        for leaf, raw in zip(leaves, got.entries, strict=True):  # type: ignore[attr-defined]
            proof = await _ask(
                topo,
                PENSION,  # the provider may check too
                "GetInclusionProof",
                log_pb2.GetInclusionProofRequest(leaf_index=leaf, tree_size=cp.size),
            )
            merkle.verify_inclusion(
                merkle.leaf_hash(raw.entry),
                leaf,
                cp.size,
                list(proof.hashes),  # type: ignore[attr-defined]
                cp.root_hash,
            )

    loop.run(run())


def test_a_later_checkpoint_is_consistent_with_an_earlier_one(
    loop: LoopThread, topo: Topology
) -> None:
    _lawful(loop, topo)
    first = loop.run(_checkpoint_covering(topo, 1))
    serial = _lawful(loop, topo)
    second = loop.run(_checkpoint_covering(topo, _leaves_of(topo, serial)[-1] + 1))
    assert second.size > first.size
    proof = loop.run(
        _ask(
            topo,
            MINISTER,  # proofs are public facts about the tree: any agency may ask
            "GetConsistencyProof",
            log_pb2.GetConsistencyProofRequest(first_size=first.size, second_size=second.size),
        )
    )
    merkle.verify_consistency(
        first.size,
        second.size,
        first.root_hash,
        second.root_hash,
        list(proof.hashes),  # type: ignore[attr-defined]
    )


def test_a_denial_names_its_entry_in_the_refusal(loop: LoopThread, topo: Topology) -> None:
    async def run() -> None:
        async with topo.channel(CITY, CITY) as ch:
            refusal = await refused(
                topo.requester_stub(ch).Query(
                    query(CITY, topo.people[0], PENSION, PENSION_INFO, "九百九十九"), timeout=10
                )
            )
        assert refusal.reason == "LEGAL_BASIS_ITEM_UNKNOWN"
        entry = Entry.decode(base64.b64decode(refusal.metadata["log_entry"]))
        assert (entry.kind, entry.serial) == (EXCHANGE, int(refusal.metadata["serial"]))
        assert (entry.outcome, entry.reason) == ("DENIED", "LEGAL_BASIS_ITEM_UNKNOWN")
        assert _leaves_of(topo, entry.serial) == [int(refusal.metadata["log_leaf_index"])]

    loop.run(run())


def test_only_the_exchanges_parties_may_read_its_entries(loop: LoopThread, topo: Topology) -> None:
    serial = _lawful(loop, topo)
    leaves = _leaves_of(topo, serial)
    refusal = loop.run(
        refused(_ask(topo, MINISTER, "GetEntries", log_pb2.GetEntriesRequest(leaf_indices=leaves)))
    )
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ENTRY_NOT_ENTITLED",
    )
    assert str(serial) not in refusal.message
    # One entry of another's among one's own refuses the whole request.
    other = _leaves_of(topo, _lawful(loop, topo))
    mixed = loop.run(
        refused(
            _ask(
                topo,
                MINISTER,
                "GetEntries",
                log_pb2.GetEntriesRequest(leaf_indices=[*other, *leaves]),
            )
        )
    )
    assert mixed.reason == "ENTRY_NOT_ENTITLED"


@pytest.mark.parametrize(
    ("method", "request_fields", "reason", "field"),
    [
        (
            "GetInclusionProof",
            {"leaf_index": 2, "tree_size": 2},
            "LEAF_INDEX_OUT_OF_RANGE",
            "leaf_index",
        ),
        (
            "GetInclusionProof",
            {"leaf_index": 0, "tree_size": 0},
            "TREE_SIZE_OUT_OF_RANGE",
            "tree_size",
        ),
        (
            "GetInclusionProof",
            {"leaf_index": 0, "tree_size": 2**63},
            "TREE_SIZE_OUT_OF_RANGE",
            "tree_size",
        ),
        (
            "GetConsistencyProof",
            {"first_size": 3, "second_size": 2},
            "TREE_SIZES_OUT_OF_ORDER",
            "first_size",
        ),
        (
            "GetConsistencyProof",
            {"first_size": 1, "second_size": 2**40},
            "TREE_SIZE_OUT_OF_RANGE",
            "second_size",
        ),
        ("GetEntries", {"leaf_indices": []}, "ENTRY_COUNT_OUT_OF_RANGE", "leaf_indices"),
        (
            "GetEntries",
            {"leaf_indices": list(range(1001))},
            "ENTRY_COUNT_OUT_OF_RANGE",
            "leaf_indices",
        ),
        ("GetEntries", {"leaf_indices": [2**40]}, "LEAF_INDEX_OUT_OF_RANGE", "leaf_indices"),
    ],
)
def test_malformed_requests_are_refused_naming_the_field(
    loop: LoopThread,
    topo: Topology,
    method: str,
    request_fields: dict[str, object],
    reason: str,
    field: str,
) -> None:
    _lawful(loop, topo)
    requests = {
        "GetInclusionProof": log_pb2.GetInclusionProofRequest,
        "GetConsistencyProof": log_pb2.GetConsistencyProofRequest,
        "GetEntries": log_pb2.GetEntriesRequest,
    }
    refusal = loop.run(refused(_ask(topo, CITY, method, requests[method](**request_fields))))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert refusal.metadata["field"] == field


def test_the_log_is_served_by_tlog_tiles_over_https(
    loop: LoopThread, topo: Topology, tmp_path: Path
) -> None:
    import ssl

    import aiohttp

    from hub_server.log_tree import TreeReader
    from hub_server.tiles_server import start_tiles_server
    from renkei.pki import party_host
    from renkei.tlog import tiles

    _lawful(loop, topo)
    assert topo.hub.checkpointer is not None
    checkpoints = topo.hub.checkpointer
    reader = TreeReader(topo.hub_log().engine)
    hub_tls = topo.layout.pki.hub()
    city = topo.layout.pki.agency(CITY)
    oversight = topo.tls("oversight")
    lookalike = oversight_lookalike(topo.layout.pki, tmp_path / "lookalike")

    async def run() -> None:
        await _checkpoint_covering(topo, 1)
        runner, port = await start_tiles_server(
            "127.0.0.1:0", hub_tls, reader, checkpoints, ["urn:renkei:oversight"]
        )
        context = ssl.create_default_context(cafile=str(hub_tls.ca_cert))
        agency_context = ssl.create_default_context(cafile=str(hub_tls.ca_cert))
        agency_context.load_cert_chain(str(city.cert), str(city.key))
        oversight_context = ssl.create_default_context(cafile=str(hub_tls.ca_cert))
        oversight_context.load_cert_chain(str(oversight.cert), str(oversight.key))
        lookalike_context = ssl.create_default_context(cafile=str(hub_tls.ca_cert))
        lookalike_context.load_cert_chain(str(lookalike.cert), str(lookalike.key))
        base = f"https://127.0.0.1:{port}"
        name = party_host("hub")  # the hub's certificate names no address
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/checkpoint", ssl=context, server_hostname=name) as got:
                    assert got.status == 200
                    note_text = await got.read()
                cp = checkpoint.verify_checkpoint(
                    note_text, checkpoints.verifier, [], require_witness=False
                )
                width = min(cp.size, 256)
                path = tiles.HashTile(0, 0, width).path()
                async with http.get(f"{base}/{path}", ssl=context, server_hostname=name) as got:
                    assert got.status == 200
                    assert await got.read() == reader.hash_tile(0, 0, width)
                bundle = tiles.EntryBundle(0, width).path()
                for ctx in (context, agency_context, lookalike_context):
                    # nobody, an agency, the oversight URI from another CA: not entitled
                    async with http.get(f"{base}/{bundle}", ssl=ctx, server_hostname=name) as got:
                        assert got.status == 403
                async with http.get(
                    f"{base}/{bundle}", ssl=oversight_context, server_hostname=name
                ) as got:
                    assert got.status == 200  # the oversight body's own certificate
                async with http.get(
                    f"{base}/tile/0/x1/2.p/0", ssl=context, server_hostname=name
                ) as got:
                    assert got.status == 400
        finally:
            await runner.cleanup()

    loop.run(run())


def test_the_oversight_body_reads_every_entry(loop: LoopThread, topo: Topology) -> None:
    # [log] entry_readers defaults to the oversight body (R27): it reads entries of
    # exchanges it is no party to, through GetEntries as through the tiles.
    serial = _lawful(loop, topo)
    leaves = _leaves_of(topo, serial)
    got = loop.run(
        _ask(topo, "oversight", "GetEntries", log_pb2.GetEntriesRequest(leaf_indices=leaves))
    )
    entries_read = [Entry.decode(e.entry) for e in got.entries]  # type: ignore[attr-defined]
    assert {e.serial for e in entries_read} == {serial}
    assert [e.kind for e in entries_read] == [EXCHANGE, OUTCOME]
