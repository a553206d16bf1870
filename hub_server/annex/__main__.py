"""``python -m hub_server.annex report|classes|kinds|terms``: what the statute compiles to."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hub_server.annex.compiler import Compiled, compile_annex


def _report(compiled: Compiled) -> int:
    counts = compiled.counts()
    print(f"policy version: {compiled.version}")
    for key in ("rows", "items", "classes", "kinds", "terms", "rules"):
        print(f"{key:>8}: {counts[key]}")
    print(f"  report: {len(compiled.report)} line(s)")
    for line in compiled.report:
        print(f"    {line}")
    if compiled.explained:
        print(f"explained: {len(compiled.explained)} line(s)")
        for line, why in compiled.explained:
            print(f"    {line}\n        -> {why}")
    return 1 if compiled.report else 0


def _classes(compiled: Compiled) -> int:
    for info in compiled.classes.values():
        print(f"{info.name}  [{info.kind}]")
        print(f"    defined: {info.defined}")
        print(f"    used:    {', '.join(info.used)}")
        for note in info.notes:
            print(f"    note:    {note}")
    return 0


def _kinds(compiled: Compiled) -> int:
    for info in compiled.kinds.values():
        tag = "short name" if info.short_name else "description"
        print(f"{info.name}  [{tag}; item {info.item}, row {info.row}]")
        if info.short_name:
            print(f"    = {info.description}")
        print(f"    used in items: {' '.join(info.used_in)}")
    return 0


def _terms(compiled: Compiled) -> int:
    for info in compiled.terms.values():
        print(f"{info.name}  [{info.kind}; {info.source}]")
        print(f"    = {'、'.join(sorted(info.classes))}")
        for note in info.notes:
            print(f"    note: {note}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub_server.annex",
        description="Compile Annex Table 2 of the My Number Act and show the result.",
    )
    parser.add_argument(
        "command",
        choices=("report", "classes", "kinds", "terms"),
        help="report: counts and unresolved cells (exit 1 if any); "
        "classes / kinds / terms: what the table uses",
    )
    args = parser.parse_args(argv)
    compiled = compile_annex()
    handler = {"report": _report, "classes": _classes, "kinds": _kinds, "terms": _terms}
    return handler[args.command](compiled)


if __name__ == "__main__":
    sys.exit(main())
