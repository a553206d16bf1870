"""`renkei comm disclosure ...` (placeholder until its part lands)."""

from __future__ import annotations

import argparse
from typing import Any


def add_comm_parser(group: Any) -> None:
    """Adds `disclosure` to the `renkei comm` group."""


def run(args: argparse.Namespace) -> int:
    raise SystemExit("renkei comm disclosure: not available")
