"""Binding an agency's whole file against a generated register: speed, precision, recall.

    python -m ops.bench.matcher [--count N] [--records M] [--seed S]

The register is ``population.generate(seed, count)`` (default a million
residents) stored in a temporary SQLite file, plus **twins** (for each "twin"
record of the file below, a second resident with the same name, reading, birth
date, sex and address) and **movers** (one per "moved" record: moved with
``RegistryStore.move`` to another municipality, so the register's history
proves their previous address). ``Matcher`` indexes it (timed: "index build").

The agency's file (``records``, default = ``count``) is derived from it with
its ground truth (the resident code each record is about, or none). Shares of
the file, by kind:

=================  =====  =================================================  ==========
kind               share  what the record is                                 must
=================  =====  =================================================  ==========
plain              20 %   a resident, spelled as the register spells it      bind to it
form               64 %   a resident, each fact in a spelling drawn           bind to it
                          uniformly from ``SPELLINGS`` (so most records
                          carry several perturbations of form; no typos)
moved               1 %   a mover, with the PREVIOUS address, any spelling   bind to it
twin                1 %   one of two twins (any spelling)                    ambiguous
decoy-address       4 %   NOT a resident: a resident's name, reading, birth   never bind
                          date and sex, another address (half next door:
                          same town, 番地/号 no resident has; half another
                          municipality)
decoy-sex           2 %   NOT a resident: a resident's name, birth date and   never bind
                          address with the other sex
outsider            5 %   NOT a resident: a person of another generated       never bind
                          population (any spelling)
malformed           3 %   a resident's record with one fact broken (below)    never bind
=================  =====  =================================================  ==========

Spellings of form (``SPELLINGS``; one is drawn per fact): name with a half- or
full-width space, none or two, old character forms (髙, 﨑, 邊 ... from
``data/itaiji.toml``), 々 spelled out; reading in katakana, hiragana, half-width
katakana, without spaces, or left out; address with or without the prefecture,
with spaces between its parts, with no municipality at all (a municipality's
own file: the code is given as ``municipality_hint``), ヶ/ケ/が/ガ and の/ノ
swapped in the town, numbers as "1丁目2番3号", "1-2-3", "１－２－３",
"一丁目2番地3号", "1丁目2番地の3", "1丁目2-3"; date in ISO, "1958/5/14",
"19580514", "昭和33年5月14日" (元年 for year 1), "S33.5.14", "S330514",
kanji numerals, full-width digits, the register's 7-digit "3330514"; sex as
"1"/"2", "男"/"女", "男性"/"女性", "M"/"F", "Ｍ"/"Ｆ", "male"/"female", "１"/"２".
The place table has no county (郡) names, so "missing county" is the
register's own spelling here and is not drawn.

Malformed records, in turn: an impossible date (2023-02-30, 平成31年5月1日,
昭和64年1月8日, 令和0年1月1日), no name, no birth date, no address, an address
without 号, a name in Shift_JIS bytes read as Latin-1 (mojibake: control
characters), a name with U+FFFD (bytes a decoder replaced), an over-long name,
an unknown sex ("9").

A decoy or outsider whose normalized facts equal a resident's current or past
facts would BE that resident under the rule, so such draws are skipped (their
count is reported; at a million, a handful at most).

Matching goes through the same path as ``MatchRecords`` (``registry_binding.records``'
field checks and ``normalize``, then ``Matcher.match_normalized``), in
process, one record at a time; no sealing, no hub (those are measured by
``--end-to-end``, which see). Precision must be 100 %: a single record bound
to anybody but its own resident raises ``PrecisionError`` (exit status 1).
Recall is over the records that must bind (plain, form, moved).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from legacy_stubs.registry.model import Address, Resident
from legacy_stubs.registry.population import REFERENCE_DATE, Sampler, generate, paused_gc
from legacy_stubs.registry.resident_code import new_resident_code
from legacy_stubs.registry.source import JukiMockSource
from legacy_stubs.registry.store import RegistryStore
from registry_binding.matching import Matcher, MatchResult
from registry_binding.records import record_keys  # the exact field checks MatchRecords applies
from renkei import db
from renkei.fourfacts._text import itaiji_table
from renkei.fourfacts.eras import era_of
from renkei.fourfacts.normalize import FourFacts, normalize_name, normalize_town

SHARES: dict[str, float] = {
    "plain": 0.20,
    "form": 0.64,
    "moved": 0.01,
    "twin": 0.01,
    "decoy-address": 0.04,
    "decoy-sex": 0.02,
    "outsider": 0.05,
    "malformed": 0.03,
}
MUST_BIND = ("plain", "form", "moved")
OUTSIDER_SEED_OFFSET = 7919
YOKOHAMA = 3_700_000


class PrecisionError(AssertionError):
    """A record bound to somebody it is not about. The bench's one unforgivable outcome."""


@dataclass(frozen=True, slots=True)
class BenchRecord:
    kind: str
    facts: FourFacts
    truth: str | None
    """The resident code the record must bind to; None: it must bind to nobody."""


# -- spellings ----------------------------------------------------------------------------

_WIDE = str.maketrans("0123456789-", "０１２３４５６７８９－")
_KANJI_DIGITS = "〇一二三四五六七八九"


def kanji_number(n: int) -> str:
    """1..99 in kanji numerals with 十: 3 -> 三, 10 -> 十, 23 -> 二十三."""
    tens, ones = divmod(n, 10)
    text = ("" if tens <= 1 else _KANJI_DIGITS[tens]) + ("十" if tens else "")
    return text + (_KANJI_DIGITS[ones] if ones else "")


@functools.cache
def _old_forms() -> dict[str, tuple[str, ...]]:
    """New form -> its old and variant forms (the reverse of ``itaiji.toml``)."""
    out: dict[str, list[str]] = {}
    for variant, canonical in itaiji_table().items():
        out.setdefault(canonical, []).append(variant)
    return {k: tuple(v) for k, v in out.items()}


@functools.cache
def _half_width() -> dict[str, str]:
    """Full-width katakana -> half-width (NFKC's inverse for katakana, voiced ones as two)."""
    out: dict[str, str] = {}
    for code in range(0xFF66, 0xFF9E):
        half = chr(code)
        out[unicodedata.normalize("NFKC", half)] = half
        for mark in "ﾞﾟ":
            full = unicodedata.normalize("NFKC", half + mark)
            if len(full) == 1:
                out[full] = half + mark
    return out


def _is_ideograph(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or ch == "々"


def name_spelling(kanji: str, style: int, rng: random.Random) -> str:
    """The register's "山田 太郎" in spelling ``style`` (0 = as registered)."""
    family, _, given = kanji.partition(" ")
    if style == 1:
        return f"{family}\u3000{given}"
    if style == 2:
        return family + given
    if style == 3:
        return f"{family}  {given}"
    if style == 4:  # old forms wherever one exists, full-width space
        forms = _old_forms()
        old = "".join(rng.choice(forms[c]) if c in forms else c for c in kanji)
        return old.replace(" ", "\u3000")
    if style == 5:  # 々 spelled out ("佐々木" -> "佐佐木"), or a doubled ideograph as 々
        out: list[str] = []
        for ch in kanji:
            if ch == "々" and out:
                ch = out[-1]
            elif out and ch == out[-1] and _is_ideograph(ch):
                ch = "々"
            out.append(ch)
        return "".join(out)
    return kanji


NAME_STYLES = 6


def kana_spelling(kana: str, style: int) -> str:
    if style == 1:
        return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in kana)
    if style == 2:
        half = _half_width()
        return "".join(half.get(c, c) for c in kana)
    if style == 3:
        return kana.replace(" ", "")
    if style == 4:
        return ""
    return kana


KANA_STYLES = 5
_PARTICLE_SWAP = {"ヶ": "ケが", "ケ": "ヶが", "が": "ヶケ", "ガ": "ヶケ", "の": "ノ", "ノ": "の"}


def town_spelling(town: str, rng: random.Random) -> str:
    """ヶ/ケ/が/ガ and の/ノ between ideographs swapped; old forms for some characters."""
    chars = list(town)
    for i in range(1, len(chars) - 1):
        swap = _PARTICLE_SWAP.get(chars[i])
        if swap and _is_ideograph(chars[i - 1]) and _is_ideograph(chars[i + 1]):
            chars[i] = rng.choice(swap)
    forms = _old_forms()
    return "".join(rng.choice(forms[c]) if c in forms and rng.random() < 0.5 else c for c in chars)


def numbers_spelling(a: Address, style: int) -> str:
    c, b, g = a.chome, a.banchi, a.go
    return (
        f"{c}丁目{b}番{g}号",
        f"{c}-{b}-{g}",
        f"{c}-{b}-{g}".translate(_WIDE),
        f"{kanji_number(c)}丁目{b}番地{g}号",
        f"{c}丁目{b}番地の{g}",
        f"{c}丁目{b}-{g}",
    )[style]


NUMBER_STYLES = 6
PLACE_STYLES = 5


def address_spelling(
    a: Address, place_style: int, number_style: int, rng: random.Random, *, town_forms: bool
) -> tuple[str, str | None]:
    """(address line, municipality hint) for ``a``."""
    muni = a.municipality.replace(" ", "")
    town = town_spelling(a.town, rng) if town_forms else a.town
    numbers = numbers_spelling(a, number_style)
    if place_style == 1:  # no prefecture
        return f"{muni}{town}{numbers}", None
    if place_style == 2:  # spaces between the parts
        return f"{a.prefecture} {a.municipality}\u3000{town} {numbers}", None
    if place_style == 3:  # the municipality's own file: no municipality, a hint
        return f"{town}{numbers}", a.municipality_code
    if place_style == 4:  # prefecture, municipality hint too (harmless)
        return f"{a.prefecture}{muni}{town}{numbers}", a.municipality_code
    return f"{a.prefecture}{muni}{town}{numbers}", None


def date_spelling(d: date, style: int) -> str:
    if style == 0:
        return d.isoformat()
    if style == 1:
        return f"{d.year}/{d.month}/{d.day}"
    if style == 2:
        return f"{d.year}{d.month:02d}{d.day:02d}"
    if style == 8:
        return d.isoformat().translate(_WIDE)
    era, year = era_of(d)
    if style == 3:
        shown = "元" if year == 1 else str(year)
        return f"{era.name}{shown}年{d.month}月{d.day}日"
    if style == 4:
        return f"{era.letter}{year}.{d.month}.{d.day}"
    if style == 5:
        return f"{era.letter}{year:02d}{d.month:02d}{d.day:02d}"
    if style == 6:
        shown = "元" if year == 1 else kanji_number(year)
        return f"{era.name}{shown}年{kanji_number(d.month)}月{kanji_number(d.day)}日"
    return f"{era.code}{year:02d}{d.month:02d}{d.day:02d}"  # 7: the register's form


DATE_STYLES = 9
_SEXES = (("1", "2"), ("男", "女"), ("男性", "女性"), ("M", "F"), ("Ｍ", "Ｆ"), ("male", "female"))
SEX_STYLES = len(_SEXES) + 1


def sex_spelling(sex: str, style: int) -> str:
    if style == len(_SEXES):
        return sex.translate(_WIDE)
    return _SEXES[style][0 if sex == "1" else 1]


@dataclass(frozen=True, slots=True)
class Spelling:
    """One choice per fact (0 everywhere = the register's own spelling)."""

    name: int = 0
    kana: int = 0
    place: int = 0
    numbers: int = 0
    town_forms: bool = False
    birth: int = 0
    sex: int = 0

    @classmethod
    def draw(cls, rng: random.Random) -> Spelling:
        return cls(
            rng.randrange(NAME_STYLES),
            rng.randrange(KANA_STYLES),
            rng.randrange(PLACE_STYLES),
            rng.randrange(NUMBER_STYLES),
            rng.random() < 0.5,
            rng.randrange(DATE_STYLES),
            rng.randrange(SEX_STYLES),
        )


def spell(
    r: Resident,
    spelling: Spelling,
    rng: random.Random,
    *,
    address: Address | None = None,
    sex: str | None = None,
) -> FourFacts:
    """``r`` as an agency writes it (``address``/``sex`` override the register's)."""
    line, hint = address_spelling(
        address or r.address,
        spelling.place,
        spelling.numbers,
        rng,
        town_forms=spelling.town_forms,
    )
    return FourFacts(
        name=name_spelling(r.name.kanji, spelling.name, rng),
        kana=kana_spelling(r.name.kana, spelling.kana) or None,
        address=line,
        birth_date=date_spelling(r.birth_date, spelling.birth),
        sex=sex_spelling(sex or r.sex, spelling.sex),
        municipality_hint=hint,
    )


PLAIN = Spelling()
MALFORMED = (
    "impossible date",
    "no name",
    "no birth date",
    "no address",
    "address without 号",
    "mojibake name",
    "replacement character",
    "over-long name",
    "unknown sex",
)
_BAD_DATES = ("2023-02-30", "平成31年5月1日", "昭和64年1月8日", "令和0年1月1日")


def malformed(r: Resident, n: int) -> FourFacts:
    """``r``'s plain record with one fact broken: ``MALFORMED[n % len(MALFORMED)]``."""
    facts = spell(r, PLAIN, random.Random(n))
    kind = MALFORMED[n % len(MALFORMED)]
    if kind == "impossible date":
        return replace(facts, birth_date=_BAD_DATES[n % len(_BAD_DATES)])
    if kind == "no name":
        return replace(facts, name="")
    if kind == "no birth date":
        return replace(facts, birth_date="")
    if kind == "no address":
        return replace(facts, address="")
    if kind == "address without 号":
        a = r.address
        line = f"{a.prefecture}{a.municipality.replace(' ', '')}{a.town}{a.chome}丁目{a.banchi}番"
        return replace(facts, address=line)
    if kind == "mojibake name":
        return replace(facts, name=r.name.kanji.encode("shift_jis").decode("latin-1"))
    if kind == "replacement character":
        return replace(facts, name=r.name.kanji[:-1] + "\ufffd")
    if kind == "over-long name":
        return replace(facts, name=r.name.kanji * 60)
    return replace(facts, sex="9")


# -- the register and the file --------------------------------------------------------------


def _fact_key(
    r: Resident, address: Address | None = None, sex: str | None = None
) -> tuple[Any, ...]:
    a = address or r.address
    return (
        normalize_name(r.name.kanji),
        r.birth_date,
        sex or r.sex,
        a.municipality_code,
        normalize_town(a.town),
        a.chome,
        a.banchi,
        a.go,
    )


@dataclass
class World:
    residents: list[Resident]
    twins: list[tuple[Resident, Resident]]
    moves: list[tuple[Resident, Address]]
    """(resident as generated, the new address)."""
    records: list[BenchRecord] = field(default_factory=list)
    skipped: int = 0


def build_world(count: int, records: int, seed: int) -> World:
    """The register's residents (plus twins and movers) and the agency's file."""
    if count < 100:
        raise ValueError("count must be at least 100")
    rng = random.Random(seed * 1_000_003 + 17)
    people = list(generate(seed, count))
    order = list(range(count))
    rng.shuffle(order)
    sizes = {kind: round(records * share) for kind, share in SHARES.items()}
    taken_slices: dict[str, list[int]] = {}
    pos = 0
    for kind in ("plain", "form", "moved", "twin", "decoy-address", "decoy-sex", "malformed"):
        n = sizes[kind]
        taken_slices[kind] = [order[(pos + i) % count] for i in range(n)]
        pos += n
    codes = {p.resident_code for p in people}
    twins: list[tuple[Resident, Resident]] = []
    for i in taken_slices["twin"]:
        first = people[i]
        twins.append((first, replace(first, resident_code=new_resident_code(rng, codes))))
        codes.add(twins[-1][1].resident_code)
    sampler = Sampler(rng)
    moves = [
        (people[i], sampler.address(exclude_code=people[i].address.municipality_code))
        for i in taken_slices["moved"]
    ]
    world = World(people, twins, moves)
    known = {_fact_key(p) for p in people}
    known.update(_fact_key(r, address=new) for r, new in moves)

    out = world.records
    for i in taken_slices["plain"]:
        out.append(BenchRecord("plain", spell(people[i], PLAIN, rng), people[i].resident_code))
    for i in taken_slices["form"]:
        r = people[i]
        out.append(BenchRecord("form", spell(r, Spelling.draw(rng), rng), r.resident_code))
    for r, _new in moves:
        out.append(BenchRecord("moved", spell(r, Spelling.draw(rng), rng), r.resident_code))
    for first, _second in twins:
        out.append(BenchRecord("twin", spell(first, Spelling.draw(rng), rng), None))
    for n, i in enumerate(taken_slices["decoy-address"]):
        r = people[i]
        a = r.address
        other = replace(a, banchi=rng.randint(31, 60), go=rng.randint(31, 60))
        if n % 2:
            other = replace(sampler.address(exclude_code=a.municipality_code), go=other.go)
        if _fact_key(r, address=other) in known:
            world.skipped += 1
            continue
        facts = spell(r, Spelling.draw(rng), rng, address=other)
        out.append(BenchRecord("decoy-address", facts, None))
    for i in taken_slices["decoy-sex"]:
        r = people[i]
        other_sex = "2" if r.sex == "1" else "1"
        if _fact_key(r, sex=other_sex) in known:
            world.skipped += 1
            continue
        facts = spell(r, Spelling.draw(rng), rng, sex=other_sex)
        out.append(BenchRecord("decoy-sex", facts, None))
    outsiders = generate(seed + OUTSIDER_SEED_OFFSET, sizes["outsider"])
    for r in outsiders:
        if _fact_key(r) in known:
            world.skipped += 1
            continue
        out.append(BenchRecord("outsider", spell(r, Spelling.draw(rng), rng), None))
    for n, i in enumerate(taken_slices["malformed"]):
        out.append(BenchRecord("malformed", malformed(people[i], n), None))
    rng.shuffle(out)
    return world


def store_world(world: World, store: RegistryStore) -> None:
    """Load the register: residents, twins, then the moves (which write its history)."""
    store.add_many([*world.residents, *(second for _first, second in world.twins)])
    for r, new in world.moves:
        store.move(r.resident_code, new, REFERENCE_DATE)


def _fast_sqlite(dbapi_conn: Any, _record: Any) -> None:
    # The bench's register is thrown away: its durability is not what is measured.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=OFF")
    cur.close()


# -- matching ------------------------------------------------------------------------------


def classify(record: BenchRecord, result: MatchResult | str) -> str:
    """The outcome: "bound", "WRONG" (precision broken), "ambiguous", "none", "invalid"."""
    if isinstance(result, str):
        return "invalid"
    if result.status == "unique":
        return "bound" if result.resident_code == record.truth else "WRONG"
    return result.status


def match_all(matcher: Matcher, records: Sequence[BenchRecord]) -> list[MatchResult | str]:
    """As ``RegistryBinding`` does for a ``MatchRecords`` batch, without the sealing."""
    out: list[MatchResult | str] = []
    append = out.append
    match = matcher.match_normalized
    for record in records:
        try:
            keys = record_keys(record.facts, "iso5218")
        except ValueError as exc:
            append(f"invalid record: {exc}")
            continue
        append(match(keys))
    return out


def run(
    count: int = 1_000_000,
    records: int | None = None,
    seed: int = 1,
    *,
    echo: bool = True,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Build, store, index, match; the figures as a dict (a table on stdout if ``echo``).

    Raises ``PrecisionError`` if any record binds to anybody but its resident.
    """
    records = count if records is None else records
    console = Console()
    say: Callable[[str], None] = console.print if echo else (lambda _m: None)
    with paused_gc():
        started = time.perf_counter()
        world = build_world(count, records, seed)
        build_seconds = time.perf_counter() - started
        say(
            f"generated {count:,} residents and {len(world.records):,} records"
            f" in {build_seconds:.1f} s"
        )
        with tempfile.TemporaryDirectory(prefix="binding-bench-") as tmp:
            engine = db.create_engine(db.sqlite_url(str(Path(tmp) / "registry.db")))
            sa.event.listen(engine, "connect", _fast_sqlite)
            try:
                store = RegistryStore(engine)
                started = time.perf_counter()
                store_world(world, store)
                store_seconds = time.perf_counter() - started
                say(f"stored in {store_seconds:.1f} s")
                started = time.perf_counter()
                matcher = Matcher(JukiMockSource(store))
                index_seconds = time.perf_counter() - started
                say(f"indexed in {index_seconds:.1f} s")
            finally:
                engine.dispose()
        batch = world.records
        started = time.perf_counter()
        if profile is not None:
            import cProfile

            with cProfile.Profile() as prof:
                results = match_all(matcher, batch)
            prof.dump_stats(profile)
        else:
            results = match_all(matcher, batch)
        match_seconds = time.perf_counter() - started
    outcomes: Counter[tuple[str, str]] = Counter()
    wrong: list[str] = []
    for record, got in zip(batch, results, strict=True):
        outcome = classify(record, got)
        outcomes[record.kind, outcome] += 1
        if outcome == "WRONG" and len(wrong) < 10:
            wrong.append(f"{record.kind}: {record.facts} (truth {record.truth}) -> {got}")
    must = sum(
        outcomes[k, o]
        for k in MUST_BIND
        for o in ("bound", "WRONG", "ambiguous", "none", "invalid")
    )
    bound_right = sum(outcomes[k, "bound"] for k in SHARES)
    bound_wrong = sum(outcomes[k, "WRONG"] for k in SHARES)
    rate = len(batch) / match_seconds
    result: dict[str, Any] = {
        "count": count,
        "residents_stored": count + len(world.twins),
        "records": len(batch),
        "seed": seed,
        "skipped_draws": world.skipped,
        "generate_seconds": round(build_seconds, 2),
        "store_seconds": round(store_seconds, 2),
        "index_seconds": round(index_seconds, 2),
        "match_seconds": round(match_seconds, 2),
        "records_per_second": round(rate),
        "yokohama_match_seconds": round(YOKOHAMA / rate, 1),
        "bound_right": bound_right,
        "bound_wrong": bound_wrong,
        "precision": 1.0
        if bound_right + bound_wrong == 0
        else bound_right / (bound_right + bound_wrong),
        "recall": sum(outcomes[k, "bound"] for k in MUST_BIND) / must if must else 1.0,
        "twins_ambiguous": outcomes["twin", "ambiguous"],
        "outcomes": {f"{k}/{o}": n for (k, o), n in sorted(outcomes.items())},
        "cpus": os.cpu_count(),
    }
    if echo:
        print_table(result, console)
    if bound_wrong:
        raise PrecisionError(
            f"PRECISION BROKEN: {bound_wrong} records bound to the wrong resident:\n"
            + "\n".join(wrong)
        )
    return result


def print_table(result: dict[str, Any], console: Console) -> None:
    title = (
        f"binding: {result['records']:,} records against {result['residents_stored']:,}"
        f" residents (seed {result['seed']}, {result['cpus']} CPUs)"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("index build", f"{result['index_seconds']:.1f} s")
    table.add_row("matching (normalize + match)", f"{result['match_seconds']:.1f} s")
    table.add_row("records matched / s", f"{result['records_per_second']:,}")
    table.add_row(
        "3.7 M records (Yokohama), matching only", f"{result['yokohama_match_seconds']:.0f} s"
    )
    table.add_row("precision", f"{result['precision']:.4%}")
    table.add_row("recall (plain, form, moved)", f"{result['recall']:.4%}")
    table.add_row("bound wrongly", f"{result['bound_wrong']:,}")
    table.add_row("skipped draws (decoy = a resident)", f"{result['skipped_draws']:,}")
    console.print(table)
    kinds = Table(title="outcomes by kind of record")
    kinds.add_column("kind")
    columns = ("bound", "WRONG", "ambiguous", "none", "invalid")
    for c in columns:
        kinds.add_column(c, justify="right")
    for kind in SHARES:
        counts = [result["outcomes"].get(f"{kind}/{c}", 0) for c in columns]
        kinds.add_row(kind, *(f"{n:,}" for n in counts))
    console.print(kinds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.matcher")
    parser.add_argument("--count", type=int, default=1_000_000, help="residents generated")
    parser.add_argument("--records", type=int, default=None, help="agency records (default: count)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile the matching to this file"
    )
    args = parser.parse_args(argv)
    if args.count < 100:
        parser.error("--count must be at least 100")
    try:
        run(args.count, args.records, args.seed, profile=args.profile)
    except PrecisionError as err:
        Console(stderr=True).print(f"[bold red]{err}[/]")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
