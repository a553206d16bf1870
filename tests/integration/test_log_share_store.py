"""The hub's log receipts and the verify job's state in the communication server's database.

On SQLite and PostgreSQL: receipts are written in the transaction of the
exchange's rows (both or neither, none lost when the database refuses for a
while), a leaf given twice is kept once, and the verify job's trusted
checkpoint, marks and status survive between runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.log_fakes import FakeHubLog

from comm_server.log_receipts import PROVIDER, REQUESTER, ShareReceipt, accept
from comm_server.log_trust import SqlVerifyStore, Trusted
from comm_server.log_verify import CHANGED, ShareVerifier
from comm_server.store import AsyncCommStore, CommStore, LogRecord

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
CITY, PENSION = "city", "pension"


def _record(serial: int, role: str = REQUESTER) -> LogRecord:
    return LogRecord(
        serial=serial,
        role=role,
        logged_at=NOW,
        counterpart_agency_id=PENSION,
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id=f"P{serial}",
        staff_id="S-1",
        terminal_id="T-1",
        content="",
        purpose=None,
        outcome="OK",
        reason="",
    )


def _receipts(log: FakeHubLog, serial: int, role: str = REQUESTER) -> list[ShareReceipt]:
    given = log.exchange(serial, CITY, PENSION)
    return accept(given, serial=serial, agency_id=CITY, role=role, received_at=NOW)


def test_receipts_are_written_with_the_rows_of_their_exchange(engine: Engine) -> None:
    store = CommStore(engine)
    verify = SqlVerifyStore(engine)
    log = FakeHubLog()
    single = _receipts(log, 101)
    bulk = _receipts(log, 102) + _receipts(log, 103)
    store.append_log(_record(101), single)
    store.append_logs([_record(102), _record(103)], bulk)
    kept = verify.all_receipts()
    assert [(r.leaf_index, r.serial, r.role) for r in kept] == [
        (0, 101, REQUESTER),
        (1, 101, REQUESTER),
        (2, 102, REQUESTER),
        (3, 102, REQUESTER),
        (4, 103, REQUESTER),
        (5, 103, REQUESTER),
    ]
    assert [r.entry for r in kept] == log.leaves
    assert all(r.received_at == NOW and r.verified_at is None for r in kept)


def test_rows_refused_take_their_receipts_with_them(engine: Engine) -> None:
    store = CommStore(engine)
    log = FakeHubLog()
    naive = LogRecord(**{**_record(102).__dict__, "logged_at": NOW.replace(tzinfo=None)})
    with pytest.raises((ValueError, sa.exc.StatementError)):
        store.append_logs([_record(101), naive], _receipts(log, 101))
    assert store.log_rows() == []
    assert SqlVerifyStore(engine).all_receipts() == []


def test_a_leaf_given_twice_is_kept_once_and_other_bytes_are_warned_about(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    store = CommStore(engine)
    log = FakeHubLog()
    mine = _receipts(log, 101)
    store.append_log(_record(101), mine)
    # An agency asking itself hears of the same leaf as provider too: no error.
    again = [ShareReceipt(r.leaf_index, r.serial, PROVIDER, r.entry, NOW) for r in mine[:1]]
    store.append_log(_record(101, PROVIDER), again)
    other = ShareReceipt(1, 101, REQUESTER, log.leaves[0], NOW)
    with caplog.at_level(logging.WARNING, logger="comm_server.log_receipts"):
        store.append_log(_record(101), [other])
    kept = SqlVerifyStore(engine).all_receipts()
    assert [(r.leaf_index, r.role, r.entry) for r in kept] == [
        (0, REQUESTER, log.leaves[0]),
        (1, REQUESTER, log.leaves[1]),
    ]
    assert len(store.log_rows()) == 3
    assert any("two different entries" in r.getMessage() for r in caplog.records)


class _FailingOnce(CommStore):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.fail_next = False

    def append_logs(self, records: list[LogRecord], receipts: Sequence[ShareReceipt] = ()) -> None:
        if self.fail_next:
            self.fail_next = False
            raise sa.exc.OperationalError("insert", {}, Exception("disk full"))
        super().append_logs(records, receipts)


def test_group_committed_rows_carry_their_receipts_and_keep_them_through_an_outage(
    engine: Engine,
) -> None:
    store = _FailingOnce(engine)
    shared = AsyncCommStore(store, retry_every=0.01)
    log = FakeHubLog()

    async def run() -> list[BaseException | None]:
        store.fail_next = True
        refused = await asyncio.gather(
            shared.append_log(_record(101), _receipts(log, 101)), return_exceptions=True
        )
        await asyncio.gather(
            *(shared.append_log(_record(s), _receipts(log, s)) for s in (102, 103, 104))
        )
        await shared.append_logs([_record(105)], _receipts(log, 105))
        await shared.flush()
        return list(refused)

    try:
        refused = asyncio.run(run())
    finally:
        shared.close()
    assert refused[0] is not None
    kept = SqlVerifyStore(engine).all_receipts()
    assert sorted(r.serial for r in kept) == [101, 101, 102, 102, 103, 103, 104, 104, 105, 105]
    assert sorted(r.serial or 0 for r in store.log_rows()) == [101, 102, 103, 104, 105]


def test_the_verify_jobs_state_is_kept_between_runs(engine: Engine) -> None:
    store = CommStore(engine)
    verify = SqlVerifyStore(engine)
    log = FakeHubLog()
    for serial in (101, 102, 103):
        log.exchange(serial + 100, "tax", PENSION)  # others' entries in between
        store.append_log(_record(serial), _receipts(log, serial))

    def run() -> list[str]:
        report = asyncio.run(ShareVerifier(log, verify, log.keys(), clock=lambda: NOW).run())
        return [p.kind for p in report.problems]

    assert run() == []
    trusted = asyncio.run(verify.trusted())
    assert trusted is not None
    assert (trusted.size, trusted.root_hash) == (12, log.root())
    assert trusted.note == log.checkpoint_note()
    assert all(r.verified_at == NOW for r in verify.all_receipts())
    # A later exchange, edited at the hub: found, and nothing new trusted or marked.
    store.append_log(_record(104), _receipts(log, 104))
    log.edit(13, outcome="DENIED")
    assert run() == [CHANGED]
    assert run() == [CHANGED]
    status = asyncio.run(verify.status())
    assert status is not None
    assert (status.trusted_size, status.problems_found, status.last_run_problems) == (12, 2, 1)
    assert status.last_problem is not None
    assert status.last_problem.startswith("serial 104 (leaf 13)")
    assert [r.leaf_index for r in asyncio.run(verify.unverified(100))] == [12, 13]
    assert [r.leaf_index for r in asyncio.run(verify.unverified(13))] == [12]


def test_trusting_a_new_checkpoint_replaces_the_old(engine: Engine) -> None:
    verify = SqlVerifyStore(engine)
    asyncio.run(verify.passed([], Trusted(5, b"\x01" * 32, b"note 5\n", NOW)))
    asyncio.run(verify.passed([], Trusted(9, b"\x02" * 32, b"note 9\n", NOW)))
    assert asyncio.run(verify.trusted()) == Trusted(9, b"\x02" * 32, b"note 9\n", NOW)
