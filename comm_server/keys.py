"""An agency's own secrets, in its key store: the X25519 key answers to it are sealed to,
and the Ed25519 key it signs what it seals with (its exchange certificate certifies both);
and the key of the pseudonyms its share of the log shows the oversight body for persons."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from renkei import exchange_cert, id_code_signing, sealing
from renkei.keystore import KeyStore

SEALING = "agency-sealing"
SIGNING = "agency-exchange-signing"
# HMAC-SHA256 key of the oversight body's person pseudonyms (comm_server.oversight_share):
# the agency's own, so a pseudonym joins nothing across agencies.
PSEUDONYM = "oversight-pseudonym"


@dataclass(frozen=True, slots=True)
class OwnKeys:
    """What this agency opens with and signs with."""

    sealing: x25519.X25519PrivateKey
    signing: ed25519.Ed25519PrivateKey


def provision(store: KeyStore) -> bytes:
    """Make the sealing and signing keys if there are none; the sealing key's public half."""
    if not store.versions(SEALING):
        store.create(SEALING, sealing.private_key_bytes(sealing.generate_private_key()))
    if not store.versions(SIGNING):
        store.create(SIGNING, ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    pseudonym_key(store)
    return sealing.public_key_bytes(sealing_key(store))


def sealing_key(store: KeyStore) -> x25519.X25519PrivateKey:
    return sealing.load_private_key(store.current(SEALING).material)


def signing_key(store: KeyStore) -> ed25519.Ed25519PrivateKey:
    return id_code_signing.load_private_key(store.current(SIGNING).material)


def pseudonym_key(store: KeyStore) -> bytes:
    """The oversight pseudonym key, made on first use (a store from before issue 15)."""
    if not store.versions(PSEUDONYM):
        # Another process of this agency may make version 1 first: then that one is used.
        with contextlib.suppress(sa.exc.IntegrityError):
            store.create(PSEUDONYM)  # 32 random bytes
    return store.current(PSEUDONYM).material


def own_keys(store: KeyStore) -> OwnKeys:
    return OwnKeys(sealing_key(store), signing_key(store))


def exchange_csr(store: KeyStore, agency_id: str) -> x509.CertificateSigningRequest:
    """The request for this agency's exchange certificate, signed with its signing key:
    the agencies' CA signs it without any private key leaving this store."""
    return exchange_cert.build_csr(
        agency_id, signing_key(store), sealing.public_key_bytes(sealing_key(store))
    )
