"""The hub's keys, in its key store: link-code keys per agency, the log index key, its sealing key.

Names: ``link/<agency id>`` (AES-256-SIV, 64 bytes, versioned and rotated per
agency, R11), ``log-index`` (HMAC key for person keys), ``hub-sealing``
(X25519 private key that sealed ID codes are opened with), ``log-checkpoint``
(Ed25519 private key the verifiable log's checkpoints are signed with).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from renkei import codes, sealing
from renkei.keystore import KeyStore
from renkei.tlog import note

LINK_PREFIX = "link/"
LOG_INDEX = "log-index"
SEALING = "hub-sealing"
LOG_CHECKPOINT = "log-checkpoint"


def provision(store: KeyStore, agency_ids: Iterable[str]) -> None:
    """Create whatever key is missing (first start, or a newly registered agency)."""
    names = {v.name for v in store.all()}
    if LOG_INDEX not in names:
        store.create(LOG_INDEX)
    if SEALING not in names:
        store.create(SEALING, sealing.private_key_bytes(sealing.generate_private_key()))
    if LOG_CHECKPOINT not in names:
        store.create(LOG_CHECKPOINT, ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    for agency_id in agency_ids:
        if LINK_PREFIX + agency_id not in names:
            store.create(LINK_PREFIX + agency_id, size=codes.SIV_KEY_BYTES)


def link_keyring(store: KeyStore) -> dict[str, codes.AgencyKeys]:
    by_agency: dict[str, codes.AgencyKeys] = {}
    for version in store.all(LINK_PREFIX):
        agency = version.name.removeprefix(LINK_PREFIX)
        keys = by_agency.setdefault(agency, codes.AgencyKeys(0, {}, {}))
        keys.keys[version.version] = version.material
        if version.current:
            keys.current = version.version
        elif version.accept_until is not None:
            keys.accept_until[version.version] = version.accept_until
    return by_agency


def rotate_link_key(store: KeyStore, agency_id: str, window: timedelta) -> int:
    """A new version for the agency; current once its re-key job completes (R11)."""
    if not store.versions(LINK_PREFIX + agency_id):
        raise KeyError(f"no link-code key for agency {agency_id!r}")
    return store.create(
        LINK_PREFIX + agency_id, size=codes.SIV_KEY_BYTES, current=False, window=window
    )


def log_index_key(store: KeyStore) -> bytes:
    return store.current(LOG_INDEX).material


def sealing_key(store: KeyStore) -> x25519.X25519PrivateKey:
    return sealing.load_private_key(store.current(SEALING).material)


def checkpoint_signer(store: KeyStore, origin: str) -> note.Ed25519Signer:
    """The note signer of the log's checkpoints; its key name is the log's origin."""
    material = store.current(LOG_CHECKPOINT).material
    return note.Ed25519Signer(origin, ed25519.Ed25519PrivateKey.from_private_bytes(material))
