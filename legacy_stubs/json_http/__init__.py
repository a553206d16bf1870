"""The modern municipal system (mock): JSON over HTTP.

Format: docs/legacy-formats.md section 4. ``python -m legacy_stubs.json_http``
runs it; ``ModernServer`` runs it in-process.
"""

from __future__ import annotations

from .server import ModernServer

__all__ = ["ModernServer"]
