"""Character-level folding shared by the normalizers and the place table (internal)."""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from importlib import resources

# Whitespace as str.split() sees it, plus the zero-width characters that NFKC keeps.
_SPACES = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")
# Dash-like characters that legacy systems put between address numbers ("1－2－3").
# After NFKC the full-width hyphen-minus is already "-"; these are the ones NFKC keeps.
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2500\u2501\u30fc"


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def remove_spaces(text: str) -> str:
    return _SPACES.sub("", text) if _SPACES.search(text) else text


@functools.cache
def itaiji_table() -> dict[str, str]:
    """``data/itaiji.toml``: every [section]'s variant -> canonical pairs, in one dict."""
    raw = resources.files("renkei.fourfacts").joinpath("data/itaiji.toml").read_text("utf-8")
    table: dict[str, str] = {}
    for section, pairs in tomllib.loads(raw).items():
        if not isinstance(pairs, dict):
            raise ValueError(f"itaiji.toml: [{section}] must be a table")
        for variant, canonical in pairs.items():
            if not isinstance(canonical, str) or len(variant) != 1 or len(canonical) != 1:
                raise ValueError(f"itaiji.toml: {variant!r} = {canonical!r} is not one-to-one")
            if variant in table:
                raise ValueError(f"itaiji.toml: {variant!r} appears twice")
            table[variant] = canonical
    for variant, canonical in table.items():
        if canonical in table:
            raise ValueError(f"itaiji.toml: {canonical!r} (for {variant!r}) is itself mapped")
    return table


@functools.cache
def _itaiji_translation() -> tuple[re.Pattern[str], dict[int, str]]:
    table = itaiji_table()
    return re.compile("[" + "".join(table) + "]"), {ord(k): v for k, v in table.items()}


def fold_itaiji(text: str) -> str:
    """Old and variant character forms to the canonical form of ``data/itaiji.toml``."""
    pattern, translation = _itaiji_translation()
    # Most texts have none: one regex scan in C is cheaper than translate's per-character look-up.
    return text.translate(translation) if pattern.search(text) else text


def is_kanji(ch: str) -> bool:
    """A CJK ideograph (the main block, extension A, the supplementary planes) or 々."""
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x3FFFF or o == 0x3005


def expand_repeat_marks(text: str) -> str:
    """々 after an ideograph becomes that ideograph again: "佐々木" -> "佐佐木".

    Registers and legacy systems disagree on writing the repeat mark, so keys
    spell it out. A 々 that follows anything else (or starts the text) stays.
    """
    if "々" not in text:
        return text
    out: list[str] = []
    for ch in text:
        if ch == "々" and out and out[-1] != "々" and is_kanji(out[-1]):
            out.append(out[-1])
        else:
            out.append(ch)
    return "".join(out)


# Between two ideographs, these kana are the same place-name particle however written:
# 霞ヶ関 / 霞ケ関 / 霞が関 / 霞ガ関, 丸の内 / 丸ノ内, 一ツ橋 / 一つ橋.
_PARTICLES = {"が": "ケ", "ガ": "ケ", "の": "ノ", "つ": "ツ"}
_KANJI_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003ffff\u3005"
_PARTICLE_RE = re.compile(f"(?<=[{_KANJI_CLASS}])[がガのつ](?=[{_KANJI_CLASS}])")


def _particle(m: re.Match[str]) -> str:
    return _PARTICLES[m[0]]


def unify_place_particles(text: str) -> str:
    """ヶ -> ケ everywhere; が/ガ -> ケ, の -> ノ, つ -> ツ between two ideographs.

    Keeps the length, so positions in the result are positions in the input.
    A particle is never an ideograph, so it never decides whether a neighbour
    is between two: one pass is final.
    """
    if "ヶ" in text:
        text = text.replace("ヶ", "ケ")
    return _PARTICLE_RE.sub(_particle, text)
