"""The binding bench's generated file, used as a test set: decoys, twins, movers, spellings.

The bench (``ops.bench.matcher``) derives an agency file with
its ground truth from a generated register. Here a small one is matched and
every record checked against that truth; hypothesis then draws spellings of
form for residents and decoys and checks the one rule that must never break.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from legacy_stubs.registry.model import Resident
from legacy_stubs.registry.source import JukiMockSource
from legacy_stubs.registry.store import RegistryStore
from ops.bench import matcher as bb
from registry_binding.matching import Matcher
from renkei import db
from renkei.fourfacts.normalize import (
    normalize_address,
    normalize_date,
    normalize_sex,
)

COUNT = 3000
WORLD = bb.build_world(COUNT, COUNT, seed=7)


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matcher]:
    path: Path = tmp_path_factory.mktemp("bench") / "registry.db"
    engine = db.create_engine(db.sqlite_url(str(path)))
    store = RegistryStore(engine)
    bb.store_world(WORLD, store)
    yield Matcher(JukiMockSource(store))
    engine.dispose()


def _records(kind: str) -> list[bb.BenchRecord]:
    out = [r for r in WORLD.records if r.kind == kind]
    assert out, kind
    return out


def test_the_file_has_every_kind_in_its_documented_share() -> None:
    by_kind = {kind: len(_records(kind)) for kind in bb.SHARES}
    for kind, share in bb.SHARES.items():
        # Decoys and outsiders that happen to BE a resident are skipped; none in this world.
        assert by_kind[kind] == round(COUNT * share), kind
    assert WORLD.skipped == 0


def test_decoys_and_outsiders_never_bind(matcher: Matcher) -> None:
    for kind in ("decoy-address", "decoy-sex", "outsider", "malformed"):
        records = _records(kind)
        results = bb.match_all(matcher, records)
        assert all(bb.classify(r, m) != "bound" for r, m in zip(records, results, strict=True))
        assert not [m for m in results if not isinstance(m, str) and m.status == "unique"], kind


def test_decoy_reasons_say_which_fact_differs(matcher: Matcher) -> None:
    for kind, reason in (("decoy-address", "address differs"), ("decoy-sex", "sex differs")):
        results = bb.match_all(matcher, _records(kind))
        assert {m if isinstance(m, str) else m.reason for m in results} == {reason}, kind


def test_twins_are_ambiguous_with_the_reason(matcher: Matcher) -> None:
    results = bb.match_all(matcher, _records("twin"))
    assert {(m.status, m.reason.split(";")[0]) for m in results if not isinstance(m, str)} == {
        ("ambiguous", "2 residents match name, birth date, sex and address")
    }
    assert all(not isinstance(m, str) and len(m.candidates) == 2 for m in results)


def test_movers_bind_by_their_previous_address(matcher: Matcher) -> None:
    records = _records("moved")
    results = bb.match_all(matcher, records)
    for record, m in zip(records, results, strict=True):
        assert bb.classify(record, m) == "bound", (record, m)
        assert not isinstance(m, str)
        assert "matched previous address" in m.reason


def test_malformed_records_name_the_field(matcher: Matcher) -> None:
    people = {r.resident_code: r for r in WORLD.residents}
    examples = [bb.malformed(people[code], n) for n, code in enumerate(sorted(people)[:9])]
    records = [bb.BenchRecord("malformed", facts, None) for facts in examples]
    reasons = dict(zip(bb.MALFORMED, bb.match_all(matcher, records), strict=True))
    invalid = {kind: m for kind, m in reasons.items() if isinstance(m, str)}
    assert invalid["no name"] == "invalid record: name: is empty"
    assert invalid["no birth date"] == "invalid record: birth_date: is empty"
    assert invalid["no address"] == "invalid record: address: is empty"
    assert invalid["impossible date"].startswith("invalid record: birth_date: ")
    assert invalid["mojibake name"] == "invalid record: name: contains control characters"
    assert invalid["replacement character"].startswith("invalid record: name: has U+FFFD")
    assert invalid["over-long name"].startswith("invalid record: name: is ")
    assert invalid["over-long name"].endswith("characters; at most 256")
    unknown_sex, no_go = reasons["unknown sex"], reasons["address without 号"]
    assert not isinstance(unknown_sex, str)
    assert unknown_sex.reason == "sex unknown"
    assert not isinstance(no_go, str)
    assert no_go.reason == "address incomplete: no go"


def test_smoke_run_reports_sane_figures() -> None:
    result = bb.run(2000, seed=3, echo=False)
    assert result["records"] == 2000
    assert result["residents_stored"] == 2000 + 20  # a twin for each "twin" record
    assert result["bound_wrong"] == 0
    assert result["precision"] == 1.0
    assert 0.99 <= result["recall"] <= 1.0
    assert result["twins_ambiguous"] == round(2000 * bb.SHARES["twin"])
    assert result["records_per_second"] > 0
    assert result["index_seconds"] >= 0
    assert sum(result["outcomes"].values()) == 2000
    assert not any(key.endswith("/WRONG") for key in result["outcomes"])


def test_a_wrong_binding_fails_the_bench_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    real = bb.classify

    def lying(record: bb.BenchRecord, result: object) -> str:
        return "WRONG" if record.kind == "plain" else real(record, result)  # type: ignore[arg-type]

    monkeypatch.setattr(bb, "classify", lying)
    with pytest.raises(bb.PrecisionError, match="PRECISION BROKEN"):
        bb.run(500, seed=3, echo=False)
    assert bb.main(["--count", "500", "--seed", "3"]) == 1


# -- properties (hypothesis) ------------------------------------------------------------------

spellings = st.builds(
    bb.Spelling,
    name=st.integers(0, bb.NAME_STYLES - 1),
    kana=st.integers(0, bb.KANA_STYLES - 1),
    place=st.integers(0, bb.PLACE_STYLES - 1),
    numbers=st.integers(0, bb.NUMBER_STYLES - 1),
    town_forms=st.booleans(),
    birth=st.integers(0, bb.DATE_STYLES - 1),
    sex=st.integers(0, bb.SEX_STYLES - 1),
)
# Residents that are neither twins nor movers: their current facts are theirs alone.
_special = {first.resident_code for first, _ in WORLD.twins} | {
    r.resident_code for r, _ in WORLD.moves
}
PLAIN_PEOPLE = [p for p in WORLD.residents if p.resident_code not in _special]
people = st.sampled_from(PLAIN_PEOPLE)
_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(person=people, spelling=spellings, seed=st.integers(0, 2**32))
def test_a_record_perturbed_only_in_form_binds_to_its_resident(
    matcher: Matcher, person: Resident, spelling: bb.Spelling, seed: int
) -> None:
    record = bb.BenchRecord("form", bb.spell(person, spelling, random.Random(seed)), None)
    [result] = bb.match_all(matcher, [record])
    assert not isinstance(result, str), (record, result)
    assert (result.status, result.resident_code) == ("unique", person.resident_code), record


@_SETTINGS
@given(person=people, spelling=spellings, seed=st.integers(0, 2**32), next_door=st.booleans())
def test_a_decoy_in_any_spelling_binds_to_nobody(
    matcher: Matcher, person: Resident, spelling: bb.Spelling, seed: int, next_door: bool
) -> None:
    rng = random.Random(seed)
    if next_door:  # same name, birth date and address, the other sex
        other_sex = "2" if person.sex == "1" else "1"
        facts = bb.spell(person, spelling, rng, sex=other_sex)
    else:  # same name, birth date and sex, a 号 no resident has
        address = replace(person.address, go=rng.randint(31, 99))
        facts = bb.spell(person, spelling, rng, address=address)
    [result] = bb.match_all(matcher, [bb.BenchRecord("decoy", facts, None)])
    assert isinstance(result, str) or result.status != "unique", (facts, result)


@given(d=st.dates(date(1873, 1, 1), date(2030, 12, 31)), style=st.integers(0, bb.DATE_STYLES - 1))
def test_every_date_spelling_normalizes_to_the_date_idempotently(d: date, style: int) -> None:
    once = normalize_date(bb.date_spelling(d, style))
    assert once == d
    assert normalize_date(once) == once


@given(st.one_of(st.text(max_size=8), st.integers(-3, 12), st.none()))
def test_sex_normalization_is_idempotent(value: str | int | None) -> None:
    once = normalize_sex(value)
    assert normalize_sex(once) == once


@given(person=people, spelling=spellings, seed=st.integers(0, 2**32))
def test_address_normalization_is_idempotent(
    person: Resident, spelling: bb.Spelling, seed: int
) -> None:
    """Parsed, written back in the register's spelling and parsed again: the same parts."""
    line, hint = bb.address_spelling(
        person.address, spelling.place, spelling.numbers, random.Random(seed), town_forms=True
    )
    once = normalize_address(line, municipality_hint=hint)
    assert once.is_complete, line
    assert once.municipality_codes
    assert person.address.municipality_code in once.municipality_codes
    codes = ",".join(sorted(once.municipality_codes))
    rewritten = f"{once.town}{once.chome}丁目{once.banchi}番{once.go}号"
    again = normalize_address(rewritten, municipality_hint=hint or person.address.municipality_code)
    assert (again.town, again.chome, again.banchi, again.go) == (
        once.town,
        once.chome,
        once.banchi,
        once.go,
    ), (line, codes)
