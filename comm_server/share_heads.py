"""Signed heads of this agency's log share: what the oversight body collects.

A head is a C2SP signed note (``renkei.tlog.note``) by the comm server's own
Ed25519 key ``agency-log-signing`` (its key store, never its config):

    renkei agency log share <agency_id>
    <rows in the share>
    <base64 digest of the last row's link>
    <signing time, RFC 3339 UTC>

The server signs one every ``HEAD_EVERY_SECONDS`` when the share grew, and one
on demand (``renkei comm log head --sign``); every head signed is kept.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.engine import Engine

from comm_server import share_chain
from renkei import db
from renkei.keystore import KeyStore
from renkei.logs import event
from renkei.tlog import note

KEY = "agency-log-signing"
HEAD_EVERY_SECONDS = 60.0
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

metadata = sa.MetaData()

signed_heads = sa.Table(
    "agency_log_signed_heads",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.LargeBinary(share_chain.DIGEST_BYTES), nullable=False),
    sa.Column("signed_at", db.UtcDateTime(), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

_log = logging.getLogger("comm_server.share_heads")


class HeadError(ValueError):
    """A signed head refused: not a note, not this agency's, or not signed by its key."""


@dataclass(frozen=True, slots=True)
class SignedHead:
    agency_id: str
    count: int
    digest: bytes
    signed_at: datetime

    def text(self) -> str:
        return (
            f"{origin(self.agency_id)}\n{self.count}\n"
            f"{base64.b64encode(self.digest).decode()}\n"
            f"{self.signed_at.astimezone(UTC).strftime(_TIME_FORMAT)}\n"
        )

    def describe(self) -> str:
        return f"{self.count} rows, signed {self.signed_at.strftime(_TIME_FORMAT)}"


def origin(agency_id: str) -> str:
    return f"renkei agency log share {agency_id}"


def key_name(agency_id: str) -> str:
    """The note key's name: an origin holds spaces, a key name may not."""
    return f"renkei-agency-log-{agency_id}"


def parse_text(text: str, agency_id: str) -> SignedHead:
    lines = text.split("\n")
    if len(lines) != 5 or lines[4] != "":
        raise HeadError(f"a head has 4 lines, not {len(lines) - 1}")
    if lines[0] != origin(agency_id):
        raise HeadError(f"origin {lines[0]!r} is not {origin(agency_id)!r}")
    if not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise HeadError(f"count {lines[1]!r} is not a decimal number")
    try:
        digest = note.b64decode_exact(lines[2])
    except ValueError as err:
        raise HeadError(f"digest {err}") from None
    if len(digest) != share_chain.DIGEST_BYTES:
        raise HeadError(f"digest is {len(digest)} bytes, not {share_chain.DIGEST_BYTES}")
    try:
        signed_at = datetime.strptime(lines[3], _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise HeadError(f"time {lines[3]!r} is not {_TIME_FORMAT}") from None
    return SignedHead(agency_id, int(lines[1]), digest, signed_at)


def open_head(data: bytes, agency_id: str, verifiers: list[note.Ed25519Verifier]) -> SignedHead:
    """The head a signed note holds, its signature by one of ``verifiers``; HeadError else."""
    try:
        opened = note.open(data, verifiers)
    except note.NoteError as err:
        raise HeadError(str(err)) from None
    return parse_text(opened.text, agency_id)


# -- the key ------------------------------------------------------------------


def signer(keys: KeyStore, agency_id: str) -> note.Ed25519Signer:
    """The current signing key, made on first use."""
    if not keys.versions(KEY):
        keys.create(KEY, ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    private = ed25519.Ed25519PrivateKey.from_private_bytes(keys.current(KEY).material)
    return note.Ed25519Signer(key_name(agency_id), private)


def verifiers(keys: KeyStore, agency_id: str) -> list[note.Ed25519Verifier]:
    """Every version of the key: a head signed before a rotation still verifies."""
    return [
        note.Ed25519Verifier(
            key_name(agency_id),
            ed25519.Ed25519PrivateKey.from_private_bytes(v.material).public_key(),
        )
        for v in keys.versions(KEY)
    ]


# -- the heads table ----------------------------------------------------------


class HeadStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def sign(
        self, signer: note.Ed25519Signer, agency_id: str, now: datetime, *, if_grown: bool = False
    ) -> bytes | None:
        """Sign the chain's current head and keep it; the note. ``if_grown``: None
        (nothing signed) when the latest signed head already has this count."""
        with self._engine.connect() as conn:
            head = share_chain.read_head(conn)
        if if_grown:
            latest = self.latest()
            if latest is not None and latest[0] == head.count:
                return None
        signed = SignedHead(agency_id, head.count, head.digest, now.replace(microsecond=0))
        data = note.sign(signed.text(), [signer])
        with self._engine.begin() as conn:
            conn.execute(
                signed_heads.insert().values(
                    count=signed.count,
                    digest=signed.digest,
                    signed_at=signed.signed_at,
                    note=data.decode(),
                )
            )
        return data

    def latest(self) -> tuple[int, bytes] | None:
        """(count, note) of the head signed last."""
        h = signed_heads.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(h.count, h.note).order_by(h.id.desc()).limit(1)).first()
        return None if row is None else (int(row[0]), row[1].encode())

    def all(self) -> list[tuple[int, bytes]]:
        """(id, note) of every head signed, oldest first."""
        h = signed_heads.c
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(h.id, h.note).order_by(h.id)).all()
        return [(int(r[0]), r[1].encode()) for r in rows]


async def sign_periodically(
    heads: HeadStore,
    signer: note.Ed25519Signer,
    agency_id: str,
    every: float = HEAD_EVERY_SECONDS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """The server's task: a signed head every ``every`` seconds the share grew."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(heads.sign, signer, agency_id, clock(), if_grown=True)
        except sa.exc.SQLAlchemyError as err:
            event(
                _log,
                "the log share's head could not be signed; trying again later",
                logging.WARNING,
                error=type(getattr(err, "orig", None) or err).__name__,
            )
