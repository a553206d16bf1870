"""The ``ResidentSource`` contract, held against the mock's SQL adapter and the test fake.

The same life events go into each register; each must then answer the port's
questions alike (``renkei.residents.ResidentSource``): the binding party's
unit tests run on the fake, the deployment on the adapter, and this is what
lets the one stand for the other.
"""

from __future__ import annotations

import inspect
import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from support.databases import POSTGRES_URL, drop_schemas, postgres_reachable
from support.fake_residents import FakeResidentSource

from legacy_stubs.registry.population import generate
from legacy_stubs.registry.resident_code import new_resident_code
from legacy_stubs.registry.source import JukiMockSource, open_source
from legacy_stubs.registry.store import RegistryStore
from registry_binding.sources import open_source as open_by_kind
from renkei import db
from renkei.config_util import ConfigError
from renkei.residents import RESIDENT_SOURCES, Address, Name, ResidentSource

PEOPLE = [p for p in generate(seed=31, count=12) if p.status == "alive"][:8]
CHIYODA = Address("東京都", "131016", "千代田区", "丸の内", 1, 1, 1)
NEW_CODE = "12345678903"
NEWBORN = replace(
    PEOPLE[0],
    resident_code=new_resident_code(random.Random(31), {p.resident_code for p in PEOPLE}),
    name=Name("山田 花", "ヤマダ ハナ"),
    birth_date=date(2026, 4, 1),
)

# (register that takes the events, the port over it)
Register = tuple[Any, ResidentSource]


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def register(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Register]:
    if request.param == "fake":
        fake = FakeResidentSource(PEOPLE)
        yield fake, fake
        return
    schema = None
    if request.param == "sqlite":
        engine = db.create_engine(db.sqlite_url(str(tmp_path / "registry.db")))
    else:
        if not postgres_reachable():
            pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432")
        schema = f"t{uuid.uuid4().hex[:12]}"
        engine = db.create_engine(POSTGRES_URL, schema=schema)
    store = RegistryStore(engine)
    store.add_many(PEOPLE)
    yield store, JukiMockSource(store)
    engine.dispose()
    if schema is not None:
        drop_schemas(schema)


def _live(register: Register) -> ResidentSource:
    events, source = register
    events.move(PEOPLE[0].resident_code, CHIYODA, date(2026, 5, 1))
    events.change_name(
        PEOPLE[1].resident_code, Name("佐藤 花子", "サトウ ハナコ"), date(2026, 5, 2)
    )
    events.move(PEOPLE[1].resident_code, CHIYODA, date(2026, 5, 3))
    events.record_death(PEOPLE[2].resident_code, date(2026, 5, 4))
    events.change_code(PEOPLE[3].resident_code, NEW_CODE, date(2026, 5, 5))
    events.record_birth(replace(NEWBORN, address=PEOPLE[4].address))
    return source


def test_the_port_has_every_method_the_protocol_names(register: Register) -> None:
    _, source = register
    names = {n for n, _ in inspect.getmembers(ResidentSource) if not n.startswith("_")}
    assert names == {"residents", "lookup", "last_seq", "changes_since", "close"}
    for name in names:
        assert callable(getattr(source, name)), name


def test_an_untouched_register_has_current_facts_and_no_feed(register: Register) -> None:
    _, source = register
    got = {h.current.resident_code: h for h in source.residents()}
    assert {code: h.current for code, h in got.items()} == {p.resident_code: p for p in PEOPLE}
    assert all(h.past == () for h in got.values())
    assert (source.last_seq(), source.changes_since(0)) == (0, [])


def test_history_lookup_and_feed_after_life_events(register: Register) -> None:
    source = _live(register)
    got = {h.current.resident_code: h for h in source.residents()}
    assert len(got) == len(PEOPLE) + 1
    moved = got[PEOPLE[0].resident_code]
    assert moved.current.address == CHIYODA
    [before] = moved.past
    assert (before.address, before.valid_from, before.valid_to) == (
        PEOPLE[0].address,
        None,
        date(2026, 5, 1),
    )
    renamed = got[PEOPLE[1].resident_code]
    assert [v.name.kanji for v in renamed.past] == [PEOPLE[1].name.kanji, "佐藤 花子"]
    assert [v.valid_to for v in renamed.past] == [date(2026, 5, 2), date(2026, 5, 3)]
    assert renamed.current.name.kanji == "佐藤 花子"
    dead = got[PEOPLE[2].resident_code].current
    assert (dead.status, dead.died_on) == ("deceased", date(2026, 5, 4))
    recoded = got[NEW_CODE]
    assert PEOPLE[3].resident_code not in got
    assert [v.resident_code for v in recoded.past] == [PEOPLE[3].resident_code]

    found = source.lookup([PEOPLE[3].resident_code, NEW_CODE, PEOPLE[2].resident_code, "nope"])
    assert set(found) == {NEW_CODE, PEOPLE[2].resident_code}
    assert found[NEW_CODE].name == PEOPLE[3].name
    assert source.lookup([]) == {}

    feed = source.changes_since(0)
    assert [c.seq for c in feed] == list(range(feed[0].seq, feed[0].seq + 6))
    assert source.last_seq() == feed[-1].seq
    assert [(c.kind, c.resident_code) for c in feed] == [
        ("move", PEOPLE[0].resident_code),
        ("name_change", PEOPLE[1].resident_code),
        ("move", PEOPLE[1].resident_code),
        ("death", PEOPLE[2].resident_code),
        ("code_change", PEOPLE[3].resident_code),
        ("birth", NEWBORN.resident_code),
    ]
    assert feed[4].after == {"resident_code": NEW_CODE}
    assert feed[0].after == {"address": CHIYODA.to_dict()}
    assert feed[3].after == {"status": "deceased", "died_on": "2026-05-04"}
    # Pages resume after the last seq read.
    first = source.changes_since(0, 4)
    assert first == feed[:4]
    assert source.changes_since(first[-1].seq, 4) == feed[4:]
    assert source.changes_since(feed[-1].seq) == []


def test_the_fake_and_the_adapter_answer_alike(engine: Engine) -> None:
    fake = FakeResidentSource(PEOPLE)
    store = RegistryStore(engine)
    store.add_many(PEOPLE)
    a, b = _live((fake, fake)), _live((store, JukiMockSource(store)))

    def strip(source: ResidentSource) -> tuple[Any, ...]:
        histories = sorted(source.residents(), key=lambda h: h.current.resident_code)
        changes = [replace(c, seq=0) for c in source.changes_since(0)]
        return histories, changes

    assert strip(a) == strip(b)


def test_the_entry_point_opens_the_mock_by_kind(tmp_path: Path) -> None:
    assert "juki_mock" in {ep.name for ep in entry_points(group=RESIDENT_SOURCES)}
    url = db.sqlite_url(str(tmp_path / "registry.db"))
    RegistryStore(db.create_engine(url)).add_many(PEOPLE[:2])
    source = open_by_kind("juki_mock", {"database_url": url})
    try:
        assert isinstance(source, JukiMockSource)
        assert set(source.lookup([p.resident_code for p in PEOPLE])) == {
            p.resident_code for p in PEOPLE[:2]
        }
    finally:
        source.close()
    with pytest.raises(ConfigError, match="not installed"):
        open_by_kind("real_juki_net", {})
    with pytest.raises(ConfigError, match="unknown options"):
        open_source({"database_url": url, "colour": "red"})
    with pytest.raises(ConfigError, match="database_url is required"):
        open_source({})
