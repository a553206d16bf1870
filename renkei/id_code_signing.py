"""ID codes signed by the ID issuer, inside the seal to the hub (issue 13, finding 5).

HPKE's base mode authenticates no sender: anyone holding the hub's public
key could seal a made-up ID code for an agency, and the hub would mint a
link code for it, bypassing the registry's four-fact binding. So the ID
issuer signs what it seals (Ed25519, over the sealing ``info`` and the ID
codes) and the hub checks that signature with the issuer's public key
before it makes any link code.

The signature travels inside the sealed plaintext, after the codes: only
the hub sees it, so it cannot serve the carrying agency as a stable tag of
the person (an Ed25519 signature of the same message is the same bytes).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from renkei.errors import PermissionDenied

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


def signed(key: ed25519.Ed25519PrivateKey, info: bytes, id_codes: bytes) -> bytes:
    """``id_codes`` followed by the issuer's signature over ``info`` and them."""
    return id_codes + key.sign(info + id_codes)


def verified(key: ed25519.Ed25519PublicKey, info: bytes, plaintext: bytes, *, field: str) -> bytes:
    """The ID codes of an opened plaintext whose signature is the issuer's; else
    PERMISSION_DENIED ``ID_CODE_NOT_FROM_ISSUER`` naming ``field``."""
    codes, signature = plaintext[:-SIGNATURE_BYTES], plaintext[-SIGNATURE_BYTES:]
    try:
        if len(plaintext) <= SIGNATURE_BYTES:
            raise InvalidSignature
        key.verify(signature, info + codes)
    except InvalidSignature:
        raise PermissionDenied(
            "ID_CODE_NOT_FROM_ISSUER",
            f"{field} does not carry the ID issuer's signature: only the ID issuer makes ID codes",
            {"field": field},
        ) from None
    return codes


def public_key_bytes(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(raw: bytes) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key_b64(encoded: str) -> ed25519.Ed25519PublicKey:
    """The issuer's public key from its base64 text; ValueError saying what is wrong."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"is {len(raw)} bytes; an Ed25519 public key is {PUBLIC_KEY_BYTES}")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)
