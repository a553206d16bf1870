"""The tamper suite (issue 14): edits of the hub's record in a running deployment are caught.

Whoever runs the hub's database edits a field of an entry, deletes one, or
swaps two; each agency's verify job (``renkei comm log verify --all``) and the
offline check of the proof bundle it writes (``renkei log verify``) name the
serial and what differs. Two hundred random single-field edits are all caught,
and the untouched log raises no alarm. Every edit is undone before the next.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from support.aio import LoopThread
from support.refusals import refused
from support.topology import CITY, PENSION, Topology, query

from comm_server import log_commands
from comm_server.log_verify import CHANGED, MISSING, Keys, VerifyReport
from hub_server.log_tree import entries
from renkei.tlog.bundle import verify_bundle
from renkei.tlog.entry import Entry

PENSION_INFO = "年金給付関係情報"
pytestmark = pytest.mark.dishonest


def _exchanges(loop: LoopThread, topo: Topology, count: int) -> None:
    """Lawful queries, and every third an unlawful one: denied, logged and receipted too."""

    async def run() -> None:
        async with topo.channel(CITY, CITY) as ch:
            for n in range(count):
                lawful = n % 3 != 0
                call = topo.requester_stub(ch).Query(
                    query(
                        CITY,
                        topo.people[n % 2],
                        PENSION,
                        PENSION_INFO,
                        "二十七" if lawful else "九百九十九",
                    ),
                    timeout=10,
                )
                if lawful:
                    await call
                else:
                    assert (await refused(call)).reason == "LEGAL_BASIS_ITEM_UNKNOWN"

    loop.run(run())


def _witnessed(loop: LoopThread, topo: Topology) -> None:
    """Until a witnessed checkpoint covers the whole tree."""
    checkpoints, tree = topo.hub.checkpointer, topo.hub_log().tree
    assert checkpoints is not None
    assert tree is not None

    async def wait() -> None:
        for _ in range(200):
            if checkpoints.witnessed and checkpoints.signed_size == tree.head[0]:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("no witnessed checkpoint of the whole tree within 10 s")

    loop.run(wait())


def _verify(loop: LoopThread, topo: Topology, agency: str) -> VerifyReport:
    report = loop.run(log_commands.verify_once(topo.comms[agency].config, whole=True))
    assert isinstance(report, VerifyReport), report
    return report


def _offline(topo: Topology, report: VerifyReport) -> list[str]:
    config = topo.comms[CITY].config.log
    assert config is not None
    keys = Keys.from_config(config)
    bundle = log_commands.bundle_of(report)
    return list(verify_bundle(bundle, keys.hub, list(keys.witnesses)).problems)  # type: ignore[arg-type]


def _city_leaves(topo: Topology) -> dict[int, bytes]:
    """The city's receipts: leaf index -> the entry bytes it keeps."""
    engine = topo.comms[CITY].store.store.engine
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT leaf_index, entry FROM hub_log_receipts")).all()
    return {int(leaf): bytes(entry) for leaf, entry in rows}


@contextmanager
def _hub_row(topo: Topology, leaf: int) -> Iterator[tuple[sa.Engine, bytes]]:
    """The hub's stored entry at ``leaf``, put back as it was afterwards."""
    engine = topo.hub_log().engine
    with engine.connect() as conn:
        row = conn.execute(sa.select(entries).where(entries.c.leaf_index == leaf)).one()
    try:
        yield engine, bytes(row.entry)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.delete(entries).where(entries.c.leaf_index == leaf))
            conn.execute(sa.insert(entries).values(**row._mapping))


def _set_entry(engine: sa.Engine, leaf: int, data: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(entries.update().where(entries.c.leaf_index == leaf).values(entry=data))


@pytest.fixture(scope="module")
def ready(loop: LoopThread, topo: Topology) -> Topology:
    _exchanges(loop, topo, 12)
    _witnessed(loop, topo)
    return topo


def test_an_untouched_log_raises_no_alarm(loop: LoopThread, ready: Topology) -> None:
    for agency in (CITY, PENSION):
        report = _verify(loop, ready, agency)
        assert report.problems == ()
        assert len(report.entries) >= 8
    assert _offline(ready, _verify(loop, ready, CITY)) == []


def test_an_edited_field_is_named_with_its_serial(loop: LoopThread, ready: Topology) -> None:
    # An exchange the pension service answered: both parties hold its entry.
    leaf, ours = next(
        (leaf, e) for leaf, e in sorted(_city_leaves(ready).items()) if b'"outcome":"PENDING"' in e
    )
    entry = Entry.decode(ours)
    with _hub_row(ready, leaf) as (engine, _):
        _set_entry(engine, leaf, replace(entry, outcome="DENIED").encode())
        for agency in (CITY, PENSION):  # both parties of the exchange catch it
            report = _verify(loop, ready, agency)
            (problem,) = report.problems
            assert (problem.kind, problem.serial, problem.leaf_index) == (
                CHANGED,
                entry.serial,
                leaf,
            )
            assert "outcome" in problem.text
        offline = _offline(ready, _verify(loop, ready, CITY))
        assert len(offline) == 1
        assert f"serial {entry.serial}" in offline[0]
        assert "outcome" in offline[0]
    assert _verify(loop, ready, CITY).problems == ()


def test_a_deleted_entry_is_missing(loop: LoopThread, ready: Topology) -> None:
    leaf, ours = min(_city_leaves(ready).items())
    serial = Entry.decode(ours).serial
    with _hub_row(ready, leaf) as (engine, _):
        with engine.begin() as conn:
            conn.execute(sa.delete(entries).where(entries.c.leaf_index == leaf))
        report = _verify(loop, ready, CITY)
        (problem,) = report.problems
        assert (problem.kind, problem.serial) == (MISSING, serial)
        (offline,) = _offline(ready, report)
        assert f"serial {serial}" in offline


def test_two_entries_swapped_are_both_caught(loop: LoopThread, ready: Topology) -> None:
    (a, entry_a), (b, entry_b) = sorted(_city_leaves(ready).items())[1:3]
    with _hub_row(ready, a) as (engine, _), _hub_row(ready, b):
        _set_entry(engine, a, entry_b)
        _set_entry(engine, b, entry_a)
        report = _verify(loop, ready, CITY)
        assert {(p.kind, p.leaf_index) for p in report.problems} == {(CHANGED, a), (CHANGED, b)}
        offline = _offline(ready, report)
        for serial in (Entry.decode(entry_a).serial, Entry.decode(entry_b).serial):
            assert any(f"serial {serial}" in p for p in offline)


_EDITS = {
    "kind": lambda e, r: "outcome" if e.kind == "exchange" else "exchange",
    "serial": lambda e, r: e.serial + r.randrange(1, 1000),
    "logged_at": lambda e, r: e.logged_at + timedelta(microseconds=r.randrange(1, 10**9)),
    "requester": lambda e, r: e.requester + "x",
    "provider": lambda e, r: e.provider + "x",
    "salt": lambda e, r: bytes(r.randrange(256) for _ in range(16)),
    "legal_basis_item": lambda e, r: e.legal_basis_item + "一",
    "info_kind": lambda e, r: e.info_kind[::-1] + "情報",
    "policy_version": lambda e, r: e.policy_version + "0",
    "person": lambda e, r: f"{r.getrandbits(256):064x}",
    "outcome": lambda e, r: r.choice(["OK", "DENIED", "NOT_FOUND", "PENDING"]) + "_",
    "reason": lambda e, r: e.reason + "X",
}


def test_two_hundred_random_edits_are_all_caught(loop: LoopThread, ready: Topology) -> None:
    assert set(_EDITS) == {f.name for f in fields(Entry)}
    rng = random.Random(14)
    leaves = sorted(_city_leaves(ready).items())
    caught = 0
    for _ in range(200):
        leaf, ours = rng.choice(leaves)
        entry = Entry.decode(ours)
        name = rng.choice(sorted(_EDITS))
        edited = replace(entry, **{name: _EDITS[name](entry, rng)})
        assert edited.encode() != ours
        with _hub_row(ready, leaf) as (engine, _):
            _set_entry(engine, leaf, edited.encode())
            report = _verify(loop, ready, CITY)
            problems = [p for p in report.problems if p.leaf_index == leaf]
            assert problems, f"an edit of {name} at leaf {leaf} went unnoticed"
            # Entitlement is read from the record's own columns, so even an edited
            # requester or provider leaves the city its entry to compare.
            assert problems[0].serial == entry.serial
            if problems[0].kind == CHANGED:
                assert name in problems[0].text
            caught += 1
    assert caught == 200
    assert _verify(loop, ready, CITY).problems == ()
