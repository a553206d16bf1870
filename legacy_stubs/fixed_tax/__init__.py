"""The municipal tax system (mock): fixed-width cp932 records over TCP.

Format: docs/legacy-formats.md section 1. ``python -m legacy_stubs.fixed_tax``
runs it; ``TaxServer`` runs it in-process.
"""

from __future__ import annotations

from .server import TaxServer

__all__ = ["TaxServer"]
