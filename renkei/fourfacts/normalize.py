"""Normalizing the four facts (4情報: name, address, date of birth, sex) into matching keys.

Every function here is pure (the only state is the two data files, read once), and
the text ones are idempotent: ``f(f(x)) == f(x)``. Keys are for COMPARING two
records, both put through the same function; they are not for display.

``normalize_name``     NFKC, no spaces, old and variant character forms folded, 々 spelled out.
``normalize_kana``     NFKC, katakana, no spaces, one long-vowel mark.
``normalize_town``     a town (町域) name as a key: a place key with "大字" dropped.
``normalize_address``  an address line parsed into prefecture, municipality, town,
                       丁目, 番(地), 号 and the rest.
``normalize_date``     Gregorian and era (元号) dates in the usual legacy spellings.
``normalize_sex``      the usual legacy sex codes to ISO/IEC 5218 "1" / "2", or None.
``normalize``          all of them for one ``FourFacts`` record.

Invalid input (an impossible date, an empty name, an unknown municipality hint)
raises ValueError with a message that names the problem; nothing is guessed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from ._text import (
    DASHES,
    expand_repeat_marks,
    fold_itaiji,
    nfkc,
    remove_spaces,
    unify_place_particles,
)
from .eras import era_by_key, era_date
from .places import PlaceMatch, gazetteer, place_key

Sex = Literal["1", "2"]
SexEncoding = Literal["iso5218", "male0_female1", "female0_male1"]

_MAX_PASSES = 8
# Keys repeat a lot in bulk files (names, towns, birth dates), so the text
# normalizers keep their recent results. Wrapped, not decorated, so that type
# checkers still see the parameter types.
_CACHE = 65536


def _until_stable(step: Callable[[str], str], text: str) -> str:
    """Apply ``step`` until the text stops changing, which makes the result idempotent.

    One pass is not always enough: NFKC turns ゛ into a space and a combining
    mark, and once the space is gone the mark combines with what precedes it.
    """
    for _ in range(_MAX_PASSES):
        out = step(text)
        if out == text:
            break
        text = out
    return text


# -- names ---------------------------------------------------------------------------------


def _name_pass(text: str) -> str:
    text = nfkc(remove_spaces(nfkc(text)))
    return expand_repeat_marks(fold_itaiji(text)).upper()


@functools.lru_cache(maxsize=_CACHE)
def _name_cached(text: str) -> str:
    return _until_stable(_name_pass, text)


def normalize_name(text: str) -> str:
    """A name (kanji, or Latin letters for some foreign residents) as a matching key.

    * NFKC: full-width Latin letters and digits to ASCII, half-width katakana to
      full-width, compatibility ideographs (U+FA19 神 ...) to the unified ones;
    * every space removed, so "山田 太郎", "山田　太郎" and "山田太郎" are one key
      (the split between family and given name is not part of the key);
    * old and variant character forms to one form (``data/itaiji.toml``:
      常用漢字表 old forms and common 異体字 such as 髙, 﨑, 邉);
    * 々 after an ideograph spelled out ("佐々木" -> "佐佐木");
    * Latin letters upper-cased.

    >>> normalize_name("髙橋　太郎")
    '高橋太郎'
    >>> normalize_name("渡邉 一") == normalize_name("渡邊一") == normalize_name("渡辺 一")
    True
    >>> normalize_name("佐々木 龍") == normalize_name("佐佐木竜")
    True
    >>> normalize_name("ｓｍｉｔｈ　ｊｏｈｎ")
    'SMITHJOHN'
    """
    return _name_cached(text)


# -- kana ------------------------------------------------------------------------------------

# ぁ (U+3041) .. ゖ (U+3096) and ゝ ゞ are the katakana 0x60 higher: ゔ -> ヴ, ゕ -> ヵ.
_HIRA_TO_KATA = {c: c + 0x60 for c in [*range(0x3041, 0x3097), 0x309D, 0x309E]}
# What records use for the long-vowel mark ー once NFKC has run: "-" (from - and －),
# and the dashes NFKC keeps (‐ ‑ ‒ – — ― − ─ ━). ｰ is already ー after NFKC.
_LONG_VOWEL = str.maketrans(dict.fromkeys("-" + DASHES, "ー"))


def _kana_pass(text: str) -> str:
    text = nfkc(remove_spaces(nfkc(text)))
    return text.translate(_HIRA_TO_KATA).translate(_LONG_VOWEL)


@functools.lru_cache(maxsize=_CACHE)
def _kana_cached(text: str) -> str:
    return _until_stable(_kana_pass, text)


def normalize_kana(text: str) -> str:
    """A reading as a matching key: full-width katakana without spaces.

    Hiragana becomes katakana and half-width katakana full-width; small and
    large kana stay distinct (ッ is not ツ) and ヴ stays ヴ; the long-vowel mark
    written as ー, －, ｰ, ‐, - or another dash is ー.

    >>> normalize_kana("やまだ　たろう") == normalize_kana("ﾔﾏﾀﾞ ﾀﾛｳ") == "ヤマダタロウ"
    True
    >>> normalize_kana("ゆうすけ"), normalize_kana("ユ-スケ"), normalize_kana("ｷｯｶﾜ")
    ('ユウスケ', 'ユースケ', 'キッカワ')
    >>> normalize_kana("ゔぃくとりあ")
    'ヴィクトリア'
    """
    return _kana_cached(text)


# -- numbers ---------------------------------------------------------------------------------

_KANJI_DIGITS = {ch: i for i, ch in enumerate("〇一二三四五六七八九")}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_D19 = "[一二三四五六七八九]"
# Kanji numerals as written in addresses and dates: 一, 十二, 二十三, 百, 千二百五 (with
# units), or digit by digit when a 〇 shows it (一〇 = 10, 二〇二 = 202). A run of
# digits without 〇 ("三一") is not read as a number: town names end in numerals too.
KANJI_NUMBER = (
    rf"(?:[〇一二三四五六七八九]*〇[〇一二三四五六七八九]*"
    rf"|(?=[一二三四五六七八九十百千])(?:{_D19}?千)?(?:{_D19}?百)?(?:{_D19}?十)?{_D19}?)"
)
_KANJI_NUMBER_RE = re.compile(KANJI_NUMBER)
_NUM = rf"(?:[0-9]+|{KANJI_NUMBER})"


def parse_number(text: str) -> int:
    """ASCII digits or kanji numerals (see ``KANJI_NUMBER``) to an int.

    >>> [parse_number(t) for t in ("12", "一", "十", "二十三", "百", "百五", "一〇")]
    [12, 1, 10, 23, 100, 105, 10]
    """
    if text.isascii() and text.isdigit():
        return int(text)
    if not text or not _KANJI_NUMBER_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    if not any(ch in _KANJI_UNITS for ch in text):
        return int("".join(str(_KANJI_DIGITS[ch]) for ch in text))
    total = current = 0
    for ch in text:
        if ch in _KANJI_UNITS:
            total += (current or 1) * _KANJI_UNITS[ch]
            current = 0
        else:
            current = _KANJI_DIGITS[ch]
    return total + current


# -- addresses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NormalizedAddress:
    """An address line taken apart. A part the line does not give is None.

    ``prefecture`` and ``municipality`` are the table's names for what the
    line itself says ("神奈川県", "横浜市 中区"; "中区" when that names several
    wards). ``municipality_codes`` are the residential local-government codes
    the address can be in: from the line, narrowed or, when the line names no
    municipality, supplied by the ``municipality_hint``. ``town`` is a
    ``normalize_town`` key. ``rest`` is what follows the 号 (a building, a
    room), kept but not compared.
    """

    prefecture: str | None
    municipality: str | None
    town: str | None
    chome: int | None
    banchi: int | None
    go: int | None
    rest: str = ""
    municipality_codes: frozenset[str] = frozenset()

    @property
    def is_complete(self) -> bool:
        """Municipality (from the line or the hint), town, 丁目, 番 and 号 are all known."""
        numbers = (self.chome, self.banchi, self.go)
        return bool(self.municipality_codes) and bool(self.town) and None not in numbers


def _town_pass(text: str) -> str:
    key = expand_repeat_marks(place_key(text))
    return key[2:] if key.startswith("大字") else key


@functools.lru_cache(maxsize=_CACHE)
def _town_cached(text: str) -> str:
    return _until_stable(_town_pass, text)


def normalize_town(text: str) -> str:
    """A town (町域) name as a matching key.

    A place key (NFKC, no spaces, old forms folded, ヶ/ケ/が/ガ, の/ノ and
    つ/ツ unified between ideographs), 々 spelled out, a leading "大字" dropped.

    >>> normalize_town("霞ヶ関") == normalize_town("霞が関") == normalize_town("霞ケ関")
    True
    >>> normalize_town("大字 丸の内") == normalize_town("丸ノ内")
    True
    """
    return _town_cached(text)


# Dashes between numbers, including the long-vowel mark that legacy entry used for one.
_DASH_OTHER = str.maketrans(dict.fromkeys(DASHES.replace("ー", ""), "-"))
_DIGIT_DASH_DIGIT = re.compile(r"(?<=[0-9])ー(?=[0-9])")

_CHOME = rf"(?<![0-9])(?P<chome>{_NUM})丁目?"
_BANCHI = rf"(?<![0-9])(?P<banchi>{_NUM})"
_GO = rf"(?P<go>{_NUM})号?"
_SEP = r"(?:番地?[のノ-]?|[-のノ])"
_END = r"(?![0-9])(?P<rest>.*)"
# Tried in order; the town is the shortest start that lets a form match.
_TAIL_FORMS = tuple(
    re.compile(f"(?P<town>.*?){form}{_END}")
    for form in (
        f"{_CHOME}{_BANCHI}{_SEP}{_GO}",  # 1丁目2番3号, 一丁目2番地の3, 1丁目2-3
        r"(?<![0-9])(?P<chome>[0-9]+)-(?P<banchi>[0-9]+)-(?P<go>[0-9]+)号?",  # 1-2-3
        f"{_CHOME}{_BANCHI}(?:番地|番)?",  # 1丁目2番地 (no 号)
        f"{_CHOME}",  # 1丁目
        rf"{_BANCHI}(?:番地?[のノ-]?|[のノ]){_GO}",  # 2番地3, 2番地の3 (no 丁目)
        rf"{_BANCHI}(?:番地|番)",  # 2番地
    )
)


_DASH_RE = re.compile(f"[{DASHES}]")


def _address_base(text: str) -> str:
    text = fold_itaiji(remove_spaces(nfkc(text)))
    if "ヶ" in text:
        text = text.replace("ヶ", "ケ")
    if _DASH_RE.search(text):
        text = _DIGIT_DASH_DIGIT.sub("-", text.translate(_DASH_OTHER))
    return text


def _split_tail(text: str) -> tuple[str | None, int | None, int | None, int | None, str]:
    """(town, 丁目, 番, 号, rest) of the part of an address after the municipality."""
    for form in _TAIL_FORMS:
        m = form.fullmatch(text)
        if m is not None:
            parts = m.groupdict()
            chome, banchi, go = parts.get("chome"), parts.get("banchi"), parts.get("go")
            return (
                normalize_town(m["town"]) or None,
                None if chome is None else parse_number(chome),
                None if banchi is None else parse_number(banchi),
                None if go is None else parse_number(go),
                m["rest"],
            )
    return normalize_town(text) or None, None, None, None, ""


def normalize_address(text: str, *, municipality_hint: str | None = None) -> NormalizedAddress:
    """Parse an address line as agencies write it.

    Understood: the prefecture present or not; a municipality, a ward with its
    city ("横浜市中区") or alone ("中区", which names every 中区 unless the
    prefecture or hint narrows it), a designated city without its ward (all
    its wards), a county in front of a town or village ("上川郡東川町", the
    county skipped); the town; 丁目/番地/番/号 as "1丁目2番3号", "一丁目2番地3号",
    "2番地の3", "1-2-3" (any dash, full-width digits); kanji numerals (一, 二十三,
    百); anything after the 号 goes to ``rest``. "1-2" (two numbers) is
    ambiguous and leaves the numbers None.

    ``municipality_hint`` (a name or a 5/6-digit local-government code, e.g.
    the agency's own municipality) supplies the municipality when the line has
    none, narrows an ambiguous one ("中区" + "横浜市"), and, when the line has
    no prefecture, decides that a leading name not in the hint's area is part
    of the town. A line's explicit prefecture and municipality win over it.

    >>> a = normalize_address("神奈川県横浜市中区港町１－２－３")
    >>> a.prefecture, a.municipality, a.town, a.chome, a.banchi, a.go, sorted(a.municipality_codes)
    ('神奈川県', '横浜市 中区', '港町', 1, 2, 3, ['141046'])
    >>> b = normalize_address("港町一丁目2番地の3", municipality_hint="横浜市中区")
    >>> b.prefecture, b.municipality, b.town, (b.chome, b.banchi, b.go), b.is_complete
    (None, None, '港町', (1, 2, 3), True)
    """
    gaz = gazetteer()
    base = _address_base(text)
    key = unify_place_particles(base)  # same length as base: positions carry over
    pos = 0
    prefecture: str | None = None
    found_pref = gaz.prefecture_at(key)
    if found_pref is not None:
        prefecture, pos = found_pref
    hint: PlaceMatch | None = None
    if municipality_hint is not None:
        hint = gaz.resolve(municipality_hint)
    municipality: str | None = None
    codes: frozenset[str] = frozenset()
    found = gaz.municipality_at(key, pos, prefecture)
    if found is not None:
        after = base[found.end :]
        if not after or after[0].isdigit():
            found = None  # nothing left for the town: the "municipality" was the town
        elif hint is not None and prefecture is None and not found.codes & hint.codes:
            found = None  # outside the hint's area, and no prefecture says otherwise
    if found is not None:
        municipality, pos = found.name, found.end
        codes = found.codes
        if hint is not None and found.codes & hint.codes:
            codes = found.codes & hint.codes
    elif hint is not None:
        codes = hint.codes
        if prefecture is not None:
            codes = frozenset(c for c in codes if gaz.by_code[c].prefecture == prefecture)
    town, chome, banchi, go, rest = _split_tail(base[pos:])
    return NormalizedAddress(prefecture, municipality, town, chome, banchi, go, rest, codes)


# -- dates -----------------------------------------------------------------------------------

_DNUM = rf"([0-9]{{1,2}}|{KANJI_NUMBER})"
_ERA_NAME = r"(明治|大正|昭和|平成|令和|[明大昭平令MTSHR])"
_GREGORIAN = re.compile(r"([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?")
_GREGORIAN_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_ERA = re.compile(rf"{_ERA_NAME}(元|[0-9]{{1,2}}|{KANJI_NUMBER})[-/.年]{_DNUM}[-/.月]{_DNUM}日?")
_ERA_COMPACT = re.compile(rf"{_ERA_NAME}([0-9]{{2}})([0-9]{{2}})([0-9]{{2}})")
_ERA_CODE7 = re.compile(r"([1-5])([0-9]{2})([0-9]{2})([0-9]{2})")


def normalize_date(value: str | date) -> date:
    """A date of birth as legacy records write it.

    Gregorian: "1958-05-14", "1958/5/14", "1958.5.14", "1958年5月14日", "19580514".
    Era (元号, table in ``renkei.fourfacts.eras``): "昭和33年5月14日", "昭33.05.14",
    "S33.5.14" (M T S H R, either case), "S330514", "平成元年1月8日", "H1.1.8",
    kanji numerals ("昭和三十三年五月十四日"), the ligatures ㍼ ㍻ ㋿, and the
    resident register's 7-digit form with an era code ("3330514", 3 = 昭和).
    Full-width digits and spaces are fine. A ``date`` is returned as it is
    (a ``datetime``'s date part).

    An impossible date raises ValueError saying why: "平成31年5月1日" (平成 ended
    on 2019-04-30), "昭和64年1月8日", "2023-02-29", 明治 dates before 明治6年
    (lunisolar calendar).

    >>> normalize_date("S33.5.14") == normalize_date("昭和33年5月14日") == date(1958, 5, 14)
    True
    >>> normalize_date("令和元年5月1日"), normalize_date("１９５８／５／１４")
    (datetime.date(2019, 5, 1), datetime.date(1958, 5, 14))
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return _date_cached(value)


@functools.lru_cache(maxsize=_CACHE)
def _date_cached(value: str) -> date:
    text = remove_spaces(nfkc(value)).upper()
    if m := _GREGORIAN.fullmatch(text) or _GREGORIAN_COMPACT.fullmatch(text):
        year, month, day = (int(g) for g in m.groups())
        try:
            return date(year, month, day)
        except ValueError:
            raise ValueError(f"{value!r} does not exist: no such day in the calendar") from None
    era_match = _ERA.fullmatch(text) or _ERA_COMPACT.fullmatch(text) or _ERA_CODE7.fullmatch(text)
    if era_match is None:
        raise ValueError(f"{value!r} is not a date in a known form")
    era_key, year_text, month_text, day_text = era_match.groups()
    era = era_by_key(era_key[0] if era_key[0] in "明大昭平令" else era_key)
    year = 1 if year_text == "元" else parse_number(year_text)
    return era_date(era, year, parse_number(month_text), parse_number(day_text))


# -- sex -------------------------------------------------------------------------------------

_MALE = frozenset({"M", "MALE", "MAN", "男", "男性", "男子", "♂"})
_FEMALE = frozenset({"F", "FEMALE", "WOMAN", "女", "女性", "女子", "♀"})
_ISO_FAST: dict[str | int, Sex] = {"1": "1", "2": "2", 1: "1", 2: "2"}
_NUMERIC: dict[SexEncoding, dict[int, Sex | None]] = {
    "iso5218": {0: None, 1: "1", 2: "2", 9: None},
    "male0_female1": {0: "1", 1: "2"},
    "female0_male1": {0: "2", 1: "1"},
}


def normalize_sex(value: str | int | None, *, encoding: SexEncoding = "iso5218") -> Sex | None:
    """A sex code as ISO/IEC 5218 (= JIS X 0303): "1" male, "2" female; None if unknown.

    Words and letters are read whatever ``encoding`` says: "M"/"F", "男"/"女",
    "男性"/"女性", "male"/"female" (any case, any width). Numbers depend on it:

    * ``"iso5218"`` (default): 1 male, 2 female, 0 not known and 9 not
      applicable (both None). "01" and "02" are 1 and 2.
    * ``"male0_female1"`` / ``"female0_male1"``: the 0/1 codes some legacy
      systems use. They cannot be told from ISO 5218 by looking (a 1 is male
      in one and female in the other), so the caller must say which; a 0/1
      field read with the default would turn every 0 into "unknown" and every
      1 into male.

    Anything else (blank, "X", a number the encoding does not use, a bool) is None.

    >>> [normalize_sex(v) for v in ("1", 2, "Ｍ", "女性", "female", "0", "9", "")]
    ['1', '2', '1', '2', '2', None, None, None]
    >>> normalize_sex(0, encoding="male0_female1"), normalize_sex("1", encoding="male0_female1")
    ('1', '2')
    """
    if value is None or isinstance(value, bool):  # True == 1, but it is not a code
        return None
    if encoding == "iso5218" and value in _ISO_FAST:
        return _ISO_FAST[value]
    if isinstance(value, int):
        return _NUMERIC[encoding].get(value)
    text = remove_spaces(nfkc(value)).upper()
    if text in _MALE:
        return "1"
    if text in _FEMALE:
        return "2"
    if text.isascii() and text.isdigit():
        return _NUMERIC[encoding].get(int(text))
    return None


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FourFacts:
    """One record's four facts as an agency holds them (raw text; keyword arguments only).

    ``municipality_hint`` is for records whose addresses leave out the
    municipality (a municipality's own files): see ``normalize_address``.
    """

    name: str
    kana: str | None = None
    address: str
    birth_date: str | date
    sex: str | int | None
    municipality_hint: str | None = None


@dataclass(frozen=True, slots=True)
class NormalizedFacts:
    """The matching keys of one record."""

    name: str
    kana: str | None
    address: NormalizedAddress
    birth_date: date
    sex: Sex | None


def normalize(facts: FourFacts, *, sex_encoding: SexEncoding = "iso5218") -> NormalizedFacts:
    """The keys of ``facts``; ValueError if the name is empty or the date impossible.

    >>> keys = normalize(FourFacts(name="山田　太郎", kana="やまだ たろう",
    ...     address="横浜市中区港町1-2-3", birth_date="S33.5.14", sex="男"))
    >>> keys.name, keys.kana, keys.birth_date, keys.sex, keys.address.town
    ('山田太郎', 'ヤマダタロウ', datetime.date(1958, 5, 14), '1', '港町')
    """
    name = normalize_name(facts.name)
    if not name:
        raise ValueError("the name is empty")
    kana = None if facts.kana is None else (normalize_kana(facts.kana) or None)
    return NormalizedFacts(
        name,
        kana,
        normalize_address(facts.address, municipality_hint=facts.municipality_hint),
        normalize_date(facts.birth_date),
        normalize_sex(facts.sex, encoding=sex_encoding),
    )
