"""The consent flow's rule and what it logs (R20): an in-memory register, log and ID issuer.

No database, no socket: ``FakeResidentSource`` is the register and
``MemoryLog`` the consent log (the SQL one: tests/integration/
test_registry_binding_store.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from support.consent_fakes import CONSENT, MemoryLog
from support.fake_residents import FakeResidentSource

from legacy_stubs.registry.population import generate
from registry_binding.consent import (
    Consent,
    ConsentBinding,
    ConsentOutcome,
)
from registry_binding.matching import Matcher
from registry_binding.records import AgencyRecord
from renkei.errors import InvalidArgument, PermissionDenied, Unavailable
from renkei.fourfacts.eras import era_of
from renkei.fourfacts.normalize import FourFacts
from renkei.residents import Address, Name, Resident

PEOPLE = [p for p in generate(seed=21, count=40) if p.status == "alive"]
CHIYODA = Address("東京都", "131016", "千代田区", "丸の内", 1, 1, 1)
BANK, CITY = "example-bank", "141003"


class FakeSealer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def seal(self, agency_id: str, resident_codes: list[str]) -> list[tuple[bytes, str]]:
        self.calls.append((agency_id, resident_codes))
        return [(b"sealed:" + c.encode(), "") for c in resident_codes]


def _record(p: Resident, **changes: str) -> AgencyRecord:
    """The person as they would write it on a form: full-width, era date, "1-2-3"."""
    a = p.address
    era, year = era_of(p.birth_date)
    facts = FourFacts(
        name=p.name.kanji.replace(" ", "　"),
        address=f"{a.prefecture}{a.municipality.replace(' ', '')}{a.town}"
        f"{a.chome}－{a.banchi}－{a.go}",
        birth_date=f"{era.name}{year}年{p.birth_date.month}月{p.birth_date.day}日",
        sex="男" if p.sex == "1" else "女",
    )
    return AgencyRecord("L-1", replace(facts, **changes))


Setup = tuple[FakeResidentSource, ConsentBinding, FakeSealer, MemoryLog]


@pytest.fixture
def setup() -> Setup:
    store = FakeResidentSource(PEOPLE)
    sealer = FakeSealer()
    log = MemoryLog()
    binding = ConsentBinding(Matcher(store), store, sealer, log, [BANK])
    return store, binding, sealer, log


def _run(
    binding: ConsentBinding, record: AgencyRecord, consent: Consent | None = CONSENT
) -> ConsentOutcome:
    return asyncio.run(binding.match(f"agency:{BANK}", BANK, record, consent))


def test_exact_current_facts_match_in_any_form(setup: Setup) -> None:
    _, binding, sealer, log = setup
    person = PEOPLE[0]
    outcome = _run(binding, _record(person))
    assert outcome.matched
    assert outcome.sealed_id_code == b"sealed:" + person.resident_code.encode()
    assert sealer.calls == [(BANK, [person.resident_code])]
    [row] = log.rows()
    assert (row["outcome"], row["answered"], row["resident_code"]) == (
        "matched",
        "MATCHED",
        person.resident_code,
    )
    assert (row["caller"], row["consent_id"], row["purpose"]) == (
        f"agency:{BANK}",
        "C-1",
        CONSENT.purpose,
    )
    assert row["attempt_id"] == outcome.attempt_id


def test_anything_but_an_exact_current_match_is_refused_alike(setup: Setup) -> None:
    store, binding, sealer, log = setup
    moved, dead, renamed, other = PEOPLE[1], PEOPLE[2], PEOPLE[3], PEOPLE[4]
    store.move(moved.resident_code, CHIYODA, date(2026, 5, 1))
    store.record_death(dead.resident_code, date(2026, 5, 2))
    store.change_name(renamed.resident_code, Name("佐藤 花子", "サトウ ハナコ"), date(2026, 5, 3))
    family, given = other.name.kanji.split(" ")
    typo = ("斉" if given[0] != "斉" else "斎") + given[1:]
    attempts = [
        _record(moved),  # the previous address: the history proves it, consent does not take it
        _record(dead),
        _record(renamed),  # the previous name
        _record(other, name=f"{family} {typo}"),  # one character off
        _record(other, kana="アアア イイイ"),  # a reading that is not theirs
        _record(other, sex="男" if other.sex == "2" else "女"),
    ]
    outcomes = [_run(binding, r) for r in attempts]
    assert [o.matched for o in outcomes] == [False] * 6
    assert all(o.sealed_id_code == b"" for o in outcomes)
    assert sealer.calls == []
    rows = log.rows()
    assert [r["answered"] for r in rows] == ["NO_EXACT_MATCH"] * 6
    assert [r["outcome"] for r in rows] == ["no_exact_match"] * 6
    reasons = [r["reason"] for r in rows]
    assert reasons[0] == "address is not the current address"
    assert reasons[1] == "deceased"
    assert reasons[2] == "name is not the current name"
    assert reasons[3].startswith("none: ")
    assert reasons[4] == "kana differs from the current reading"
    assert reasons[5].startswith("none: ")
    assert all(r["resident_code"] is None for r in rows)
    # Their current facts still match.
    now = store.get(moved.resident_code)
    assert now is not None
    assert _run(binding, _record(now)).matched


@pytest.mark.parametrize(
    ("consent", "field"),
    [
        (None, "consent"),
        (replace(CONSENT, consent_id=""), "consent.consent_id"),
        (replace(CONSENT, giver=None), "consent.giver"),
        (replace(CONSENT, giver="legal_representative"), "consent.representative_name"),
        (replace(CONSENT, representative_name="山田 花子"), "consent.representative_name"),
        (replace(CONSENT, consented_at=None), "consent.consented_at"),
        (
            replace(CONSENT, consented_at=datetime.now(UTC) + timedelta(days=1)),
            "consent.consented_at",
        ),
        (replace(CONSENT, purpose=""), "consent.purpose"),
        (replace(CONSENT, document_sha256=b"short"), "consent.document_sha256"),
    ],
)
def test_a_missing_or_invalid_consent_is_refused_and_logged(
    setup: Setup, consent: Consent | None, field: str
) -> None:
    _, binding, sealer, log = setup
    with pytest.raises(InvalidArgument) as err:
        _run(binding, _record(PEOPLE[0]), consent)
    assert err.value.metadata["field"] == field
    assert sealer.calls == []
    [row] = log.rows()
    assert (row["outcome"], row["answered"]) == ("refused", "INVALID_FIELD")
    assert field in row["reason"]


def test_an_invalid_record_names_the_field(setup: Setup) -> None:
    _, binding, _, log = setup
    with pytest.raises(InvalidArgument) as err:
        _run(binding, _record(PEOPLE[0], birth_date="2023-02-30"))
    assert err.value.metadata["field"] == "record.birth_date"
    assert log.rows()[0]["outcome"] == "refused"


def test_only_designated_private_bodies(setup: Setup) -> None:
    _, binding, sealer, log = setup
    with pytest.raises(PermissionDenied) as err:
        asyncio.run(binding.match(f"agency:{CITY}", CITY, _record(PEOPLE[0]), CONSENT))
    assert err.value.reason == "CALLER_NOT_PRIVATE_BODY"
    with pytest.raises(PermissionDenied):
        asyncio.run(binding.match("service:id-issuer", None, _record(PEOPLE[0]), CONSENT))
    assert sealer.calls == []
    assert [(r["caller"], r["answered"]) for r in log.rows()] == [
        (f"agency:{CITY}", "CALLER_NOT_PRIVATE_BODY"),
        ("service:id-issuer", "CALLER_NOT_PRIVATE_BODY"),
    ]


def test_what_the_servicer_could_not_read_is_raised_after_the_caller_check(
    setup: Setup,
) -> None:
    """An out-of-range consent time: the caller's refusal first, then INVALID_FIELD, logged."""
    from dataclasses import replace

    from renkei.errors import invalid_field

    _, binding, sealer, log = setup
    invalid = invalid_field("consent.consented_at", "seconds must fall within 0001-01-01..")
    unread = replace(CONSENT, consented_at=None)
    with pytest.raises(PermissionDenied):
        asyncio.run(
            binding.match(f"agency:{CITY}", CITY, _record(PEOPLE[0]), unread, invalid=invalid)
        )
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(
            binding.match(f"agency:{BANK}", BANK, _record(PEOPLE[0]), unread, invalid=invalid)
        )
    assert err.value is invalid
    assert sealer.calls == []
    assert [(r["caller"], r["answered"]) for r in log.rows()] == [
        (f"agency:{CITY}", "CALLER_NOT_PRIVATE_BODY"),
        (f"agency:{BANK}", "INVALID_FIELD"),
    ]


class DownSealer:
    async def seal(self, agency_id: str, resident_codes: list[str]) -> list[tuple[bytes, str]]:
        raise Unavailable("ID_ISSUER_UNAVAILABLE", "the ID issuer does not answer")


def test_an_id_issuer_failure_is_logged_too() -> None:
    store = FakeResidentSource(PEOPLE)
    log = MemoryLog()
    binding = ConsentBinding(Matcher(store), store, DownSealer(), log, [BANK])
    with pytest.raises(Unavailable):
        _run(binding, _record(PEOPLE[0]))
    [row] = log.rows()
    assert (row["outcome"], row["answered"]) == ("refused", "ID_ISSUER_UNAVAILABLE")
    assert row["resident_code"] == PEOPLE[0].resident_code
