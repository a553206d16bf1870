"""End-to-end sealing of payloads with HPKE (RFC 9180).

The provider seals its answer to the requester's X25519 key; the hub relays
bytes it cannot read. ``info`` binds a sealed payload to its exchange, so a
payload cut from one exchange does not open in another.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from renkei.errors import InvalidArgument

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
PUBLIC_KEY_BYTES = 32


def generate_private_key() -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.generate()


def private_key_bytes(key: x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def load_private_key(raw: bytes) -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.from_private_bytes(raw)


def public_key_bytes(key: x25519.X25519PrivateKey | x25519.X25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, x25519.X25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(raw: bytes, *, field: str = "public_key") -> x25519.X25519PublicKey:
    if len(raw) != PUBLIC_KEY_BYTES:
        raise InvalidArgument(
            "SEALING_KEY_INVALID",
            f"{field} must be {PUBLIC_KEY_BYTES} raw X25519 bytes, got {len(raw)}",
            {"field": field},
        )
    return x25519.X25519PublicKey.from_public_bytes(raw)


def exchange_info(purpose: str, *parts: object) -> bytes:
    """Context a sealed payload is bound to, e.g. ('answer', serial, requester, ...).

    Each part is length-prefixed, so no two different lists of parts give the
    same bytes, whatever characters the parts contain.
    """
    out = bytearray(b"renkei/v1")
    for part in (purpose, *parts):
        raw = str(part).encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def seal(plaintext: bytes, recipient: x25519.X25519PublicKey, info: bytes) -> bytes:
    try:
        return _SUITE.encrypt(plaintext, recipient, info=info)
    except ValueError:
        # A low-order X25519 point (e.g. all zeros) gives no shared secret.
        raise InvalidArgument(
            "SEALING_KEY_INVALID", "the recipient's sealing key is not a usable X25519 key"
        ) from None


def open_sealed(
    sealed: bytes, private_key: x25519.X25519PrivateKey, info: bytes, *, field: str
) -> bytes:
    try:
        return _SUITE.decrypt(sealed, private_key, info=info)
    except (InvalidTag, ValueError):
        raise InvalidArgument(
            "SEALED_PAYLOAD_INVALID",
            f"{field} does not open with this party's key for this exchange",
            {"field": field},
        ) from None


def id_code_sealing_info(agency_id: str) -> bytes:
    """Binds an ID code sealed to the hub to the one agency it is meant for."""
    return exchange_info("id-code", agency_id)
