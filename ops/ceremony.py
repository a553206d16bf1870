"""A real deployment ceremony: each party lays out its own folder, each CA signs apart.

``renkei deploy init --dir D`` lays out a whole demo on one machine, CAs and
parties in their own folders. In a real deployment no one machine holds all
of that: each party runs ``renkei deploy init --party NAME --dir ITS_FOLDER
--roots roots.pem``, which makes its TLS key and master key there and a
certificate signing request; the request (and only it) goes to the CA of the
party's domain, whose operator runs ``renkei pki issue``; the certificate
comes back as ``tls/cert.pem``. See docs/operations.md, "A deployment ceremony".
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ops.pki import (
    CA_FOLDERS,
    CERT_FILE,
    KEY_FILE,
    TLS_FOLDER,
    CaFiles,
    create_ca,
    make_request,
    party_kind,
    revoke,
    sign_request,
)
from renkei import db
from renkei.config_util import ConfigError
from renkei.files import atomic_write
from renkei.keystore import KeyStore, create_master_key_file, load_master_key
from renkei.pki import ca_kind, party_host

# The config file and main table of each service, as `renkei deploy init` names them.
SERVICE_CONFIGS: Mapping[str, tuple[str, str]] = {
    "id-issuer": ("issuer.toml", "id_issuer"),
    "registry": ("registry.toml", "registry"),
    "numbering": ("numbering.toml", "numbering"),
}


@dataclass(frozen=True)
class PartyFolder:
    """What ``init_party`` wrote: the CSR to send, the config, and what to publish."""

    csr: Path
    config: Path
    publish: Mapping[str, str]  # e.g. the agency's sealing public key, for the hub's directory


def init_party(
    folder: Path,
    party: str,
    roots: Path,
    crls: Sequence[Path] = (),
    *,
    listen: str = "0.0.0.0:50051",
    endpoints: Mapping[str, str] | None = None,
    agency_ids: Sequence[str] = (),
) -> PartyFolder:
    """Lay out ``party``'s own folder: keys made here, a CSR, its trust and its config.

    ``roots`` (the CAs' bundle) and ``crls`` are the others' public material,
    copied in. Refuses (ConfigError) to replace a party's existing TLS key.
    Keys the others must know are made here too and returned in ``publish``:
    an agency's sealing key (for the hub's directory), the hub's sealing key
    (for the ID issuer) with a link-code key per agency of ``agency_ids``,
    the ID issuer's ID key and signing key (its public half, for the hub).
    The oversight body (``oversight``) gets its TLS key and ``oversight.toml`` only.
    """
    try:
        party_host(party)
    except ValueError as err:
        raise ConfigError(f"--party: {err}") from None
    _check_roots(roots)
    if party_kind(party) == "agency" and not (endpoints or {}).get("hub_endpoint"):
        raise ConfigError(f"--party {party}: a communication server needs --hub-endpoint")
    folder = Path(folder)
    tls_dir = folder / TLS_FOLDER
    if (tls_dir / KEY_FILE).exists():
        raise ConfigError(f"{tls_dir / KEY_FILE} already exists: refusing to replace a party's key")
    for crl in crls:
        if not Path(crl).is_file():
            raise ConfigError(f"--crl: no such file {crl}")
    csr = make_request(tls_dir, party)
    shutil.copyfile(roots, tls_dir / "roots.pem")
    crl_copies = []
    for i, crl in enumerate(crls):
        copy = tls_dir / "crls" / f"{i}-{Path(crl).name}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crl, copy)
        crl_copies.append(copy)
    # The oversight body keeps no store, so it has no master key to keep one under.
    if party_kind(party) != "oversight" and not (folder / "master.key").exists():
        create_master_key_file(folder / "master.key")
    tls = {
        "ca_cert": os.path.relpath(tls_dir / "roots.pem", folder),
        "cert": os.path.relpath(tls_dir / CERT_FILE, folder),
        "key": os.path.relpath(tls_dir / KEY_FILE, folder),
        "crls": [os.path.relpath(p, folder) for p in crl_copies],
    }
    ends = dict(endpoints or {})
    kind, name = party_kind(party), party.partition(":")[2]
    publish: dict[str, str] = {}
    if kind == "agency":
        config = folder / "comm.toml"
        body: dict[str, Any] = {
            "agency_id": name,
            "listen": listen,
            "database_url": "sqlite:///{config_dir}/" + f"comm_{name}.db",
            "master_key": "file:master.key",
            **{k: v for k, v in ends.items() if k in ("hub_endpoint", "registry_endpoint")},
        }
        # The [legacy] table (its legacy system: docs/legacy-formats.md) is the agency's to add.
        _write(config, {"comm": body, "tls": tls})
        publish["sealing_public_key"] = _provision(folder, body["database_url"], _agency_keys)
    elif kind == "hub":
        config = folder / "hub.toml"
        body = {
            "listen": listen,
            "database_url": "sqlite:///{config_dir}/hub.db",
            "directory": "directory.toml",
            "policy": "policy",
            "master_key": "file:master.key",
            **{k: v for k, v in ends.items() if k == "id_issuer_endpoint"},
        }
        _write(config, {"hub": body, "tls": tls})

        def hub_keys(store: KeyStore) -> bytes:
            from hub_server.keys import provision, sealing_key
            from renkei import sealing

            provision(store, agency_ids)
            return sealing.public_key_bytes(sealing_key(store))

        publish["hub_sealing_public_key"] = _provision(folder, body["database_url"], hub_keys)
    elif kind == "oversight":
        config = folder / "oversight.toml"
        # Its [hub] log_key and witness_keys, and an [[agency]] per communication
        # server, are the operator's to add once those parties have published them.
        hub = {"endpoint": ends["hub_endpoint"]} if "hub_endpoint" in ends else {}
        registry = {"endpoint": ends["registry_endpoint"]} if "registry_endpoint" in ends else {}
        _write(config, {"tls": tls, "hub": hub, "registry": registry, "output": {"dir": "out"}})
    elif name == "id-issuer":
        config = folder / "issuer.toml"
        body = {
            "listen": listen,
            "database_url": "sqlite:///{config_dir}/id_issuer.db",
            "master_key": "file:master.key",
        }
        _write(config, {"id_issuer": body, "tls": tls})

        def issuer_keys(store: KeyStore) -> bytes:
            from id_issuer.issuer import provision

            return provision(store)

        publish["id_issuer_signing_public_key"] = _provision(
            folder, body["database_url"], issuer_keys
        )
    else:
        file, table = SERVICE_CONFIGS.get(name, (f"{name}.toml", name.replace("-", "_")))
        config = folder / file
        _write(config, {table: {"listen": listen, "master_key": "file:master.key"}, "tls": tls})
    return PartyFolder(csr, config, publish)


def issue(ca_dir: Path, csr: Path, out: Path, *, validity_days: int) -> x509.Certificate:
    """`renkei pki issue`: sign ``csr`` with the CA in ``ca_dir``, for its own domain only."""
    ca_files = CaFiles(Path(ca_dir))
    try:
        ca = ca_files.load()
        cert = sign_request(ca, Path(csr).read_bytes(), validity_days=validity_days)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{csr}: {err}") from None
    atomic_write(out, cert.public_bytes(Encoding.PEM), 0o644)
    return cert


def revoke_certificates(ca_dir: Path, serials: Sequence[int], certs: Sequence[Path]) -> list[int]:
    """`renkei pki revoke`: add serials (given, or read from certificates) to the CA's CRL."""
    ca_files = CaFiles(Path(ca_dir))
    wanted = list(serials)
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_files.cert.read_bytes())
        for path in certs:
            cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
            if cert.issuer != ca_cert.subject:
                raise ValueError(f"{path} was not issued by {ca_files.cert}")
            wanted.append(cert.serial_number)
        if not wanted:
            raise ValueError("nothing to revoke: give --serial or --cert")
        return revoke(ca_files, wanted)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{ca_dir}: {err}") from None


def create_domain_ca(folder: Path, kind: str, *, common_name: str, validity_days: int) -> CaFiles:
    """`renkei pki ca`: one domain's CA, alone in its folder (its operator's machine)."""
    if kind not in CA_FOLDERS:
        raise ConfigError(f"--kind {kind!r}: expected one of {', '.join(CA_FOLDERS)}")
    try:
        return create_ca(folder, kind, common_name=common_name, validity_days=validity_days)  # type: ignore[arg-type]
    except FileExistsError as err:
        raise ConfigError(str(err)) from None


def _check_roots(roots: Path) -> None:
    try:
        certs = x509.load_pem_x509_certificates(Path(roots).read_bytes())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--roots {roots}: not a bundle of CA certificates ({err})") from None
    kinds = {ca_kind(c) for c in certs}
    if not {"hub", "agency", "service"} <= kinds:
        raise ConfigError(
            f"--roots {roots}: needs the hub's, the agencies' and the services' CA certificates"
        )


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def _agency_keys(store: KeyStore) -> bytes:
    from comm_server.keys import provision

    return provision(store)


def _provision(folder: Path, database_url: str, make: Callable[[KeyStore], bytes]) -> str:
    """Make a party's keys in its own store (under its master key); the public part, base64."""
    url = database_url.replace("{config_dir}", str(folder))
    store = KeyStore(db.create_engine(url), load_master_key(f"file:{folder / 'master.key'}"))
    try:
        return base64.b64encode(make(store)).decode()
    finally:
        store.engine.dispose()
