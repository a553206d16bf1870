"""The disclosure room's domain on in-memory fakes: answering, holding, deciding, deferring."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest

from comm_server.disclosure.service import Answerer, StaffDesk
from comm_server.disclosure.types import Application, Deferral, DiscloseCall, State
from comm_server.staff_register import Permission, StaffRegister
from comm_server.store import LogRecord
from renkei import disclosure, sealing
from renkei.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from renkei.exchange_cert import VerifiedPeer

T = TypeVar("T")
AGENCY = "141003"
PORTAL = "portal"
APP = "application-000000001"
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
CODE, OTHER_CODE = "LC-taro", "LC-hanako"
KIND, ITEM = "年金給付関係情報", "二十七"


def _row(serial: int, local: str, **changes: Any) -> LogRecord:
    row = LogRecord(
        serial=serial,
        role="requester",
        logged_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        counterpart_agency_id="nenkin",
        info_kind=KIND,
        legal_basis_item=ITEM,
        local_person_id=local,
        staff_id="Y-1203",
        terminal_id="YOK-TAX-07",
        content='{"年金額": 1200000}',
        purpose="賦課",
        outcome="OK",
        reason="",
    )
    return replace(row, **changes)


class FakeStore:
    """DisclosureRepo in dicts; the correspondence table is ``codes``."""

    def __init__(self, rows: list[LogRecord], codes: dict[str, str]) -> None:
        self.rows = rows
        self.codes = codes
        self.apps: dict[str, Application] = {}
        self.held: dict[int, Deferral] = {}

    def person_rows(self, serial: int, link_code: str) -> list[LogRecord]:
        local = self.codes.get(link_code)
        return [r for r in self.rows if r.serial == serial and r.local_person_id == local]

    def exchange_rows(self, serial: int) -> list[LogRecord]:
        return [r for r in self.rows if r.serial == serial]

    def application(self, application_id: str) -> Application | None:
        return self.apps.get(application_id)

    def add_application(self, application: Application) -> Application:
        return self.apps.setdefault(application.application_id, application)

    def applications(self, state: State | None = None) -> list[Application]:
        return [a for a in self.apps.values() if state is None or a.state is state]

    def decide(
        self,
        application_id: str,
        state: State,
        staff_id: str,
        at: datetime,
        refusal_reason: str | None = None,
    ) -> Application:
        app = self.apps.get(application_id)
        if app is None:
            raise NotFound("APPLICATION_NOT_FOUND", "no such application")
        if app.state is not State.PENDING:
            raise FailedPrecondition("APPLICATION_ALREADY_DECIDED", "decided")
        app = self.apps[application_id] = replace(
            app, state=state, decided_at=at, decided_by=staff_id, refusal_reason=refusal_reason
        )
        return app

    def deferral(self, serial: int) -> Deferral | None:
        return self.held.get(serial)

    def set_deferral(self, deferral: Deferral) -> None:
        self.held[deferral.serial] = deferral

    def deferrals(self) -> list[Deferral]:
        return sorted(self.held.values(), key=lambda d: d.serial)


async def _run(fn: Callable[..., T], /, *args: Any) -> T:
    return fn(*args)


class Rig:
    def __init__(self, approval: str = "auto") -> None:
        self.now = NOW
        self.store = FakeStore(
            [_row(7, "L-1"), _row(8, "L-2"), _row(9, "L-1", role="provider", purpose=None)],
            {CODE: "L-1", OTHER_CODE: "L-2"},
        )
        self.portal_key = sealing.generate_private_key()
        self.asked: list[str] = []
        self.answerer = Answerer(
            agency_id=AGENCY,
            store=self.store,
            approval=approval,
            peer=self._peer,
            run=_run,
            clock=lambda: self.now,
        )
        register = StaffRegister(
            [
                Permission("S-ok", frozenset(), frozenset({KIND}), frozenset({ITEM})),
                Permission("S-tax", frozenset(), frozenset({"地方税関係情報"}), frozenset()),
                Permission("S-old", frozenset(), frozenset(), frozenset(), None, date(2026, 3, 31)),
            ]
        )
        self.desk = StaffDesk(self.store, register, clock=lambda: self.now)

    async def _peer(self, agency_id: str, timeout: float) -> VerifiedPeer:
        self.asked.append(agency_id)
        return VerifiedPeer(agency_id, None, self.portal_key.public_key(), NOW, 1)  # type: ignore[arg-type]

    def disclose(self, serial: int = 7, code: str = CODE, app: str = APP) -> Any:
        call = DiscloseCall(serial, code, app, PORTAL, 100)
        return asyncio.run(self.answerer.disclose(call, 1.0))

    def open(self, sealed: bytes, serial: int = 7, app: str = APP) -> disclosure.Details:
        return disclosure.open_details(
            sealed, private_key=self.portal_key, application_id=app, serial=serial, agency_id=AGENCY
        )


def test_auto_answers_at_once_sealed_to_the_portal_with_the_rows_content_and_purpose() -> None:
    rig = Rig()
    answer = rig.disclose()
    assert answer.state is State.ANSWERED
    details = rig.open(answer.sealed_details)
    assert (details.content, details.purpose) == ('{"年金額": 1200000}', "賦課")
    assert (details.role, details.counterpart_agency_id, details.answered_at) == (
        "requester",
        "nenkin",
        NOW,
    )
    assert rig.asked == [PORTAL]
    app = rig.store.apps[APP]
    assert (app.state, app.decided_by, app.request_serial) == (State.ANSWERED, "auto", 100)


def test_a_provider_row_carries_no_purpose() -> None:
    rig = Rig()
    details = rig.open(rig.disclose(serial=9).sealed_details, serial=9)
    assert (details.role, details.purpose) == ("provider", None)


@pytest.mark.parametrize(("serial", "code"), [(8, CODE), (7, OTHER_CODE), (99, CODE), (7, "nope")])
def test_another_persons_or_an_unknown_exchange_is_not_found_alike(serial: int, code: str) -> None:
    rig = Rig()
    with pytest.raises(NotFound) as caught:
        rig.disclose(serial, code)
    assert caught.value.reason == "DETAILS_NOT_FOUND"
    assert caught.value.message == (
        f"this agency holds no details of exchange {serial} for this person"
    )
    assert rig.store.apps == {}
    assert rig.asked == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (DiscloseCall(7, CODE, "short", PORTAL, 100), "application_id"),
        (DiscloseCall(7, CODE, "bad id with spaces!!", PORTAL, 100), "application_id"),
        (DiscloseCall(0, CODE, APP, PORTAL, 100), "serial"),
        (DiscloseCall(7, "", APP, PORTAL, 100), "link_code"),
        (DiscloseCall(7, CODE, APP, "", 100), "recipient_agency_id"),
        (DiscloseCall(7, CODE, APP, PORTAL, 0), "request_serial"),
    ],
)
def test_malformed_calls_name_their_field(call: DiscloseCall, field: str) -> None:
    rig = Rig()
    with pytest.raises(InvalidArgument) as caught:
        asyncio.run(rig.answerer.disclose(call))
    assert (caught.value.reason, caught.value.metadata["field"]) == ("INVALID_FIELD", field)


def test_staff_mode_holds_then_answers_after_approval_freshly_sealed() -> None:
    rig = Rig("staff")
    assert rig.disclose().state is State.PENDING
    assert rig.disclose().state is State.PENDING  # asking again: how it stands
    assert rig.asked == []
    assert [a.application_id for a in rig.desk.applications(State.PENDING)] == [APP]
    rig.now += timedelta(minutes=5)
    approved = rig.desk.approve(APP, "S-ok")
    assert (approved.state, approved.decided_by, approved.decided_at) == (
        State.ANSWERED,
        "S-ok",
        rig.now,
    )
    first, second = rig.disclose(), rig.disclose()
    assert first.state is second.state is State.ANSWERED
    assert first.sealed_details != second.sealed_details  # sealed afresh each time
    assert rig.open(second.sealed_details).content == '{"年金額": 1200000}'


def test_staff_refusal_is_answered_with_its_reason_for_good() -> None:
    rig = Rig("staff")
    rig.disclose()
    refused = rig.desk.refuse(APP, "S-ok", "  第三者の権利利益を害するおそれ ")
    assert (refused.state, refused.refusal_reason) == (
        State.REFUSED,
        "第三者の権利利益を害するおそれ",
    )
    answer = rig.disclose()
    assert answer.state is State.REFUSED
    assert answer.refusal_reason == "第三者の権利利益を害するおそれ"
    with pytest.raises(FailedPrecondition) as caught:
        rig.desk.approve(APP, "S-ok")
    assert caught.value.reason == "APPLICATION_ALREADY_DECIDED"


def test_a_deferral_in_force_answers_deferred_then_lifts() -> None:
    rig = Rig()
    until = NOW + timedelta(days=30)
    rig.desk.defer(7, until, "刑事訴訟法第百九十七条", "S-ok")
    answer = rig.disclose()
    assert (answer.state, answer.deferred_until, answer.deferral_reason) == (
        State.DEFERRED,
        until,
        "刑事訴訟法第百九十七条",
    )
    assert answer.sealed_details == b""
    assert rig.asked == []
    assert rig.store.apps[APP].state is State.PENDING  # kept, not answered
    rig.now = until
    lifted = rig.disclose()
    assert lifted.state is State.ANSWERED
    assert rig.store.apps[APP].decided_by == "auto"


def test_a_deferral_holds_back_even_an_approved_application() -> None:
    rig = Rig("staff")
    rig.disclose()
    rig.desk.approve(APP, "S-ok")
    rig.desk.defer(7, NOW + timedelta(days=1), "捜査", "S-ok")
    assert rig.disclose().state is State.DEFERRED


def test_an_application_id_is_for_one_exchange() -> None:
    rig = Rig()
    rig.disclose(7)
    with pytest.raises(FailedPrecondition) as caught:
        rig.disclose(9)
    assert caught.value.reason == "APPLICATION_ID_REUSED"


@pytest.mark.parametrize(
    ("staff", "reason"),
    [
        ("S-nobody", "STAFF_NOT_REGISTERED"),
        ("S-old", "STAFF_REGISTRATION_NOT_IN_FORCE"),
        ("S-tax", "AFFAIR_NOT_PERMITTED"),
    ],
)
def test_only_staff_granted_the_exchanges_affair_decide(staff: str, reason: str) -> None:
    rig = Rig("staff")
    rig.disclose()
    for decide in (
        lambda: rig.desk.approve(APP, staff),
        lambda: rig.desk.refuse(APP, staff, "理由"),
        lambda: rig.desk.defer(7, NOW, "理由", staff),
    ):
        with pytest.raises(PermissionDenied) as caught:
            decide()
        assert caught.value.reason == reason
    assert rig.store.apps[APP].state is State.PENDING
    assert rig.store.held == {}


def test_no_staff_register_means_no_one_decides() -> None:
    rig = Rig("staff")
    rig.disclose()
    desk = StaffDesk(rig.store, None, clock=lambda: NOW)
    with pytest.raises(PermissionDenied) as caught:
        desk.approve(APP, "S-ok")
    assert caught.value.reason == "STAFF_NOT_REGISTERED"


def test_unknown_application_or_exchange_and_empty_reasons_are_refused() -> None:
    rig = Rig("staff")
    with pytest.raises(NotFound) as nf:
        rig.desk.approve("application-unknown", "S-ok")
    assert nf.value.reason == "APPLICATION_NOT_FOUND"
    with pytest.raises(NotFound) as gone:
        rig.desk.defer(99, NOW, "理由", "S-ok")
    assert gone.value.reason == "DETAILS_NOT_FOUND"
    rig.disclose()
    with pytest.raises(InvalidArgument) as empty:
        rig.desk.refuse(APP, "S-ok", "   ")
    assert empty.value.metadata["field"] == "reason"


def test_the_requester_row_is_shown_when_this_agency_was_both_sides() -> None:
    rig = Rig()
    rig.store.rows.append(_row(7, "L-1", role="provider", purpose=None, content="{}"))
    details = rig.open(rig.disclose().sealed_details)
    assert (details.role, details.purpose) == ("requester", "賦課")


def test_the_latest_row_of_an_exchange_is_shown() -> None:
    rig = Rig()
    rig.store.rows.insert(0, _row(7, "L-1", outcome="PENDING", content=""))
    assert rig.open(rig.disclose().sealed_details).outcome == "OK"


def test_the_desk_lists_deferrals_in_force_only() -> None:
    rig = Rig()
    rig.desk.defer(7, NOW + timedelta(days=1), "捜査", "S-ok")
    rig.desk.defer(9, NOW - timedelta(days=1), "解除", "S-ok")
    assert [d.serial for d in rig.desk.deferrals_in_force()] == [7]
