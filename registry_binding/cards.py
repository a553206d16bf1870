"""The residents' cards (issue 15): the card CA's issuing and revoking, and ``BindCard``.

The registry side runs the card CA (a model of J-LIS issuing 利用者証明用電子証明書):
``issue_cards`` gives each resident a P-256 key and a certificate
(``renkei.card``: no personal data in it), and records in the binding store
whose card each serial is (``cards``). ``revoke_card`` marks one revoked and
rewrites the CA's revocation list.

``CardBinding`` is ``BindCard``'s domain: a portal (an agency listed in
``[registry] portals``) hands in a card certificate and a challenge the card
signed for that portal; the registry checks them (``renkei.card.verify_card``,
audience = the portal's agency id), finds the card's resident, and has the ID
issuer seal the person's ID code to the hub for the portal, as binding does.
The portal learns only the sealed code. Every attempt goes to
``card_bindings`` for the oversight body.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry_binding.sealer import Sealer
from registry_binding.store import BindingStore, card_bindings, cards
from renkei import card
from renkei.errors import FailedPrecondition, PermissionDenied, RenkeiError, Unauthenticated
from renkei.residents import ResidentSource

# How old a signed challenge may be when it reaches the registry (through the portal).
MAX_CHALLENGE_AGE = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CardCaFiles:
    """The card CA's folder: ``ca.pem``, ``ca.key`` (PKCS#8, 0600), ``crl.pem``."""

    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def crl(self) -> Path:
        return self.folder / "crl.pem"


@dataclass(frozen=True)
class CardCa:
    """The card CA's certificate and key, and where its files are."""

    files: CardCaFiles
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, folder: Path) -> CardCa:
        files = CardCaFiles(folder)
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{files.key}: not an EC key")
        return cls(files, x509.load_pem_x509_certificate(files.cert.read_bytes()), key)


@dataclass(frozen=True, slots=True)
class CardRecord:
    serial: int
    resident_code: str
    id_basis: str
    issued_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedCard:
    resident_code: str
    serial: int
    key_file: Path
    cert_file: Path


@dataclass(frozen=True, slots=True)
class CardBindingAttempt:
    attempted_at: datetime
    caller: str
    card_serial: str
    outcome: str


class CardStore:
    """The ``cards`` and ``card_bindings`` tables of the binding store."""

    def __init__(self, store: BindingStore) -> None:
        self._engine = store.engine

    def add(self, serial: int, resident_code: str, id_basis: str, at: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                cards.insert().values(
                    serial=str(serial), resident_code=resident_code, id_basis=id_basis, issued_at=at
                )
            )

    def find(self, serial: int) -> CardRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(cards).where(cards.c.serial == str(serial))).first()
        if row is None:
            return None
        return CardRecord(
            int(row.serial), row.resident_code, row.id_basis, row.issued_at, row.revoked_at
        )

    def revoke(self, serial: int, at: datetime) -> bool:
        """True if the card is now revoked (it already was, or this call did it)."""
        with self._engine.begin() as conn:
            conn.execute(
                cards.update()
                .where(cards.c.serial == str(serial), cards.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            found = conn.execute(sa.select(cards.c.serial).where(cards.c.serial == str(serial)))
            return found.first() is not None

    def revoked(self) -> list[tuple[int, datetime]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(cards.c.serial, cards.c.revoked_at).where(cards.c.revoked_at.is_not(None))
            )
            return sorted((int(s), at) for s, at in rows)

    def log_attempt(self, attempt: CardBindingAttempt) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                card_bindings.insert().values(
                    attempted_at=attempt.attempted_at,
                    caller=attempt.caller,
                    card_serial=attempt.card_serial,
                    outcome=attempt.outcome,
                )
            )

    def attempts(self) -> list[CardBindingAttempt]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(card_bindings).order_by(card_bindings.c.id))
            return [
                CardBindingAttempt(r.attempted_at, r.caller, r.card_serial, r.outcome) for r in rows
            ]


def id_bases(source: ResidentSource, resident_codes: Collection[str]) -> dict[str, str]:
    """Current resident code -> the code the person's ID code is made from (their first)."""
    wanted = set(resident_codes)
    out: dict[str, str] = {}
    for entry in source.residents():
        code = entry.current.resident_code
        if code in wanted:
            out[code] = entry.past[0].resident_code if entry.past else code
    return out


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def issue_cards(
    store: BindingStore,
    ca: CardCa,
    resident_codes: Iterable[str],
    out_dir: Path,
    *,
    id_basis: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> list[IssuedCard]:
    """A card per resident: ``<out>/<code>.card-key.pem`` (PKCS#8, 0600) and ``.card.pem``.

    ``id_basis`` maps a resident code to the code the person's ID code is made
    from (``id_bases``); a code missing from it is its own (a person whose
    code never changed).
    """
    at = now or _now()
    out_dir.mkdir(parents=True, exist_ok=True)
    registry = CardStore(store)
    issued: list[IssuedCard] = []
    for code in resident_codes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = card.build_card_certificate(ca.cert, ca.key, key.public_key(), at)
        registry.add(cert.serial_number, code, (id_basis or {}).get(code, code), at)
        key_file, cert_file = out_dir / f"{code}.card-key.pem", out_dir / f"{code}.card.pem"
        _write_private(
            key_file,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.append(IssuedCard(code, cert.serial_number, key_file, cert_file))
    return issued


def write_crl(store: BindingStore, ca: CardCa, *, now: datetime | None = None) -> Path:
    """Rewrites the card CA's revocation list from the store's revoked cards."""
    crl = card.build_crl(ca.cert, ca.key, CardStore(store).revoked(), now or _now())
    tmp = ca.files.crl.with_suffix(".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(ca.files.crl)  # readers see the old list or the new, never half
    return ca.files.crl


def revoke_card(
    store: BindingStore, ca: CardCa, serial: int, *, now: datetime | None = None
) -> Path:
    """Revokes card ``serial`` and rewrites the revocation list; KeyError if unknown."""
    at = now or _now()
    if not CardStore(store).revoke(serial, at):
        raise KeyError(f"no card {serial} was issued here")
    return write_crl(store, ca, now=at)


class CardBinding:
    """``BindCard``'s domain (module docstring)."""

    def __init__(
        self,
        trust: card.CardTrust,
        store: CardStore,
        sealer: Sealer,
        portals: Collection[str],
        *,
        clock: Callable[[], datetime] = _now,
        max_age: timedelta = MAX_CHALLENGE_AGE,
    ) -> None:
        self._trust = trust
        self._store = store
        self._sealer = sealer
        self._portals = frozenset(portals)
        self._clock = clock
        self._max_age = max_age

    async def bind(
        self,
        caller: str,
        agency_id: str | None,
        cert_der: bytes,
        challenge: bytes,
        signature: bytes,
    ) -> bytes:
        """The card's resident's ID code, sealed to the hub for the portal ``agency_id``."""
        now = self._clock()
        serial = ""
        with contextlib.suppress(ValueError):  # verify_card refuses it below with its reason
            serial = str(x509.load_der_x509_certificate(cert_der).serial_number)
        try:
            if agency_id is None or agency_id not in self._portals:
                raise PermissionDenied(
                    "CALLER_NOT_PORTAL", f"only portals bind cards; the caller is {caller}"
                )
            sealed = await self._bind(agency_id, cert_der, challenge, signature, now)
        except RenkeiError as err:
            await asyncio.to_thread(
                self._store.log_attempt, CardBindingAttempt(now, caller, serial, err.reason)
            )
            raise
        await asyncio.to_thread(
            self._store.log_attempt, CardBindingAttempt(now, caller, serial, "bound")
        )
        return sealed

    async def _bind(
        self, agency_id: str, cert_der: bytes, challenge: bytes, signature: bytes, now: datetime
    ) -> bytes:
        identity = self._trust.verify(
            cert_der, challenge, signature, audience=agency_id, now=now, max_age=self._max_age
        )
        record = await asyncio.to_thread(self._store.find, identity.serial)
        if record is None:
            raise Unauthenticated(
                "CARD_CERTIFICATE_INVALID", f"card {identity.serial} was not issued here"
            )
        if record.revoked_at is not None:
            raise Unauthenticated("CARD_REVOKED", f"card {identity.serial} is revoked")
        answers = await self._sealer.seal(agency_id, [record.id_basis])
        if len(answers) != 1:
            raise RenkeiError(
                "ID_ISSUER_BAD_ANSWER", f"the ID issuer answered {len(answers)} sealed codes for 1"
            )
        [(sealed, error)] = answers
        if error or not sealed:
            raise FailedPrecondition(
                "CARD_NOT_SEALED", f"the ID issuer did not seal: {error or 'NO_SEALED_CODE'}"
            )
        return sealed
