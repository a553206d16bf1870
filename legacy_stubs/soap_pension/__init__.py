"""The pension body (mock): SOAP 1.1 over HTTP.

Format: docs/legacy-formats.md section 2. ``python -m legacy_stubs.soap_pension``
runs it; ``PensionServer`` runs it in-process.
"""

from __future__ import annotations

from .server import PensionServer

__all__ = ["PensionServer"]
