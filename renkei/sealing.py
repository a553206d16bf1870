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
    """Context string a sealed payload is bound to, e.g. ('answer', serial, requester, ...)."""
    return "|".join(["renkei/v1", purpose, *(str(p) for p in parts)]).encode("utf-8")


def seal(plaintext: bytes, recipient: x25519.X25519PublicKey, info: bytes) -> bytes:
    return _SUITE.encrypt(plaintext, recipient, info=info)


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
