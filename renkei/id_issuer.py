"""The ID issuer: resident code -> ID code under the ID key (R4, R7).

It holds the ID key and nothing else of the hub's. It never hands an ID code
out in the clear: each one is sealed to the hub, for one named agency, so the
agency that carries it to the hub cannot read it and no other agency can use
it (the hub opens it with that agency's id as HPKE info).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from renkei import codes, sealing
from renkei.keyfiles import b64, read_json, unb64, write_secret_json

FORMAT = "renkei-id-issuer-keys/1"


def id_code_sealing_info(agency_id: str) -> bytes:
    """Binds a sealed ID code to the one agency it is meant for."""
    return sealing.exchange_info("id-code", agency_id)


@dataclass
class IdIssuer:
    issuer: codes.IdCodeIssuer
    hub_key: x25519.X25519PublicKey

    def sealed_id_code(self, resident_code: str, agency_id: str) -> bytes:
        return sealing.seal(
            self.issuer.issue(resident_code), self.hub_key, id_code_sealing_info(agency_id)
        )

    @staticmethod
    def create_key_file(path: Path, hub_public_key: bytes) -> None:
        write_secret_json(
            path,
            {
                "format": FORMAT,
                "id_key": b64(codes.new_key()),
                "hub_sealing_public_key": b64(hub_public_key),
            },
        )

    @classmethod
    def load(cls, path: Path) -> IdIssuer:
        data = read_json(path, FORMAT)
        return cls(
            codes.IdCodeIssuer(unb64(data["id_key"], where=f"{path}: id_key")),
            sealing.load_public_key(
                unb64(data["hub_sealing_public_key"], where=f"{path}: hub_sealing_public_key")
            ),
        )
