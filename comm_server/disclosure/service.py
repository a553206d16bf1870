"""Answering a person's application for details (R26), and the staff's decisions on it.

``Answerer`` is the hub's side (``Disclose``): it finds the exchange's row in
this agency's log share by the person's link code, and answers at once
(``[disclosure] approval = "auto"``) or holds the application for staff
("staff"). The details go sealed to the recipient (the portal), whose sealing
key comes from its exchange certificate, checked against the agencies' CA by
the same lookup the requester side uses before it seals a query.

``StaffDesk`` is the agency's side (``renkei comm disclosure``): list, approve,
refuse and defer, each decision kept with the staff id and time in the
disclosure tables (that is this agency's record of it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from comm_server.disclosure.types import (
    AUTO,
    Application,
    Deferral,
    DiscloseCall,
    Disclosed,
    State,
)
from comm_server.staff_register import StaffRegister
from comm_server.store import LogRecord
from renkei import limits, validate
from renkei.disclosure import Details, seal_details
from renkei.errors import FailedPrecondition, NotFound, PermissionDenied, invalid_field
from renkei.exchange_cert import VerifiedPeer
from renkei.logs import event
from renkei.pki import validate_agency_id

_log = logging.getLogger("comm_server.disclosure")
T = TypeVar("T")

APPLICATION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
MAX_REASON = 400  # as the hub's DeferDisclosure legal_reason


class DisclosureRepo(Protocol):
    """What the room asks of its store (``comm_server.disclosure.store.DisclosureStore``)."""

    def person_rows(self, serial: int, link_code: str) -> list[LogRecord]: ...
    def exchange_rows(self, serial: int) -> list[LogRecord]: ...
    def application(self, application_id: str) -> Application | None: ...
    def add_application(self, application: Application) -> Application: ...
    def applications(self, state: State | None = None) -> list[Application]: ...
    def decide(
        self,
        application_id: str,
        state: State,
        staff_id: str,
        at: datetime,
        refusal_reason: str | None = None,
    ) -> Application: ...
    def deferral(self, serial: int) -> Deferral | None: ...
    def set_deferral(self, deferral: Deferral) -> None: ...
    def deferrals(self) -> Sequence[Deferral]: ...


class Run(Protocol):
    """Runs a blocking store call off the event loop (``AsyncCommStore.run``)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


# The recipient's verified keys (``Requester.peer``: the hub's directory, then the agencies' CA).
PeerLookup = Callable[[str, float], Awaitable[VerifiedPeer]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def not_found(serial: int) -> NotFound:
    # The same words whether the exchange is unknown here or another person's.
    return NotFound(
        "DETAILS_NOT_FOUND",
        f"this agency holds no details of exchange {serial} for this person",
        {"serial": str(serial)},
    )


def check_call(call: DiscloseCall) -> None:
    validate.integer("serial", call.serial, minimum=1)
    validate.integer("request_serial", call.request_serial, minimum=1)
    validate.text("link_code", call.link_code, max_chars=128)
    if not APPLICATION_ID.fullmatch(call.application_id):
        raise invalid_field("application_id", "must be 16 to 64 of [A-Za-z0-9_-]")
    validate.text("recipient_agency_id", call.recipient_agency_id, max_chars=limits.MAX_ID)
    try:
        validate_agency_id(call.recipient_agency_id)
    except ValueError as err:
        raise invalid_field("recipient_agency_id", str(err)) from None


def details_of(agency_id: str, row: LogRecord, answered_at: datetime) -> Details:
    assert row.serial is not None  # rows found by serial have one
    return Details(
        serial=row.serial,
        agency_id=agency_id,
        role=row.role,
        logged_at=row.logged_at,
        info_kind=row.info_kind,
        legal_basis_item=row.legal_basis_item,
        counterpart_agency_id=row.counterpart_agency_id,
        content=row.content,
        purpose=row.purpose if row.role == "requester" else None,
        outcome=row.outcome,
        answered_at=answered_at,
    )


def chosen_row(rows: Sequence[LogRecord]) -> LogRecord:
    """The row the person is shown: the latest (an answer-later exchange's outcome comes
    after its first half), the requester's if this agency was both sides, for its (12)."""
    asked = [r for r in rows if r.role == "requester"]
    return (asked or list(rows))[-1]


class Answerer:
    def __init__(
        self,
        *,
        agency_id: str,
        store: DisclosureRepo,
        approval: str,
        peer: PeerLookup,
        run: Run,
        clock: Callable[[], datetime] = utc_now,
        default_timeout: float = 5.0,
    ) -> None:
        self._agency_id = agency_id
        self._store = store
        self._auto = approval == AUTO
        self._peer = peer
        self._run = run
        self._clock = clock
        self._default_timeout = default_timeout

    async def disclose(self, call: DiscloseCall, timeout: float | None = None) -> Disclosed:
        check_call(call)
        rows = await self._run(self._store.person_rows, call.serial, call.link_code)
        if not rows:
            raise not_found(call.serial)
        now = self._clock()
        app = await self._run(self._store.application, call.application_id)
        if app is not None and (app.serial, app.recipient_agency_id) != (
            call.serial,
            call.recipient_agency_id,
        ):
            raise FailedPrecondition(
                "APPLICATION_ID_REUSED",
                f"application {call.application_id!r} was made for another exchange or recipient",
                {"application_id": call.application_id},
            )
        if app is not None and app.state is State.REFUSED:
            return Disclosed(State.REFUSED, refusal_reason=app.refusal_reason or "")
        deferral = await self._run(self._store.deferral, call.serial)
        if deferral is not None and deferral.in_force(now):
            if app is None:  # kept as an application all the same, for staff or for later
                await self._add(call, now, State.PENDING)
            return Disclosed(
                State.DEFERRED,
                deferred_until=deferral.until,
                deferral_reason=deferral.legal_reason,
            )
        if app is None:
            app = await self._add(call, now, State.ANSWERED if self._auto else State.PENDING)
        elif app.state is State.PENDING and self._auto:  # held by a deferral since lifted
            app = await self._decide_auto(app, now)
        if app.state is State.PENDING:
            return Disclosed(State.PENDING)
        if app.state is State.REFUSED:
            return Disclosed(State.REFUSED, refusal_reason=app.refusal_reason or "")
        recipient = await self._peer(
            call.recipient_agency_id, self._default_timeout if timeout is None else timeout
        )
        sealed = seal_details(
            details_of(self._agency_id, chosen_row(rows), now),
            recipient=recipient.sealing_key,
            application_id=call.application_id,
        )
        event(
            _log,
            "details disclosed",
            serial=call.serial,
            application_id=call.application_id,
            recipient=call.recipient_agency_id,
        )
        return Disclosed(State.ANSWERED, sealed_details=sealed)

    async def _add(self, call: DiscloseCall, now: datetime, state: State) -> Application:
        answered = state is State.ANSWERED
        return await self._run(
            self._store.add_application,
            Application(
                application_id=call.application_id,
                serial=call.serial,
                request_serial=call.request_serial,
                recipient_agency_id=call.recipient_agency_id,
                state=state,
                created_at=now,
                decided_at=now if answered else None,
                decided_by=AUTO if answered else None,
            ),
        )

    async def _decide_auto(self, app: Application, now: datetime) -> Application:
        try:
            return await self._run(
                self._store.decide, app.application_id, State.ANSWERED, AUTO, now
            )
        except FailedPrecondition:  # decided meanwhile (staff, or a concurrent call)
            again = await self._run(self._store.application, app.application_id)
            return app if again is None else again


# ---------------------------------------------------------------- the staff


def may_decide(
    register: StaffRegister | None, staff_id: str, rows: Sequence[LogRecord], day: datetime
) -> None:
    """The grant a disclosure decision needs: a registration in force that day for the
    exchange's kind of information and legal-basis item (any terminal: decisions are
    taken at this server, not at a terminal). PERMISSION_DENIED with the register's
    reasons otherwise."""
    validate.text("staff", staff_id, max_chars=limits.MAX_ID)
    meta = {"staff_id": staff_id, "field": "staff_id"}
    if register is None:
        raise PermissionDenied(
            "STAFF_NOT_REGISTERED",
            "this agency configures no staff_register: no one may decide on disclosures",
            meta,
        )
    permissions = register.by_staff.get(staff_id)
    if not permissions:
        raise PermissionDenied(
            "STAFF_NOT_REGISTERED",
            f"staff {staff_id!r} is not in this agency's staff register",
            meta,
        )
    today = day.date()
    permissions = [p for p in permissions if p.in_force(today)]
    if not permissions:
        raise PermissionDenied(
            "STAFF_REGISTRATION_NOT_IN_FORCE",
            f"staff {staff_id!r} has no registration in force on {today.isoformat()}",
            meta,
        )
    for row in rows:
        if not any(p.allows_affair(row.info_kind, row.legal_basis_item) for p in permissions):
            raise PermissionDenied(
                "AFFAIR_NOT_PERMITTED",
                f"staff {staff_id!r} may not decide on {row.info_kind!r} under item"
                f" {row.legal_basis_item!r}",
                {
                    "staff_id": staff_id,
                    "info_kind": row.info_kind,
                    "legal_basis_item": row.legal_basis_item,
                },
            )


def _reason(field: str, value: str) -> str:
    return validate.text(field, value.strip(), max_chars=MAX_REASON)


class StaffDesk:
    """The staff's decisions, synchronous (the CLI runs them against the agency's database)."""

    def __init__(
        self,
        store: DisclosureRepo,
        register: StaffRegister | None,
        *,
        clock: Callable[[], datetime] = utc_now,
        day_zone: Any = UTC,
    ) -> None:
        self._store = store
        self._register = register
        self._clock = clock
        self._zone = day_zone  # the staff register's dates are local (JST) days

    def _check(self, staff_id: str, serial: int, now: datetime) -> list[LogRecord]:
        rows = self._store.exchange_rows(serial)
        may_decide(self._register, staff_id, rows, now.astimezone(self._zone))
        return rows

    def applications(self, state: State | None = None) -> list[Application]:
        return self._store.applications(state)

    def deferrals_in_force(self) -> list[Deferral]:
        now = self._clock()
        return [d for d in self._store.deferrals() if d.in_force(now)]

    def _pending(self, application_id: str) -> Application:
        app = self._store.application(application_id)
        if app is None:
            raise NotFound(
                "APPLICATION_NOT_FOUND",
                f"no application {application_id!r} at this agency",
                {"application_id": application_id},
            )
        return app

    def approve(self, application_id: str, staff_id: str) -> Application:
        now = self._clock()
        app = self._pending(application_id)
        self._check(staff_id, app.serial, now)
        decided = self._store.decide(application_id, State.ANSWERED, staff_id, now)
        event(_log, "disclosure approved", application_id=application_id, staff_id=staff_id)
        return decided

    def refuse(self, application_id: str, staff_id: str, reason: str) -> Application:
        now = self._clock()
        why = _reason("reason", reason)
        app = self._pending(application_id)
        self._check(staff_id, app.serial, now)
        decided = self._store.decide(application_id, State.REFUSED, staff_id, now, why)
        event(_log, "disclosure refused", application_id=application_id, staff_id=staff_id)
        return decided

    def defer(self, serial: int, until: datetime, reason: str, staff_id: str) -> Deferral:
        """Hold the exchange's details back until ``until`` (one in the past lifts it)."""
        now = self._clock()
        validate.integer("serial", serial, minimum=1)
        why = _reason("reason", reason)
        rows = self._check(staff_id, serial, now)
        if not rows:
            raise NotFound(
                "DETAILS_NOT_FOUND",
                f"this agency's log share holds no exchange {serial}",
                {"serial": str(serial)},
            )
        deferral = Deferral(serial, until, why, staff_id, now)
        self._store.set_deferral(deferral)
        event(
            _log, "disclosure deferred", serial=serial, until=until.isoformat(), staff_id=staff_id
        )
        return deferral
