"""The witness's Ed25519 cosigning key, in its own key store under its master key."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from renkei import db
from renkei.keystore import KeyStore, load_master_key
from renkei.tlog.checkpoint import CosignatureSigner
from witness.config import WitnessConfig

COSIGNING_KEY = "witness-cosigning"
_SEED_BYTES = 32  # an Ed25519 private key is 32 random bytes


class MissingKeyError(ValueError):
    """The key store holds no cosigning key: the witness was never set up."""


def open_key_store(config: WitnessConfig) -> KeyStore:
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    return KeyStore(engine, load_master_key(config.master_key))


def provision(store: KeyStore) -> None:
    """Make the cosigning key once; a witness's key is its identity, never replaced here."""
    if not store.versions(COSIGNING_KEY):
        store.create(COSIGNING_KEY, size=_SEED_BYTES)


def cosigner(
    store: KeyStore, name: str, clock: Callable[[], int] = lambda: int(time.time())
) -> CosignatureSigner:
    versions = [v for v in store.versions(COSIGNING_KEY) if v.current]
    if not versions:
        raise MissingKeyError(
            "the witness's key store has no cosigning key: run the deployment setup"
        )
    private = ed25519.Ed25519PrivateKey.from_private_bytes(versions[0].material)
    return CosignatureSigner(name, private, clock)


def verifier_key(config_path: Path) -> str:
    """The witness's cosignature vkey, for the configs of those who check its cosignatures."""
    config = WitnessConfig.load(config_path)
    store = open_key_store(config)
    try:
        return cosigner(store, config.name).verifier().verifier_key()
    finally:
        store.engine.dispose()
