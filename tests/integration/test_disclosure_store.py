"""The disclosure tables and the reading of the log share by link code, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from comm_server.disclosure.store import DisclosureStore
from comm_server.disclosure.types import Application, Deferral, State
from comm_server.store import CommStore, LogRecord
from renkei.errors import FailedPrecondition, NotFound

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
ROW = LogRecord(
    serial=7,
    role="requester",
    logged_at=NOW,
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
APP = Application("application-0000000001", 7, 70, "portal", State.PENDING, NOW)


@pytest.fixture
def stores(engine: Engine) -> tuple[CommStore, DisclosureStore]:
    comm = CommStore(engine)
    comm.bind("A1", "1.code-a", 1, NOW)
    comm.bind("A2", "1.code-b", 1, NOW)
    comm.append_logs(
        [
            ROW,
            replace(ROW, role="provider", purpose=None, outcome="DISCARDED"),
            replace(ROW, serial=8, local_person_id="A2"),
            replace(ROW, serial=9),
        ]
    )
    return comm, DisclosureStore(comm)


def test_rows_are_found_by_the_persons_link_code_only(
    stores: tuple[CommStore, DisclosureStore],
) -> None:
    _, store = stores
    rows = store.person_rows(7, "1.code-a")
    assert [(r.role, r.outcome) for r in rows] == [("requester", "OK"), ("provider", "DISCARDED")]
    assert rows[0] == ROW
    assert store.person_rows(8, "1.code-a") == []  # another person's exchange
    assert store.person_rows(7, "1.code-b") == []
    assert store.person_rows(7, "1.unknown") == []
    assert [r.local_person_id for r in store.exchange_rows(8)] == ["A2"]


def test_next_and_previous_link_codes_find_the_same_rows(
    stores: tuple[CommStore, DisclosureStore],
) -> None:
    comm, store = stores
    comm.store_next([("A1", "1.code-a", "2.code-a")], 2)
    assert len(store.person_rows(7, "2.code-a")) == 2  # the next code, before promotion
    comm.promote()
    assert len(store.person_rows(7, "1.code-a")) == 2  # the previous code, after
    assert len(store.person_rows(7, "2.code-a")) == 2


def test_applications_keep_who_decided_and_when(stores: tuple[CommStore, DisclosureStore]) -> None:
    _, store = stores
    assert store.add_application(APP) == APP
    # The same id again (a repeat racing the first): the one recorded.
    assert store.add_application(replace(APP, request_serial=71)) == APP
    assert store.application(APP.application_id) == APP
    assert store.application("application-missing000") is None
    later = NOW + timedelta(hours=2)
    decided = store.decide(APP.application_id, State.REFUSED, "S-1", later, "理由")
    assert decided == replace(
        APP, state=State.REFUSED, decided_at=later, decided_by="S-1", refusal_reason="理由"
    )
    assert store.application(APP.application_id) == decided
    with pytest.raises(FailedPrecondition) as caught:
        store.decide(APP.application_id, State.ANSWERED, "S-2", later)
    assert caught.value.reason == "APPLICATION_ALREADY_DECIDED"
    with pytest.raises(NotFound):
        store.decide("application-missing000", State.ANSWERED, "S-2", later)


def test_applications_list_by_state_oldest_first(stores: tuple[CommStore, DisclosureStore]) -> None:
    _, store = stores
    second = replace(APP, application_id="application-0000000002", created_at=NOW + timedelta(1))
    store.add_application(second)
    store.add_application(APP)
    store.decide(second.application_id, State.ANSWERED, "auto", NOW)
    assert [a.application_id for a in store.applications()] == [
        APP.application_id,
        second.application_id,
    ]
    assert [a.application_id for a in store.applications(State.PENDING)] == [APP.application_id]
    assert store.applications(State.ANSWERED)[0].state is State.ANSWERED


def test_a_later_deferral_replaces_the_earlier(stores: tuple[CommStore, DisclosureStore]) -> None:
    _, store = stores
    assert store.deferral(7) is None
    first = Deferral(7, NOW + timedelta(days=30), "捜査", "S-1", NOW)
    store.set_deferral(first)
    assert store.deferral(7) == first
    lifted = Deferral(7, NOW - timedelta(days=1), "解除", "S-2", NOW + timedelta(hours=1))
    store.set_deferral(lifted)
    assert store.deferral(7) == lifted
    assert not lifted.in_force(NOW)
    assert list(store.deferrals()) == [lifted]
