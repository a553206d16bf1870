"""The health insurer (mock): CSV batches through a drop folder.

Format: docs/legacy-formats.md section 3. ``python -m legacy_stubs.csv_insurer``
runs it; ``InsurerServer`` runs it in-process.
"""

from __future__ import annotations

from .server import InsurerServer

__all__ = ["InsurerServer"]
