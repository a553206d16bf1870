"""The portal's calls refuse what they must before any store is read (hub_server/personal.py).

On the hub rig's fakes: no database. The listing and applications on a real
log are in tests/integration/test_personal_log.py and test_details_application.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.hub_fakes import CITY, hub_rig

from hub_server.details import DetailsDesk
from hub_server.directory import Agency, Directory
from hub_server.personal import ListQuery, PersonalLog, decode_token, encode_token
from renkei import codes
from renkei.errors import RenkeiError

PORTAL = "portal"


class NoStore:
    """A store that must not be read: every refusal here comes first."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was read ({name})")


def _personal(tree: bool = True) -> tuple[PersonalLog, Agency]:
    rig = hub_rig()
    portal = Agency(PORTAL, "マイポータル", frozenset(), "", bytes(32))
    rig.hub.directory = Directory([*rig.hub.directory, portal])
    rig.keyring[PORTAL] = codes.AgencyKeys(1, {1: codes.new_key()})
    rig.hub.codec = codes.LinkCodec(rig.keyring, rig.clock)
    proofs: Any = NoStore() if tree else None
    personal = PersonalLog(rig.hub, NoStore(), proofs, portal_id=PORTAL, clock=rig.clock)
    return personal, portal


def _refused(coro: Any) -> RenkeiError:
    with pytest.raises(RenkeiError) as caught:
        asyncio.run(coro)
    return caught.value


def test_only_the_portal_is_served() -> None:
    personal, portal = _personal()
    assert personal.portal(PORTAL) == portal
    with pytest.raises(RenkeiError) as caught:
        personal.portal(CITY)
    assert (caught.value.code.name, caught.value.reason) == (
        "PERMISSION_DENIED",
        "CALLER_NOT_PORTAL",
    )
    with pytest.raises(RenkeiError) as caught:
        personal.portal("unknown-agency")
    assert caught.value.reason == "CALLER_NOT_REGISTERED"


def test_a_hub_without_the_tree_refuses_the_listing() -> None:
    personal, portal = _personal(tree=False)
    err = _refused(personal.list_entries(portal, ListQuery("anything")))
    assert (err.code.name, err.reason) == ("FAILED_PRECONDITION", "LOG_TREE_OFF")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (ListQuery("", page_size=-1), "page_size"),
        (ListQuery("", page_size=1001), "page_size"),
        (ListQuery("", page_token="not a token"), "page_token"),
        (ListQuery("", agency_id="no spaces"), "agency_id"),
        (ListQuery(""), "link_code"),
    ],
)
def test_malformed_listing_requests(query: ListQuery, field: str) -> None:
    personal, portal = _personal()
    err = _refused(personal.list_entries(portal, query))
    assert (err.reason, err.metadata["field"]) == ("INVALID_FIELD", field)


def test_page_tokens_round_trip_and_forgeries_are_refused() -> None:
    assert decode_token(encode_token(9_000_000_000, 17)) == (9_000_000_000, 17)
    too_big = encode_token(2**63, 1)  # past BIGINT: refused, never sent to the database
    for bad in ("", "p1.", "p1.LTEuMg", "p1.MS4", "p2." + encode_token(1, 1)[3:], too_big):
        with pytest.raises(RenkeiError) as caught:
            decode_token(bad)
        assert caught.value.metadata["field"] == "page_token"


@pytest.mark.parametrize("app", ["", "too-short", "x" * 65, "space in the id!!", "ａｂｃ" * 6])
def test_an_application_id_is_16_to_64_safe_characters(app: str) -> None:
    personal, portal = _personal()
    desk = DetailsDesk(personal, NoStore(), NoStore())  # type: ignore[arg-type]
    err = _refused(desk.request(portal, "code", 1, CITY, app, 5.0))
    assert (err.reason, err.metadata["field"]) == ("INVALID_FIELD", "application_id")
