"""The hub's secrets: agency link-code keys, the log index key, its sealing key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from renkei import codes, sealing
from renkei.keyfiles import b64, read_json, unb64, write_secret_json

FORMAT = "renkei-hub-keys/1"


@dataclass
class HubKeys:
    link_keys: dict[str, codes.AgencyKeys]
    log_index_key: bytes
    sealing_key: x25519.X25519PrivateKey

    @classmethod
    def generate(cls, agency_ids: list[str]) -> HubKeys:
        return cls(
            {a: codes.AgencyKeys(1, {1: codes.new_key()}) for a in agency_ids},
            os.urandom(32),
            sealing.generate_private_key(),
        )

    def save(self, path: Path) -> None:
        write_secret_json(
            path,
            {
                "format": FORMAT,
                "log_index_key": b64(self.log_index_key),
                "sealing_private_key": b64(sealing.private_key_bytes(self.sealing_key)),
                "link_keys": {
                    agency: {
                        "current": k.current,
                        "keys": {str(v): b64(key) for v, key in k.keys.items()},
                    }
                    for agency, k in self.link_keys.items()
                },
            },
        )

    @classmethod
    def load(cls, path: Path) -> HubKeys:
        data = read_json(path, FORMAT)
        link_keys = {}
        for agency, entry in data["link_keys"].items():
            keys = {
                int(v): unb64(k, where=f"{path}: link_keys.{agency}.{v}")
                for v, k in entry["keys"].items()
            }
            if int(entry["current"]) not in keys:
                raise ValueError(f"{path}: {agency}'s current key version is missing")
            link_keys[agency] = codes.AgencyKeys(int(entry["current"]), keys)
        return cls(
            link_keys,
            unb64(data["log_index_key"], where=f"{path}: log_index_key"),
            sealing.load_private_key(
                unb64(data["sealing_private_key"], where=f"{path}: sealing_private_key")
            ),
        )
