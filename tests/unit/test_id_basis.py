"""ID codes survive a resident-code change (issue 13, finding 6; R8).

The ID code is made from the resident code the registry's binding party
hands the ID issuer. It used to hand the *current* code, so an agency that
bound a person before a code change and one that bound them after held link
codes of two different ID codes: an exchange between them found nobody, and
the hub's person key for them split in two. It now hands the first code the
register knows for the person (``MatchResult.id_basis``), whatever code they
have now; everything else (subscriptions, the consent log) keeps the current one.
"""

from __future__ import annotations

import asyncio
from datetime import date

from support.consent_fakes import CONSENT, MemoryLog
from support.fake_residents import FakeResidentSource

from legacy_stubs.registry.population import generate
from registry_binding.binding import RegistryBinding
from registry_binding.consent import ConsentBinding
from registry_binding.matching import Matcher
from registry_binding.records import AgencyRecord
from renkei.fourfacts.normalize import FourFacts
from renkei.residents import Resident

NEW_CODE = "12345678903"


class RecordingSealer:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def seal(self, agency_id: str, codes: list[str]) -> list[tuple[bytes, str]]:
        self.asked.append(list(codes))
        return [(b"sealed", "") for _ in codes]

    async def seal_batch(self, agency_id: str, codes: list[str]) -> tuple[bytes, list[str]]:
        self.asked.append(list(codes))
        return b"batch", ["" for _ in codes]


def _record(p: Resident) -> AgencyRecord:
    facts = FourFacts(
        name=p.name.kanji, address=p.address.text, birth_date=p.birth_date.isoformat(), sex=p.sex
    )
    return AgencyRecord(f"L-{p.resident_code}", facts)


def test_a_person_bound_before_and_after_a_code_change_gets_the_same_id_code() -> None:
    people = [p for p in generate(seed=7, count=20) if p.status == "alive"]
    person = people[0]
    assert NEW_CODE not in {p.resident_code for p in people}
    source = FakeResidentSource(people)
    matcher = Matcher(source)
    sealer = RecordingSealer()
    binding = RegistryBinding(matcher, sealer)

    asyncio.run(binding.match_records("141003", [_record(person)]))  # bound before
    source.change_code(person.resident_code, NEW_CODE, date(2026, 7, 1))
    matcher.refresh()
    moved = source.get(NEW_CODE)
    assert moved is not None
    after = asyncio.run(binding.match_records("nenkin", [_record(moved)]))  # bound after
    asyncio.run(binding.match_records_batch("mhlw", [_record(moved)]))
    assert after[0].status == "unique"
    # The ID issuer is asked for the same code each time: one ID code, one person key.
    assert sealer.asked == [[person.resident_code]] * 3

    log = MemoryLog()
    bank = ConsentBinding(matcher, source, sealer, log, ["example-bank"])
    outcome = asyncio.run(
        bank.match("agency:example-bank", "example-bank", _record(moved), CONSENT)
    )
    assert outcome.matched
    assert sealer.asked[-1] == [person.resident_code]
    # The consent log names the person by the code they have now.
    assert [a.resident_code for a in log.attempts] == [NEW_CODE]
