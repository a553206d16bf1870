"""Master keys: where a party's key-encryption key comes from.

``load_master_key(spec)`` understands:

- ``file:PATH``  32 random bytes in a file (mode 0600), the default;
- ``env:NAME``   the same, base64, in an environment variable;
- ``pkcs11:...`` an AES key that never leaves a PKCS#11 token (see pkcs11.py).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from renkei.files import atomic_write
from renkei.keystore.kek import MASTER_KEY_BYTES, KeyUnwrapError, MasterKey

__all__ = [
    "MASTER_KEY_BYTES",
    "AesGcmMasterKey",
    "KeyUnwrapError",
    "MasterKey",
    "create_master_key_file",
    "load_master_key",
]

_NONCE = 12


class AesGcmMasterKey:
    """A master key held in process memory (loaded from a file or the environment)."""

    def __init__(self, key: bytes, source: str) -> None:
        if len(key) != MASTER_KEY_BYTES:
            raise ValueError(f"{source}: a master key is {MASTER_KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._id = "aes:" + hashlib.sha256(b"renkei/master-key-id" + key).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._id

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        except InvalidTag:
            raise KeyUnwrapError("wrapped key does not open under this master key") from None


def create_master_key_file(path: Path) -> None:
    if path.exists():
        raise FileExistsError(f"{path} exists: a master key is never overwritten")
    atomic_write(path, os.urandom(MASTER_KEY_BYTES), 0o600)


def load_master_key(spec: str, base: Path | None = None) -> MasterKey:
    kind, _, rest = spec.partition(":")
    if kind == "file":
        path = Path(rest)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            return AesGcmMasterKey(path.read_bytes(), str(path))
        except FileNotFoundError:
            raise ValueError(f"master key file {path} does not exist") from None
    if kind == "env":
        value = os.environ.get(rest)
        if not value:
            raise ValueError(f"environment variable {rest} (the master key) is not set")
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError(f"environment variable {rest} is not base64") from None
        return AesGcmMasterKey(raw, f"${rest}")
    if kind == "pkcs11":
        from renkei.keystore.pkcs11 import Pkcs11MasterKey

        return Pkcs11MasterKey.from_spec(rest)
    raise ValueError(f"master key spec {spec!r}: expected file:PATH, env:NAME or pkcs11:...")
