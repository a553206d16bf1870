"""Exchange certificates for tests: a CA of agencies and agencies' keys and certificates,
made as a deployment makes them (a CSR from the agency, signed by ops.pki)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from comm_server.keys import OwnKeys
from ops.pki import sign_exchange_csr
from renkei import exchange_cert, sealing
from renkei.exchange_cert import ExchangeVerifier


@dataclass(frozen=True)
class FakeAgenciesCa:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls, name: str = "test agencies CA") -> FakeAgenciesCa:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def verifier(self) -> ExchangeVerifier:
        return ExchangeVerifier(self.cert)

    def agency(self, agency_id: str, **kwargs: object) -> tuple[OwnKeys, bytes]:
        """Fresh keys for ``agency_id`` and their exchange certificate (DER)."""
        keys = OwnKeys(sealing.generate_private_key(), ed25519.Ed25519PrivateKey.generate())
        return keys, self.certify(agency_id, keys, **kwargs)

    def certify(self, agency_id: str, keys: OwnKeys, **kwargs: object) -> bytes:
        csr = exchange_cert.build_csr(
            agency_id, keys.signing, sealing.public_key_bytes(keys.sealing)
        )
        cert = sign_exchange_csr(self.key, self.cert, csr, agency_id, **kwargs)  # type: ignore[arg-type]
        return cert.public_bytes(serialization.Encoding.DER)
