"""An agency's own secret: the X25519 key answers to it are sealed to."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from renkei import sealing
from renkei.keyfiles import b64, read_json, unb64, write_secret_json

FORMAT = "renkei-agency-keys/1"


def save_sealing_key(path: Path, key: x25519.X25519PrivateKey) -> None:
    write_secret_json(
        path, {"format": FORMAT, "sealing_private_key": b64(sealing.private_key_bytes(key))}
    )


def load_sealing_key(path: Path) -> x25519.X25519PrivateKey:
    data = read_json(path, FORMAT)
    return sealing.load_private_key(
        unb64(data["sealing_private_key"], where=f"{path}: sealing_private_key")
    )
