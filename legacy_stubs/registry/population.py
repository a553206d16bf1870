"""A reproducible synthetic population: same seed, same residents, in the same order.

Names come from Faker's ja_JP person data, which pairs each kanji name with
its katakana reading; family names are weighted by the frequencies Faker
ships. Addresses are real municipalities and wards (uniformly), with town
names from Faker's ja_JP address data. Faker is only read for its lists, once:
calling it per resident would be far too slow for a million.

Generation draws whole chunks of attributes with ``random.choices`` (one call
per attribute per chunk rather than per resident), always ``CHUNK`` at a time
whatever ``count`` is, so a shorter run is exactly a prefix of a longer one.
"Same seed, same population" holds for the pinned Faker version (its lists
are the population's vocabulary) and Python's ``random`` algorithms.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from faker.providers.address.ja_JP import Provider as AddressProvider
from faker.providers.person.ja_JP import Provider as PersonProvider

from . import places
from .model import Address, Name, Resident, Sex, is_katakana_name
from .resident_code import BODY_SPACE, new_resident_code, remainder_tables

if TYPE_CHECKING:
    from .store import RegistryStore

REFERENCE_DATE = date(2026, 1, 1)
"""Birth dates fall in the 100 years before this day."""
MAX_AGE_DAYS = 36525
CHUNK = 4096


@dataclass(frozen=True)
class NameData:
    families: tuple[tuple[str, str], ...]  # (kanji, kana)
    family_cum_weights: tuple[float, ...]
    male: tuple[tuple[str, str], ...]
    female: tuple[tuple[str, str], ...]


@functools.cache
def name_data() -> NameData:
    """Faker's kanji/kana pairs (its third element, romaji, is dropped)."""
    pairs = PersonProvider.last_name_pairs
    families = tuple((k, kana) for (k, kana, _romaji) in pairs)
    cum = tuple(itertools.accumulate(float(w) for w in pairs.values()))
    male = tuple((k, kana) for (k, kana, _r) in PersonProvider.first_name_male_pairs)
    female = tuple((k, kana) for (k, kana, _r) in PersonProvider.first_name_female_pairs)
    for _kanji, kana in (*families, *male, *female):
        # Faker's data could change under us; refuse rather than register bad kana.
        if not is_katakana_name(f"{kana} {kana}"):
            raise ValueError(f"Faker ja_JP reading {kana!r} is not full-width katakana")
    return NameData(families, cum, male, female)


@functools.cache
def towns() -> tuple[str, ...]:
    """Faker's ja_JP town names, less building names ("丸の内ＪＰタワー") and parks."""
    return tuple(
        t
        for t in AddressProvider.towns
        if not t.endswith(("タワー", "公園", "外苑")) and not any(c.isspace() for c in t)
    )


class Sampler:
    """Draws names, addresses and codes from one ``random.Random``.

    Names are interned: there are only a few thousand (family, given) pairs,
    and sharing the frozen ``Name`` objects saves both time and memory.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.names = name_data()
        self.places = places.residential()
        self.towns = towns()
        self._name_cache: dict[tuple[str, str, str, str], Name] = {}

    def name(self, family: tuple[str, str], given: tuple[str, str]) -> Name:
        key = (*family, *given)
        name = self._name_cache.get(key)
        if name is None:
            name = Name(f"{family[0]} {given[0]}", f"{family[1]} {given[1]}")
            self._name_cache[key] = name
        return name

    def family(self) -> tuple[str, str]:
        return self.rng.choices(self.names.families, cum_weights=self.names.family_cum_weights)[0]

    def given(self, sex: Sex) -> tuple[str, str]:
        return self.rng.choice(self.names.male if sex == "1" else self.names.female)

    def address(self, exclude_code: str | None = None) -> Address:
        """A random address, in another municipality than ``exclude_code`` if given."""
        rng = self.rng
        while True:
            gov = rng.choice(self.places)
            if gov.code != exclude_code:
                break
        return Address(
            gov.prefecture,
            gov.code,
            gov.name,
            rng.choice(self.towns),
            rng.randint(1, 9),
            rng.randint(1, 30),
            rng.randint(1, 30),
        )

    def resident_code(self, taken: set[str] | None = None) -> str:
        return new_resident_code(self.rng, taken)


def generate(seed: int, count: int) -> Iterator[Resident]:
    """``count`` residents, the same ones for the same ``seed``; codes are unique."""
    if count < 0:
        raise ValueError("count must not be negative")
    sampler = Sampler(random.Random(seed))
    tables = _Tables.build(sampler)
    taken: set[str] = set()
    left = count
    while left > 0:
        chunk = _chunk(sampler, tables, taken, min(left, CHUNK))
        left -= len(chunk)
        yield from chunk


@dataclass(frozen=True)
class _Tables:
    """Everything a chunk draws from, precomputed so a draw is one list look-up."""

    names: tuple[Name, ...]  # index: family * len(givens) + given
    given_count: int
    # (sex, given index): each male name 21 times and each female name 30 times
    # (for Faker's 30 and 21), so one uniform draw gives sex 50/50 and then a
    # uniform name of that sex.
    sex_given: tuple[tuple[Sex, int], ...]
    births: tuple[date, ...]
    high: tuple[int, ...]
    low: tuple[int, ...]

    @classmethod
    def build(cls, sampler: Sampler) -> _Tables:
        data = sampler.names
        givens = (*data.male, *data.female)
        names = tuple(sampler.name(family, given) for family in data.families for given in givens)
        males, females = len(data.male), len(data.female)
        sex_given: list[tuple[Sex, int]] = []
        for i in range(males):
            sex_given += [("1", i)] * females
        for i in range(females):
            sex_given += [("2", males + i)] * males
        base = REFERENCE_DATE.toordinal()
        births = tuple(date.fromordinal(base - age) for age in range(1, MAX_AGE_DAYS + 1))
        high, low = remainder_tables()
        return cls(names, len(givens), tuple(sex_given), births, high, low)


def _chunk(sampler: Sampler, t: _Tables, taken: set[str], wanted: int) -> list[Resident]:
    """The next ``wanted`` (at most CHUNK) residents."""
    rng = sampler.rng
    n = CHUNK
    # Every attribute is drawn for a whole chunk up front (one C-level loop
    # each), and always CHUNK of them, so the draws do not depend on how many
    # residents are finally wanted: a shorter run is a prefix of a longer one.
    families = rng.choices(
        range(len(sampler.names.families)), sampler.names.family_cum_weights, k=n
    )
    sex_givens = rng.choices(t.sex_given, k=n)
    births = rng.choices(t.births, k=n)
    govs = rng.choices(sampler.places, k=n)
    town_names = rng.choices(sampler.towns, k=n)
    chomes = rng.choices(range(1, 10), k=n)
    banchis = rng.choices(range(1, 31), k=n)
    gos = rng.choices(range(1, 31), k=n)
    bodies = [rng.randrange(BODY_SPACE) for _ in range(n)]
    names, given_count, high, low = t.names, t.given_count, t.high, t.low
    out: list[Resident] = []
    append = out.append
    for body, family, (sex, given), birth, gov, town, chome, banchi, go in zip(
        bodies[:wanted],
        families,
        sex_givens,
        births,
        govs,
        town_names,
        chomes,
        banchis,
        gos,
        strict=False,
    ):
        remainder = (high[body // 100000] + low[body % 100000]) % 11
        code = f"{body:010d}{11 - remainder}"
        # The rule of resident_code.new_resident_code: no remainder 0 or 1, no repeats.
        if remainder <= 1 or code in taken:
            code = sampler.resident_code(taken)
        taken.add(code)
        append(
            Resident(
                code,
                names[family * given_count + given],
                birth,
                sex,
                Address(gov.prefecture, gov.code, gov.name, town, chome, banchi, go),
            )
        )
    return out


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Keep the cyclic garbage collector off for a bulk run (process-wide).

    Residents hold no reference cycles, so reference counting frees them; the
    collector would only keep re-walking the batch in flight, which cost
    10-15 % of a million-resident load when measured.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load(
    store: RegistryStore,
    seed: int,
    count: int,
    *,
    batch: int = 10_000,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Generate ``count`` residents from ``seed`` into ``store`` in one transaction."""
    with paused_gc():
        return store.add_many(generate(seed, count), batch=batch, on_batch=on_batch)
