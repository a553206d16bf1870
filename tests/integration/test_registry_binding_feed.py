"""The change feed per agency (R14, R20) on SQLite and PostgreSQL.

The binding party's store (handles, queues) and the mocked register (read
through its ``ResidentSource`` adapter) are two databases, as deployed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.databases import POSTGRES_URL, drop_schemas

from comm_server.binding.person_facts import FeedItem, PersonFacts, PersonFactsStore
from legacy_stubs.registry.population import generate
from legacy_stubs.registry.resident_code import new_resident_code
from legacy_stubs.registry.source import JukiMockSource
from legacy_stubs.registry.store import RegistryStore
from registry_binding.store import BindingStore
from registry_binding.subscriptions import Subscriptions
from renkei import db
from renkei.errors import FailedPrecondition, InvalidArgument
from renkei.residents import Address, Name

PEOPLE = list(generate(seed=9, count=20))
CHIYODA = Address("東京都", "131016", "千代田区", "丸の内", 1, 1, 1)
CITY, PENSION = "141003", "nenkin"


@pytest.fixture
def store(engine: Engine) -> RegistryStore:
    """The register, filled."""
    s = RegistryStore(engine)
    s.add_many(PEOPLE)
    return s


@pytest.fixture
def binding_engine(engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    """The binding party's own database, on the same backend as ``engine``."""
    if engine.dialect.name == "sqlite":
        eng = db.create_engine(db.sqlite_url(str(tmp_path / "registry_binding.db")))
        yield eng
        eng.dispose()
        return
    schema = f"t{uuid.uuid4().hex[:12]}"
    eng = db.create_engine(POSTGRES_URL, schema=schema)
    yield eng
    eng.dispose()
    drop_schemas(schema)


@pytest.fixture
def subs(store: RegistryStore, binding_engine: Engine) -> Subscriptions:
    return Subscriptions(BindingStore(binding_engine), JukiMockSource(store))


def _codes(*people: int) -> list[str]:
    return [PEOPLE[i].resident_code for i in people]


def test_handles_are_per_agency_and_stable(store: RegistryStore, subs: Subscriptions) -> None:
    city = subs.subscribe(CITY, _codes(0, 1, 2))
    again = subs.subscribe(CITY, _codes(2, 0))
    pension = subs.subscribe(PENSION, _codes(0, 1))
    assert again == [city[2], city[0]]
    assert len(set(city) | set(pension)) == 5  # nothing shared between agencies
    for handle in city + pension:
        assert len(handle) == 24
        assert not handle.isdigit()
        assert handle not in _codes(*range(20))
    assert subs.subscribe(CITY, ["12345678903"]) == [""]  # not in the register
    assert {k: sorted(v) for k, v in subs.handles().items()} == {
        CITY: sorted(city),
        PENSION: sorted(pension),
    }


def test_each_agency_reads_only_its_own_residents_changes(
    store: RegistryStore, subs: Subscriptions
) -> None:
    city = subs.subscribe(CITY, _codes(0, 1))
    pension = subs.subscribe(PENSION, _codes(1))
    store.move(PEOPLE[0].resident_code, CHIYODA, date(2026, 5, 1))
    store.record_death(PEOPLE[1].resident_code, date(2026, 5, 2))
    store.move(PEOPLE[5].resident_code, CHIYODA, date(2026, 5, 3))  # nobody follows them

    entries, cursor, more = subs.list_changes(CITY, 0, 100)
    assert not more
    assert [(e.handle, e.kind) for e in entries] == [
        (city[0], "subscribed"),
        (city[1], "subscribed"),
        (city[0], "move"),
        (city[1], "death"),
    ]
    # Facts are the current ones, whatever the entry.
    assert entries[0].resident.address == CHIYODA
    assert entries[1].resident.status == "deceased"
    assert entries[2].effective_date == date(2026, 5, 1)
    assert cursor == entries[-1].id

    theirs, _, _ = subs.list_changes(PENSION, 0, 100)
    assert [(e.handle, e.kind) for e in theirs] == [
        (pension[0], "subscribed"),
        (pension[0], "death"),
    ]
    assert subs.list_changes("mhlw", 0, 100) == ([], 0, False)


def test_pages_and_resuming_from_a_cursor(store: RegistryStore, subs: Subscriptions) -> None:
    subs.subscribe(CITY, _codes(0, 1, 2))
    first, cursor, more = subs.list_changes(CITY, 0, 2)
    assert (len(first), more) == (2, True)
    rest, end, more = subs.list_changes(CITY, cursor, 2)
    assert (len(rest), more) == (1, False)
    assert subs.list_changes(CITY, end, 2) == ([], end, False)
    store.change_name(PEOPLE[2].resident_code, Name("佐藤 花子", "サトウ ハナコ"), date(2026, 6, 1))
    [new], _, _ = subs.list_changes(CITY, end, 2)
    assert (new.kind, new.resident.name.kanji) == ("name_change", "佐藤 花子")
    with pytest.raises(InvalidArgument):
        subs.list_changes(CITY, 0, 0)
    with pytest.raises(InvalidArgument):
        subs.list_changes(CITY, -1, 10)


def test_a_code_change_keeps_the_subscription_and_is_not_sent(
    store: RegistryStore, subs: Subscriptions
) -> None:
    [handle] = subs.subscribe(CITY, _codes(3))
    _, cursor, _ = subs.list_changes(CITY, 0, 10)
    store.change_code(PEOPLE[3].resident_code, "12345678903", date(2026, 7, 1))
    assert subs.list_changes(CITY, cursor, 10)[0] == []
    store.move("12345678903", CHIYODA, date(2026, 7, 2))
    [moved], _, _ = subs.list_changes(CITY, cursor, 10)
    assert (moved.handle, moved.kind, moved.resident.address) == (handle, "move", CHIYODA)
    assert moved.resident.resident_code == "12345678903"  # the registry's own view


def _facts(municipality: str, *, deceased: bool = False) -> PersonFacts:
    return PersonFacts(
        kind="deceased" if deceased else "moved",
        effective_date="2026-05-01",
        name="山田 太郎",
        kana="ヤマダ タロウ",
        birth_date="1980-04-01",
        sex="1",
        address="東京都千代田区丸の内1丁目1番1号",
        municipality_code=municipality,
        municipality="千代田区",
        deceased=deceased,
        died_on="2026-05-01" if deceased else None,
    )


def test_the_agency_keeps_the_latest_facts_and_its_cursor(engine: Engine) -> None:
    facts = PersonFactsStore(engine)
    assert facts.cursor() == ""
    # An entry may arrive before the binding that asked for it is stored.
    assert facts.apply([FeedItem("h1", _facts("141003"))], "1") == 1
    assert facts.facts_for("L-1") is None
    facts.remember_handle("L-1", "h1")
    facts.remember_handle("L-1", "h1")  # again: a no-op
    assert facts.current_municipality("L-1") == "141003"
    facts.apply(
        [FeedItem("h1", _facts("131016")), FeedItem("h1", _facts("131016", deceased=True))], "3"
    )
    again = PersonFactsStore(engine)  # a restart
    assert again.cursor() == "3"
    got = again.facts_for("L-1")
    assert got is not None
    assert got.deceased
    assert got.municipality_code == "131016"
    assert again.all_handles() == ["h1"]
    with pytest.raises(FailedPrecondition) as err:
        again.remember_handle("L-1", "h2")
    assert err.value.reason == "REGISTRY_HANDLE_CONFLICT"


def test_one_batch_mixing_known_new_repeated_and_unknown_codes(
    store: RegistryStore, subs: Subscriptions
) -> None:
    # The look-up joins residents to THIS agency's handles only: another agency's
    # handles for the same people must neither be answered nor hide a new one.
    pension = subs.subscribe(PENSION, _codes(0, 1))
    known = subs.subscribe(CITY, _codes(1))
    got = subs.subscribe(CITY, [*_codes(0, 1, 0, 3), "12345678903"])
    assert got[1] == known[0]
    assert got[0] == got[2]
    assert got[4] == ""
    assert len({got[0], got[1], got[3]}) == 3
    assert not {got[0], got[1], got[3]} & set(pension)
    entries, _, more = subs.list_changes(CITY, 0, 10)
    assert not more
    assert [e.handle for e in entries] == [known[0], got[0], got[3]]  # one each, in order
    assert all(e.kind == "subscribed" for e in entries)


def test_the_register_keeps_no_handles_and_the_binding_store_no_facts(
    store: RegistryStore, subs: Subscriptions, binding_engine: Engine
) -> None:
    subs.subscribe(CITY, _codes(0))
    register = set(sa.inspect(store.engine).get_table_names())
    assert register == {"residents", "history", "changes", "feed_lock"}
    own = set(sa.inspect(binding_engine).get_table_names())
    # The card CA's cards (card serial -> resident code) and who asked to bind them (issue 15).
    assert own == {
        "subscriptions",
        "deliveries",
        "feed_state",
        "consent_log",
        "cards",
        "card_bindings",
    }


def test_changes_before_a_subscription_are_not_queued_for_it(
    store: RegistryStore, subs: Subscriptions
) -> None:
    store.move(PEOPLE[0].resident_code, CHIYODA, date(2026, 5, 1))
    [handle] = subs.subscribe(CITY, _codes(0))
    [entry], _, _ = subs.list_changes(CITY, 0, 10)
    # Only "subscribed", with the facts after the move.
    assert (entry.handle, entry.kind, entry.resident.address) == (handle, "subscribed", CHIYODA)


def test_two_processes_on_one_binding_store_queue_each_change_once(
    store: RegistryStore, binding_engine: Engine
) -> None:
    first = Subscriptions(BindingStore(binding_engine), JukiMockSource(store))
    second = Subscriptions(BindingStore(binding_engine), JukiMockSource(store))
    [handle] = first.subscribe(CITY, _codes(0))
    assert second.subscribe(CITY, _codes(0)) == [handle]
    store.move(PEOPLE[0].resident_code, CHIYODA, date(2026, 5, 1))
    first.catch_up()
    second.catch_up()
    entries, _, _ = second.list_changes(CITY, 0, 10)
    assert [e.kind for e in entries] == ["subscribed", "move"]
    assert first.list_changes(CITY, 0, 10)[0] == entries


def test_the_new_code_finds_the_same_handle_and_chains_of_code_changes(
    store: RegistryStore, subs: Subscriptions
) -> None:
    rng, taken = random.Random(4), {p.resident_code for p in PEOPLE}
    first, second, third = (new_resident_code(rng, taken) for _ in range(3))
    [handle] = subs.subscribe(CITY, _codes(4))
    store.change_code(PEOPLE[4].resident_code, first, date(2026, 7, 1))
    # Not applied yet when the agency binds again under the new code: the same person.
    assert subs.subscribe(CITY, [first]) == [handle]
    store.change_code(first, second, date(2026, 7, 2))
    store.change_code(second, third, date(2026, 7, 3))
    store.record_death(third, date(2026, 7, 4))
    entries, _, _ = subs.list_changes(CITY, 0, 10)
    assert [(e.handle, e.kind) for e in entries] == [(handle, "subscribed"), (handle, "death")]
    assert entries[-1].resident.resident_code == third
    # The old codes are no longer anybody's.
    assert subs.subscribe(CITY, [PEOPLE[4].resident_code, first]) == ["", ""]


def test_a_long_backlog_is_applied_page_by_page(
    store: RegistryStore, subs: Subscriptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry_binding import subscriptions

    monkeypatch.setattr(subscriptions, "FEED_PAGE", 2)
    [handle] = subs.subscribe(CITY, _codes(6))
    here = PEOPLE[6].address
    for day in range(1, 8):
        there = CHIYODA if day % 2 else here
        store.move(PEOPLE[6].resident_code, there, date(2026, 8, day))
        store.move(
            PEOPLE[7].resident_code, CHIYODA if day % 2 else PEOPLE[7].address, date(2026, 8, day)
        )
    entries, _, _ = subs.list_changes(CITY, 0, 100)
    assert [e.kind for e in entries] == ["subscribed"] + ["move"] * 7
    assert [e.effective_date.day for e in entries[1:]] == list(range(1, 8))
    assert {e.handle for e in entries} == {handle}
    assert subs._store.applied_seq() == store.last_seq()
