"""The card CA's files (issue 15): ``pki/card-ca/{ca.pem,ca.key,crl.pem}`` of a deployment.

The registry side runs this CA (registry_binding/cards.py issues and revokes
with it); the portal and the counter trust ``ca.pem`` and read ``crl.pem``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from registry_binding.cards import CardCa, CardCaFiles
from renkei import card

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
