"""The four facts (4情報: name, address, date of birth, sex) as matching keys.

Binding an agency's records to the resident register (R13-R15) and checking the
facts a private body sends with consent (R20) both compare four facts written by
different systems: full-width or half-width digits, old character forms, era
dates, "1-2-3" or "一丁目2番地3号", with or without the prefecture. This package
turns each fact into a key that two spellings of the same fact share
(``normalize``), and nothing else: deciding when keys identify one person is the
matcher's job (``registry_binding.matching``).

Import from the modules (the package re-exports nothing, so that
``renkei.fourfacts.normalize`` is always the module, never the function):
``from renkei.fourfacts.normalize import FourFacts, normalize``.

Modules
-------
``normalize``  ``normalize_name``, ``normalize_kana``, ``normalize_town``,
               ``normalize_address``, ``normalize_date``, ``normalize_sex``,
               ``FourFacts`` and ``normalize``.
``eras``       the era table (明治 .. 令和) with exact first and last days.
``places``     prefectures, municipalities and wards (``renkei.localgov``'s table).

Data files (``data/``)
----------------------
``itaiji.toml``            old and variant character forms -> one form (sources inside).
"""

from __future__ import annotations
