"""The portal's view of the hub's log (hub_server/personal.py, deferral.py) on SQLite and PG.

The hub rig relays real exchanges into a real log with its tree; the person
sees exactly the leaves of their own exchanges, newest first, each proved
against the witnessed checkpoint; a deferred one shows only that it exists.
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

from hub_server.personal import ListQuery, PersonalLog, PersonalPage, decode_token, encode_token
from renkei.errors import RenkeiError
from renkei.tlog import checkpoint, merkle
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry

T = TypeVar("T")


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


async def history(p: PortalRig, n: int, **query: Any) -> PersonalPage:
    return await p.personal.list_entries(p.portal, ListQuery(p.portal_code(n), **query))


async def everything(p: PortalRig, n: int, page_size: int, **query: Any) -> list[Any]:
    """Every page in turn; the tokens and page sizes checked on the way."""
    out: list[Any] = []
    token = ""
    while True:
        page = await history(p, n, page_size=page_size, page_token=token, **query)
        assert len(page.entries) <= page_size
        out += page.entries
        token = page.next_page_token
        if not token:
            return out
        assert len(page.entries) == page_size


def verify(p: PortalRig, page: PersonalPage) -> checkpoint.Checkpoint:
    cp = checkpoint.verify_checkpoint(page.checkpoint, p.verifier, [], require_witness=False)
    for e in page.entries:
        if e.entry:
            assert e.leaf_hash == merkle.leaf_hash(e.entry)
        merkle.verify_inclusion(e.leaf_hash, e.leaf_index, cp.size, e.inclusion_proof, cp.root_hash)
    return cp


def test_a_person_sees_their_own_entries_newest_first_each_proved(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        mine = [await p.exchange(1), await p.exchange(2), await p.exchange(1)]
        await p.witness()
        page = await history(p, 1)
        assert [(e.serial, Entry.decode(e.entry).kind) for e in page.entries] == [
            (mine[2], OUTCOME),
            (mine[2], EXCHANGE),
            (mine[0], OUTCOME),
            (mine[0], EXCHANGE),
        ]
        assert page.next_page_token == ""
        verify(p, page)
        first = page.entries[1]
        decoded = Entry.decode(first.entry)
        assert (decoded.requester, decoded.provider, decoded.person) == (
            CITY,
            PENSION,
            p.rig.person_key(1),
        )
        assert first.legal_basis_text == "年金の支給に関する事務"
        assert (first.requester_name, first.provider_name) == (CITY, PENSION)
        assert first.deferral is None
        # The other person sees theirs only.
        other = await history(p, 2)
        assert {e.serial for e in other.entries} == {mine[1]}

    on_rig(engine, scenario)


def test_pages_filters_and_leaves_beyond_the_checkpoint(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        serials = []
        for _ in range(4):
            serials.append(await p.exchange(1))
            p.rig.clock.advance(3600)
        at_third = p.rig.clock() - timedelta(hours=2)  # the third exchange's time
        denied = await refusal(p.exchange(1, requester=TAX))  # logged all the same
        assert denied.reason == "NO_ITEM_FOR_REQUESTER"
        await p.witness()
        late = await p.exchange(1)  # after the checkpoint: listed, not yet provable
        whole = await history(p, 1, page_size=1000)
        assert len(whole.entries) == 4 * 2 + 1 + 2
        assert [e.serial for e in whole.entries[:2]] == [late, late]
        assert all(not e.inclusion_proof for e in whole.entries[:2])
        verify(p, PersonalPage(whole.entries[2:], whole.checkpoint, ""))
        for size in (1, 3, 4):
            assert await everything(p, 1, size) == whole.entries
        by_tax = await history(p, 1, agency_id=TAX)
        assert {e.serial for e in by_tax.entries} == {serials[-1] + 1}
        window = await history(p, 1, start=at_third, end=at_third + timedelta(hours=1))
        assert {e.serial for e in window.entries} == {serials[2]}

    on_rig(engine, scenario)


def test_refusals_of_the_listing(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        await p.exchange(1)
        code = p.portal_code(1)
        err = await refusal(p.personal.list_entries(p.portal, ListQuery(code)))
        assert (err.code.name, err.reason) == ("UNAVAILABLE", "CHECKPOINT_NOT_YET_SIGNED")
        await p.witness(witnessed=False)  # signed, not cosigned: still nothing to prove against
        err = await refusal(p.personal.list_entries(p.portal, ListQuery(code)))
        assert err.reason == "CHECKPOINT_NOT_YET_SIGNED"
        await p.witness()
        for bad in ("x", "p1.!!!", "p1." + "A" * 80, encode_token(1, 2)[:-1] + "*"):
            err = await refusal(p.personal.list_entries(p.portal, ListQuery(code, page_token=bad)))
            assert (err.reason, err.metadata["field"]) == ("INVALID_FIELD", "page_token")
        err = await refusal(p.personal.list_entries(p.portal, ListQuery(code, page_size=1001)))
        assert err.metadata["field"] == "page_size"
        city_code = p.rig.link_code(1)  # another agency's link code is not the portal's
        err = await refusal(p.personal.list_entries(p.portal, ListQuery(city_code)))
        assert err.reason == "LINK_CODE_FOREIGN"
        with pytest.raises(RenkeiError) as caught:
            p.personal.portal(CITY)
        assert (caught.value.code.name, caught.value.reason) == (
            "PERMISSION_DENIED",
            "CALLER_NOT_PORTAL",
        )
        off = PersonalLog(p.rig.hub, p.store, None, portal_id=PORTAL, clock=p.rig.clock)
        err = await refusal(off.list_entries(p.portal, ListQuery(code)))
        assert (err.code.name, err.reason) == ("FAILED_PRECONDITION", "LOG_TREE_OFF")

    on_rig(engine, scenario)


def test_a_token_round_trips() -> None:
    assert decode_token(encode_token(123456789, 42)) == (123456789, 42)


def test_a_deferred_entry_shows_that_it_exists_and_still_proves(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        serial = await p.exchange(1)
        shown = await p.exchange(1)
        await p.witness()
        until = p.rig.clock() + timedelta(days=30)
        await p.deferrals.defer(p.rig.hub.directory.get(PENSION), serial, until, "刑事訴訟法第47条")
        page = await history(p, 1)
        verify(p, page)
        hidden = [e for e in page.entries if e.serial == serial]
        assert len(hidden) == 2
        for e in hidden:
            assert (e.entry, e.legal_basis_text, e.requester_name, e.provider_name) == (
                b"",
                "",
                "",
                "",
            )
            assert e.deferral is not None
            assert (e.deferral.agency_id, e.deferral.until, e.deferral.legal_reason) == (
                PENSION,
                until,
                "刑事訴訟法第47条",
            )
        assert all(e.entry and e.deferral is None for e in page.entries if e.serial == shown)
        # Lifted by an until in the past; the clock passing a deferral's end lifts it too.
        await p.deferrals.defer(p.rig.city, serial, until + timedelta(days=1), "再延長")
        await p.deferrals.defer(
            p.rig.hub.directory.get(PENSION), serial, p.rig.clock() - timedelta(seconds=1), "解除"
        )
        again = await history(p, 1)
        still = next(e for e in again.entries if e.serial == serial)
        assert still.deferral is not None
        assert still.deferral.agency_id == CITY
        p.rig.clock.advance(timedelta(days=32).total_seconds())
        later = await history(p, 1)
        assert all(e.entry and e.deferral is None for e in later.entries)

    on_rig(engine, scenario)


def test_only_a_party_may_defer(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        serial = await p.exchange(1)
        until = p.rig.clock() + timedelta(days=1)
        tax = p.rig.hub.directory.get(TAX)
        outsider = await refusal(p.deferrals.defer(tax, serial, until, "理由"))
        unknown = await refusal(p.deferrals.defer(p.rig.city, serial + 100, until, "理由"))
        assert (outsider.code.name, outsider.reason, outsider.message) == (
            unknown.code.name,
            unknown.reason,
            unknown.message.replace(str(serial + 100), str(serial)),
        )
        assert outsider.reason == "EXCHANGE_UNKNOWN"
        for reason in ("", "あ" * 401):
            err = await refusal(p.deferrals.defer(p.rig.city, serial, until, reason))
            assert err.metadata["field"] == "legal_reason"
        await p.deferrals.defer(p.rig.city, serial, until, "あ" * 400)

    on_rig(engine, scenario)


def test_a_person_keeps_their_history_across_an_id_key_rotation(engine: Engine) -> None:
    async def scenario(p: PortalRig) -> None:
        before = await p.exchange(1)
        old = p.rig.person(1)
        new = p.rig.id_codes.reissue(old)
        await p.log.add_aliases([(p.rig.hub.person_key(old), p.rig.hub.person_key(new))])
        await p.witness()
        code = p.rig.hub.codec.encode(PORTAL, new)
        page = await p.personal.list_entries(p.portal, ListQuery(code))
        assert {e.serial for e in page.entries} == {before}

    on_rig(engine, scenario)
