"""Japan's local governments, from the CC0 table the project ships (``renkei.localgov``).

The table is a verbatim copy of ``shared/data/local_governments.csv`` (code4fukui/localgovjp,
CC0): every prefecture, municipality and ward of a designated city, with its
6-digit local government code. A ward is named "横浜市 鶴見区" (city, space, ward).
"""

from __future__ import annotations

import functools

from renkei.localgov import Kind, LocalGovernment, shipped

__all__ = [
    "Kind",
    "LocalGovernment",
    "all_local_governments",
    "by_code",
    "residential",
    "residential_codes",
]


@functools.cache
def all_local_governments() -> tuple[LocalGovernment, ...]:
    """Every row of the table, in file order."""
    return shipped()


@functools.cache
def by_code() -> dict[str, LocalGovernment]:
    return {g.code: g for g in all_local_governments()}


@functools.cache
def residential() -> tuple[LocalGovernment, ...]:
    """Where a resident's address can be: municipalities and wards, in file order.

    A designated city that has wards is left out in favour of its wards, because
    a resident registry records the ward (the ward office keeps the record).
    """
    rows = all_local_governments()
    cities_with_wards = {(g.prefecture, g.name.split(" ", 1)[0]) for g in rows if g.kind == "ward"}
    return tuple(
        g
        for g in rows
        if g.kind == "ward"
        or (g.kind == "municipality" and (g.prefecture, g.name) not in cities_with_wards)
    )


@functools.cache
def residential_codes() -> frozenset[str]:
    return frozenset(g.code for g in residential())
