"""The card CA's files (issue 15): ``pki/card-ca/{ca.pem,ca.key,crl.pem}`` of a deployment.

The registry side runs this CA (registry_binding/cards.py issues and revokes
with it); the portal and the counter trust ``ca.pem`` and read ``crl.pem``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from registry_binding.cards import (
    CardCa,
    CardCaFiles,
    IssuedCard,
    id_bases,
    issue_cards,
    revoke_card,
)
from registry_binding.config import RegistryBindingConfig
from registry_binding.sources import open_source
from registry_binding.store import BindingStore
from renkei import card, db

CARD_CA_FOLDER = Path("pki") / "card-ca"


def card_ca_dir(root: Path) -> Path:
    return root / CARD_CA_FOLDER


def init_card_ca(root: Path, *, now: datetime | None = None) -> CardCa:
    """Makes the card CA under ``root`` (an empty revocation list too); keeps an existing one."""
    files = CardCaFiles(card_ca_dir(root))
    if files.cert.exists() and files.key.exists():
        ca = CardCa.load(files.folder)
    else:
        files.folder.mkdir(parents=True, exist_ok=True)
        cert, key = card.build_card_ca(now or datetime.now(UTC))
        fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        ca = CardCa(files, cert, key)
    if not files.crl.exists():
        crl = card.build_crl(ca.cert, ca.key, [], now or datetime.now(UTC))
        files.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return ca


def _binding_store(registry_config: Path) -> tuple[RegistryBindingConfig, BindingStore]:
    config = RegistryBindingConfig.load(registry_config)
    store = BindingStore(db.create_engine(config.database_url, schema=config.database_schema))
    return config, store


def _ca_dir(config: RegistryBindingConfig, registry_config: Path) -> Path:
    if config.card_ca_dir is None:
        raise ValueError(f"{registry_config}: no card CA folder ([cards] ca_dir)")
    return config.card_ca_dir


def issue_for_registry(
    registry_config: Path, resident_codes: Sequence[str], out_dir: Path
) -> list[IssuedCard]:
    """A card per current resident, with the registry's card CA and store (``renkei cards
    issue``); ValueError naming the codes that are not current residents."""
    config, store = _binding_store(registry_config)
    try:
        ca = CardCa.load(_ca_dir(config, registry_config))
        source = open_source(config.resident_source, config.resident_source_options)
        try:
            bases = id_bases(source, resident_codes)
        finally:
            source.close()
        unknown = [code for code in resident_codes if code not in bases]
        if unknown:
            raise ValueError(f"not current residents: {unknown}")
        return issue_cards(store, ca, resident_codes, out_dir, id_basis=bases)
    finally:
        store.engine.dispose()


def revoke_for_registry(registry_config: Path, serial: int) -> Path:
    """Revokes card ``serial``, rewrites the CRL (``renkei cards revoke``); KeyError if unknown."""
    config, store = _binding_store(registry_config)
    try:
        return revoke_card(store, CardCa.load(_ca_dir(config, registry_config)), serial)
    finally:
        store.engine.dispose()


def issue_deployment_cards(
    root: Path, resident_codes: Sequence[str], out_dir: Path
) -> list[IssuedCard]:
    """For a deployment (the demo): the card CA made if missing, then a card per resident."""
    init_card_ca(root)
    # The registry's config where ops.deploy.Layout puts it (ops.deploy imports this module).
    return issue_for_registry(root / "registry" / "registry.toml", resident_codes, out_dir)
