"""An in-memory register: a ``renkei.residents.ResidentSource`` for fast tests.

It keeps what the mocked Juki-net keeps (current facts, past versions, a
change feed with the same entries) and changes people the way
``legacy_stubs.registry.store.RegistryStore`` does, with the same method
names, so a test written against the store runs against this. It checks
little: tests give it sane values. ``tests/integration/
test_resident_source_contract.py`` holds both to the same answers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from renkei.residents import (
    Address,
    Change,
    ChangeKind,
    Name,
    Resident,
    ResidentHistory,
    Version,
)


@dataclass
class _Person:
    current: Resident
    valid_from: date | None
    past: list[Version] = field(default_factory=list)


class FakeResidentSource:
    def __init__(self, people: Iterable[Resident] = ()) -> None:
        self._people: list[_Person] = []
        self._by_code: dict[str, _Person] = {}
        self._changes: list[Change] = []
        self.closed = False
        self.add_many(people)

    # -- the port ---------------------------------------------------------------------

    def residents(self) -> Iterator[ResidentHistory]:
        for p in self._people:
            yield ResidentHistory(p.current, tuple(p.past))

    def lookup(self, resident_codes: Collection[str]) -> dict[str, Resident]:
        return {c: self._by_code[c].current for c in set(resident_codes) if c in self._by_code}

    def last_seq(self) -> int:
        return len(self._changes)

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return self._changes[max(seq, 0) : max(seq, 0) + limit]

    def close(self) -> None:
        self.closed = True

    # -- changing people, as RegistryStore does ---------------------------------------

    def add_many(self, people: Iterable[Resident]) -> int:
        """The initial load: no feed entries."""
        added = 0
        for r in people:
            if r.resident_code in self._by_code:
                raise ValueError(f"duplicate resident code {r.resident_code}")
            person = _Person(r, None)
            self._people.append(person)
            self._by_code[r.resident_code] = person
            added += 1
        return added

    def get(self, resident_code: str) -> Resident | None:
        person = self._by_code.get(resident_code)
        return None if person is None else person.current

    def record_birth(self, resident: Resident) -> Change:
        person = _Person(resident, resident.birth_date)
        self._people.append(person)
        self._by_code[resident.resident_code] = person
        return self._append(
            resident.resident_code, "birth", resident.birth_date, {}, resident.to_dict()
        )

    def move(self, resident_code: str, new_address: Address, effective: date) -> Change:
        person = self._change(resident_code, effective)
        old = person.current.address
        person.current = replace(person.current, address=new_address)
        return self._append(
            resident_code,
            "move",
            effective,
            {"address": old.to_dict()},
            {"address": new_address.to_dict()},
        )

    def change_name(self, resident_code: str, new_name: Name, effective: date) -> Change:
        person = self._change(resident_code, effective)
        old = person.current.name
        person.current = replace(person.current, name=new_name)
        return self._append(
            resident_code,
            "name_change",
            effective,
            {"name": old.to_dict()},
            {"name": new_name.to_dict()},
        )

    def record_death(self, resident_code: str, died_on: date) -> Change:
        person = self._change(resident_code, died_on)
        person.current = replace(person.current, status="deceased", died_on=died_on)
        return self._append(
            resident_code,
            "death",
            died_on,
            {"status": "alive", "died_on": None},
            {"status": "deceased", "died_on": died_on.isoformat()},
        )

    def change_code(self, old: str, new: str, effective: date) -> Change:
        person = self._change(old, effective)
        person.current = replace(person.current, resident_code=new)
        del self._by_code[old]
        self._by_code[new] = person
        return self._append(
            old, "code_change", effective, {"resident_code": old}, {"resident_code": new}
        )

    def _change(self, resident_code: str, effective: date) -> _Person:
        person = self._by_code[resident_code]
        now = person.current
        person.past.append(
            Version(
                now.resident_code,
                person.valid_from,
                effective,
                now.name,
                now.birth_date,
                now.sex,
                now.address,
                now.status,
                now.died_on,
            )
        )
        person.valid_from = effective
        return person

    def _append(
        self,
        resident_code: str,
        kind: ChangeKind,
        effective: date,
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> Change:
        change = Change(
            len(self._changes) + 1,
            resident_code,
            kind,
            effective,
            before,
            after,
            datetime.now(UTC),
        )
        self._changes.append(change)
        return change
