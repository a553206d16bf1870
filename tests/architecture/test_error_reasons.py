"""docs/errors.md names every reason the code can refuse with, and no reason the code lacks.

The reasons are read from the source (support/reasons.py): the first argument
of every renkei error raised in the kernel and the parties, every
``fallback_reason=`` and every ``reason=`` given as a literal. A reason added
to the code without a line in the page fails here, and so does a line left in
the page after its reason has gone.
"""

from __future__ import annotations

import re

from support import imports, reasons

PAGE = (imports.ROOT / "docs" / "errors.md").read_text(encoding="utf-8")


def test_the_reader_finds_reasons() -> None:
    found = reasons.in_code()
    assert {"INVALID_FIELD", "LINK_CODE_FOREIGN", "REQUEST_UNDECODABLE"} <= set(found)


def test_every_reason_in_the_code_is_on_the_page() -> None:
    missing = {
        reason: sorted(places)[0]
        for reason, places in reasons.in_code().items()
        if f"`{reason}`" not in PAGE
    }
    assert missing == {}


def test_every_reason_on_the_page_is_in_the_code() -> None:
    # The reason column of each table row: `| CODE | `REASON`[, `REASON`] | ...`.
    cells = re.findall(r"^\| [A-Z_]+ \| ([^|]*`[^|]*) \|", PAGE, flags=re.M)
    listed = {reason for cell in cells for reason in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    known = set(reasons.in_code()) | reasons.named_anywhere()
    assert sorted(listed - known) == []
