"""The consent flow's in-memory log and a valid consent, for tests of registry_binding."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from registry_binding.consent import Consent, ConsentAttempt, attempt_row

CONSENT = Consent(
    consent_id="C-1",
    giver="person",
    representative_name="",
    consented_at=datetime(2026, 11, 1, tzinfo=UTC),
    purpose="口座開設時の本人確認",
    document_sha256=bytes(32),
)


class MemoryLog:
    """The consent log in a list: rows as ``ConsentLog.rows`` gives them."""

    def __init__(self) -> None:
        self.attempts: list[ConsentAttempt] = []

    def append(self, attempt: ConsentAttempt) -> None:
        self.attempts.append(attempt)

    def rows(self) -> list[dict[str, Any]]:
        return [attempt_row(a) for a in self.attempts]
