"""The town_kokuho mapper: its spec, one hook, and the factory its entry point names."""

import calendar
from datetime import date
from pathlib import Path

from comm_server.mapping.mapper import SpecMapper
from renkei.fourfacts.eras import era_by_key, era_of


class EraYearMonth:
    """和暦 year-month GYYMM ("50604" = 令和6年4月) <-> ISO "2024-04"."""

    def parse(self, text: str, field: object) -> str:
        if len(text) != 5 or not text.isascii() or not text.isdigit():
            raise ValueError("not an era year-month GYYMM")
        era = era_by_key(text[0])  # ValueError for an unknown era code
        year, month = era.first_day.year + int(text[1:3]) - 1, int(text[3:5])
        last = era.last_day or era.first_day.replace(year=9999)
        if not 1 <= month <= 12 or not (
            (era.first_day.year, era.first_day.month) <= (year, month) <= (last.year, last.month)
        ):
            raise ValueError(f"{era.name}{int(text[1:3])}年{month}月 does not exist")
        return f"{year:04d}-{month:02d}"

    def format(self, value: str, field: object) -> str:
        year, month = int(value[:4]), int(value[5:7])
        last_day = calendar.monthrange(year, month)[1]
        era, era_year = era_of(date(year, month, last_day))
        return f"{era.code}{era_year:02d}{month:02d}"


era_year_month = EraYearMonth()


def mapper() -> SpecMapper:
    return SpecMapper.from_file(Path(__file__).with_name("town_kokuho.toml"))
