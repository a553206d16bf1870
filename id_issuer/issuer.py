"""The ID issuer: resident code -> ID code under the versioned ID key (R4, R7).

It holds the ID key and nothing else of the hub's. It never hands an ID code
out in the clear: each one is sealed to the hub, for one named agency, so the
agency that carries it to the hub cannot read it and no other agency can use
it (the hub opens it with that agency's id as HPKE info). What it seals it
signs with its own Ed25519 key (renkei.id_code_signing), kept in its key
store; the hub holds the public half and takes no ID code anyone else made.

Its configuration, ``issuer.toml``::

    [id_issuer]
    database_url = "sqlite:///{config_dir}/id_issuer.db"   # its key store
    master_key = "file:master.key"
    hub_sealing_public_key = "<base64 X25519>"
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from id_issuer.config import hub_sealing_public_key
from renkei import codes, db, id_code_batch, id_code_signing, sealing
from renkei.config_util import database_url, load_toml, master_key_spec, table, text
from renkei.keystore import KeyStore, load_master_key

ID_KEY = "id"
SIGNING_KEY = "id-signing"  # the Ed25519 key its sealed ID codes are signed with


def open_key_store(config_path: Path) -> tuple[KeyStore, bytes]:
    """The issuer's key store and the hub's public sealing key, from ``issuer.toml``."""
    data = table(load_toml(config_path), "id_issuer", config_path)
    where = f"{config_path}: [id_issuer]"
    base = config_path.parent
    url = database_url(data, where, base)
    hub_key = hub_sealing_public_key(data, where)  # the whole file checked before any key is read
    master = load_master_key(master_key_spec(text(data, "master_key", where), base))
    return KeyStore(db.create_engine(url), master), hub_key


@dataclass
class IdIssuer:
    issuer: codes.IdCodeIssuer
    hub_key: x25519.X25519PublicKey
    signing_key: ed25519.Ed25519PrivateKey

    def sealed_id_code(self, resident_code: str, agency_id: str) -> bytes:
        info = sealing.id_code_sealing_info(agency_id)
        plain = id_code_signing.signed(self.signing_key, info, self.issuer.issue(resident_code))
        return sealing.seal(plain, self.hub_key, info)

    def sealed_batch(self, id_codes: list[bytes], agency_id: str) -> bytes:
        """ID codes (made by ``issuer``) sealed together to the hub for one agency."""
        return id_code_batch.seal_batch(id_codes, self.hub_key, agency_id, signer=self.signing_key)

    @classmethod
    def from_store(cls, store: KeyStore, hub_public_key: bytes) -> IdIssuer:
        versions = store.versions(ID_KEY)
        if not versions:
            raise ValueError("the ID issuer's key store has no ID key: run the deployment setup")
        current = next(v.version for v in versions if v.current)
        return cls(
            codes.IdCodeIssuer({v.version: v.material for v in versions}, current),
            sealing.load_public_key(hub_public_key, field="hub_sealing_public_key"),
            signing_key(store),
        )

    @classmethod
    def load(cls, config_path: Path) -> IdIssuer:
        store, hub_key = open_key_store(config_path)
        return cls.from_store(store, hub_key)


def provision(store: KeyStore) -> bytes:
    """The ID key and the signing key, made once; the signing key's public half
    (raw Ed25519), for the hub's ``id_issuer_signing_public_key``."""
    if not store.versions(ID_KEY):
        store.create(ID_KEY, size=codes.SIV_KEY_BYTES)
    if not store.versions(SIGNING_KEY):
        store.create(SIGNING_KEY, size=32)  # an Ed25519 private key is 32 random bytes
    return id_code_signing.public_key_bytes(signing_key(store))


def signing_key(store: KeyStore) -> ed25519.Ed25519PrivateKey:
    versions = store.versions(SIGNING_KEY)
    if not versions:
        raise ValueError("the ID issuer's key store has no signing key: run the deployment setup")
    current = next(v for v in versions if v.current)
    return id_code_signing.load_private_key(current.material)


def rotate(store: KeyStore, window: timedelta) -> int:
    """A new ID key version. Agencies re-key to it; it becomes current once all have
    (``complete_rotation``), and the old version then stays accepted for ``window``."""
    return store.create(ID_KEY, size=codes.SIV_KEY_BYTES, current=False, window=window)
