"""Binding agency records to the register by the four facts: total precision, high recall.

Every match in this module goes through ``_bind``, which asserts the rule that
must never break: a record binds to nobody but the resident it is about. The
register is the in-memory ``FakeResidentSource``: no database, no socket.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta

import pytest
from support.fake_residents import FakeResidentSource

from legacy_stubs.registry.population import generate
from legacy_stubs.registry.resident_code import new_resident_code
from registry_binding.matching import (
    ADDRESS_DIFFERS,
    DECEASED,
    KANA_DIFFERS,
    KANA_TIE,
    MATCHED_CURRENT,
    NO_NAME_BIRTH,
    PREVIOUS_ADDRESS,
    PREVIOUS_NAME,
    SEX_DIFFERS,
    SEX_UNKNOWN,
    Matcher,
    MatchResult,
)
from renkei.fourfacts._text import itaiji_table
from renkei.fourfacts.eras import era_of
from renkei.fourfacts.normalize import FourFacts
from renkei.fourfacts.places import gazetteer
from renkei.residents import Address, Name, Resident

SEED = 20260101
PEOPLE = list(generate(SEED, 5000))
VARIED = PEOPLE[:300]  # no test changes these
_spare = iter(PEOPLE[4000:])  # each change test takes its own residents from here
_codes_rng = random.Random(SEED)
_codes_taken = {p.resident_code for p in PEOPLE}


def _spare_resident() -> Resident:
    return next(_spare)


def _bind(matcher: Matcher, facts: FourFacts, truth: str | None) -> MatchResult:
    """Match, asserting total precision: a unique binding is always to ``truth``."""
    result = matcher.match(facts)
    if result.status == "unique":
        assert truth is not None, f"{facts} is about nobody, yet bound to {result.resident_code}"
        assert result.resident_code == truth, f"{facts} bound to the wrong resident: {result}"
        assert result.candidates == [truth]
    else:
        assert result.resident_code is None
        assert not result.deceased
    if result.status == "none":
        assert result.candidates == []  # nothing about near misses leaves the register
    return result


@pytest.fixture(scope="module")
def store() -> FakeResidentSource:
    return FakeResidentSource(PEOPLE)


@pytest.fixture(scope="module")
def matcher(store: FakeResidentSource) -> Matcher:
    """A snapshot shared by the tests that change nothing; the others build their own."""
    return Matcher(store)


# -- how legacy systems write the four facts ---------------------------------------------------

_FULL_WIDTH = str.maketrans("0123456789-/.", "０１２３４５６７８９－／．")
_OLD_FORM = {new: old for old, new in reversed(itaiji_table().items())}
_HALF_KANA = {unicodedata.normalize("NFKC", chr(c)): chr(c) for c in range(0xFF66, 0xFF9E)}


def _old_forms(text: str) -> str:
    return "".join(_OLD_FORM.get(ch, ch) for ch in text)


def _half_width(kana: str) -> str:
    out = []
    for ch in kana:
        decomposed = unicodedata.normalize("NFD", ch)
        base, marks = decomposed[0], decomposed[1:]
        half = _HALF_KANA.get(base, base)
        out.append(half + "".join("ﾞ" if m == "\u3099" else "ﾟ" for m in marks))
    return "".join(out)


def _hiragana(kana: str) -> str:
    return "".join(chr(ord(ch) - 0x60) if "ァ" <= ch <= "ヶ" else ch for ch in kana)


def _kanji_number(n: int) -> str:
    digits = "〇一二三四五六七八九"
    tens, ones = divmod(n, 10)
    head = "" if tens == 0 else ("十" if tens == 1 else digits[tens] + "十")
    return head + (digits[ones] if ones else "")


def _era_long(d: date) -> str:
    era, year = era_of(d)
    return f"{era.name}{'元' if year == 1 else year}年{d.month}月{d.day}日"


def _era_short(d: date, *, kanji: bool = False) -> str:
    era, year = era_of(d)
    return f"{era.name[0] if kanji else era.letter}{year}.{d.month:02d}.{d.day}"


def _era_code7(d: date) -> str:
    era, year = era_of(d)
    return f"{era.code}{year:02d}{d.month:02d}{d.day:02d}"


def _ward(a: Address) -> str | None:
    return a.municipality.split(" ", 1)[1] if " " in a.municipality else None


def _numbers(a: Address) -> str:
    return f"{a.chome}丁目{a.banchi}番{a.go}号"


Style = Callable[[Resident], FourFacts | None]


def _facts(p: Resident, **changes: object) -> FourFacts:
    base = FourFacts(
        name=p.name.kanji,
        kana=p.name.kana,
        address=p.address.text,
        birth_date=p.birth_date.isoformat(),
        sex=p.sex,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _other_particle(town: str) -> str:
    return town.replace("ヶ", "が") if "ヶ" in town else town.replace("ケ", "ヶ")


def _city(a: Address) -> str:
    return a.municipality.replace(" ", "")


STYLES: dict[str, Style] = {
    "as registered": lambda p: _facts(p),
    "full-width digits and space": lambda p: _facts(
        p,
        name=p.name.kanji.replace(" ", "　"),
        address=f"{p.address.prefecture}{_city(p.address)}{p.address.town}"
        + f"{p.address.chome}-{p.address.banchi}-{p.address.go}".translate(_FULL_WIDTH),
        birth_date=p.birth_date.strftime("%Y/%m/%d").translate(_FULL_WIDTH),
        sex="Ｍ" if p.sex == "1" else "Ｆ",
    ),
    "kanji numerals and era date": lambda p: _facts(
        p,
        address=f"{p.address.prefecture}{_city(p.address)}{p.address.town}"
        f"{_kanji_number(p.address.chome)}丁目{p.address.banchi}番地{p.address.go}号",
        birth_date=_era_long(p.birth_date),
        sex="男" if p.sex == "1" else "女",
    ),
    "no prefecture, 1-2-3, S33.5.14, hiragana": lambda p: _facts(
        p,
        name=p.name.kanji.replace(" ", ""),
        kana=_hiragana(p.name.kana),
        address=f"{_city(p.address)}{p.address.town}"
        f"{p.address.chome}-{p.address.banchi}-{p.address.go}",
        birth_date=_era_short(p.birth_date),
        sex="male" if p.sex == "1" else "female",
    ),
    "spaces everywhere, 昭33.05.14, half-width kana": lambda p: _facts(
        p,
        name=f"　{p.name.kanji}  ",
        kana=_half_width(p.name.kana),
        address=f"{p.address.prefecture} {p.address.municipality}　{p.address.town} "
        f"{p.address.chome}丁目 {p.address.banchi}番 {p.address.go}号",
        birth_date=_era_short(p.birth_date, kanji=True),
        sex=int(p.sex),
    ),
    "番地の, compact date, no kana": lambda p: _facts(
        p,
        kana=None,
        address=f"{p.address.prefecture}{_city(p.address)}{p.address.town}"
        f"{p.address.chome}丁目{p.address.banchi}番地の{p.address.go}",
        birth_date=p.birth_date.strftime("%Y%m%d"),
        sex="男性" if p.sex == "1" else "女性",
    ),
    "town only, municipality from the hint, register date code": lambda p: _facts(
        p,
        address=f"{p.address.town}{_numbers(p.address)}",
        municipality_hint=p.address.municipality_code,
        birth_date=_era_code7(p.birth_date),
    ),
    "ward without its city": lambda p: (
        None
        if _ward(p.address) is None
        else _facts(p, address=f"{_ward(p.address)}{p.address.town}{_numbers(p.address)}")
    ),
    "county before a town or village": lambda p: (
        None
        if not p.address.municipality.endswith(("町", "村"))
        else _facts(
            p,
            address=f"{p.address.prefecture}上川郡{p.address.municipality}"
            f"{p.address.town}{_numbers(p.address)}",
        )
    ),
    "ヶ written が or ケ in the town": lambda p: (
        None
        if _other_particle(p.address.town) == p.address.town
        else _facts(
            p, address=p.address.text.replace(p.address.town, _other_particle(p.address.town))
        )
    ),
    "old character forms": lambda p: (
        None
        if _old_forms(p.name.kanji) == p.name.kanji
        else _facts(p, name=_old_forms(p.name.kanji).replace(" ", "　"))
    ),
}


def test_legacy_variations_bind_to_the_right_resident(matcher: Matcher) -> None:
    seen = dict.fromkeys(STYLES, 0)
    for person in VARIED:
        for style, write in STYLES.items():
            facts = write(person)
            if facts is None:
                continue
            seen[style] += 1
            result = _bind(matcher, facts, person.resident_code)
            assert result.status == "unique", (style, facts, result)
            assert result.reason == MATCHED_CURRENT, (style, facts, result)
    # Every variation was tried on a fair number of residents.
    assert all(n >= 5 for n in seen.values()), seen
    assert seen["as registered"] == len(VARIED)


def test_old_character_forms_across_the_population(matcher: Matcher) -> None:
    tried = 0
    for person in PEOPLE:
        old = _old_forms(person.name.kanji)
        if old != person.name.kanji:
            tried += 1
            assert _bind(matcher, _facts(person, name=old), person.resident_code).status == "unique"
    assert tried > 500


def test_match_many_keeps_order(matcher: Matcher) -> None:
    records = [_facts(p) for p in VARIED[:50]]
    results = list(matcher.match_many(records))
    assert [r.resident_code for r in results] == [p.resident_code for p in VARIED[:50]]


# -- refusals: when a record must not bind -----------------------------------------------------


def test_wrong_birth_date_binds_nobody(matcher: Matcher) -> None:
    for person in VARIED[:100]:
        facts = _facts(person, birth_date=(person.birth_date + timedelta(days=1)).isoformat())
        result = _bind(matcher, facts, None)
        assert (result.status, result.reason) == ("none", NO_NAME_BIRTH)


def test_wrong_sex_binds_nobody(matcher: Matcher) -> None:
    person = VARIED[0]
    result = _bind(matcher, _facts(person, sex="2" if person.sex == "1" else "1"), None)
    assert (result.status, result.reason) == ("none", SEX_DIFFERS)
    result = _bind(matcher, _facts(person, sex="9"), None)
    assert (result.status, result.reason) == ("none", SEX_UNKNOWN)


@pytest.mark.parametrize("part", ["chome", "banchi", "go", "town", "municipality"])
def test_another_address_binds_nobody(matcher: Matcher, part: str) -> None:
    for person in VARIED[:50]:
        a = person.address
        if part == "town":
            other = replace(a, town=a.town + "東")
        elif part == "municipality":
            code = "131016" if a.municipality_code != "131016" else "131024"
            place = gazetteer().by_code[code]
            other = replace(
                a, prefecture=place.prefecture, municipality_code=code, municipality=place.name
            )
        else:
            other = replace(a, **{part: getattr(a, part) % 30 + 1})
        result = _bind(matcher, _facts(person, address=other.text), None)
        assert (result.status, result.reason) == ("none", ADDRESS_DIFFERS)


def test_incomplete_address_binds_nobody(matcher: Matcher) -> None:
    person = VARIED[0]
    a = person.address
    no_city = _facts(person, address=f"{a.town}{_numbers(a)}")
    result = _bind(matcher, no_city, None)
    assert result.status == "none"
    assert result.reason.startswith("address incomplete: no municipality recognised")
    with_hint = replace(no_city, municipality_hint=a.municipality_code)
    assert _bind(matcher, with_hint, person.resident_code).status == "unique"
    no_go = _facts(person, address=f"{a.prefecture}{_city(a)}{a.town}{a.chome}丁目{a.banchi}番")
    result = _bind(matcher, no_go, None)
    assert (result.status, result.reason) == ("none", "address incomplete: no go")


def test_invalid_record_binds_nobody(matcher: Matcher) -> None:
    person = VARIED[0]
    result = _bind(matcher, _facts(person, birth_date="平成31年5月1日"), None)
    assert result.status == "none"
    assert result.reason.startswith("invalid record: 平成31年5月1日 does not exist")


def test_kana_alone_never_makes_a_match(matcher: Matcher) -> None:
    person = VARIED[0]
    other = VARIED[1]
    result = _bind(matcher, _facts(person, name=other.name.kanji), None)
    assert result.status == "none"


def test_a_differing_reading_is_reported_but_does_not_block(matcher: Matcher) -> None:
    person = VARIED[0]
    result = _bind(matcher, _facts(person, kana="ダレカ ベツジン"), person.resident_code)
    assert (result.status, result.reason) == ("unique", KANA_DIFFERS)


def test_random_corruption_never_binds_to_anyone(matcher: Matcher) -> None:
    """One fact of each record is wrong; the record is about nobody in the register."""
    rng = random.Random(SEED)
    given_names = sorted({p.name.given_kanji for p in PEOPLE})
    for person in PEOPLE[300:1300]:
        a = person.address
        kind = rng.randrange(4)
        if kind == 0:
            facts = _facts(person, birth_date=person.birth_date + timedelta(rng.choice([-1, 1])))
        elif kind == 1:
            given = rng.choice([g for g in given_names if g != person.name.given_kanji])
            facts = _facts(person, name=f"{person.name.family_kanji} {given}")
        elif kind == 2:
            facts = _facts(person, address=replace(a, go=a.go % 30 + 1).text)
        else:
            facts = _facts(person, address=replace(a, banchi=a.banchi % 30 + 1).text)
        assert _bind(matcher, facts, None).status == "none"


# -- ambiguity ---------------------------------------------------------------------------------


def _new_code() -> str:
    code = new_resident_code(_codes_rng, _codes_taken)
    _codes_taken.add(code)
    return code


def _twin(store: FakeResidentSource, person: Resident, *, kana: str | None = None) -> Resident:
    """Register someone with the same name, birth date, sex and address as ``person``."""
    name = person.name if kana is None else Name(person.name.kanji, kana)
    twin = replace(person, resident_code=_new_code(), name=name)
    store.add_many([twin])
    return twin


def test_two_residents_with_the_same_four_facts_are_ambiguous(store: FakeResidentSource) -> None:
    person = _spare_resident()
    twin = _twin(store, person)
    matcher = Matcher(store)
    for facts in (_facts(person), _facts(person, kana=None)):
        result = _bind(matcher, facts, None)
        assert result.status == "ambiguous"
        assert result.candidates == sorted([person.resident_code, twin.resident_code])
        assert "2 residents match" in result.reason


def test_kana_breaks_a_tie_only_when_it_tells_them_apart(store: FakeResidentSource) -> None:
    person = _spare_resident()
    twin = _twin(store, person, kana="ベツ ヨミカタ")
    matcher = Matcher(store)
    result = _bind(matcher, _facts(person), person.resident_code)
    assert (result.status, result.reason) == ("unique", KANA_TIE)
    result = _bind(matcher, _facts(person, kana=_half_width("ベツ ヨミカタ")), twin.resident_code)
    assert (result.status, result.reason) == ("unique", KANA_TIE)
    result = _bind(matcher, _facts(person, kana=None), None)
    assert result.status == "ambiguous"
    result = _bind(matcher, _facts(person, kana="マッタク チガウ"), None)
    assert result.status == "ambiguous"
    assert "kana does not tell them apart" in result.reason


# -- changes: moves, name changes, deaths, new codes -------------------------------------------


def _elsewhere(a: Address) -> Address:
    return replace(a, banchi=a.banchi % 30 + 1)


def test_moved_resident_matches_by_the_old_address(store: FakeResidentSource) -> None:
    person = _spare_resident()
    matcher = Matcher(store)
    assert not matcher.is_stale()
    new_address = _elsewhere(person.address)
    store.move(person.resident_code, new_address, date(2026, 2, 1))
    assert matcher.is_stale()
    matcher.refresh()
    assert not matcher.is_stale()
    old = _bind(matcher, _facts(person), person.resident_code)
    assert (old.status, old.reason) == ("unique", PREVIOUS_ADDRESS)
    old_written_differently = STYLES["kanji numerals and era date"](person)
    assert old_written_differently is not None
    assert _bind(matcher, old_written_differently, person.resident_code).reason == PREVIOUS_ADDRESS
    new = _bind(matcher, _facts(person, address=new_address.text), person.resident_code)
    assert (new.status, new.reason) == ("unique", MATCHED_CURRENT)


def test_someone_now_living_at_a_previous_address_makes_it_ambiguous(
    store: FakeResidentSource,
) -> None:
    person = _spare_resident()
    old_address = person.address
    store.move(person.resident_code, _elsewhere(old_address), date(2026, 2, 1))
    newcomer = _twin(store, person)  # same name, birth date and sex, at the old address
    matcher = Matcher(store)
    result = _bind(matcher, _facts(person), None)
    assert result.status == "ambiguous"
    assert set(result.candidates) == {person.resident_code, newcomer.resident_code}


def test_name_change_matches_by_the_previous_name(store: FakeResidentSource) -> None:
    person = _spare_resident()
    new_name = Name(f"改名 {person.name.given_kanji}", f"カイメイ {person.name.given_kana}")
    store.change_name(person.resident_code, new_name, date(2026, 2, 1))
    matcher = Matcher(store)
    previous = _bind(matcher, _facts(person), person.resident_code)
    assert (previous.status, previous.reason) == ("unique", PREVIOUS_NAME)
    current = _bind(
        matcher, _facts(person, name=new_name.kanji, kana=new_name.kana), person.resident_code
    )
    assert (current.status, current.reason) == ("unique", MATCHED_CURRENT)


def test_previous_name_with_previous_address(store: FakeResidentSource) -> None:
    person = _spare_resident()
    new_name = Name(f"新姓 {person.name.given_kanji}", f"シンセイ {person.name.given_kana}")
    store.change_name(person.resident_code, new_name, date(2026, 2, 1))
    store.move(person.resident_code, _elsewhere(person.address), date(2026, 3, 1))
    matcher = Matcher(store)
    result = _bind(matcher, _facts(person), person.resident_code)
    assert (result.status, result.reason) == (
        "unique",
        f"{PREVIOUS_NAME}; {PREVIOUS_ADDRESS}",
    )


def test_deceased_resident_matches_and_says_so(store: FakeResidentSource) -> None:
    person = _spare_resident()
    store.record_death(person.resident_code, date(2026, 2, 1))
    matcher = Matcher(store)
    result = _bind(matcher, _facts(person), person.resident_code)
    assert (result.status, result.reason, result.deceased) == ("unique", DECEASED, True)


def test_code_change_binds_to_the_current_code(store: FakeResidentSource) -> None:
    person = _spare_resident()
    new_code = _new_code()
    store.change_code(person.resident_code, new_code, date(2026, 2, 1))
    matcher = Matcher(store)
    result = _bind(matcher, _facts(person), new_code)
    assert (result.status, result.resident_code) == ("unique", new_code)


# -- bulk ----------------------------------------------------------------------------------------


def test_bulk_matching_binds_each_record_to_its_resident(matcher: Matcher) -> None:
    """Behaviour only: tests never time anything (speed belongs to benchmarks)."""
    records = [_facts(p) for p in PEOPLE[:2000]]
    results = list(matcher.match_many(records))
    assert [r.resident_code for r in results] == [p.resident_code for p in PEOPLE[:2000]]
