"""A batch of ID codes sealed to the hub for one agency: one HPKE message, not one a code.

Binding a whole file (R13) needs one ID code per matched record. Sealed one
by one, each costs an HPKE seal at the ID issuer, an HPKE open and a call at
the hub. A batch is the ID codes of one ``MatchRecords`` call's unique
matches, in order, sealed together::

    b"RKB2" | batch id (16 random bytes) | HPKE(ID code 1 | ID code 2 | ... | signature)

The HPKE ``info`` binds the message to the agency it is for and to its batch
id (``batch_sealing_info``): it opens at the hub only for that agency, and a
header whose batch id was changed does not open. The ID codes are fixed-size
(``codes.ID_CODE_BYTES``), so their order is the batch's order. The ID
issuer's Ed25519 signature over the ``info`` and the codes ends the sealed
plaintext (``renkei.id_code_signing``): a batch nobody but the ID issuer
could have made.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from renkei import codes, id_code_signing, sealing
from renkei.errors import InvalidArgument

MAGIC = b"RKB2"  # RKB1 batches carried no issuer signature
BATCH_ID_BYTES = 16
HEADER_BYTES = len(MAGIC) + BATCH_ID_BYTES
MAX_CODES = 1000
"""As many as one ``MatchRecords`` call can match."""
MAX_SEALED_BYTES = (
    HEADER_BYTES + 32 + 16 + MAX_CODES * codes.ID_CODE_BYTES + id_code_signing.SIGNATURE_BYTES
)
"""The header, the HPKE encapsulated key and tag, MAX_CODES ID codes and the signature."""


def batch_sealing_info(agency_id: str, batch_id: bytes) -> bytes:
    """Binds a sealed batch to the one agency it is meant for and to its batch id."""
    return sealing.exchange_info("id-code-batch", agency_id, batch_id.hex())


def seal_batch(
    id_codes: list[bytes],
    hub_key: x25519.X25519PublicKey,
    agency_id: str,
    batch_id: bytes | None = None,
    *,
    signer: ed25519.Ed25519PrivateKey,
) -> bytes:
    """The ID codes (1 to MAX_CODES, in order) signed by ``signer`` (the ID issuer)
    and sealed to the hub for ``agency_id``."""
    if not 1 <= len(id_codes) <= MAX_CODES:
        raise ValueError(f"a batch holds 1 to {MAX_CODES} ID codes, not {len(id_codes)}")
    if any(len(c) != codes.ID_CODE_BYTES for c in id_codes):
        raise ValueError(f"ID codes have {codes.ID_CODE_BYTES} bytes")
    batch_id = os.urandom(BATCH_ID_BYTES) if batch_id is None else batch_id
    if len(batch_id) != BATCH_ID_BYTES:
        raise ValueError(f"a batch id has {BATCH_ID_BYTES} bytes")
    info = batch_sealing_info(agency_id, batch_id)
    plain = id_code_signing.signed(signer, info, b"".join(id_codes))
    return MAGIC + batch_id + sealing.seal(plain, hub_key, info)


def batch_id_of(sealed_batch: bytes, *, field: str = "sealed_batch") -> bytes:
    """The batch id in the header; refuses a header that is not a batch's."""
    if len(sealed_batch) < HEADER_BYTES or sealed_batch[: len(MAGIC)] != MAGIC:
        raise _malformed(
            field,
            f"{field} does not start with a batch header ({MAGIC!r} and a"
            f" {BATCH_ID_BYTES}-byte batch id; byte offset 0)",
            0,
        )
    return sealed_batch[len(MAGIC) : HEADER_BYTES]


def open_batch(
    sealed_batch: bytes,
    hub_key: x25519.X25519PrivateKey,
    agency_id: str,
    *,
    issuer_key: ed25519.Ed25519PublicKey,
    field: str = "sealed_batch",
) -> tuple[bytes, list[bytes]]:
    """(batch id, the ID codes in order). Raises InvalidArgument naming ``field``.

    ``SEALED_BATCH_MALFORMED`` for a header or a content that is not a batch's
    (with the byte offset), ``SEALED_PAYLOAD_INVALID`` for a message that does
    not open for this agency (sealed for another one, or altered), PERMISSION_DENIED
    ``ID_CODE_NOT_FROM_ISSUER`` for one not signed by ``issuer_key``.
    """
    if len(sealed_batch) > MAX_SEALED_BYTES:
        raise _malformed(
            field, f"{field} is {len(sealed_batch)} bytes; at most {MAX_SEALED_BYTES}", None
        )
    batch_id = batch_id_of(sealed_batch, field=field)
    info = batch_sealing_info(agency_id, batch_id)
    opened = sealing.open_sealed(sealed_batch[HEADER_BYTES:], hub_key, info, field=field)
    plain = id_code_signing.verified(issuer_key, info, opened, field=field)
    size = codes.ID_CODE_BYTES
    if not plain or len(plain) % size:
        raise _malformed(
            field,
            f"{field} holds {len(plain)} bytes of ID codes: not 1 to {MAX_CODES}"
            f" ID codes of {size} bytes",
            HEADER_BYTES,
        )
    return batch_id, [plain[i : i + size] for i in range(0, len(plain), size)]


def _malformed(field: str, message: str, offset: int | None) -> InvalidArgument:
    meta = {"field": field}
    if offset is not None:
        meta["byte_offset"] = str(offset)
    return InvalidArgument("SEALED_BATCH_MALFORMED", message, meta)
