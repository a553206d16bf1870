"""Reading the legal Japanese of Annex Table 2: parentheticals, enumerations, numerals.

Statute text nests parentheticals （…） and joins enumerations with "、", "又は" and
"若しくは" ("A、B又はC", "A若しくはB又はC"). These helpers split a cell at the
enumeration separators that are *not* inside a parenthetical, and keep each
parenthetical as its own token so the compiler can tell definitions
("（…をいう。以下同じ。）"), short names ("（以下「…」という。）"), inclusions
("（…を含む。）"), limitations ("（…に限る。）") and law numbers apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN = "（"
CLOSE = "）"

# Separators of an enumeration, longest first so "若しくは" is not read as something else.
SEPARATOR_RE = re.compile(r"、|又は|若しくは")

# Closing formula of nearly every cell: "... which an ordinance of the competent
# ministries specifies". It narrows the cell; it does not change who or what.
MINISTERIAL_SUFFIX = "であって主務省令で定めるもの"

DEFINITION_RE = re.compile(r"^（(?P<body>.*)をいう。以下同じ。）$", re.S)
SHORT_NAME_RE = re.compile(r"^（以下「(?P<name>[^」]+)」という。）$")
INCLUSION_RE = re.compile(r"^（(?P<body>.*)を含む。）$", re.S)
LIMITATION_RE = re.compile(r"^（(?P<body>.*)に限る。）$", re.S)
LAW_NUMBER_RE = re.compile(
    r"^（(?:明治|大正|昭和|平成|令和)[元一二三四五六七八九十]+年"
    r"(?:法律|政令)第[一二三四五六七八九十百千]+号）$"
)


@dataclass(frozen=True)
class Paren:
    """A top-level parenthetical, brackets included."""

    text: str


Token = str | Paren


def tokenize(text: str) -> list[Token]:
    """Split into plain-text runs and top-level parentheticals (nested ones stay inside)."""
    tokens: list[Token] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == OPEN:
            if depth == 0:
                if i > start:
                    tokens.append(text[start:i])
                start = i
            depth += 1
        elif ch == CLOSE:
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced {CLOSE!r} at {i} in {text!r}")
            if depth == 0:
                tokens.append(Paren(text[start : i + 1]))
                start = i + 1
    if depth != 0:
        raise ValueError(f"unclosed {OPEN!r} in {text!r}")
    if start < len(text):
        tokens.append(text[start:])
    return tokens


def plain(tokens: list[Token]) -> str:
    """The text with top-level parentheticals left out."""
    return "".join(t for t in tokens if isinstance(t, str))


def joined(tokens: list[Token]) -> str:
    """The text with parentheticals kept, as written."""
    return "".join(t if isinstance(t, str) else t.text for t in tokens)


@dataclass(frozen=True)
class Piece:
    """One member of an enumeration; ``separator`` is what preceded it ("" for the first)."""

    tokens: tuple[Token, ...]
    separator: str

    @property
    def plain(self) -> str:
        return plain(list(self.tokens))

    @property
    def text(self) -> str:
        return joined(list(self.tokens))


def split_top_level(tokens: list[Token]) -> list[Piece]:
    """Cut at every top-level separator. Callers merge pieces back where a cut was wrong."""
    pieces: list[Piece] = []
    current: list[Token] = []
    separator = ""
    for token in tokens:
        if isinstance(token, Paren):
            current.append(token)
            continue
        pos = 0
        for m in SEPARATOR_RE.finditer(token):
            if m.start() > pos:
                current.append(token[pos : m.start()])
            pieces.append(Piece(tuple(current), separator))
            current = []
            separator = m.group(0)
            pos = m.end()
        if pos < len(token):
            current.append(token[pos:])
    pieces.append(Piece(tuple(current), separator))
    return pieces


def merge(left: Piece, right: Piece) -> Piece:
    """Undo a cut: the separator was part of the text (e.g. "第五十五条又は第百二十八条")."""
    return Piece((*left.tokens, right.separator, *right.tokens), left.separator)


def strip_suffix(text: str, suffix: str = MINISTERIAL_SUFFIX) -> tuple[str, bool]:
    if text.endswith(suffix):
        return text[: -len(suffix)], True
    return text, False


# ------------------------------------------------------------------ kanji numerals

_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}


def kanji_number(text: str) -> int:
    """A kanji numeral's value: 百二十 -> 120, 五十六 -> 56, 十 -> 10; ValueError otherwise."""
    if not text:
        raise ValueError("empty numeral")
    total = 0
    digit: int | None = None
    for ch in text:
        if ch in _DIGITS:
            if digit is not None:
                raise ValueError(f"not a kanji numeral: {text!r}")
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            total += (digit if digit is not None else 1) * _UNITS[ch]
            digit = None
        else:
            raise ValueError(f"not a kanji numeral: {text!r}")
    return total + (digit or 0)


def item_key(item: str) -> tuple[int, ...]:
    """Sort key of an item number: "五十六の二" -> (56, 2), "一" -> (1,)."""
    return tuple(kanji_number(part) for part in item.split("の"))
