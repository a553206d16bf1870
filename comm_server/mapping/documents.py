"""XML and JSON from outside renkei, parsed within limits: the one place for both.

Legacy clients (an answer's envelope), mappers (one record) and ``renkei mapper
check`` (a sample) all parse through here, so a document that would make a
parser raise something else (``RecursionError``, ``LookupError``, a
``ValueError`` of its own) or spend seconds is refused the same way everywhere:
``DocumentError``, whose message names the problem. Clients turn it into
LEGACY_GARBAGE, mappers into ``MappingError``.

Limits (docs/legacy-formats.md, docs/mapper-tutorial.md):

* a document is at most ``MAX_DOCUMENT_BYTES``;
* elements, objects and arrays nest at most ``MAX_DEPTH`` deep;
* XML has no DTD (so no entity declarations, no billion laughs, no external
  entities), in any encoding;
* a JSON integer has at most ``MAX_INT_DIGITS`` digits; NaN and infinities are
  refused; a string holds no lone surrogate (``"\\ud800"``: no UTF-8 form).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from typing import Any, Final

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
"""Longest document parsed (an HTTP answer body is cut there too)."""
MAX_DEPTH: Final = 64
"""Deepest nesting of XML elements or JSON containers; real records nest 2-4 deep."""
MAX_INT_DIGITS: Final = 64
"""Longest JSON integer: far above int64's 19 digits, far below where int() turns slow."""


class DocumentError(ValueError):
    """A document refused by a limit, or not well-formed; the message says which."""


def _too_long(size: int) -> DocumentError:
    return DocumentError(f"document of {size} bytes, over the limit of {MAX_DOCUMENT_BYTES}")


def _too_deep() -> DocumentError:
    return DocumentError(f"nested deeper than {MAX_DEPTH} levels")


# -- XML ---------------------------------------------------------------------------------

# A document expat reads as UTF-8 from its first byte: no BOM but UTF-8's, and no XML
# declaration or one naming UTF-8. In UTF-8 a DTD can only be spelled b"<!DOCTYPE", so
# for these (every answer and record renkei's systems write) a byte search is exact
# (it also refuses the word in a comment or CDATA, which no record needs) and the C
# parser stays fast. Anything else (UTF-16, a declared or odd encoding)
# goes through defusedxml, whose expat handlers refuse a DTD once decoded.
_UTF8_START: Final = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:"
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])1\.[0-9]+\1"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*([\"'])(?i:utf-8)\2)?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*([\"'])(?:yes|no)\3)?[ \t\r\n]*\?>"
    rb"|<(?!\?xml)[^\x00])"
)


def _dtd() -> DocumentError:
    return DocumentError("a DTD (<!DOCTYPE>): DTDs and entity declarations are refused")


def parse_xml(raw: bytes) -> ET.Element:
    """The root element of ``raw``; ``DocumentError`` for anything out of the limits."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise _too_long(len(raw))
    utf8 = _UTF8_START.match(raw) is not None
    if utf8 and b"<!DOCTYPE" in raw:
        raise _dtd()
    try:
        if utf8:
            root = ET.fromstring(raw)
            # Depth is at most the count of "<": the walk is only needed past the limit.
            check = raw.count(b"<") > MAX_DEPTH
        else:
            parser = DefusedXMLParser(forbid_dtd=True)
            parser.feed(raw)
            root = parser.close()
            check = True
    except DefusedXmlException:
        raise _dtd() from None
    except LookupError as err:  # an encoding Python does not know
        raise DocumentError(f"not readable XML: {err}") from None
    except (ET.ParseError, ValueError) as err:  # or an encoding expat cannot use (multi-byte)
        raise DocumentError(f"not well-formed XML: {err}") from None
    if check:
        level = [root]
        for _ in range(MAX_DEPTH):
            level = [child for element in level for child in element]
            if not level:
                break
        else:
            raise _too_deep()
    return root


# -- JSON --------------------------------------------------------------------------------

# json.loads turns an escaped surrogate into a str; only escapes can make one (text
# decoded from bytes never holds one), so strings are checked only where this matches.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise DocumentError(f"an integer of {digits} digits, over the limit of {MAX_INT_DIGITS}")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DocumentError(f"a number out of range ({text[:20]})")
    return value


def _parse_constant(name: str) -> float:
    raise DocumentError(f"{name} is not JSON")


# Made once: json.loads with hooks would build a decoder (and its scanner) per call.
_DECODER: Final = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)


def parse_json(data: bytes | str, encoding: str = "utf-8") -> Any:
    """The value of JSON ``data`` (bytes in ``encoding``); ``DocumentError`` beyond the limits."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _too_long(len(data))
    if isinstance(data, bytes):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as err:
            raise DocumentError(f"not valid {encoding} at byte {err.start}") from None
        except LookupError as err:
            raise DocumentError(str(err)) from None
    else:
        text = data
    try:
        value = _DECODER.decode(text)
    except RecursionError:  # only far past MAX_DEPTH: the C scanner recurses
        raise _too_deep() from None
    except DocumentError:
        raise
    except ValueError as err:
        raise DocumentError(f"not JSON: {err}") from None
    # Depth is at most the count of brackets: the walk is only needed past the limit.
    strings = _SURROGATE_ESCAPE.search(text) is not None
    if strings or text.count("[") + text.count("{") > MAX_DEPTH:
        _walk(value, strings)
    return value


def _walk(value: Any, strings: bool) -> None:
    """Depth (and with ``strings``, lone surrogates) of a parsed JSON value, level by level."""
    level = [value]
    depth = 0
    while level:
        below: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                items: Any = node.values()
                if strings and any(_SURROGATE.search(key) for key in node):
                    raise DocumentError("a lone surrogate in a string (no UTF-8 form)")
            elif isinstance(node, list):
                items = node
            else:
                items = (node,)
            for item in items:
                if isinstance(item, dict | list):
                    below.append(item)
                elif strings and isinstance(item, str) and _SURROGATE.search(item):
                    raise DocumentError("a lone surrogate in a string (no UTF-8 form)")
        depth += 1
        if below and depth >= MAX_DEPTH:
            raise _too_deep()
        level = below
