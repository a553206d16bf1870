"""Japanese eras (元号) since the Meiji restoration, with their exact first and last days.

Our own table rather than a library: japanera 2.1.3 (checked) starts 明治 on
1868-01-23, lists 慶応 as running on to 1868-10-23 (so the two overlap) and
pulls in a second dependency; five rows are easier to check than that.

========  ======  ==========  ==========  ==================================
era       letter  first day   last day    note
========  ======  ==========  ==========  ==================================
明治 (1)  M       1868-01-25  1912-07-29  first day is 慶応4年1月1日 in the
                                          Gregorian calendar (the era was made
                                          retroactive to that new year's day)
大正 (2)  T       1912-07-30  1926-12-24
昭和 (3)  S       1926-12-25  1989-01-07
平成 (4)  H       1989-01-08  2019-04-30
令和 (5)  R       2019-05-01  (open)
========  ======  ==========  ==========  ==================================

The number in brackets is the era code of the resident register's 7-digit
dates ("3330514" = 昭和33年5月14日).

Japan counted days by the lunisolar calendar until 明治5年12月2日; the next
day was 明治6年1月1日 = 1873-01-01. Before that, 明治 year/month/day do not name
the Gregorian day of the same number, so ``era_date`` refuses 明治1-5年 rather
than guess. Every living resident was born long after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Era:
    name: str
    """The era's name: "昭和"."""
    letter: str
    """The one-letter abbreviation: "S"."""
    code: str
    """The resident register's era code: "3"."""
    first_day: date
    last_day: date | None
    """None for the current era."""


ERAS: tuple[Era, ...] = (
    Era("明治", "M", "1", date(1868, 1, 25), date(1912, 7, 29)),
    Era("大正", "T", "2", date(1912, 7, 30), date(1926, 12, 24)),
    Era("昭和", "S", "3", date(1926, 12, 25), date(1989, 1, 7)),
    Era("平成", "H", "4", date(1989, 1, 8), date(2019, 4, 30)),
    Era("令和", "R", "5", date(2019, 5, 1), None),
)

GREGORIAN_FROM = date(1873, 1, 1)
"""明治6年1月1日, the first day counted by the Gregorian calendar in Japan."""

_BY_KEY: dict[str, Era] = {}
for _era in ERAS:
    _BY_KEY[_era.name] = _era
    _BY_KEY[_era.name[0]] = _era
    _BY_KEY[_era.letter] = _era
    _BY_KEY[_era.code] = _era


def era_by_key(key: str) -> Era:
    """The era called ``key``: its name, first character, letter (upper case) or code.

    >>> era_by_key("昭").name, era_by_key("H").name, era_by_key("5").name
    ('昭和', '平成', '令和')
    """
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown era {key!r}") from None


def era_date(era: Era, year: int, month: int, day: int) -> date:
    """The Gregorian date of ``era`` ``year``/``month``/``day`` (year 1 is 元年).

    Refuses, with a ValueError naming the problem, a day that does not exist
    or that the era did not reach:

    >>> era_date(era_by_key("平成"), 1, 1, 8)
    datetime.date(1989, 1, 8)
    >>> era_date(era_by_key("平成"), 31, 5, 1)
    Traceback (most recent call last):
    ...
    ValueError: 平成31年5月1日 does not exist: 平成 ran from 1989-01-08 to 2019-04-30
    """
    label = f"{era.name}{'元' if year == 1 else year}年{month}月{day}日"
    if year < 1:
        raise ValueError(f"{label} does not exist: era years start at 1 (元年)")
    try:
        value = date(era.first_day.year + year - 1, month, day)
    except ValueError:
        raise ValueError(f"{label} does not exist: no such day in the calendar") from None
    if value < era.first_day or (era.last_day is not None and value > era.last_day):
        until = "today" if era.last_day is None else era.last_day.isoformat()
        raise ValueError(
            f"{label} does not exist: {era.name} ran from {era.first_day.isoformat()} to {until}"
        )
    if value < GREGORIAN_FROM:
        raise ValueError(
            f"{label} is a lunisolar-calendar date (before 明治6年); it is not converted"
        )
    return value


def era_of(value: date) -> tuple[Era, int]:
    """The era ``value`` falls in and the year within it (1 for 元年).

    >>> era, year = era_of(date(1989, 1, 8)); era.name, year
    ('平成', 1)
    """
    for era in reversed(ERAS):
        if value >= era.first_day:
            if value < GREGORIAN_FROM:
                break
            return era, value.year - era.first_day.year + 1
    raise ValueError(f"{value.isoformat()} is before 明治6年 (1873-01-01)")
