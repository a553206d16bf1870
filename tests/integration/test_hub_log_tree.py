"""The hub log's record (hub_server.log_tree): entries and tree written with the rows.

On SQLite and (when it answers) PostgreSQL. Every write appends its entries in
its own transaction; the tree over them is the one RFC 9162 defines, it picks
up where it was after a restart, and a failed transaction leaves no gap.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub_server.log_store import (
    DENIED,
    INTERRUPTED,
    OK,
    PENDING,
    Begin,
    Finish,
    LogEntry,
    Record,
    SqlHubLog,
)
from hub_server.log_tree import TreeReader, entries
from renkei.tlog import merkle
from renkei.tlog.entry import EXCHANGE, FETCH, OUTCOME, Entry

T0 = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)


def _entry(person_key: str | None = "pk-alice", requester: str = "city-001") -> LogEntry:
    return LogEntry(
        logged_at=T0,
        legal_basis_item="二十七",
        requester_agency_id=requester,
        provider_agency_id="jpn-pension",
        info_kind="年金給付関係情報",
        policy_version="sha256:0123456789abcdef",
        person_key=person_key,
    )


def _stored(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        return [
            bytes(e)
            for e in conn.execute(sa.select(entries.c.entry).order_by(entries.c.leaf_index))
            .scalars()
            .all()
        ]


def test_every_write_is_an_entry_and_the_tree_is_rfc9162s_over_them(engine: Engine) -> None:
    repo = SqlHubLog(engine)
    begun = repo.apply([Begin(_entry()), Record(_entry(None), DENIED, "NO_LEGAL_BASIS")])
    finished = repo.apply([Finish(begun[0].serial, OK, "")])
    fetched = repo.record_fetch(begun[0].serial, OK, "")
    receipts = [*begun, *finished, fetched]
    assert [r.leaf_index for r in receipts] == [0, 1, 2, 3]
    decoded = [Entry.decode(r.entry) for r in receipts]
    assert [(e.kind, e.serial, e.outcome) for e in decoded] == [
        (EXCHANGE, begun[0].serial, PENDING),
        (EXCHANGE, begun[1].serial, DENIED),
        (OUTCOME, begun[0].serial, OK),
        (FETCH, begun[0].serial, OK),
    ]
    first = decoded[0]
    assert (first.requester, first.provider, first.person) == (
        "city-001",
        "jpn-pension",
        "pk-alice",
    )
    assert (first.legal_basis_item, first.info_kind, first.logged_at) == (
        "二十七",
        "年金給付関係情報",
        T0,
    )
    assert decoded[1].reason == "NO_LEGAL_BASIS"
    assert len({e.salt for e in decoded}) == 4

    stored = _stored(engine)
    assert stored == [r.entry for r in receipts]
    reader = TreeReader(engine)
    assert reader.size() == 4
    assert repo.tree is not None
    assert repo.tree.head == (4, merkle.root(merkle.leaf_hash(e) for e in stored))
    assert reader.root(4) == repo.tree.head[1]
    for i, data in enumerate(stored):
        merkle.verify_inclusion(
            merkle.leaf_hash(data), i, 4, reader.inclusion_proof(i, 4), reader.root(4)
        )


def test_a_finish_that_changes_nothing_adds_no_entry(engine: Engine) -> None:
    repo = SqlHubLog(engine)
    serial = repo.begin(_entry())
    repo.finish(serial, OK, "")
    (again,) = repo.apply([Finish(serial, "INTERNAL", "LATE")])
    assert (again.serial, again.leaf_index, again.entry) == (serial, None, b"")
    (ghost,) = repo.finish_many([(serial + 1000, OK, "")])
    assert ghost.leaf_index is None
    assert TreeReader(engine).size() == 2


def test_the_tree_picks_up_after_a_restart_and_stays_consistent(engine: Engine) -> None:
    repo = SqlHubLog(engine)
    repo.begin_many([(_entry(f"pk-{i}"), PENDING, "") for i in range(300)])
    assert repo.tree is not None
    old_size, old_root = repo.tree.head
    repo.close()

    again = SqlHubLog(engine)  # a restart: the edge is read back from the store
    closed = again.mark_interrupted()
    assert closed == 300
    reader = TreeReader(engine)
    assert reader.size() == 600
    outcomes = [Entry.decode(e) for e in _stored(engine)[300:]]
    assert {(e.kind, e.outcome, e.reason) for e in outcomes} == {
        (OUTCOME, INTERRUPTED, "HUB_RESTARTED")
    }
    new_root = reader.root(600)
    merkle.verify_consistency(
        old_size, 600, old_root, new_root, reader.consistency_proof(old_size, 600)
    )
    assert again.tree is not None
    assert again.tree.head == (600, merkle.root(merkle.leaf_hash(e) for e in _stored(engine)))


def test_without_the_tree_nothing_is_appended_and_receipts_are_empty(engine: Engine) -> None:
    repo = SqlHubLog(engine, tree=False)
    (receipt,) = repo.apply([Begin(_entry())])
    assert (receipt.leaf_index, receipt.entry) == (None, b"")
    assert repo.finish_many([(receipt.serial, OK, "")])[0].leaf_index is None
    assert not sa.inspect(engine).has_table("hub_log_entries")
