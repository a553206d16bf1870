"""Python hooks for fields a spec's types cannot describe (``type = "hook"``).

Each hook is an object with ``parse(text, field)`` and ``format(value, field)``
(``fieldtypes.FieldHook``), named in a spec as ``"module:attribute"``.
"""

from __future__ import annotations

from typing import Any

from .fieldtypes import TYPES, FieldLike

_ERA_DATE = TYPES["era_date"]


class EraDateOrUnknown:
    """An era date ``GYYMMDD`` where ``0000000`` means "not known" (an empty ISO date).

    Resident records converted from paper before the 1990s often lack the
    date a resident moved in (住定日 不詳); such systems write zeros. Any other
    value must be a real era date.
    """

    unknown = "0000000"

    def parse(self, text: str, field: FieldLike) -> str:
        if text == self.unknown:
            return ""
        result: str = _ERA_DATE.parse(text, field)
        return result

    def format(self, value: Any, field: FieldLike) -> str:
        if value == "":
            return self.unknown
        if not isinstance(value, str):
            raise ValueError(f"expected an ISO date, got {value!r}")
        result: str = _ERA_DATE.format(value, field)
        return result


era_date_or_unknown = EraDateOrUnknown()


_TEXT = TYPES["text"]
IDEOGRAPHIC_SPACE = "\u3000"


class AsciiSpacedName:
    """A name whose family and given parts are separated by an ASCII space (the modern
    system's JSON), as the standard layout writes it: separated by one U+3000."""

    def parse(self, text: str, field: FieldLike) -> str:
        value: str = _TEXT.parse(text, field)
        if IDEOGRAPHIC_SPACE in value:
            raise ValueError("U+3000 in a name this format separates with an ASCII space")
        return value.replace(" ", IDEOGRAPHIC_SPACE)

    def format(self, value: Any, field: FieldLike) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {value!r}")
        if " " in value:
            raise ValueError("an ASCII space in a standard-layout name (parts are split by U+3000)")
        result: str = _TEXT.format(value.replace(IDEOGRAPHIC_SPACE, " "), field)
        return result


ascii_spaced_name = AsciiSpacedName()
