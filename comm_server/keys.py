"""An agency's own secret, in its key store: the X25519 key answers to it are sealed to."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import x25519

from renkei import sealing
from renkei.keystore import KeyStore

SEALING = "agency-sealing"


def provision(store: KeyStore) -> bytes:
    """Make the sealing key if there is none; its public key, for the hub's directory."""
    if not store.versions(SEALING):
        store.create(SEALING, sealing.private_key_bytes(sealing.generate_private_key()))
    return sealing.public_key_bytes(sealing_key(store))


def sealing_key(store: KeyStore) -> x25519.X25519PrivateKey:
    return sealing.load_private_key(store.current(SEALING).material)
