"""Applications for one exchange's details, from the portal to the agency that keeps them (R26).

The first call for an ``application_id`` is an exchange of its own: a row in
the hub's log (and its entries in the verifiable log) with the portal as
requester, the agency as provider, info kind 情報提供等記録開示 under 番号法第23条
and the person's key, so it shows in the person's own history. The agency's
``DisclosureService.Disclose`` is then asked, with the agency's own link code
for the person. Asking again with the same id asks the agency again and is
logged as a fetch of that exchange, not as a new one.

Whatever is not the person's (a serial of someone else's, an agency that was
no party to it, an application id of another person's) is NOT_FOUND
DETAILS_NOT_FOUND, the same for all, so nothing is learnt about it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from hub_server.directory import Agency, check_agency_id
from hub_server.log_store import OK, PENDING, WRITE_CEILING_SECONDS, LogEntry
from hub_server.personal import (
    DISCLOSURE_INFO_KIND,
    DISCLOSURE_ITEM,
    Person,
    PersonalLog,
)
from hub_server.personal_store import Application, Deferral, Exchange
from hub_server.ports import HubLog
from renkei import deadline
from renkei.errors import NotFound, RenkeiError, invalid_field
from renkei.tlog.entry import Receipt

APPLICATION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# DisclosureState and DetailsState share these names.
PENDING_STATE = "PENDING"
ANSWERED = "ANSWERED"
DEFERRED = "DEFERRED"
REFUSED = "REFUSED"
STATES = (PENDING_STATE, ANSWERED, DEFERRED, REFUSED)
# Kept back from the caller's deadline to send the answer once the last log write is done.
ANSWER_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class DiscloseCall:
    serial: int
    link_code: str  # the agency's own link code for the person
    application_id: str
    recipient_agency_id: str
    request_serial: int


@dataclass(frozen=True, slots=True)
class Disclosed:
    state: str  # one of STATES
    sealed_details: bytes = b""
    deferred_until: datetime | None = None
    deferral_reason: str = ""
    refusal_reason: str = ""
    # Who deferred it: the agency asked, or (the hub's own deferral) either party.
    deferred_by: str = ""


class DisclosureGateway(Protocol):
    async def disclose(self, agency: Agency, call: DiscloseCall, timeout: float) -> Disclosed:
        """The agency's answer; RenkeiError when it cannot be reached or refuses."""
        ...


@dataclass(frozen=True, slots=True)
class DetailsResult:
    state: str
    request_serial: int
    sealed_details: bytes = b""
    deferral: Deferral | None = None
    refusal_reason: str = ""
    receipts: list[Receipt] = field(default_factory=list)


def _not_found() -> NotFound:
    return NotFound(
        "DETAILS_NOT_FOUND",
        "no such exchange of this person's with that agency",
        {"field": "serial"},
    )


class DetailsDesk:
    def __init__(
        self,
        personal: PersonalLog,
        log: HubLog,
        gateway: DisclosureGateway,
        *,
        ceiling: float = 10.0,
        log_margin: float = deadline.HUB_LOG_MARGIN_SECONDS,
        log_ceiling: float = WRITE_CEILING_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._personal = personal
        self._log = log
        self._gateway = gateway
        self._ceiling = ceiling
        self._log_margin = log_margin
        self._log_ceiling = log_ceiling
        self._timer = timer

    async def request(
        self,
        caller: Agency,
        link_code: str,
        serial: int,
        agency_id: str,
        application_id: str,
        time_remaining: float | None,
    ) -> DetailsResult:
        entered = self._timer()
        if not APPLICATION_ID_RE.match(application_id):
            raise invalid_field("application_id", "must be 16 to 64 of A-Z, a-z, 0-9, '_', '-'")
        check_agency_id(agency_id, "agency_id")
        personal, store = self._personal, self._personal.store
        person = await personal.person(link_code)
        known = await asyncio.to_thread(store.application, application_id)
        if known is not None:
            if (
                known.portal_agency_id != caller.agency_id
                or known.person_key not in person.keys
                or known.serial != serial
                or known.agency_id != agency_id
            ):
                raise _not_found()
            return await self._again(known, person, time_remaining, entered)
        exchange = await asyncio.to_thread(store.exchange, serial) if serial > 0 else None
        if (
            exchange is None
            or exchange.person_key not in person.keys
            or agency_id not in (exchange.requester, exchange.provider)
            or agency_id == personal.portal_id
        ):
            raise _not_found()
        return await self._first(
            caller, exchange, agency_id, application_id, person, time_remaining, entered
        )

    async def _first(
        self,
        caller: Agency,
        exchange: Exchange,
        agency_id: str,
        application_id: str,
        person: Person,
        time_remaining: float | None,
        entered: float,
    ) -> DetailsResult:
        personal = self._personal
        agency = personal.hub.directory.get(agency_id)
        now = personal.now()
        row = LogEntry(
            now,
            DISCLOSURE_ITEM,
            caller.agency_id,
            agency.agency_id,
            DISCLOSURE_INFO_KIND,
            personal.hub.policy.version,
            person.person_key,
        )
        begun = await self._log.begin_many(
            [(row, PENDING, "")], self._log_timeout(time_remaining, entered)
        )
        request_serial = begun[0].serial
        tags = {"serial": str(request_serial)}
        application = Application(
            application_id,
            caller.agency_id,
            person.person_key,
            exchange.serial,
            agency.agency_id,
            request_serial,
            now,
        )
        try:
            added = await asyncio.to_thread(personal.store.add_application, application)
        except BaseException as err:
            await _log_failure(err, self._finisher(request_serial, time_remaining, entered), tags)
            raise
        if not added:  # the same id, first asked at the same moment by another call
            await self._log.finish_many(
                [(request_serial, "CANCELLED", "NOT_RELAYED")],
                self._log_timeout(time_remaining, entered),
            )
            known = await asyncio.to_thread(personal.store.application, application_id)
            if known is None or known.person_key not in person.keys:
                raise _not_found()
            return await self._again(known, person, time_remaining, entered)
        receipts = [r for r in begun if r.entry]
        try:
            answer = await self._ask(
                agency, exchange.serial, application, person, time_remaining, entered
            )
        except (Exception, asyncio.CancelledError) as err:
            await _log_failure(err, self._finisher(request_serial, time_remaining, entered), tags)
            raise
        try:
            done = await self._log.finish_many(
                [(request_serial, OK, "")], self._log_timeout(time_remaining, entered)
            )
        except RenkeiError as err:  # never answered without the application's outcome
            err.metadata.update(tags)
            raise
        receipts += [r for r in done if r.entry]
        return _result(answer, exchange.serial, request_serial, receipts)

    async def _again(
        self,
        known: Application,
        person: Person,
        time_remaining: float | None,
        entered: float,
    ) -> DetailsResult:
        agency = self._personal.hub.directory.get(known.agency_id)
        serial = known.request_serial
        tags = {"serial": str(serial)}

        async def record(outcome: str, reason: str) -> Receipt | None:
            return await self._log.record_fetch(
                serial, outcome, reason, self._log_timeout(time_remaining, entered)
            )

        try:
            answer = await self._ask(agency, known.serial, known, person, time_remaining, entered)
        except (Exception, asyncio.CancelledError) as err:
            await _log_failure(err, record, tags)
            raise
        try:
            receipt = await record(OK, "")
        except RenkeiError as err:
            err.metadata.update(tags)
            raise
        kept = [receipt] if receipt is not None and receipt.entry else []
        return _result(answer, known.serial, serial, kept)

    async def _ask(
        self,
        agency: Agency,
        serial: int,
        application: Application,
        person: Person,
        time_remaining: float | None,
        entered: float,
    ) -> Disclosed:
        """The agency's answer, or the hub's own deferral of the exchange (the agency unasked)."""
        personal = self._personal
        deferred = await asyncio.to_thread(
            personal.store.deferrals_in_force, [serial], personal.now()
        )
        if serial in deferred:
            d = deferred[serial]
            return Disclosed(
                DEFERRED,
                deferred_until=d.until,
                deferral_reason=d.legal_reason,
                deferred_by=d.agency_id,
            )
        left = self._left(time_remaining, entered)
        timeout = deadline.budget(
            self._ceiling,
            left,
            deadline.margin(left, self._log_margin),
            for_what="to ask the agency",
        )
        call = DiscloseCall(
            serial,
            personal.hub.codec.encode(agency.agency_id, person.id_code),
            application.application_id,
            application.portal_agency_id,
            application.request_serial,
        )
        answer = await self._gateway.disclose(agency, call, timeout)
        return answer if answer.deferred_by else replace(answer, deferred_by=agency.agency_id)

    def _finisher(
        self, serial: int, time_remaining: float | None, entered: float
    ) -> Callable[[str, str], Awaitable[object]]:
        async def finish(outcome: str, reason: str) -> object:
            return await self._log.finish_many(
                [(serial, outcome, reason)], self._log_timeout(time_remaining, entered)
            )

        return finish

    def _left(self, time_remaining: float | None, entered: float) -> float | None:
        return None if time_remaining is None else time_remaining - (self._timer() - entered)

    def _log_timeout(self, time_remaining: float | None, entered: float) -> float:
        left = self._left(time_remaining, entered)
        if left is None:
            return self._log_ceiling
        return min(self._log_ceiling, max(left - ANSWER_SECONDS, ANSWER_SECONDS))


def _result(
    answer: Disclosed, serial: int, request_serial: int, receipts: list[Receipt]
) -> DetailsResult:
    deferral = None
    if answer.state == DEFERRED and answer.deferred_until is not None:
        deferral = Deferral(
            serial, answer.deferred_by, answer.deferred_until, answer.deferral_reason
        )
    return DetailsResult(
        answer.state,
        request_serial,
        answer.sealed_details if answer.state == ANSWERED else b"",
        deferral,
        answer.refusal_reason if answer.state == REFUSED else "",
        receipts,
    )


async def _log_failure(
    err: BaseException, finish: Callable[[str, str], Awaitable[object]], tags: dict[str, str]
) -> None:
    """Log the outcome of an application whose agency call failed, however it failed.

    As the relay path does (linkage.py): a refusal keeps its code and reason and
    gains the serial; a cancelled or broken call is logged all the same, shielded.
    """
    try:
        if isinstance(err, RenkeiError):
            await finish(err.code.name, err.reason)
            err.metadata.update(tags)
        elif isinstance(err, asyncio.CancelledError):
            await asyncio.shield(finish("CANCELLED", "CALLER_CANCELLED"))
        elif isinstance(err, Exception):
            await asyncio.shield(finish("INTERNAL", "HUB_FAILURE"))
    except RenkeiError as log_err:
        if isinstance(err, asyncio.CancelledError):
            return
        log_err.metadata.update(tags)
        raise log_err from err
