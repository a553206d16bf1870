"""The mocked resident register (Juki-net, 住民基本台帳ネットワーク).

Juki-net is the legacy system that holds each resident's 11-digit resident
code (住民票コード) and the latest four facts (4情報): name, address, date of
birth, sex (R8, R13, R14). This package stands in for it: a reproducible
synthetic population, a store with history and a change feed, random life
events, a CLI (``renkei registry ...``) and a benchmark. The registry's
binding party (``registry_binding``) reads it through the port
``renkei.residents.ResidentSource`` (``source``), never its tables.

Modules
-------
``resident_code``  check digit, validation, issuing codes.
``model``          the values (from ``renkei.residents``) and checks of values from outside.
``places``         Japan's municipalities and wards (``renkei.localgov``'s CC0 table).
``population``     ``generate(seed, count)``: the same residents for the same seed.
``store``          ``RegistryStore(engine)``: SQLAlchemy Core, SQLite or PostgreSQL.
``simulate``       ``simulate_changes(store, seed, n)``: moves, marriages, deaths, ...
``source``         ``JukiMockSource``: the store as a ``ResidentSource`` (``juki_mock``).
``cli``            ``main(argv)``: generate, show, changes, simulate, bench.
``bench``          ``run(count, seed)``: generation and generation + SQLite store timed.

Resident code check digit (our choice, not the official formula)
------------------------------------------------------------------
The official formula is not public. Here: ten random digits, then a check
digit over them with modulus 11 and weights 2, 3, 4, 5, 6, 7, 2, 3, 4, 5
taken from the rightmost of the ten digits; check = 11 - (sum mod 11), and
remainders 0 and 1 both give 0. It is deliberately not the Number's formula
(eleven digits, weights 2..7, 2..6). Because remainders 0 and 1 share a check
digit, a one-digit error between them would go unseen, so codes with those
remainders are never issued: every issued code fails validation if any one
digit changes. Only ASCII digits count: full-width (U+FF10-U+FF19) and other scripts'
digits are refused.

Sex
---
ISO/IEC 5218 codes, as in JIS X 0303: "1" male, "2" female. The register has
no other value.

Names
-----
``Name(kanji, kana)``: family name, ONE half-width space (U+0020), given name,
in both: "山田 太郎" / "ヤマダ タロウ". Kana is full-width katakana (ァ-ヶ, ー).
Generated names pair kanji with readings from Faker's ja_JP data, family names
weighted by the frequencies Faker ships.

Addresses
---------
A real municipality or ward with its 6-digit local government code; a
designated city that has wards never appears itself, only its wards. The
``municipality`` field keeps the table's form ("横浜市 鶴見区"); ``Address.text``
joins everything without spaces: "神奈川県横浜市鶴見区豊岡町3丁目12番5号". Towns
come from Faker's ja_JP list (so a town need not exist in that municipality).

Tables
------
``residents``  one row per person: current code and four facts, status
               ("alive" or "deceased"), date of death, ``valid_from``.
``history``    every past version (closed by ``valid_to``); the current
               version stays in ``residents``.
``changes``    the feed: ``seq`` (autoincrement), resident code, kind
               ("birth", "move", "name_change", "death", "code_change"),
               effective date, ``before`` / ``after`` JSON, ``recorded_at``.
``feed_lock``  one row that every change transaction updates first, so
               changes commit in ``seq`` order.

Who follows whom, each agency's queue and the consent log are the binding
party's, in its own store (``registry_binding.store``).

The initial load (``add_many``) writes no feed entries: it is the state the
feed starts from. Each change writes all three tables in one transaction. A
code change keeps the person: ``history`` finds them by old or new code, and
the feed entry carries the old code with the new one in ``after``.
"""

from __future__ import annotations

from .model import Address, Change, Name, Resident, Version
from .population import generate
from .resident_code import check_digit, is_valid, new_resident_code, validate
from .simulate import simulate_changes
from .store import RegistryStore

__all__ = [
    "Address",
    "Change",
    "Name",
    "RegistryStore",
    "Resident",
    "Version",
    "check_digit",
    "generate",
    "is_valid",
    "new_resident_code",
    "simulate_changes",
    "validate",
]
