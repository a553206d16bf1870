"""What the portal's request handlers find on the app and on each request.

The sign-in side (``portal.web``, ``portal.signin``, ``portal.sessions``) puts
these there; the pages (``portal.pages``) only read them. A handler of a page
behind sign-in finds the signed-in person as ``request[SESSION]``; the
middleware has already refused a request without a session (a redirect to
the sign-in page) and an unsafe method without a valid CSRF token (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiohttp import web

from renkei.hub.v1 import personal_pb2


@dataclass(frozen=True)
class Session:
    """A signed-in person, as the portal knows them: a card and its own link code."""

    session_id: str
    card_serial: str  # the card certificate's serial, decimal
    link_code: str  # the portal's own link code for the person (never a Number)
    csrf_token: str  # to put in every form as the hidden field ``csrf_token``
    signed_in_at: datetime


class PersonalLog(Protocol):
    """The hub's PersonalLogService as the portal calls it (``portal.hub_client``)."""

    async def list_entries(
        self, request: personal_pb2.ListPersonalEntriesRequest
    ) -> personal_pb2.ListPersonalEntriesResponse: ...

    async def request_details(
        self, request: personal_pb2.RequestDetailsRequest
    ) -> personal_pb2.RequestDetailsResponse: ...


@dataclass(frozen=True)
class Application:
    """A person's application for one exchange's details, as the portal keeps it."""

    application_id: str
    card_serial: str
    serial: int
    agency_id: str
    state: str  # "PENDING", "ANSWERED", "DEFERRED", "REFUSED"
    created_at: datetime
    updated_at: datetime
    sealed_details: bytes = b""  # when ANSWERED: as the agency sealed it (renkei.disclosure)
    request_serial: int = 0
    deferred_until: datetime | None = None
    note: str = ""  # the deferral's legal reason or the refusal's reason


class Applications(Protocol):
    """The portal's store of applications (``portal.store``)."""

    def save(self, application: Application) -> None: ...

    def get(self, card_serial: str, application_id: str) -> Application | None: ...

    def of_person(self, card_serial: str) -> list[Application]: ...


SESSION = web.RequestKey("session", Session)  # request[SESSION] -> Session
PERSONAL_LOG = web.AppKey("personal_log", PersonalLog)
APPLICATIONS = web.AppKey("applications", Applications)
# portal.history defines VERIFIER (its HistoryVerifier), set by the bootstrap too.
