"""The register's store on SQLite and PostgreSQL: facts, history and the change feed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from legacy_stubs.registry.model import Address, Name, Resident
from legacy_stubs.registry.population import generate
from legacy_stubs.registry.simulate import simulate_changes
from legacy_stubs.registry.store import RegistryStore, changes, history
from renkei import db
from renkei.errors import FailedPrecondition, InvalidArgument, NotFound

PEOPLE = list(generate(seed=5, count=60))
TSURUMI = Address("神奈川県", "141011", "横浜市 鶴見区", "豊岡町", 3, 12, 5)
CHIYODA = Address("東京都", "131016", "千代田区", "丸の内", 1, 1, 1)

FULL_WIDTH_CODE = "".join(chr(0xFF10 + int(d)) for d in "12345678903")


@pytest.fixture
def store(engine: Engine) -> RegistryStore:
    s = RegistryStore(engine)
    assert s.add_many(PEOPLE, batch=25) == len(PEOPLE)
    return s


def _feed(store: RegistryStore) -> list[tuple[int, str, str]]:
    return [(c.seq, c.kind, c.resident_code) for c in store.changes_since(0)]


def _table_rows(store: RegistryStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_round_trip(store: RegistryStore) -> None:
    assert store.count() == len(PEOPLE)
    for person in PEOPLE:
        assert store.get(person.resident_code) == person
        assert store.exists(person.resident_code)
    assert store.get("12345678903") is None
    assert not store.exists("12345678903")


def test_initial_load_writes_no_history_and_no_feed(store: RegistryStore) -> None:
    assert store.changes_since(0) == []
    assert store.last_seq() == 0
    assert _table_rows(store, history) == 0
    [only] = store.history(PEOPLE[0].resident_code)
    assert only.valid_from is None
    assert only.valid_to is None
    assert only.name == PEOPLE[0].name
    assert only.address == PEOPLE[0].address


def test_a_second_load_adds_to_the_first(store: RegistryStore) -> None:
    more = [p for p in generate(seed=6, count=10)]
    assert store.add_many(more) == 10
    assert store.count() == len(PEOPLE) + 10
    assert store.get(more[-1].resident_code) == more[-1]


def test_a_duplicate_code_fails_the_whole_load(engine: Engine) -> None:
    store = RegistryStore(engine)
    with pytest.raises(sa.exc.IntegrityError):
        store.add_many([*PEOPLE[:5], PEOPLE[0]], batch=2)
    assert store.count() == 0
    store.add_many(PEOPLE[:5])
    with pytest.raises(sa.exc.IntegrityError):
        store.add_many([PEOPLE[10], PEOPLE[3]])
    assert store.count() == 5


def test_move_writes_history_and_feed(store: RegistryStore) -> None:
    person = PEOPLE[0]
    change = store.move(person.resident_code, TSURUMI, date(2026, 2, 1))
    assert change.kind == "move"
    assert change.seq == 1
    assert change.before == {"address": person.address.to_dict()}
    assert change.after == {"address": TSURUMI.to_dict()}
    assert change.after["address"]["text"] == "神奈川県横浜市鶴見区豊岡町3丁目12番5号"
    assert store.get(person.resident_code) == replace(person, address=TSURUMI)
    old, new = store.history(person.resident_code)
    assert (old.valid_from, old.valid_to, old.address) == (None, date(2026, 2, 1), person.address)
    assert (new.valid_from, new.valid_to, new.address) == (date(2026, 2, 1), None, TSURUMI)
    assert store.changes_since(0) == [change]


def test_every_kind_of_change_appears_in_history_and_in_the_feed_in_order(
    store: RegistryStore,
) -> None:
    person = PEOPLE[1]
    code = person.resident_code
    married = Name(f"佐藤 {person.name.given_kanji}", f"サトウ {person.name.given_kana}")
    new_code = "12345678903"
    store.move(code, TSURUMI, date(2026, 1, 10))
    store.change_name(code, married, date(2026, 3, 1))
    store.move(code, CHIYODA, date(2026, 3, 1))  # same day as the marriage
    code_change = store.change_code(code, new_code, date(2026, 4, 1))
    death = store.record_death(new_code, date(2026, 6, 30))

    assert _feed(store) == [
        (1, "move", code),
        (2, "name_change", code),
        (3, "move", code),
        (4, "code_change", code),
        (5, "death", new_code),
    ]
    assert code_change.before == {"resident_code": code}
    assert code_change.after == {"resident_code": new_code}
    assert death.after == {"status": "deceased", "died_on": "2026-06-30"}

    assert store.get(code) is None
    assert not store.exists(code)
    now = store.get(new_code)
    assert now == Resident(
        new_code, married, person.birth_date, person.sex, CHIYODA, "deceased", date(2026, 6, 30)
    )
    versions = store.history(new_code)
    assert store.history(code) == versions  # the old code still finds the person
    assert [(v.resident_code, v.valid_from, v.valid_to) for v in versions] == [
        (code, None, date(2026, 1, 10)),
        (code, date(2026, 1, 10), date(2026, 3, 1)),
        (code, date(2026, 3, 1), date(2026, 3, 1)),
        (code, date(2026, 3, 1), date(2026, 4, 1)),
        (new_code, date(2026, 4, 1), date(2026, 6, 30)),
        (new_code, date(2026, 6, 30), None),
    ]
    assert [v.name for v in versions] == [person.name] * 2 + [married] * 4
    assert [v.status for v in versions] == ["alive"] * 5 + ["deceased"]
    # Others are untouched.
    assert store.get(PEOPLE[2].resident_code) == PEOPLE[2]


def test_unknown_resident_is_not_found_and_writes_nothing(store: RegistryStore) -> None:
    store.move(PEOPLE[0].resident_code, TSURUMI, date(2026, 1, 2))
    before = _feed(store)
    attempts: list[Callable[[], object]] = [
        lambda: store.move("12345678903", TSURUMI, date(2026, 2, 1)),
        lambda: store.change_name("12345678903", PEOPLE[0].name, date(2026, 2, 1)),
        lambda: store.record_death("12345678903", date(2026, 2, 1)),
        lambda: store.change_code("12345678903", "99999999995", date(2026, 2, 1)),
        lambda: store.history("12345678903"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as err:
            attempt()
        assert err.value.reason == "RESIDENT_UNKNOWN"
        assert err.value.metadata == {"field": "resident_code"}
    assert _feed(store) == before
    assert _table_rows(store, history) == 1


def test_a_change_that_fails_midway_writes_nothing(
    store: RegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = PEOPLE[3]

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    # Fails after the history row and the residents update have been written.
    monkeypatch.setattr(store, "_append", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        store.move(person.resident_code, TSURUMI, date(2026, 2, 1))
    monkeypatch.undo()
    assert store.get(person.resident_code) == person
    assert len(store.history(person.resident_code)) == 1
    assert _table_rows(store, history) == 0
    assert _table_rows(store, changes) == 0
    # And the store still works: the feed starts at 1 (SQLite) or continues (PostgreSQL
    # sequences never roll back), always after what was there.
    assert store.move(person.resident_code, TSURUMI, date(2026, 2, 1)).seq >= 1


def test_refusals_name_their_field(store: RegistryStore) -> None:
    code = PEOPLE[4].resident_code
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: store.move(code, PEOPLE[4].address, date(2026, 2, 1)), "new_address"),
        (
            lambda: store.move(
                code, replace(TSURUMI, municipality_code="141003"), date(2026, 2, 1)
            ),
            "new_address.municipality_code",
        ),
        (lambda: store.change_name(code, PEOPLE[4].name, date(2026, 2, 1)), "new_name"),
        (
            lambda: store.change_name(code, Name("山田 花子", "やまだ はなこ"), date(2026, 2, 1)),
            "new_name.kana",
        ),
        (lambda: store.change_code(code, "12345678904"), "new"),
        (lambda: store.change_code(FULL_WIDTH_CODE, "12345678903"), "old"),
        (lambda: store.change_code(code, code), "new"),
        (
            lambda: store.record_death(code, PEOPLE[4].birth_date.replace(year=1900)),
            "effective_date",
        ),
        (lambda: store.changes_since(0, limit=0), "limit"),
    ]
    for attempt, field in cases:
        with pytest.raises(InvalidArgument) as err:
            attempt()
        assert err.value.metadata == {"field": field}, field
    assert _feed(store) == []


def test_effective_dates_cannot_go_back_before_the_current_facts(store: RegistryStore) -> None:
    code = PEOPLE[5].resident_code
    store.move(code, TSURUMI, date(2026, 5, 1))
    with pytest.raises(InvalidArgument) as err:
        store.change_name(code, Name("佐藤 花子", "サトウ ハナコ"), date(2026, 4, 30))
    assert err.value.metadata == {"field": "effective_date"}
    assert len(_feed(store)) == 1


def test_the_dead_do_not_move_marry_die_again_or_change_code(store: RegistryStore) -> None:
    code = PEOPLE[6].resident_code
    store.record_death(code, date(2026, 1, 5))
    deceased_attempts: list[Callable[[], object]] = [
        lambda: store.move(code, TSURUMI, date(2026, 2, 1)),
        lambda: store.change_name(code, Name("佐藤 花子", "サトウ ハナコ"), date(2026, 2, 1)),
        lambda: store.record_death(code, date(2026, 2, 1)),
        lambda: store.change_code(code, "12345678903", date(2026, 2, 1)),
    ]
    for attempt in deceased_attempts:
        with pytest.raises(FailedPrecondition) as err:
            attempt()
        assert err.value.reason == "RESIDENT_DECEASED"
    assert store.exists(code)  # the record stays, as 除票
    assert len(_feed(store)) == 1


def test_a_code_cannot_be_reused(store: RegistryStore) -> None:
    a, b = PEOPLE[7].resident_code, PEOPLE[8].resident_code
    with pytest.raises(FailedPrecondition) as err:
        store.change_code(a, b, date(2026, 2, 1))
    assert err.value.reason == "RESIDENT_CODE_IN_USE"
    store.change_code(a, "12345678903", date(2026, 2, 1))
    with pytest.raises(FailedPrecondition) as err:
        store.change_code(b, a, date(2026, 2, 1))  # a is retired, never handed out again
    assert err.value.reason == "RESIDENT_CODE_IN_USE"
    assert [kind for _, kind, _ in _feed(store)] == ["code_change"]


def test_birth_adds_a_resident_with_a_feed_entry(store: RegistryStore) -> None:
    baby = Resident(
        "12345678903", Name("山田 花子", "ヤマダ ハナコ"), date(2026, 3, 3), "2", TSURUMI
    )
    change = store.record_birth(baby)
    assert (change.kind, change.effective_date, change.before) == ("birth", date(2026, 3, 3), {})
    assert change.after == baby.to_dict()
    assert store.get(baby.resident_code) == baby
    assert store.count() == len(PEOPLE) + 1
    [version] = store.history(baby.resident_code)
    assert version.valid_from == date(2026, 3, 3)
    with pytest.raises(FailedPrecondition):
        store.record_birth(replace(baby, name=Name("山田 次郎", "ヤマダ ジロウ")))


def test_changes_since_pages_through_the_feed_in_seq_order(store: RegistryStore) -> None:
    day = date(2026, 2, 1)
    for i in range(25):
        person = PEOPLE[10 + i]
        target = TSURUMI if person.address != TSURUMI else CHIYODA
        store.move(person.resident_code, target, day)
    everything = store.changes_since(0, limit=1000)
    assert [c.seq for c in everything] == list(range(1, 26))
    pages: list[list[int]] = []
    since = 0
    while page := store.changes_since(since, limit=10):
        pages.append([c.seq for c in page])
        since = page[-1].seq
    assert pages == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
    assert store.changes_since(25) == []
    assert store.changes_since(7, limit=2) == everything[7:9]
    assert store.last_seq() == 25
    assert everything[0].recorded_at is not None
    assert everything[0].recorded_at.tzinfo is not None


def test_simulation_is_reproducible_and_consistent(engine: Engine, tmp_path: Path) -> None:
    store = RegistryStore(engine)
    store.add_many(PEOPLE)
    made = simulate_changes(store, seed=12, n=60)
    assert made == store.changes_since(0)
    assert [c.seq for c in made] == list(range(1, 61))
    assert [c.effective_date for c in made] == sorted(c.effective_date for c in made)
    assert {c.kind for c in made} == {"move", "name_change", "death", "birth", "code_change"}

    twin_engine = db.create_engine(db.sqlite_url(str(tmp_path / "twin.db")))
    try:
        twin = RegistryStore(twin_engine)
        twin.add_many(PEOPLE)
        assert simulate_changes(twin, seed=12, n=60) == made  # recorded_at aside
        assert simulate_changes(twin, seed=10, n=5) != simulate_changes(store, seed=12, n=5)
    finally:
        twin_engine.dispose()

    for c in made:
        if c.kind == "move":
            assert (
                c.before["address"]["municipality_code"] != c.after["address"]["municipality_code"]
            )
        elif c.kind == "name_change":
            old, new = Name.from_dict(c.before["name"]), Name.from_dict(c.after["name"])
            assert old.given_kanji == new.given_kanji
            assert old.given_kana == new.given_kana
            assert old.family_kanji != new.family_kanji
        elif c.kind == "death":
            dead = store.history(c.resident_code)[-1]
            assert dead.status == "deceased"


def test_simulation_continues_after_the_last_effective_date(store: RegistryStore) -> None:
    first = simulate_changes(store, seed=1, n=15)
    second = simulate_changes(store, seed=2, n=15)
    assert second[0].effective_date >= first[-1].effective_date
    assert second[0].seq == first[-1].seq + 1
