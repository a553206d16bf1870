"""Answer-later exchanges, for legacy systems that answer by file (R28; docs/architecture.md).

The provider's server submits the request to a ``BatchLegacyClient`` and, if
the answer is not there within its answer time, answers the hub with a
ticket of its own making instead of a sealed answer. The ticket is random,
says nothing about the person or the legacy system's own ticket (kept in the
provider's ``answer_tickets`` table), and is honoured once: a successful
collect deletes it on both sides, so no answer is kept anywhere after it is
fetched.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Final

from renkei.errors import FailedPrecondition, NotFound, Unavailable

ANSWER_PENDING: Final = "ANSWER_PENDING"
"""Log outcome of the first half of an answer-later exchange, on every share."""

RETRY_AFTER_SECONDS: Final = 5
"""What a not-ready answer tells the requester to wait before fetching again."""

TICKET_BYTES: Final = 24

TICKET_TTL: Final = timedelta(days=7)
"""How long a provider honours a ticket: a batch system that never answers
(a lost request file) must not leave the requester polling for ever."""


def new_ticket() -> str:
    """An opaque, unguessable ticket (32 URL-safe characters)."""
    return secrets.token_urlsafe(TICKET_BYTES)


def not_ready(serial: int) -> Unavailable:
    return Unavailable(
        "ANSWER_NOT_READY",
        f"the provider's legacy system has not answered exchange {serial} yet; fetch again later",
        {"serial": str(serial), "retry_after_seconds": str(RETRY_AFTER_SECONDS)},
    )


def unknown_ticket() -> NotFound:
    return NotFound(
        "TICKET_UNKNOWN",
        "no pending answer has this ticket: it was never issued, belongs to another"
        " exchange, or was used already",
        {"field": "ticket"},
    )


def expired(serial: int, ttl: timedelta) -> FailedPrecondition:
    return FailedPrecondition(
        "ANSWER_EXPIRED",
        f"the answer to exchange {serial} did not come within {ttl}; the ticket is void,"
        " ask again with a new query",
        {"serial": str(serial), "field": "ticket"},
    )
