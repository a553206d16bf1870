"""What the disclosure room speaks in: an application, a deferral, a call and its answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class State(enum.StrEnum):
    """Where an application stands at this agency (the proto's DisclosureState)."""

    PENDING = "PENDING"
    ANSWERED = "ANSWERED"
    DEFERRED = "DEFERRED"
    REFUSED = "REFUSED"


# Who decided an application this agency answers without staff ([disclosure] approval = "auto").
AUTO = "auto"


@dataclass(frozen=True)
class Application:
    """One row of ``disclosure_applications``: the record of who decided what, and when."""

    application_id: str
    serial: int
    request_serial: int
    recipient_agency_id: str
    # PENDING, ANSWERED or REFUSED (a deferral is the exchange's, not the application's).
    state: State
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None  # a staff id, or AUTO
    refusal_reason: str | None = None


@dataclass(frozen=True)
class Deferral:
    """One row of ``disclosure_deferrals``: the exchange's details are held back until ``until``."""

    serial: int
    until: datetime
    legal_reason: str
    set_by: str
    set_at: datetime

    def in_force(self, now: datetime) -> bool:
        return now < self.until


@dataclass(frozen=True)
class DiscloseCall:
    serial: int
    link_code: str
    application_id: str
    recipient_agency_id: str
    request_serial: int


@dataclass(frozen=True)
class Disclosed:
    state: State
    sealed_details: bytes = b""
    deferred_until: datetime | None = None
    deferral_reason: str = ""
    refusal_reason: str = ""
