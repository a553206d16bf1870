"""Annex Table 2 (別表第二) of the My Number Act, compiled into the hub's approval rules.

``compile_annex()`` reads the statute shipped in ``data/annex_table_2_2015.tsv`` and
returns a ``Compiled``: ``hub_server.policy.Item`` values for ``TablePolicy``, the
classes of agencies and kinds of information the table uses, and a report of
anything it could not resolve. ``python -m hub_server.annex report`` prints it.
"""

from __future__ import annotations

from hub_server.annex.compiler import (
    Affair,
    ClassInfo,
    Compiled,
    CompiledRow,
    Definition,
    Explanation,
    KindInfo,
    TermInfo,
    compile_annex,
    compile_table,
    parse_parties,
    policy_version,
    split_kinds,
    table_text,
)

__all__ = [
    "Affair",
    "ClassInfo",
    "Compiled",
    "CompiledRow",
    "Definition",
    "Explanation",
    "KindInfo",
    "TermInfo",
    "compile_annex",
    "compile_table",
    "parse_parties",
    "policy_version",
    "split_kinds",
    "table_text",
]
