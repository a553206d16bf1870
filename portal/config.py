"""The portal's configuration: ``portal/portal.toml``, paths relative to it.

::

    [portal]
    listen = "0.0.0.0:8443"                      # the internet side (HTTPS only)
    public_url = "https://portal.example.jp"     # what browsers see: the Origin checked
    agency_id = "portal"                         # its agency id at the hub and the registry
    database_url = "sqlite:///{config_dir}/portal.db"
    # database_schema = "portal"                 # PostgreSQL
    master_key = "file:master.key"               # wraps its keys in that database (renkei.keystore)
    # internal_listen = "10.0.0.5:50081"         # mTLS gRPC for the oversight body's legal holds
    session_minutes = 30
    challenge_seconds = 300
    font = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"   # for the PDFs

    [web_tls]                                    # its own server certificate (a "web" CA,
    cert = "web/portal.pem"; key = "web/portal.key"   #  never the renkei.internal CAs)

    [tls]                                        # its mTLS client files (agency "portal")
    ca_cert = "..."; cert = "..."; key = "..."

    [hub]
    endpoint = "hub.renkei.internal:50051"
    [registry]
    endpoint = "registry.renkei.internal:50071"

    [cards]
    ca_cert = "../pki/card-ca/ca.pem"
    crl = "../pki/card-ca/crl.pem"               # re-read when it changes

    [rate_limit]                                 # sign-in: token buckets
    per_client_per_minute = 10
    per_client_burst = 10
    overall_per_minute = 600
    overall_burst = 100

    [verify]                                     # checking the hub's proofs
    log_key = "hub.renkei.internal+1a2b3c4d+A..."   # the hub log's note verifier key
    witness_keys = ["witness.service.renkei.internal+..."]
    quorum = 1

    [retention]                                  # its applications for details (R25)
    days = 2557                                  # 7 years
    every_seconds = 86400                        # its own purge job (0 or absent: none)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from renkei.config_util import (
    ConfigError,
    boolean,
    database_url,
    integer,
    load_toml,
    master_key_spec,
    number,
    optional_text,
    path,
    table,
    text,
    text_list,
    tls_files,
)
from renkei.pki import TlsFiles, validate_agency_id
from renkei.retention import RetentionPolicy, retention_policy
from renkei.tlog import checkpoint, note

DEFAULT_FONT = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")


@dataclass(frozen=True)
class RateLimits:
    """Token buckets for sign-in: one per client address and one for everyone."""

    per_client_per_minute: float = 10.0
    per_client_burst: int = 10
    overall_per_minute: float = 600.0
    overall_burst: int = 100


@dataclass(frozen=True)
class PortalConfig:
    listen: str
    public_url: str
    database_url: str
    web_cert: Path
    web_key: Path
    card_ca_cert: Path
    card_crl: Path | None
    hub_endpoint: str
    registry_endpoint: str
    tls: TlsFiles | None = None
    agency_id: str = "portal"
    database_schema: str | None = None
    session_minutes: float = 30.0
    challenge_seconds: float = 300.0
    rate_limits: RateLimits = RateLimits()
    log_key: str = ""
    witness_keys: tuple[str, ...] = ()
    quorum: int = 1
    font: Path = DEFAULT_FONT
    # Where the portal's keys (renkei.agency_keys) are unwrapped from: a renkei.keystore spec.
    master_key: str | None = None
    # The internal gRPC port (mTLS, [tls]): LegalHoldService for the oversight body. None: off.
    internal_listen: str | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    log_level: str = "INFO"
    insecure_development: bool = False  # plaintext gRPC to the hub and registry (tests only)
    shutdown_grace_seconds: float = 5.0

    @property
    def origin(self) -> str:
        """The scheme, host and port browsers send as ``Origin``."""
        return self.public_url.rstrip("/")

    @classmethod
    def load(cls, file: Path) -> PortalConfig:
        data = load_toml(file)
        base = file.parent
        where = f"{file}: [portal]"
        section = table(data, "portal", file)
        web = table(data, "web_tls", file)
        cards = table(data, "cards", file)
        limits = table(data, "rate_limit", file)
        verify = table(data, "verify", file)
        agency_id = text(section, "agency_id", where, "portal")
        try:
            validate_agency_id(agency_id)
        except ValueError as err:
            raise ConfigError(f"{where} agency_id: {err}") from None
        public_url = text(section, "public_url", where)
        if not public_url.startswith("https://"):
            raise ConfigError(f"{where} public_url: must be https://")
        log_key = text(verify, "log_key", f"{file}: [verify]", "")
        witness_keys = text_list(verify, "witness_keys", f"{file}: [verify]")
        try:
            if log_key:
                note.parse_verifier_key(log_key)
            for key in witness_keys:
                checkpoint.parse_cosignature_verifier_key(key)
        except ValueError as err:
            raise ConfigError(f"{file}: [verify]: {err}") from None
        lw = f"{file}: [rate_limit]"
        return cls(
            listen=text(section, "listen", where, "127.0.0.1:0"),
            public_url=public_url,
            database_url=database_url(section, where, base),
            database_schema=optional_text(section, "database_schema", where),
            web_cert=path(web, "cert", f"{file}: [web_tls]", base),
            web_key=path(web, "key", f"{file}: [web_tls]", base),
            card_ca_cert=path(cards, "ca_cert", f"{file}: [cards]", base),
            # Required: a portal that checked no revocation would take back every lost card.
            card_crl=path(cards, "crl", f"{file}: [cards]", base),
            hub_endpoint=text(table(data, "hub", file), "endpoint", f"{file}: [hub]"),
            registry_endpoint=text(
                table(data, "registry", file), "endpoint", f"{file}: [registry]"
            ),
            tls=tls_files(data, file),
            agency_id=agency_id,
            master_key=master_key_spec(text(section, "master_key", where), base),
            internal_listen=optional_text(section, "internal_listen", where),
            retention=retention_policy(data, file),
            log_level=text(section, "log_level", where, "INFO"),
            session_minutes=number(section, "session_minutes", where, 30.0),
            challenge_seconds=number(section, "challenge_seconds", where, 300.0),
            rate_limits=RateLimits(
                per_client_per_minute=number(limits, "per_client_per_minute", lw, 10.0),
                per_client_burst=integer(limits, "per_client_burst", lw, 10, minimum=1),
                overall_per_minute=number(limits, "overall_per_minute", lw, 600.0),
                overall_burst=integer(limits, "overall_burst", lw, 100, minimum=1),
            ),
            log_key=log_key,
            witness_keys=witness_keys,
            quorum=integer(verify, "quorum", f"{file}: [verify]", 1, minimum=1),
            font=path(section, "font", where, base) if "font" in section else DEFAULT_FONT,
            insecure_development=boolean(section, "insecure_development", where, False),
            shutdown_grace_seconds=number(
                section, "shutdown_grace_seconds", where, 5.0, positive=False
            ),
        )
