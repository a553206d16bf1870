"""Applications for details (hub_server/details.py) on the hub rig, on SQLite and PostgreSQL.

The first call is an exchange of its own in the hub's log, shown in the
person's history; asking again is a fetch of it. The agency is a scripted
DisclosureService; whatever is not the person's is DETAILS_NOT_FOUND alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import Engine
from support.hub_fakes import CITY, PENSION, TAX
from support.personal_fakes import PORTAL, PortalRig, portal_rig

from hub_server.details import DetailsResult, Disclosed
from hub_server.directory import Agency
from hub_server.log_store import OK
from hub_server.personal import DISCLOSURE_AFFAIR, DISCLOSURE_INFO_KIND, DISCLOSURE_ITEM, ListQuery
from renkei.errors import RenkeiError, Unavailable
from renkei.tlog.entry import EXCHANGE, FETCH, OUTCOME, Entry

T = TypeVar("T")
APP = "application-0001"


def on_rig(engine: Engine, scenario: Callable[[PortalRig], Awaitable[T]]) -> T:
    async def run() -> T:
        p = portal_rig(engine)
        try:
            return await scenario(p)
        finally:
            p.close()

    return asyncio.run(run())


async def refusal(coro: Coroutine[Any, Any, object]) -> RenkeiError:
    with pytest.raises(RenkeiError) as caught:
        await coro
    return caught.value


def ask(
    p: PortalRig, n: int, serial: int, agency: str = PENSION, app: str = APP
) -> Coroutine[Any, Any, DetailsResult]:
    return p.desk.request(p.portal, p.portal_code(n), serial, agency, app, 5.0)


def test_pending_then_answered_the_application_logged_then_fetched(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        serial = await p.exchange(1)
        first = await ask(p, 1, serial)
        assert first.state == "PENDING"
        ((agency, call, timeout),) = p.disclosure.asked
        assert (agency, call.serial, call.application_id, call.recipient_agency_id) == (
            PENSION,
            serial,
            APP,
            PORTAL,
        )
        assert call.request_serial == first.request_serial
        # The agency's own link code for the person, never the portal's.
        assert p.rig.hub.codec.decode(PENSION, call.link_code)[0] == p.rig.person(1)
        assert 0 < timeout <= 5.0 - 0.05
        row = p.repo.row(first.request_serial)
        assert row is not None
        assert (row.entry.requester_agency_id, row.entry.provider_agency_id) == (PORTAL, PENSION)
        assert (row.entry.info_kind, row.entry.legal_basis_item) == (
            DISCLOSURE_INFO_KIND,
            DISCLOSURE_ITEM,
        )
        assert (row.entry.person_key, row.outcome) == (p.rig.person_key(1), OK)
        kinds = [Entry.decode(r.entry or b"").kind for r in first.receipts]
        assert kinds == [EXCHANGE, OUTCOME]

        p.disclosure.script = lambda a, c: Disclosed("ANSWERED", b"sealed to the portal")
        rows_before = len(p.repo.rows())
        second = await ask(p, 1, serial)
        assert (second.state, second.sealed_details) == ("ANSWERED", b"sealed to the portal")
        assert second.request_serial == first.request_serial
        assert len(p.repo.rows()) == rows_before  # no new exchange
        assert [(o, r) for _, o, r in p.repo.fetches(first.request_serial)] == [(OK, "")]
        assert [Entry.decode(r.entry or b"").kind for r in second.receipts] == [FETCH]

        await p.witness()
        page = await p.personal.list_entries(p.portal, ListQuery(p.portal_code(1)))
        applied = [e for e in page.entries if e.serial == first.request_serial]
        assert [Entry.decode(e.entry).kind for e in applied] == [FETCH, OUTCOME, EXCHANGE]
        assert applied[0].legal_basis_text == DISCLOSURE_AFFAIR
        assert (applied[0].requester_name, applied[0].provider_name) == ("マイポータル", PENSION)
        other = await p.personal.list_entries(p.portal, ListQuery(p.portal_code(2)))
        assert other.entries == []

    on_rig(engine, scenario)


def test_what_is_not_the_persons_is_not_found_alike(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        mine = await p.exchange(1)
        theirs = await p.exchange(2)
        refusals = [
            await refusal(ask(p, 1, theirs)),  # another person's exchange
            await refusal(ask(p, 1, mine, agency=TAX)),  # an agency that was no party
            await refusal(ask(p, 1, mine, agency=PORTAL)),
            await refusal(ask(p, 1, theirs + 1000)),  # no such serial
            await refusal(ask(p, 1, 0)),
        ]
        await ask(p, 1, mine)
        refusals.append(await refusal(ask(p, 2, mine)))  # the application id of another person
        refusals.append(await refusal(ask(p, 1, mine, agency=CITY)))  # same id, another agency
        assert {(e.code.name, e.reason, e.message) for e in refusals} == {
            ("NOT_FOUND", "DETAILS_NOT_FOUND", refusals[0].message)
        }
        assert len(p.disclosure.asked) == 1
        for bad in ("short", "x" * 65, "has space in it..", "ãpplication-00001"):
            err = await refusal(ask(p, 1, mine, app=bad))
            assert (err.reason, err.metadata["field"]) == ("INVALID_FIELD", "application_id")

    on_rig(engine, scenario)


def test_an_unreachable_agency_is_logged_as_the_applications_outcome(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        serial = await p.exchange(1)

        def down(agency: Agency, call: object) -> Disclosed | BaseException:
            return Unavailable("PROVIDER_UNAVAILABLE", "connection refused")

        p.disclosure.script = down
        err = await refusal(ask(p, 1, serial))
        assert (err.code.name, err.reason) == ("UNAVAILABLE", "PROVIDER_UNAVAILABLE")
        request_serial = int(err.metadata["serial"])
        row = p.repo.row(request_serial)
        assert row is not None
        assert (row.outcome, row.reason) == (
            "UNAVAILABLE",
            "PROVIDER_UNAVAILABLE",
        )
        err = await refusal(ask(p, 1, serial))  # asking again: a failed fetch, logged
        assert err.metadata["serial"] == str(request_serial)
        assert [(o, r) for _, o, r in p.repo.fetches(request_serial)] == [
            ("UNAVAILABLE", "PROVIDER_UNAVAILABLE")
        ]

    on_rig(engine, scenario)


def test_a_deferral_at_the_hub_answers_deferred_without_asking_the_agency(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        serial = await p.exchange(1)
        until = p.rig.clock() + timedelta(days=10)
        await p.deferrals.defer(p.rig.city, serial, until, "調査中")
        got = await ask(p, 1, serial)
        assert got.state == "DEFERRED"
        assert got.deferral is not None
        assert (got.deferral.agency_id, got.deferral.until, got.deferral.legal_reason) == (
            CITY,
            until,
            "調査中",
        )
        assert p.disclosure.asked == []
        row = p.repo.row(got.request_serial)
        assert row is not None
        assert row.outcome == OK

    on_rig(engine, scenario)
