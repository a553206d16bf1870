"""Tests for hub_server.log_store, on SQLite and (when it answers) PostgreSQL.

The PostgreSQL variant uses a throw-away schema per test, dropped afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub_server.log_store import (
    DENIED,
    INTERRUPTED,
    OK,
    PENDING,
    AsyncHubLog,
    Begin,
    Finish,
    HubLogRepository,
    LogEntry,
    LogOp,
    LogRow,
    Record,
    SqlHubLog,
)
from renkei.tlog.entry import Receipt

T0 = datetime(2025, 4, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def repo(engine: Engine) -> SqlHubLog:
    return SqlHubLog(engine)


def _entry(person_key: str | None = "pk-alice", **changes: object) -> LogEntry:
    entry = LogEntry(
        logged_at=T0,
        legal_basis_item="二十七",
        requester_agency_id="city-001",
        provider_agency_id="jpn-pension",
        info_kind="年金給付関係情報",
        policy_version="sha256:0123456789abcdef",
        person_key=person_key,
    )
    return replace(entry, **changes)  # type: ignore[arg-type]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _assert_same_entry(row: LogRow, entry: LogEntry) -> None:
    assert _utc(row.entry.logged_at) == entry.logged_at
    assert replace(row.entry, logged_at=entry.logged_at) == entry


def _by_serial(repo: HubLogRepository, serial: int) -> LogRow:
    (row,) = [r for r in repo.rows() if r.serial == serial]
    return row


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(seconds=1), now + timedelta(minutes=1)


# ------------------------------------------------------------------ begin / finish / record


def test_begin_writes_pending_row(repo: SqlHubLog) -> None:
    entry = _entry()
    serial = repo.begin(entry)
    assert isinstance(serial, int)
    (row,) = repo.rows()
    assert row.serial == serial
    assert row.outcome == PENDING
    assert row.reason == ""
    assert row.completed_at is None
    _assert_same_entry(row, entry)


def test_serials_increase(repo: SqlHubLog) -> None:
    serials = [repo.begin(_entry()), repo.record(_entry(), OK, ""), repo.begin(_entry())]
    assert serials == sorted(serials)
    assert len(set(serials)) == 3
    assert [r.serial for r in repo.rows()] == serials


def test_finish_sets_outcome(repo: SqlHubLog) -> None:
    ok = repo.begin(_entry())
    denied = repo.begin(_entry())
    low, high = _window()
    repo.finish(ok, OK, "")
    repo.finish(denied, DENIED, "PROVIDER_REFUSED")
    ok_row, denied_row = _by_serial(repo, ok), _by_serial(repo, denied)
    assert (ok_row.outcome, ok_row.reason) == (OK, "")
    assert (denied_row.outcome, denied_row.reason) == (DENIED, "PROVIDER_REFUSED")
    for row in (ok_row, denied_row):
        assert row.completed_at is not None
        assert low <= _utc(row.completed_at) <= high
        _assert_same_entry(row, _entry())


def test_finish_changes_only_pending_rows(repo: SqlHubLog) -> None:
    serial = repo.begin(_entry())
    repo.finish(serial, OK, "")
    first = _by_serial(repo, serial)
    repo.finish(serial, DENIED, "LATE")  # already finished: no change
    assert _by_serial(repo, serial) == first

    recorded = repo.record(_entry(), DENIED, "REQUESTER_NOT_IN_ITEM")
    before = _by_serial(repo, recorded)
    repo.finish(recorded, OK, "")
    assert _by_serial(repo, recorded) == before


def test_finish_touches_only_its_own_row(repo: SqlHubLog) -> None:
    a, b = repo.begin(_entry()), repo.begin(_entry())
    repo.finish(a, OK, "")
    assert _by_serial(repo, b).outcome == PENDING
    assert _by_serial(repo, b).completed_at is None


def test_finish_unknown_serial_is_a_no_op(repo: SqlHubLog) -> None:
    serial = repo.begin(_entry())
    repo.finish(serial + 1000, OK, "")
    assert [r.outcome for r in repo.rows()] == [PENDING]


def test_record_writes_complete_row(repo: SqlHubLog) -> None:
    entry = _entry(person_key=None, info_kind="地方税関係情報", legal_basis_item="四十八")
    low, high = _window()
    serial = repo.record(entry, DENIED, "INFO_KIND_NOT_LISTED")
    row = _by_serial(repo, serial)
    assert row.outcome == DENIED
    assert row.reason == "INFO_KIND_NOT_LISTED"
    assert row.completed_at is not None
    assert low <= _utc(row.completed_at) <= high
    _assert_same_entry(row, entry)
    assert row.entry.person_key is None


def test_long_field_values_round_trip(repo: SqlHubLog) -> None:
    entry = _entry(
        person_key="k" * 64,
        legal_basis_item="項" * 32,
        requester_agency_id="r" * 64,
        provider_agency_id="p" * 64,
        info_kind="情" * 200,
        policy_version="v" * 64,
    )
    serial = repo.record(entry, "O" * 32, "R" * 64)
    row = _by_serial(repo, serial)
    _assert_same_entry(row, entry)
    assert (row.outcome, row.reason) == ("O" * 32, "R" * 64)


# ------------------------------------------------------------------ queries


def test_rows_for_person_filters_by_person_key(repo: SqlHubLog) -> None:
    alice = [repo.begin(_entry("pk-alice"))]
    repo.begin(_entry("pk-bob"))
    alice.append(repo.record(_entry("pk-alice"), OK, ""))
    repo.record(_entry(None), DENIED, "LINK_CODE_CORRUPT")
    alice.append(repo.begin(_entry("pk-alice")))
    rows = repo.rows_for_person("pk-alice")
    assert [r.serial for r in rows] == alice
    assert {r.entry.person_key for r in rows} == {"pk-alice"}
    assert [r.entry.person_key for r in repo.rows_for_person("pk-bob")] == ["pk-bob"]
    assert repo.rows_for_person("pk-carol") == []
    assert repo.rows_for_person("") == []
    assert repo.rows_for_person("pk-ALICE") == []


def test_rows_limit_and_order(repo: SqlHubLog) -> None:
    serials = [repo.begin(_entry(f"pk-{i}")) for i in range(5)]
    assert [r.serial for r in repo.rows()] == serials
    assert [r.serial for r in repo.rows(limit=2)] == serials[:2]
    assert repo.rows(limit=0) == []


def test_empty_log(repo: SqlHubLog) -> None:
    assert repo.rows() == []
    assert repo.rows_for_person("pk-alice") == []
    assert repo.mark_interrupted() == 0


# ------------------------------------------------------------------ restart


def test_mark_interrupted_closes_pending_rows(repo: SqlHubLog) -> None:
    p1 = repo.begin(_entry())
    done = repo.begin(_entry())
    repo.finish(done, OK, "")
    recorded = repo.record(_entry(), DENIED, "AGENCY_UNKNOWN")
    p2 = repo.begin(_entry("pk-bob"))
    untouched = {s: _by_serial(repo, s) for s in (done, recorded)}
    low, high = _window()

    assert repo.mark_interrupted() == 2
    for serial in (p1, p2):
        row = _by_serial(repo, serial)
        assert (row.outcome, row.reason) == (INTERRUPTED, "HUB_RESTARTED")
        assert row.completed_at is not None
        assert low <= _utc(row.completed_at) <= high
    for serial, before in untouched.items():
        assert _by_serial(repo, serial) == before

    assert repo.mark_interrupted() == 0
    repo.finish(p1, OK, "")  # a late finish cannot reopen an interrupted row
    assert _by_serial(repo, p1).outcome == INTERRUPTED


def test_rows_survive_a_new_repository_on_the_same_engine(engine: Engine) -> None:
    first = SqlHubLog(engine)
    serial = first.begin(_entry())
    second = SqlHubLog(engine)  # create_all again: idempotent, keeps rows
    assert [r.serial for r in second.rows()] == [serial]
    assert second.mark_interrupted() == 1
    assert first.rows()[0].outcome == INTERRUPTED


def test_table_has_no_identifier_columns(engine: Engine) -> None:
    SqlHubLog(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("hub_log")}
    assert columns == {
        "serial",
        "logged_at",
        "legal_basis_item",
        "requester_agency_id",
        "provider_agency_id",
        "info_kind",
        "policy_version",
        "person_key",
        "outcome",
        "reason",
        "completed_at",
    }


# ------------------------------------------------------------------ timestamps


def test_logged_at_keeps_the_instant(
    request: pytest.FixtureRequest, engine: Engine, repo: SqlHubLog
) -> None:
    jst = timezone(timedelta(hours=9))
    a = repo.begin(_entry(logged_at=T0))
    b = repo.begin(_entry(logged_at=T0.astimezone(jst)))
    row_a, row_b = _by_serial(repo, a), _by_serial(repo, b)
    assert row_a.entry.logged_at.tzinfo is not None
    assert row_a.entry.logged_at == T0
    assert row_b.entry.logged_at == T0


# ------------------------------------------------------------------ async wrapper


def test_async_hub_log(engine: Engine, repo: SqlHubLog) -> None:
    log = AsyncHubLog(repo)

    async def run() -> tuple[int, int, int]:
        pending = await log.begin(_entry())
        finished = await log.begin(_entry("pk-bob"))
        await log.finish(finished, DENIED, "PROVIDER_TIMEOUT")
        recorded = await log.record(_entry(), OK, "")
        return pending, finished, recorded

    try:
        pending, finished, recorded = asyncio.run(run())
    finally:
        log.close()
    assert log.repo is repo
    assert _by_serial(repo, pending).outcome == PENDING
    row = _by_serial(repo, finished)
    assert (row.outcome, row.reason) == (DENIED, "PROVIDER_TIMEOUT")
    assert _by_serial(repo, recorded).outcome == OK
    assert [r.serial for r in repo.rows_for_person("pk-alice")] == [pending, recorded]


def test_async_hub_log_concurrent_writes(repo: SqlHubLog) -> None:
    log = AsyncHubLog(repo)

    async def run() -> list[int]:
        serials = await asyncio.gather(*(log.begin(_entry(f"pk-{i}")) for i in range(20)))
        await asyncio.gather(*(log.finish(s, OK, "") for s in serials))
        return list(serials)

    try:
        serials = asyncio.run(run())
    finally:
        log.close()
    assert len(set(serials)) == 20
    rows = repo.rows()
    assert sorted(r.serial for r in rows) == sorted(serials)
    assert {r.outcome for r in rows} == {OK}
    assert repo.mark_interrupted() == 0


def test_person_key_aliases_follow_a_person_across_id_key_rotations(repo: SqlHubLog) -> None:
    first = repo.record(_entry("pk-v1"), OK, "")
    second = repo.record(_entry("pk-v2"), OK, "")
    third = repo.record(_entry("pk-v3"), OK, "")
    other = repo.record(_entry("pk-other"), OK, "")
    repo.add_aliases([("pk-v1", "pk-v2")])
    repo.add_aliases([("pk-v2", "pk-v3"), ("pk-v1", "pk-v2")])  # a repeated pair is kept once
    for key in ("pk-v1", "pk-v2", "pk-v3"):
        assert [r.serial for r in repo.rows_for_person(key)] == [first, second, third]
    assert [r.serial for r in repo.rows_for_person("pk-other")] == [other]
    repo.add_aliases([])


# ------------------------------------------------------------------ group commit


def test_apply_mixed_batch_keeps_order_and_finishes_only_named_pending_rows(
    repo: SqlHubLog,
) -> None:
    first, second = repo.begin(_entry("pk-a")), repo.begin(_entry("pk-b"))
    results = repo.apply(
        [
            Begin(_entry("pk-c")),
            Finish(first, OK, ""),
            Record(_entry("pk-d"), DENIED, "NO_LEGAL_BASIS"),
            Finish(second, "UNAVAILABLE", "PROVIDER_UNAVAILABLE"),
            Begin(_entry("pk-e")),
        ]
    )
    # Finishes answer with their serials; every write is an entry of the tree, in order.
    assert [results[1].serial, results[3].serial] == [first, second]
    assert [r.leaf_index for r in results] == list(range(2, 7))
    inserted = [results[0].serial, results[2].serial, results[4].serial]
    assert inserted == sorted(inserted)
    assert inserted[0] > second
    assert [_by_serial(repo, s).entry.person_key for s in inserted] == ["pk-c", "pk-d", "pk-e"]
    assert [_by_serial(repo, s).outcome for s in inserted] == [PENDING, DENIED, PENDING]
    assert _by_serial(repo, inserted[1]).reason == "NO_LEGAL_BASIS"
    assert _by_serial(repo, inserted[1]).completed_at is not None
    assert (_by_serial(repo, first).outcome, _by_serial(repo, first).reason) == (OK, "")
    row = _by_serial(repo, second)
    assert (row.outcome, row.reason) == ("UNAVAILABLE", "PROVIDER_UNAVAILABLE")
    assert row.completed_at is not None
    # A second finish of a finished row changes nothing.
    assert repo.apply([Finish(first, "INTERNAL", "HUB_FAILURE")]) == [Receipt(first)]
    assert _by_serial(repo, first).outcome == OK


def test_a_failed_batch_writes_nothing_and_the_next_batch_gets_a_fresh_connection(
    repo: SqlHubLog,
) -> None:
    bad = _entry("pk-bad", info_kind=None)  # NOT NULL: the database refuses the row
    with pytest.raises(sa.exc.IntegrityError):
        repo.apply([Begin(_entry("pk-good")), Begin(bad)])
    assert repo.rows() == []  # the good row of the failed batch is not there either
    [receipt] = repo.apply([Begin(_entry("pk-next"))])
    serial = receipt.serial
    assert receipt.leaf_index == 0  # the failed batch took no leaf: the tree has no gap
    assert [r.serial for r in repo.rows()] == [serial]
    repo.close()
    repo.close()  # closing twice is harmless; apply opens a connection again
    assert [(r.serial, r.leaf_index) for r in repo.apply([Finish(serial, OK, "")])] == [(serial, 1)]
    assert _by_serial(repo, serial).outcome == OK


class _CountingRepo(SqlHubLog):
    """Counts transactions, and can be told to fail the next one."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.batches: list[int] = []
        self.fail_next = False

    def apply(self, ops: list[LogOp]) -> list[Receipt]:
        self.batches.append(len(ops))
        if self.fail_next:
            self.fail_next = False
            raise sa.exc.OperationalError("insert", {}, Exception("disk full"))
        return super().apply(ops)


def test_group_commit_shares_transactions_under_load(engine: Engine) -> None:
    repo = _CountingRepo(engine)
    log = AsyncHubLog(repo)

    async def run() -> list[int]:
        serials = await asyncio.gather(*(log.begin(_entry(f"pk-{i}")) for i in range(200)))
        await asyncio.gather(*(log.finish(s, OK, "") for s in serials))
        return list(serials)

    try:
        serials = asyncio.run(run())
    finally:
        log.close()
    assert len(set(serials)) == 200
    # 400 writes arrived together: far fewer transactions than writes.
    assert sum(repo.batches) == 400
    assert len(repo.batches) < 400
    assert {r.outcome for r in repo.rows()} == {OK}


def test_one_row_goes_through_the_group_commit_and_many_in_their_own_transaction(
    engine: Engine,
) -> None:
    repo = _CountingRepo(engine)
    log = AsyncHubLog(repo)

    async def run() -> tuple[list[list[int]], list[int]]:
        # A single relay's rows: begun and completed through the group commit, together.
        singles = await asyncio.gather(
            log.begin_many([(_entry("pk-a"), PENDING, "")]),
            log.begin_many([(_entry(None), "INVALID_ARGUMENT", "LINK_CODE_CORRUPT")]),
        )
        await log.finish_many([(singles[0][0].serial, OK, "")])
        many = [
            r.serial
            for r in await log.begin_many([(_entry(f"pk-{i}"), PENDING, "") for i in range(3)])
        ]
        await log.finish_many([(s, OK, "") for s in many])
        return [[r.serial for r in single] for single in singles], many

    try:
        singles, many = asyncio.run(run())
    finally:
        log.close()
    assert sum(repo.batches) == 3  # the bulk rows never went through apply
    (pending,), (refused,) = singles
    assert _by_serial(repo, pending).outcome == OK
    row = _by_serial(repo, refused)
    assert (row.outcome, row.reason) == ("INVALID_ARGUMENT", "LINK_CODE_CORRUPT")
    assert row.completed_at is not None
    assert [_by_serial(repo, s).outcome for s in many] == [OK] * 3


def test_group_commit_answers_only_after_the_row_is_committed(engine: Engine) -> None:
    repo = SqlHubLog(engine)
    log = AsyncHubLog(repo)

    async def run() -> int:
        serial = await log.begin(_entry())
        # A fresh connection (another reader) sees the row as soon as begin returns.
        with engine.connect() as conn:
            seen = conn.execute(
                sa.select(sa.func.count()).select_from(sa.table("hub_log"))
            ).scalar_one()
        assert seen == 1
        return serial

    try:
        serial = asyncio.run(run())
    finally:
        log.close()
    assert _by_serial(repo, serial).outcome == PENDING


def test_group_commit_failure_reaches_every_waiter_and_the_writer_recovers(
    engine: Engine,
) -> None:
    repo = _CountingRepo(engine)
    log = AsyncHubLog(repo)

    async def run() -> tuple[list[BaseException | int], int]:
        repo.fail_next = True
        first = await asyncio.gather(
            *(log.begin(_entry(f"pk-{i}")) for i in range(5)), return_exceptions=True
        )
        after = await log.begin(_entry("pk-after"))
        return first, after

    try:
        first, after = asyncio.run(run())
    finally:
        log.close()
    failed = [r for r in first if isinstance(r, sa.exc.OperationalError)]
    assert failed, "the failed transaction's writers must hear of it"
    written = {r.serial for r in repo.rows()}
    assert after in written
    # Nothing a failed waiter was told about is in the log, nothing is half-written.
    assert all(isinstance(r, int) and r in written for r in first if not isinstance(r, Exception))
    assert len(written) == 1 + sum(1 for r in first if isinstance(r, int))


def test_fetches_are_logged_under_the_exchange_serial(repo: SqlHubLog) -> None:
    from hub_server.log_store import ANSWER_PENDING

    serial = repo.begin(_entry())
    repo.finish(serial, ANSWER_PENDING, "")
    row = repo.row(serial)
    assert row is not None
    assert row.outcome == ANSWER_PENDING
    assert repo.row(serial + 1000) is None
    assert repo.fetches(serial) == []
    repo.record_fetch(serial, "UNAVAILABLE", "ANSWER_NOT_READY")
    repo.record_fetch(serial, OK, "")
    assert [(o, r) for _, o, r in repo.fetches(serial)] == [
        ("UNAVAILABLE", "ANSWER_NOT_READY"),
        (OK, ""),
    ]
    assert repo.mark_interrupted() == 0  # a pending answer is not an interrupted exchange


def test_bulk_rows_get_serials_in_order_in_one_transaction_and_finish_by_outcome(
    repo: SqlHubLog,
) -> None:
    first = repo.begin(_entry())
    rows = [
        (_entry(f"pk-{i}"), PENDING if i % 3 else DENIED, "" if i % 3 else "X") for i in range(2500)
    ]
    serials = [r.serial for r in repo.begin_many(rows)]
    assert serials == list(range(first + 1, first + 2501))
    stored = {r.serial: r for r in repo.rows(limit=3000)}
    for serial, (entry, outcome, reason) in zip(serials, rows, strict=True):
        assert stored[serial].entry == entry
        assert (stored[serial].outcome, stored[serial].reason) == (outcome, reason)
        assert (stored[serial].completed_at is None) == (outcome == PENDING)
    pending = [s for s, (_, outcome, _) in zip(serials, rows, strict=True) if outcome == PENDING]
    repo.finish_many([(s, OK if s % 2 else "NOT_FOUND", "" if s % 2 else "R") for s in pending])
    repo.finish_many([(pending[0], "INTERNAL", "LATE")])  # a completed row is never rewritten
    done = {r.serial: r for r in repo.rows(limit=3000)}
    for s in pending:
        assert (done[s].outcome, done[s].reason) == ((OK, "") if s % 2 else ("NOT_FOUND", "R"))
        assert done[s].completed_at is not None
    assert repo.begin_many([]) == []
