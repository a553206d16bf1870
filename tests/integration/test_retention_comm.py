"""Retention at a communication server and the registry (R25), on SQLite and PostgreSQL.

Old rows go, young and held ones stay, each purge is recorded, and the share's
chain still verifies from the first remaining row (an edit of a remaining row
is still caught, and a head signed before the purge still matches).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server import share_chain
from comm_server.retention import purge_comm
from comm_server.store import Ticket, agency_log, answer_tickets
from registry_binding.retention import purge_consent_log, purges
from registry_binding.store import BindingStore, consent_log
from renkei.retention import HoldStore, LegalHold, RetentionPolicy
from tests.integration.test_share_chain import Share, record

NOW = datetime(2033, 4, 1, 9, 0, 0, 123456, tzinfo=UTC)
OLD = NOW - timedelta(days=2557 + 30)
YOUNG = NOW - timedelta(days=2557 - 30)
POLICY = RetentionPolicy(batch_size=3)


def _ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [
            int(i)
            for i in conn.execute(sa.select(agency_log.c.id).order_by(agency_log.c.id)).scalars()
        ]


def test_the_share_verifies_after_a_purge_and_still_catches_an_edit(engine: Engine) -> None:
    share = Share(engine)
    holds = HoldStore(engine)
    for n in range(1, 11):  # rows 1-10 old, 11-14 young
        share.store.append_log(record(n, logged_at=OLD + timedelta(seconds=n)))
    share.store.append_logs(
        [record(n, logged_at=YOUNG + timedelta(seconds=n)) for n in range(11, 15)]
    )
    share.store.add_ticket(
        Ticket("t-old", "provider", 1001, "nenkin", "x", "二十七", "A1", None, "L-1", OLD)
    )
    share.store.add_ticket(
        Ticket("t-young", "provider", 1012, "nenkin", "x", "二十七", "A12", None, "L-2", YOUNG)
    )
    holds.set(LegalHold("case-1", (1004,), reason="court order"), NOW)  # row 4's serial
    before = share.sign()
    ids = _ids(engine)

    dry = purge_comm(engine, holds, POLICY, now=NOW, dry_run=True)
    assert [(r.store, r.deleted, r.held) for r in dry] == [
        ("agency_log", 9, 1),
        ("answer_tickets", 1, 0),
    ]
    assert _ids(engine) == ids

    log_report, tickets = purge_comm(engine, holds, POLICY, now=NOW)
    assert (log_report.deleted, log_report.held, log_report.batches) == (9, 1, 4)
    assert log_report.ranges == [(ids[0], ids[2]), (ids[4], ids[9])]
    assert (tickets.store, tickets.deleted) == ("answer_tickets", 1)
    assert _ids(engine) == [ids[3], *ids[10:]]
    with engine.connect() as conn:
        left = set(conn.execute(sa.select(answer_tickets.c.ticket)).scalars())
        recorded = conn.execute(sa.select(share_chain.chain_purges)).all()
    assert left == {"t-young"}
    assert sum(r.rows for r in recorded) == 9
    # One record per transaction (the held row 4 was in the second batch).
    assert [tuple(x) for r in recorded for x in json.loads(r.id_ranges)] == [
        (ids[0], ids[2]),
        (ids[4], ids[5]),
        (ids[6], ids[8]),
        (ids[9], ids[9]),
    ]

    # --own: no problem; the purged rows said as such; the head signed before matches.
    report = share.verify([("collected before the purge", before)])
    assert report.problems == []
    assert report.purged == 9
    assert [f.message for f in report.findings] == [
        "rows 1-3: purged under retention",
        "rows 5-10: purged under retention",
    ]
    share.sign(NOW)
    assert share.verify().problems == []

    # An edit of a remaining row is still caught, the held one as well as a young one.
    share.execute(agency_log.update().where(agency_log.c.id == ids[3]).values(content="{}"))
    share.execute(agency_log.update().where(agency_log.c.id == ids[12]).values(staff_id="X"))
    problems = [f.message for f in share.verify().problems]
    assert problems == [
        "row 4 (serial 1004): changed since it was logged",
        "row 13 (serial 1013): changed since it was logged",
    ]
    # A row deleted outside a purge is still missing, not purged.
    share.execute(agency_log.delete().where(agency_log.c.id == ids[11]))
    assert "row 12: missing" in [f.message for f in share.verify().problems]


def test_a_released_hold_lets_its_rows_go(engine: Engine) -> None:
    share = Share(engine)
    holds = HoldStore(engine)
    for n in range(1, 5):
        share.store.append_log(record(n, logged_at=OLD + timedelta(seconds=n)))
    share.store.append_log(record(5, logged_at=NOW))
    holds.set(LegalHold("case-1", (1002, 1003)), NOW)
    assert purge_comm(engine, holds, POLICY, now=NOW)[0].deleted == 2
    holds.release("case-1")
    again = purge_comm(engine, holds, POLICY, now=NOW)[0]
    assert (again.deleted, again.held) == (2, 0)
    assert len(_ids(engine)) == 1
    assert share.verify().problems == []


def _attempt(store: BindingStore, n: int, at: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            consent_log.insert().values(
                attempt_id=f"a{n}",
                caller="agency:bank-1",
                attempted_at=at,
                outcome="MATCHED",
                answered="MATCHED",
                reason="",
            )
        )


def test_the_consent_log_purge_is_recorded_and_holds_by_row_id(engine: Engine) -> None:
    store = BindingStore(engine)
    holds = HoldStore(engine)
    for n in range(1, 6):
        _attempt(store, n, OLD)
    _attempt(store, 6, YOUNG)
    holds.set(LegalHold("case-9", (2,)), NOW)  # consent-log row id 2
    (report,) = purge_consent_log(engine, holds, POLICY, now=NOW)
    assert (report.deleted, report.held) == (4, 1)
    with engine.connect() as conn:
        left = set(conn.execute(sa.select(consent_log.c.id)).scalars())
        recorded = conn.execute(sa.select(purges.c.rows, purges.c.id_ranges)).all()
    assert left == {2, 6}
    assert sum(r.rows for r in recorded) == 4
    assert report.logged.startswith("consent_log_purges: ids 1, 3-5 (4 rows, 1 held)")
    holds.release("case-9")
    assert purge_consent_log(engine, holds, POLICY, now=NOW)[0].deleted == 1
