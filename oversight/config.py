"""The oversight body's config (``oversight.toml``): whom it reads, how, and its rules.

::

    [tls]                       # the oversight body's own certificate (urn:renkei:oversight)
    ca_cert = "roots.pem"
    cert = "oversight.crt"
    key = "oversight.key"

    [hub]
    endpoint = "127.0.0.1:50051"
    log_key = "renkei.hub/log+1234abcd+AQ..."   # the hub log's note verifier key
    witness_keys = ["witness+..."]               # cosignature verifier keys
    require_witness = true

    [[agency]]                  # every communication server, by agency id
    id = "131016"
    endpoint = "127.0.0.1:50061"

    [registry]                  # the registry's binding party (consent log)
    endpoint = "127.0.0.1:50071"

    [output]
    dir = "out"

    [reconcile]
    max_skew_seconds = 300

    [working_hours]             # Japan time (JST)
    start = "08:30"
    end = "18:00"
    weekdays = [1, 2, 3, 4, 5]  # ISO: 1 is Monday
    holidays = ["2027-01-01"]

    [anomalies]                 # see oversight/anomalies.py and docs/oversight.md
    volume_ratio = 3.0

Paths are relative to the file's folder. Every key goes through the typed
readers of renkei.config_util, so a wrong TOML type names the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from renkei import validate
from renkei.config_util import (
    ConfigError,
    boolean,
    integer,
    load_toml,
    number,
    optional_text,
    resolve,
    table,
    text,
    text_list,
    tls_files,
)
from renkei.pki import TlsFiles, party_host, validate_agency_id
from renkei.tlog import checkpoint, note

DEFAULT_REGISTRY_PARTY = "service:registry"
DEFAULT_PORTAL_PARTY = "agency:portal"
DEFAULT_MAX_SKEW_SECONDS = 300.0


@dataclass(frozen=True)
class HubSource:
    endpoint: str
    log_key: str  # the hub log's note verifier key
    witness_keys: tuple[str, ...] = ()
    require_witness: bool = True
    origin: str | None = None  # the checkpoint's origin; the log key's name when unset
    # The hub's tlog-tiles over HTTPS (https://host:port[/prefix]): entry bundles instead
    # of GetEntries when set; ``tiles_server_name`` the name its certificate carries.
    tiles_url: str | None = None
    tiles_server_name: str | None = None
    # Entries per GetEntries call (at most 1000) and calls in flight at once.
    batch: int = 1000
    parallel: int = 4

    def log_verifier(self) -> note.Verifier:
        return note.parse_verifier_key(self.log_key)

    def witness_verifiers(self) -> list[note.Verifier]:
        return [checkpoint.parse_cosignature_verifier_key(k) for k in self.witness_keys]


@dataclass(frozen=True)
class AgencySource:
    id: str
    endpoint: str

    @property
    def party(self) -> str:
        return f"agency:{self.id}"


@dataclass(frozen=True)
class RegistrySource:
    endpoint: str
    party: str = DEFAULT_REGISTRY_PARTY


@dataclass(frozen=True)
class WorkingHours:
    """Office hours in Japan time: ``start`` <= time < ``end`` on ``weekdays``, not holidays."""

    start: time = time(8, 30)
    end: time = time(18, 0)
    weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class Thresholds:
    """When anomalies.py calls something an anomaly (docs/oversight.md)."""

    # Staff or terminal: requests > max(volume_ratio x median, median + volume_mad_k x MAD)
    # of its peers in the same agency and role, with at least volume_min_count requests
    # and volume_min_peers others to compare with.
    volume_ratio: float = 3.0
    volume_mad_k: float = 5.0
    volume_min_count: int = 20
    volume_min_peers: int = 3
    # One staff member's requests about one person: repeat_count within repeat_window.
    repeat_count: int = 5
    repeat_window: timedelta = timedelta(days=1)
    # Denied requests of one requester (staff member, or agency from the hub's log).
    denial_count: int = 5
    denial_window: timedelta = timedelta(minutes=10)
    # Report exchanges outside working hours at all.
    off_hours: bool = True


@dataclass(frozen=True)
class OversightConfig:
    tls: TlsFiles
    hub: HubSource
    agencies: tuple[AgencySource, ...]
    registry: RegistrySource | None
    output_dir: Path
    # [portal]: the portal's internal port, for legal holds on its applications (R25).
    portal: RegistrySource | None = None
    max_skew: timedelta = timedelta(seconds=DEFAULT_MAX_SKEW_SECONDS)
    working_hours: WorkingHours = field(default_factory=WorkingHours)
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Rows per ReadAgencyLog/ReadConsentLog message, and the ceiling of one read call.
    batch_size: int = 5000
    timeout_seconds: float = 600.0

    @classmethod
    def load(cls, path: Path) -> OversightConfig:
        data = load_toml(path)
        base = path.parent
        tls = tls_files(data, path)
        if tls is None:
            raise ConfigError(
                f"{path}: [tls] is required: the oversight body reads over mutual TLS only"
            )
        hub = _hub(table(data, "hub", path), f"{path}: [hub]")
        agencies = _agencies(data, path)
        reg = table(data, "registry", path)
        registry = None
        if reg:
            where = f"{path}: [registry]"
            registry = RegistrySource(
                _endpoint(reg, where), _party(reg, "party", where, DEFAULT_REGISTRY_PARTY)
            )
        web = table(data, "portal", path)
        portal = None
        if web:
            where = f"{path}: [portal]"
            portal = RegistrySource(
                _endpoint(web, where), _party(web, "party", where, DEFAULT_PORTAL_PARTY)
            )
        output = table(data, "output", path)
        where = f"{path}: [reconcile]"
        rec = table(data, "reconcile", path)
        max_skew = number(rec, "max_skew_seconds", where, DEFAULT_MAX_SKEW_SECONDS)
        read = table(data, "read", path)
        return cls(
            tls=tls,
            hub=hub,
            agencies=agencies,
            registry=registry,
            portal=portal,
            output_dir=resolve(base, text(output, "dir", f"{path}: [output]", "out")),
            max_skew=timedelta(seconds=max_skew),
            working_hours=_hours(table(data, "working_hours", path), f"{path}: [working_hours]"),
            thresholds=_thresholds(table(data, "anomalies", path), f"{path}: [anomalies]"),
            batch_size=integer(
                read, "batch_size", f"{path}: [read]", 5000, minimum=1, maximum=5000
            ),
            timeout_seconds=number(read, "timeout_seconds", f"{path}: [read]", 600.0),
        )

    def agency(self, agency_id: str) -> AgencySource:
        for a in self.agencies:
            if a.id == agency_id:
                return a
        raise ConfigError(f"agency {agency_id!r} is not in the config's [[agency]] list")


def _endpoint(data: dict[str, Any], where: str) -> str:
    value = text(data, "endpoint", where)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where} endpoint: {value!r} is not host:port")
    return value


def _party(data: dict[str, Any], key: str, where: str, default: str) -> str:
    value = text(data, key, where, default)
    try:
        party_host(value)
    except ValueError as err:
        raise ConfigError(f"{where} {key}: {err}") from None
    return value


def _hub(data: dict[str, Any], where: str) -> HubSource:
    if not data:
        raise ConfigError(f"{where}: missing (the hub's endpoint and log key)")
    log_key = text(data, "log_key", where)
    try:
        note.parse_verifier_key(log_key)
    except note.NoteError as err:
        raise ConfigError(f"{where} log_key: {err}") from None
    witness_keys = text_list(data, "witness_keys", where)
    for i, key in enumerate(witness_keys):
        try:
            checkpoint.parse_cosignature_verifier_key(key)
        except note.NoteError as err:
            raise ConfigError(f"{where} witness_keys[{i}]: {err}") from None
    require_witness = boolean(data, "require_witness", where, True)
    if require_witness and not witness_keys:
        raise ConfigError(
            f"{where} witness_keys: none given; name the witnesses' keys, or set"
            " require_witness = false (a checkpoint then proves less)"
        )
    return HubSource(
        endpoint=_endpoint(data, where),
        log_key=log_key,
        witness_keys=witness_keys,
        require_witness=require_witness,
        origin=optional_text(data, "origin", where),
        tiles_url=_tiles_url(data, where),
        tiles_server_name=optional_text(data, "tiles_server_name", where),
        batch=integer(data, "batch", where, 1000, minimum=1, maximum=1000),
        parallel=integer(data, "parallel", where, 4, minimum=1, maximum=64),
    )


def _tiles_url(data: dict[str, Any], where: str) -> str | None:
    value = optional_text(data, "tiles_url", where)
    if value is not None and not value.startswith("https://"):
        raise ConfigError(f"{where} tiles_url: {value!r} is not an https:// URL")
    return value


def _agencies(data: dict[str, Any], path: Path) -> tuple[AgencySource, ...]:
    raw = data.get("agency", [])
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise ConfigError(f"{path}: agency must be an array of tables ([[agency]])")
    out: list[AgencySource] = []
    seen: set[str] = set()
    for i, a in enumerate(raw):
        where = f"{path}: [[agency]] {i}"
        agency_id = text(a, "id", where)
        try:
            validate_agency_id(agency_id)
        except ValueError as err:
            raise ConfigError(f"{where} id: {err}") from None
        if agency_id in seen:
            raise ConfigError(f"{where} id: {agency_id!r} is listed twice")
        seen.add(agency_id)
        out.append(AgencySource(agency_id, _endpoint(a, where)))
    return tuple(out)


def _clock(data: dict[str, Any], key: str, where: str, default: time) -> time:
    value = text(data, key, where, default.strftime("%H:%M"))
    if key == "end" and value == "24:00":
        return time.max  # the end of the day: working hours that never end before midnight
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"{where} {key}: {value!r} is not HH:MM") from None


def _hours(data: dict[str, Any], where: str) -> WorkingHours:
    default = WorkingHours()
    start = _clock(data, "start", where, default.start)
    end = _clock(data, "end", where, default.end)
    if end <= start:
        raise ConfigError(f"{where}: end {end:%H:%M} is not after start {start:%H:%M}")
    days = data.get("weekdays", sorted(default.weekdays))
    if not isinstance(days, list) or not all(type(d) is int and 1 <= d <= 7 for d in days):
        raise ConfigError(f"{where} weekdays: must be an array of integers 1 (Monday) to 7")
    holidays: set[date] = set()
    for value in text_list(data, "holidays", where):
        try:
            holidays.add(date.fromisoformat(value))
        except ValueError:
            raise ConfigError(f"{where} holidays: {value!r} is not YYYY-MM-DD") from None
    return WorkingHours(start, end, frozenset(days), frozenset(holidays))


def _thresholds(data: dict[str, Any], where: str) -> Thresholds:
    d = Thresholds()
    big = validate.INT64_MAX
    return Thresholds(
        volume_ratio=number(data, "volume_ratio", where, d.volume_ratio),
        volume_mad_k=number(data, "volume_mad_k", where, d.volume_mad_k),
        volume_min_count=integer(data, "volume_min_count", where, d.volume_min_count, minimum=1),
        volume_min_peers=integer(
            data, "volume_min_peers", where, d.volume_min_peers, minimum=1, maximum=big
        ),
        repeat_count=integer(data, "repeat_count", where, d.repeat_count, minimum=2),
        repeat_window=timedelta(
            seconds=number(data, "repeat_window_seconds", where, d.repeat_window.total_seconds())
        ),
        denial_count=integer(data, "denial_count", where, d.denial_count, minimum=2),
        denial_window=timedelta(
            seconds=number(data, "denial_window_seconds", where, d.denial_window.total_seconds())
        ),
        off_hours=boolean(data, "off_hours", where, d.off_hours),
    )
