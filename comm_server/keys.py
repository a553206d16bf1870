"""An agency's own secrets, in its key store: the sealing and exchange-signing keys are
the kernel's (``renkei.agency_keys``, shared with the portal); what a communication
server adds is the key of the pseudonyms its share of the log shows the oversight body."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa

from renkei import agency_keys
from renkei.agency_keys import (
    SEALING,
    SIGNING,
    OwnKeys,
    exchange_csr,
    own_keys,
    sealing_key,
    signing_key,
)
from renkei.keystore import KeyStore

__all__ = [
    "PSEUDONYM",
    "SEALING",
    "SIGNING",
    "OwnKeys",
    "exchange_csr",
    "own_keys",
    "provision",
    "pseudonym_key",
    "sealing_key",
    "signing_key",
]

# HMAC-SHA256 key of the oversight body's person pseudonyms (comm_server.oversight_share):
# the agency's own, so a pseudonym joins nothing across agencies.
PSEUDONYM = "oversight-pseudonym"


def provision(store: KeyStore) -> bytes:
    """The kernel's sealing and signing keys, and the pseudonym key, made if there are none;
    the sealing key's public half."""
    public = agency_keys.provision(store)
    pseudonym_key(store)
    return public


def pseudonym_key(store: KeyStore) -> bytes:
    """The oversight pseudonym key, made on first use (a store from before issue 15)."""
    if not store.versions(PSEUDONYM):
        # Another process of this agency may make version 1 first: then that one is used.
        with contextlib.suppress(sa.exc.IntegrityError):
            store.create(PSEUDONYM)  # 32 random bytes
    return store.current(PSEUDONYM).material
