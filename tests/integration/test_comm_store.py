"""The agency's correspondence table and log share, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from comm_server.log_receipts import ShareReceipt
from comm_server.store import AsyncCommStore, CommStore, LogRecord
from renkei.errors import FailedPrecondition, Unavailable

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def store(engine: Engine) -> CommStore:
    return CommStore(engine)


def test_bind_is_idempotent_and_finds_both_ways(store: CommStore) -> None:
    assert store.bind("A1", "1.code-a", 1, NOW) is True
    assert store.bind("A1", "1.code-a", 1, NOW) is False
    assert store.link_code_for("A1") == "1.code-a"
    assert store.local_person_for("1.code-a") == "A1"
    assert store.link_code_for("nobody") is None
    assert store.local_person_for("1.nothing") is None


def test_conflicting_bindings_are_refused_and_change_nothing(store: CommStore) -> None:
    store.bind("A1", "1.code-a", 1, NOW)
    with pytest.raises(FailedPrecondition) as err:
        store.bind("A1", "1.code-b", 1, NOW)
    assert err.value.reason == "LOCAL_PERSON_ALREADY_BOUND"
    with pytest.raises(FailedPrecondition) as err:
        store.bind("A2", "1.code-a", 1, NOW)
    assert err.value.reason == "LINK_CODE_ALREADY_BOUND"
    assert store.link_code_for("A1") == "1.code-a"
    assert store.link_code_for("A2") is None


def test_log_rows_keep_every_field_and_the_instant(store: CommStore) -> None:
    jst = timezone(timedelta(hours=9))
    record = LogRecord(
        serial=7,
        role="requester",
        logged_at=NOW.astimezone(jst),
        counterpart_agency_id="nenkin",
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id="A1",
        staff_id="Y-1",
        terminal_id="T-1",
        content='{"年金額":1}',
        purpose="賦課",
        outcome="OK",
        reason="",
    )
    store.append_log(record)
    [row] = store.log_rows()
    assert row.logged_at == NOW
    assert row.logged_at.tzinfo is not None
    assert row == LogRecord(**{**record.__dict__, "logged_at": row.logged_at})


def test_many_log_rows_keep_their_order_fields_and_instants(store: CommStore) -> None:
    jst = timezone(timedelta(hours=9))
    base = LogRecord(
        serial=None,
        role="provider",
        logged_at=NOW,
        counterpart_agency_id="141003",
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id=None,
        staff_id="auto-responder",
        terminal_id="comm-nenkin",
        content="",
        purpose=None,
        outcome="OK",
        reason="",
    )
    records = [
        LogRecord(
            **{
                **base.__dict__,
                "serial": 100 + i,
                "local_person_id": f"P{i}" if i % 3 else None,
                "logged_at": (NOW + timedelta(seconds=i % 2)).astimezone(jst),
                "content": f"c{i}",
                "detail": "bad field" if i == 4 else None,
            }
        )
        for i in range(7)
    ]
    store.append_logs(records)
    rows = store.log_rows()
    assert [r.serial for r in rows] == [100 + i for i in range(7)]
    for row, record in zip(rows, records, strict=True):
        assert row.logged_at == record.logged_at
        assert row == LogRecord(**{**record.__dict__, "logged_at": row.logged_at})


def test_log_rows_appended_together_are_all_written_or_none(store: CommStore) -> None:
    good = LogRecord(
        serial=1,
        role="provider",
        logged_at=NOW,
        counterpart_agency_id="141003",
        info_kind="k",
        legal_basis_item="1",
        local_person_id="P1",
        staff_id="s",
        terminal_id="t",
        content="",
        purpose=None,
        outcome="OK",
        reason="",
    )
    naive = LogRecord(**{**good.__dict__, "serial": 2, "logged_at": NOW.replace(tzinfo=None)})
    with pytest.raises((ValueError, sa.exc.StatementError)):
        store.append_logs([good, naive])
    assert store.log_rows() == []


def test_answer_tickets_are_kept_per_role_and_taken_once(store: CommStore) -> None:
    from comm_server.store import Ticket

    ticket = Ticket(
        ticket="t" * 32,
        role="provider",
        serial=42,
        counterpart_agency_id="141003",
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id="1234-567890",
        purpose=None,
        legacy_ticket="REQ-00001.csv",
        created_at=NOW,
    )
    store.add_ticket(ticket)
    store.add_ticket(Ticket(**{**ticket.__dict__, "role": "requester", "purpose": "賦課"}))
    held = store.ticket("provider", "t" * 32)
    assert held is not None
    assert (held.serial, held.legacy_ticket, held.purpose) == (42, "REQ-00001.csv", None)
    assert store.ticket("provider", "u" * 32) is None
    assert store.take_ticket("provider", "t" * 32) is True
    assert store.take_ticket("provider", "t" * 32) is False
    assert store.ticket("provider", "t" * 32) is None
    requester = store.ticket("requester", "t" * 32)
    assert requester is not None
    assert requester.purpose == "賦課"


def test_a_log_row_may_carry_a_detail(store: CommStore) -> None:
    record = LogRecord(
        serial=8,
        role="provider",
        logged_at=NOW,
        counterpart_agency_id="141003",
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id="P1",
        staff_id="auto-responder",
        terminal_id="comm-nenkin",
        content="",
        purpose=None,
        outcome="LATE_ANSWER",
        reason="LATE_ANSWER_DISCARDED",
        detail="answered after 1.503 s, 1.003 s past the 0.5 s limit; discarded, never relayed",
    )
    store.append_log(record)
    [row] = store.log_rows()
    assert row.detail == record.detail


def test_bulk_lookups_find_current_next_and_previous_codes(store: CommStore) -> None:
    for i in range(1500):
        store.bind(f"L{i}", f"1.code-{i}", 1, NOW)
    store.store_next([("L1", "1.code-1", "2.next-1"), ("L2", "1.code-2", "2.next-2")], 2)
    store.promote()  # L1, L2 now present 2.next-*, and 1.code-* stay findable as previous
    store.store_next([("L3", "1.code-3", "2.next-3")], 2)
    asked = ["1.code-0", "2.next-1", "1.code-2", "2.next-3", "1.code-1499", "nobody"]
    assert store.local_persons_for(asked) == {
        "1.code-0": "L0",
        "2.next-1": "L1",
        "1.code-2": "L2",
        "2.next-3": "L3",
        "1.code-1499": "L1499",
    }
    wanted = [f"L{i}" for i in range(1500)] + ["L-unbound"]
    codes = store.link_codes_for(wanted)
    assert len(codes) == 1500
    assert (codes["L0"], codes["L1"]) == ("1.code-0", "2.next-1")


class _CountingStore(CommStore):
    """Counts log transactions, and can be told to fail the next one."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.batches: list[int] = []
        self.fail_next = False

    def append_logs(self, records: list[LogRecord], receipts: Sequence[ShareReceipt] = ()) -> None:
        self.batches.append(len(records))
        if self.fail_next:
            self.fail_next = False
            raise sa.exc.OperationalError("insert", {}, Exception("disk full"))
        super().append_logs(records, receipts)


def _record(serial: int) -> LogRecord:
    return LogRecord(
        serial=serial,
        role="provider",
        logged_at=NOW,
        counterpart_agency_id="141003",
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id=f"P{serial}",
        staff_id="SYSTEM",
        terminal_id="COMM",
        content="",
        purpose=None,
        outcome="OK",
        reason="",
    )


def test_log_rows_appended_together_share_commits_and_each_waits_for_its_own(
    engine: Engine,
) -> None:
    store = _CountingStore(engine)
    shared = AsyncCommStore(store)

    async def run() -> list[int]:
        waiters = [asyncio.ensure_future(shared.append_log(_record(s))) for s in range(1, 41)]
        seen = []
        for serial, waiter in enumerate(waiters, start=1):
            await waiter
            # Durable before its caller goes on: the row is there when run() returns.
            seen.append(serial)
            assert serial in {r.serial for r in store.log_rows(limit=100)}
        return seen

    try:
        asyncio.run(run())
    finally:
        shared.close()
    assert sorted(r.serial or 0 for r in store.log_rows(limit=100)) == list(range(1, 41))
    assert sum(store.batches) == 40
    assert len(store.batches) < 40  # shared transactions


def test_a_failed_log_commit_reaches_every_waiter_and_its_rows_are_kept_as_refusals(
    engine: Engine,
) -> None:
    store = _CountingStore(engine)
    shared = AsyncCommStore(store, retry_every=0.01)

    async def run() -> list[BaseException | None]:
        store.fail_next = True
        first = await asyncio.gather(
            *(shared.append_log(_record(s)) for s in (1, 2, 3)),
            return_exceptions=True,
        )
        await shared.append_log(_record(4))
        await shared.flush()
        return list(first)

    try:
        first = asyncio.run(run())
    finally:
        shared.close()
    # Every waiter hears the role's refusal (never the driver's error as INTERNAL).
    assert all(isinstance(e, Unavailable) for e in first)
    assert all(isinstance(e.__cause__, sa.exc.OperationalError) for e in first)
    assert {e.reason for e in first if isinstance(e, Unavailable)} == {"PROVIDER_LOG_UNAVAILABLE"}
    # Nothing lost: the refused rows are written once the database takes them, saying
    # what their callers were told; the next row went in as it was.
    rows = {r.serial: (r.outcome, r.reason) for r in store.log_rows()}
    assert rows == {
        1: ("UNAVAILABLE", "PROVIDER_LOG_UNAVAILABLE"),
        2: ("UNAVAILABLE", "PROVIDER_LOG_UNAVAILABLE"),
        3: ("UNAVAILABLE", "PROVIDER_LOG_UNAVAILABLE"),
        4: ("OK", ""),
    }


def test_bind_many_binds_in_one_go_and_judges_each_row_like_bind(store: CommStore) -> None:
    from comm_server.store import NewBinding

    store.bind("OLD", "1.code-old", 1, NOW)
    rows = [
        NewBinding("A1", "1.code-a", 1, 1),
        NewBinding("OLD", "1.code-old", 1, 1),  # already bound to that code
        NewBinding("OLD", "1.code-other", 1, 1),  # bound to another code
        NewBinding("A2", "1.code-old", 1, 1),  # that person is bound to OLD
        NewBinding("A3", "1.code-a", 1, 1),  # the batch bound that person to A1 just now
        NewBinding("A4", "1.code-d", 2, 3),
    ]
    seen: list[list[str]] = []
    results = store.bind_many(rows, NOW, then=lambda conn, bound: seen.append(bound))
    assert results[:2] == [True, False]
    assert [getattr(r, "reason", r) for r in results[2:]] == [
        "LOCAL_PERSON_ALREADY_BOUND",
        "LINK_CODE_ALREADY_BOUND",
        "LINK_CODE_ALREADY_BOUND",
        True,
    ]
    assert seen == [["A1", "OLD", "A4"]]
    assert store.bound_among(["A1", "A2", "A3", "A4", "OLD", "nobody"]) == {"A1", "A4", "OLD"}
    assert store.link_code_for("A4") == "1.code-d"
    assert store.rekey_pending(3, below_id_version=4)[0] == [
        ("A1", "1.code-a"),
        ("A4", "1.code-d"),
        ("OLD", "1.code-old"),
    ]
    # Again: nothing new, nothing changed.
    assert store.bind_many(rows[:2], NOW) == [False, False]
    assert store.bind_many([], NOW) == []


def test_bind_many_writes_nothing_when_the_transaction_fails(store: CommStore) -> None:
    from comm_server.store import NewBinding

    def crash(conn: object, bound: list[str]) -> None:
        raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError):
        store.bind_many([NewBinding("A1", "1.code-a", 1)], NOW, then=crash)
    assert store.link_code_for("A1") is None


def test_handles_are_kept_with_the_bindings_and_conflicts_named(engine: Engine) -> None:
    from comm_server.binding.person_facts import PersonFactsStore
    from comm_server.store import NewBinding

    store = CommStore(engine)
    facts = PersonFactsStore(engine)
    facts.remember_handle("OLD", "h-old")
    conflicts: dict[str, FailedPrecondition] = {}

    def keep(conn: Connection, bound: list[str]) -> None:
        pairs = {"A1": "h-1", "OLD": "h-old", "A2": "h-old", "A3": "h-3"}
        conflicts.update(facts.remember_handles(conn, [(b, pairs[b]) for b in bound]))

    rows = [NewBinding(local, f"1.{local}", 1) for local in ("A1", "OLD", "A2", "A3")]
    store.bind_many(rows, NOW, then=keep)
    assert {k: v.reason for k, v in conflicts.items()} == {"A2": "REGISTRY_HANDLE_CONFLICT"}
    assert [facts.handle_for(x) for x in ("A1", "OLD", "A2", "A3")] == [
        "h-1",
        "h-old",
        None,
        "h-3",
    ]
    assert store.link_code_for("A2") == "1.A2"  # the binding stays; the handle is refused
