"""`renkei ...` commands of issue 15 (placeholder until its part lands)."""

from __future__ import annotations

import argparse
from typing import Any

COMMANDS: frozenset[str] = frozenset()


def add_parser(sub: Any) -> None:
    """Adds this module's commands to the main parser's subcommands."""


def run(args: argparse.Namespace) -> int:
    raise SystemExit(f"renkei {args.command}: not available")
