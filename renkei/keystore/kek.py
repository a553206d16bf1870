"""What every master key (key-encryption key) is, whatever holds it.

Shared by the in-memory keys of ``master.py`` and the token keys of
``pkcs11.py``, so neither module imports the other for it.
"""

from __future__ import annotations

from typing import Protocol

MASTER_KEY_BYTES = 32


class KeyUnwrapError(ValueError):
    """Wrapped key material did not open: wrong master key, or altered."""


class MasterKey(Protocol):
    @property
    def key_id(self) -> str:
        """A fingerprint naming the master key (not secret), stored beside each wrapped key."""
        ...

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes: ...
