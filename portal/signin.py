"""Sign-in with the person's card: challenges, their check, and the first sign-in's binding.

1. ``challenge()``: a challenge naming this portal (``renkei.card``), its nonce
   kept until it expires; each signs in once.
2. ``sign_in(certificate, challenge, signature)``: the challenge must be one
   handed out here and unused (it is used up now), the card valid, not
   revoked, and the signature its (``renkei.card.CardTrust.verify``).
3. The first time a card signs in, the registry binds it (``BindCard``: the
   person's ID code sealed to the hub for the portal) and the hub turns that
   into the portal's own link code (``IssueLinkCode``); the portal keeps only
   card serial -> link code. Later sign-ins reuse the kept link code.

The portal never sees a Number, a resident code or an ID code.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from portal.app_keys import Session
from portal.sessions import Sessions, utc_now
from portal.store import PortalStore
from renkei import card
from renkei.errors import InvalidArgument, Unauthenticated


class CardBinder(Protocol):
    async def bind_card(
        self, certificate_der: bytes, challenge: bytes, signature: bytes
    ) -> bytes: ...


class LinkCodes(Protocol):
    async def issue_link_code(self, sealed_id_code: bytes) -> str: ...


def _nonce_key(nonce: bytes) -> str:
    return base64.urlsafe_b64encode(nonce).rstrip(b"=").decode("ascii")


def certificate_der(pem: str) -> bytes:
    """The card certificate's DER from its PEM text (as the card file holds it)."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise Unauthenticated(
            "CARD_CERTIFICATE_INVALID", "not a valid card certificate: not a PEM certificate"
        ) from None
    return cert.public_bytes(serialization.Encoding.DER)


class SignIn:
    def __init__(
        self,
        *,
        audience: str,
        trust: card.CardTrust,
        store: PortalStore,
        sessions: Sessions,
        registry: CardBinder,
        hub: LinkCodes,
        challenge_lifetime: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._audience = audience
        self._trust = trust
        self._store = store
        self._sessions = sessions
        self._registry = registry
        self._hub = hub
        self._lifetime = challenge_lifetime
        self._clock = clock

    async def challenge(self) -> tuple[bytes, datetime]:
        """A fresh challenge and when it stops being accepted."""
        now = self._clock()
        nonce, challenge = card.new_challenge(self._audience, now)
        expires = now + self._lifetime
        await asyncio.to_thread(self._store.add_challenge, _nonce_key(nonce), expires)
        return challenge, expires

    async def sign_in(self, certificate_pem: str, challenge: bytes, signature: bytes) -> Session:
        """A session for the card that signed ``challenge`` (``signature``: P1363 r||s)."""
        now = self._clock()
        der_signature = card.p1363_to_der(signature)
        der = certificate_der(certificate_pem)
        parsed = card.parse_challenge(challenge)
        identity = self._trust.verify(
            der,
            challenge,
            der_signature,
            audience=self._audience,
            now=now,
            max_age=self._lifetime,
        )
        # Only after the card proved itself: a stranger cannot burn others' challenges.
        if not await asyncio.to_thread(self._store.use_challenge, _nonce_key(parsed.nonce), now):
            raise Unauthenticated(
                "CARD_CHALLENGE_STALE", "the challenge was not handed out here, or is used up"
            )
        serial = str(identity.serial)
        # Every sign-in binds the card again (the same code while the hub's keys stay: the
        # derivation is deterministic), so the portal never holds a code a re-key has left
        # behind and needs no re-key job of its own (`renkei portal rekey` only completes).
        sealed = await self._registry.bind_card(der, challenge, der_signature)
        issued = await self._hub.issue_link_code(sealed)
        if not issued:
            raise InvalidArgument("HUB_BAD_ANSWER", "the hub answered an empty link code")
        link_code = await asyncio.to_thread(self._store.bind, serial, issued, now)
        return await self._sessions.start(serial, link_code)
