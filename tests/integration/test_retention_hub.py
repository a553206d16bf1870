"""Retention at the hub (R25): old rows go, young and held ones stay, the log still verifies.

On SQLite and (when it answers) PostgreSQL, on a fixed ``now`` and, for the
scheduled job, on a virtual clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub_server.log_store import OK, PENDING, LogEntry, SqlHubLog, hub_log, hub_log_fetches
from hub_server.log_tree import TreeReader, entries
from hub_server.retention import purge_hub
from renkei.retention import HoldStore, LegalHold, RetentionPolicy, run_every
from renkei.tlog import checkpoint, merkle, note
from renkei.tlog.entry import PURGE, Entry, Receipt
from tests.support.virtual_time import run_virtual

# With microseconds: the hub's SQLite bulk insert writes a whole second without them.
NOW = datetime(2033, 4, 1, 9, 0, 0, 123456, tzinfo=UTC)
OLD = NOW - timedelta(days=2557 + 30)  # past the 7 years
YOUNG = NOW - timedelta(days=2557 - 30)
POLICY = RetentionPolicy(batch_size=2, pause_seconds=0.5)


def _entry(at: datetime, person: str) -> LogEntry:
    return LogEntry(at, "二十七", "city-001", "jpn-pension", "年金給付関係情報", "v1", person)


class Hub:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.log = SqlHubLog(engine)
        self.holds = HoldStore(engine, persons=True)
        self.reader = TreeReader(engine)
        self.signer = note.Ed25519Signer.generate("log.test.renkei")
        self.pauses: list[float] = []

    def fill(self) -> dict[str, list[Receipt]]:
        """Six old complete rows (one with a fetch), one old PENDING, one old of a held
        person, two young; each row's receipts, by what the row is."""
        rows: dict[str, list[Receipt]] = {}
        old = self.log.begin_many([(_entry(OLD, f"pk-{n}"), OK, "") for n in range(6)])
        rows["old"] = old
        rows["fetch"] = [self.log.record_fetch(old[0].serial, OK, "")]
        rows["pending"] = self.log.begin_many([(_entry(OLD, "pk-p"), PENDING, "")])
        rows["person"] = self.log.begin_many([(_entry(OLD, "pk-held"), OK, "")])
        rows["young"] = self.log.begin_many([(_entry(YOUNG, f"pk-y{n}"), OK, "") for n in range(2)])
        return rows

    def checkpoint(self) -> bytes:
        size = self.reader.size()
        return checkpoint.CheckpointSigner(self.signer).sign(size, self.reader.root(size))

    def purge(self, *, dry_run: bool = False, now: datetime = NOW) -> object:
        return purge_hub(
            self.log, self.holds, POLICY, now=now, dry_run=dry_run, sleep=self.pauses.append
        )

    def serials(self) -> set[int]:
        with self.engine.connect() as conn:
            return {int(s) for s in conn.execute(sa.select(hub_log.c.serial)).scalars()}

    def verified(self, signed: bytes) -> checkpoint.Checkpoint:
        return checkpoint.verify_checkpoint(
            signed, self.signer.verifier(), [], require_witness=False, origin=self.signer.name
        )


def _proves(hub: Hub, r: Receipt, cp: checkpoint.Checkpoint) -> None:
    assert r.leaf_index is not None
    proof = hub.reader.inclusion_proof(r.leaf_index, cp.size)
    merkle.verify_inclusion(merkle.leaf_hash(r.entry), r.leaf_index, cp.size, proof, cp.root_hash)


def test_old_rows_go_young_and_held_stay_and_the_log_still_verifies(engine: Engine) -> None:
    hub = Hub(engine)
    rows = hub.fill()
    held_serial = rows["old"][1].serial
    hub.holds.set(LegalHold("case-1", (held_serial,), reason="court order"), NOW)
    hub.holds.set(LegalHold("case-2", person="pk-held", reason="inquiry"), NOW)
    before = hub.verified(hub.checkpoint())

    dry = hub.purge(dry_run=True)
    assert dry.deleted == 5
    assert dry.held == 2
    assert not dry.logged
    assert hub.reader.size() == before.size

    report = purge_hub(hub.log, hub.holds, POLICY, now=NOW, sleep=hub.pauses.append)
    purged = {r.serial for r in rows["old"]} - {held_serial}
    kept = {held_serial} | {r.serial for k in ("pending", "person", "young") for r in rows[k]}
    assert hub.serials() == kept
    assert report.deleted == 5
    assert report.held == 2
    assert report.batches >= 3
    assert hub.pauses
    assert all(p == 0.5 for p in hub.pauses)
    assert report.also["hub_log_fetches"] == 1
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(hub_log_fetches)) == 0
        query = sa.select(entries.c.serial).where(entries.c.kind != PURGE)
        left = {int(s) for s in conn.execute(query).scalars()}
    assert not left & purged

    # ONE purge entry, naming the range; the tree grew by it only.
    after = hub.verified(hub.checkpoint())
    assert after.size == before.size + 1
    (last,) = hub.reader.entry_range(after.size - 1, 1)
    purge = Entry.decode(last)
    assert purge.kind == PURGE
    assert purge.serial == min(purged)
    assert purge.logged_at == NOW
    a, b = sorted(purged)[0], sorted(purged)[1:]
    assert f"serials {a}, {b[0]}-{b[-1]} (5 rows, 2 held)" in purge.reason
    assert "(6 entries), 1 fetches" in purge.reason
    assert report.logged.startswith(f"purge entry at leaf {after.size - 1}")

    # The checkpoint signed before is consistent with the one after; every receipt, of
    # a purged row or a kept one, is still proven by the tree (its hash is kept).
    proof = hub.reader.consistency_proof(before.size, after.size)
    merkle.verify_consistency(before.size, after.size, before.root_hash, after.root_hash, proof)
    for receipts in rows.values():
        for r in receipts:
            _proves(hub, r, after)
            _proves(hub, r, before)
    gone = [r.leaf_index for r in rows["old"] if r.serial in purged]
    assert all(i is not None for i in gone)
    assert hub.reader.purged([i for i in gone if i is not None]) == set(gone)
    assert hub.reader.entries([i for i in gone if i is not None]) == {}
    # A tile's bundle shows a purged leaf as empty bytes; a kept one as it was.
    bundle = hub.reader.entry_range(0, after.size)
    assert [bundle[i] for i in gone if i is not None] == [b""] * len(gone)
    kept_leaf = rows["young"][0].leaf_index
    assert kept_leaf is not None
    assert bundle[kept_leaf] == rows["young"][0].entry

    # Nothing more to purge: no second entry.
    again = hub.purge()
    assert again.deleted == 0
    assert hub.reader.size() == after.size

    # Released, the held rows go at the next purge (the PENDING one never).
    hub.holds.release("case-1")
    hub.holds.release("case-2")
    third = purge_hub(hub.log, hub.holds, POLICY, now=NOW, sleep=hub.pauses.append)
    assert third.deleted == 2
    assert third.held == 0
    assert hub.serials() == {r.serial for k in ("pending", "young") for r in rows[k]}
    final = hub.verified(hub.checkpoint())
    assert final.size == after.size + 1
    merkle.verify_consistency(
        before.size,
        final.size,
        before.root_hash,
        final.root_hash,
        hub.reader.consistency_proof(before.size, final.size),
    )
    hub.log.close()


def test_a_person_hold_covers_their_earlier_person_keys(engine: Engine) -> None:
    hub = Hub(engine)
    rows = hub.fill()
    hub.log.add_aliases([("pk-3", "pk-new")])  # pk-3 is the person's key before a rotation
    hub.holds.set(LegalHold("case-3", person="pk-new"), NOW)
    hub.purge()
    assert rows["old"][3].serial in hub.serials()
    assert rows["old"][2].serial not in hub.serials()
    hub.log.close()


def test_the_scheduled_job_purges_on_a_virtual_clock(engine: Engine) -> None:
    """Every day of virtual time a purge; rows go on the day they pass the period."""
    hub = Hub(engine)
    start = NOW - timedelta(days=2557)
    hub.log.begin_many([(_entry(start - timedelta(days=2), "a"), OK, "")])
    second = hub.log.begin_many([(_entry(start + timedelta(days=2), "b"), OK, "")])
    last = hub.log.begin_many([(_entry(NOW, "c"), OK, "")])
    seen: list[int] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()

        slept = [0.0]  # the job's own clock: how long it has slept (the thread's time aside)

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(seconds)
            slept[0] += seconds

        def once() -> list[object]:
            now = NOW + timedelta(seconds=slept[0])
            report = purge_hub(hub.log, hub.holds, RetentionPolicy(), now=now)
            seen.append(report.deleted)
            return [report]

        async def runs(n: int) -> None:
            # The purge runs on a thread: wait for it, 10 minutes a step.
            while len(seen) < n:  # noqa: ASYNC110  # virtual time: an Event would not move it
                await asyncio.sleep(600)

        job = loop.create_task(run_every(once, 86400.0, sleep))  # type: ignore[arg-type]
        await runs(1)  # day 1
        assert hub.serials() == {second[0].serial, last[0].serial}
        await runs(3)  # days 2 and 3: the second row passes its period on day 3
        job.cancel()

    run_virtual(run())
    assert hub.serials() == {last[0].serial}
    assert seen == [1, 0, 1]
    hub.log.close()


def test_the_log_service_says_purged_for_a_purged_leaf(engine: Engine) -> None:
    from hub_server.log_servicer import LogServicer
    from renkei.errors import FailedPrecondition, PermissionDenied
    from renkei.grpcutil.caller import reset_caller, set_caller
    from renkei.log.v1 import log_pb2
    from renkei.pki import PeerIdentity

    hub = Hub(engine)
    rows = hub.fill()
    hub.purge()
    servicer = LogServicer(hub.reader, None, hub.reader.size)  # type: ignore[arg-type]
    gone, kept = rows["old"][0].leaf_index, rows["young"][0].leaf_index
    assert gone is not None
    assert kept is not None

    def ask(leaf: int, agency: str = "city-001") -> log_pb2.GetEntriesResponse:
        token = set_caller(PeerIdentity("agency", agency))
        try:
            request = log_pb2.GetEntriesRequest(leaf_indices=[leaf])
            return asyncio.run(servicer.GetEntries(request, None))  # type: ignore[arg-type]
        finally:
            reset_caller(token)

    assert ask(kept).entries[0].entry == rows["young"][0].entry
    with pytest.raises(FailedPrecondition) as purged:
        ask(gone)
    assert purged.value.reason == "ENTRY_PURGED"
    with pytest.raises(PermissionDenied):  # a kept entry of others' is refused as before
        ask(kept, "tax-office")
    hub.log.close()


def test_the_running_hubs_purge_appends_through_its_writer_thread(engine: Engine) -> None:
    from hub_server.log_store import AsyncHubLog
    from hub_server.retention import purge_on_writer

    repo = SqlHubLog(engine)
    holds = HoldStore(engine, persons=True)
    long_ago = datetime.now(UTC) - timedelta(days=3000)

    async def run() -> tuple[int, int]:
        log = AsyncHubLog(repo)
        try:
            old = await log.begin_many([(_entry(long_ago, "a"), OK, "")] * 2)
            await log.begin_many([(_entry(datetime.now(UTC), "b"), OK, "")])
            report = await asyncio.to_thread(purge_on_writer, log, holds, RetentionPolicy())
            # Traffic after the purge goes on from the tree the purge entry grew.
            after = await log.begin_many([(_entry(datetime.now(UTC), "c"), OK, "")])
            assert report.deleted == 2
            assert old[0].leaf_index == 0
            return report.deleted, after[0].leaf_index or 0
        finally:
            log.close()

    deleted, leaf = asyncio.run(run())
    assert (deleted, leaf) == (2, 4)  # leaves 0-2: the rows, 3: the purge entry
    reader = TreeReader(engine)
    assert Entry.decode(reader.entry_range(3, 1)[0]).kind == PURGE
