"""Reproducible random life events on a loaded register: the feed's test traffic.

Same seed and same register state give the same changes in the same order
(``recorded_at`` aside). Kinds, by weight: moves to another real municipality
or ward, marriages (the family name changes, the given name stays), deaths,
births (a child of a living adult, at that adult's address) and resident-code
changes (R8).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from renkei.errors import FailedPrecondition

from .model import Change, ChangeKind, Name, Resident, Sex
from .population import REFERENCE_DATE, Sampler
from .store import RegistryStore

KIND_WEIGHTS: dict[ChangeKind, int] = {
    "move": 55,
    "name_change": 15,
    "death": 15,
    "birth": 10,
    "code_change": 5,
}
DAYS = 365
"""The changes of one run fall within this many days."""
ADULT_YEARS = 18
_PICK_TRIES = 50


def simulate_changes(store: RegistryStore, seed: int, n: int) -> list[Change]:
    """Record ``n`` random changes in ``store``; the feed entries written, in order.

    Effective dates start at the feed's latest effective date (or 2026-01-01)
    and never go backwards, so a second run continues the first.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    rng = random.Random(seed)
    sampler = Sampler(rng)
    start = max(REFERENCE_DATE, store.latest_effective_date() or REFERENCE_DATE)
    offsets = sorted(rng.randrange(DAYS) for _ in range(n))
    kinds = rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()), k=n)
    out: list[Change] = []
    for kind, offset in zip(kinds, offsets, strict=True):
        effective = start + timedelta(days=offset)
        out.append(_one(store, sampler, kind, effective))
    return out


def _one(store: RegistryStore, sampler: Sampler, kind: ChangeKind, effective: date) -> Change:
    if kind == "name_change":
        adult = _pick(store, sampler.rng, lambda r: _age(r, effective) >= ADULT_YEARS)
        if adult is not None:
            return store.change_name(adult.resident_code, _married_name(sampler, adult), effective)
        kind = "birth"
    if kind == "birth":
        return _birth(store, sampler, effective)
    someone = store.random_alive(sampler.rng)
    if someone is None:
        return _birth(store, sampler, effective)
    if kind == "death":
        return store.record_death(someone.resident_code, effective)
    if kind == "code_change":
        return _fresh_code(
            sampler, lambda code: store.change_code(someone.resident_code, code, effective)
        )
    new_address = sampler.address(exclude_code=someone.address.municipality_code)
    return store.move(someone.resident_code, new_address, effective)


def _age(resident: Resident, on: date) -> int:
    born = resident.birth_date
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _pick(
    store: RegistryStore, rng: random.Random, fits: Callable[[Resident], bool]
) -> Resident | None:
    for _ in range(_PICK_TRIES):
        someone = store.random_alive(rng)
        if someone is None:
            return None
        if fits(someone):
            return someone
    return None


def _married_name(sampler: Sampler, resident: Resident) -> Name:
    while True:
        family_kanji, family_kana = sampler.family()
        if family_kanji != resident.name.family_kanji:
            return Name(
                f"{family_kanji} {resident.name.given_kanji}",
                f"{family_kana} {resident.name.given_kana}",
            )


def _birth(store: RegistryStore, sampler: Sampler, born: date) -> Change:
    rng = sampler.rng
    parent = _pick(store, rng, lambda r: _age(r, born) >= ADULT_YEARS)
    sex: Sex = rng.choice(("1", "2"))
    given_kanji, given_kana = sampler.given(sex)
    if parent is None:
        family_kanji, family_kana = sampler.family()
        address = sampler.address()
    else:
        family_kanji, family_kana = parent.name.family_kanji, parent.name.family_kana
        address = parent.address
    name = Name(f"{family_kanji} {given_kanji}", f"{family_kana} {given_kana}")
    return _fresh_code(
        sampler, lambda code: store.record_birth(Resident(code, name, born, sex, address))
    )


def _fresh_code(sampler: Sampler, write: Callable[[str], Change]) -> Change:
    """``write`` with a new code, drawing again if the register has used it before."""
    while True:
        try:
            return write(sampler.resident_code())
        except FailedPrecondition as err:
            if err.reason != "RESIDENT_CODE_IN_USE":
                raise
