"""The agency registry: the prefectures, municipalities and bodies Annex Table 2 names.

``AgencyRegistry.load()`` builds it from the shipped data (``renkei/data/local_governments.csv``,
check digits verified, and ``data/agencies.toml``); every agency carries the class
names the annex compiler (``hub_server.annex``) uses.
"""

from __future__ import annotations

from hub_server.agencies.registry import (
    AgencyRegistry,
    AmbiguousAgencyName,
    RegisteredAgency,
    UnknownAgency,
    Ward,
)
from renkei.localgov import (
    LocalGovernment,
    LocalGovernmentDataError,
    check_digit,
    is_valid_code,
    parse_local_governments,
)

__all__ = [
    "AgencyRegistry",
    "AmbiguousAgencyName",
    "LocalGovernment",
    "LocalGovernmentDataError",
    "RegisteredAgency",
    "UnknownAgency",
    "Ward",
    "check_digit",
    "is_valid_code",
    "parse_local_governments",
]
