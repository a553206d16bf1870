"""Auditing what each store holds (R2, R9): the oversight body's view of a deployment.

``scan`` looks for given values in one store. ``audit_deployment`` opens every
store of a deployment (hub, each agency, ID issuer, numbering agency, witness,
registry, the registry's binding party, and the oversight body's folder of
fetched copies) and reports which kinds of identifier each holds: Numbers,
resident codes, ID codes, link codes and change-feed subscription handles (by
agency), four facts, payloads.

It reads every column of every table, and for SQLite also the raw database
and WAL files (deleted rows and free pages included), looking for known
values gathered as the oversight body may: the registry's residents and
their four facts, the numbering agency's Numbers, every agency's link codes,
the ID codes of the registry's residents (from the ID issuer's key store, all
versions, raw and in text encodings), and the records of the agencies'
legacy systems (payloads). Check digits alone are no evidence: one random
digit run in eleven passes either check.

``SEPARATION`` is what each kind of store may hold; docs/separation.md
states it for people and the tests assert the audit against it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from rich.table import Table
from sqlalchemy.engine import Engine

NUMBER = "Number"
RESIDENT_CODE = "resident code"
ID_CODE = "ID code"
LINK_CODE = "link code"
FOUR_FACTS = "four facts"
PAYLOAD = "payload"
HANDLE = "subscription handle"
OWN = "(own)"
EVERY_AGENCY = "(every agency)"

# What each kind of store may hold. Anything else found there is a breach.
# "(own)": the agency's own only; "(every agency)": any agency's.
SEPARATION: Mapping[str, frozenset[str]] = {
    "hub": frozenset(),
    "id-issuer": frozenset(),
    # The oversight body's witness: checkpoints (a size and a root hash), nothing else.
    "witness": frozenset(),
    # The oversight body keeps no database: its fetched copies of the shares and its
    # reports, as files. Persons appear there only as pseudonyms and person keys.
    "oversight": frozenset(),
    "numbering": frozenset({NUMBER, RESIDENT_CODE}),
    # The register (the mocked Juki-net): residents and their four facts.
    "registry": frozenset({RESIDENT_CODE, FOUR_FACTS}),
    # The registry's binding party mints every agency's handles for the change
    # feed and keeps the resident code each follows (and the consent log's).
    "registry-binding": frozenset({RESIDENT_CODE, f"{HANDLE} {EVERY_AGENCY}"}),
    # The portal (issue 15): card serial -> its own link code; sessions, applications.
    "portal": frozenset({f"{LINK_CODE} {OWN}"}),
    # An agency: its own link codes and handles only, the four facts of the
    # persons it follows (R14), and the payloads of its exchanges.
    "agency": frozenset({f"{LINK_CODE} {OWN}", f"{HANDLE} {OWN}", FOUR_FACTS, PAYLOAD}),
}


@dataclass(frozen=True)
class Finding:
    label: str
    value: str
    where: str


def _row_texts(engine: Engine) -> Iterable[tuple[str, bytes]]:
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    if value is None:
                        continue
                    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
                    yield f"{table.name}.{column.name}", raw


def _sqlite_files(engine: Engine) -> list[Path]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return []
    base = Path(database)
    return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-journal")) if p.exists()]


def file_haystacks(folder: Path) -> list[tuple[str, bytes]]:
    """Every file under ``folder`` (a party that keeps files, not a database)."""
    return [(str(p), p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()]


def haystacks(engine: Engine) -> list[tuple[str, bytes]]:
    found = list(_row_texts(engine))
    return found + [(str(p), p.read_bytes()) for p in _sqlite_files(engine)]


def scan(engine: Engine, forbidden: Mapping[str, Iterable[str | bytes]]) -> list[Finding]:
    needles = [
        (label, v if isinstance(v, bytes) else v.encode("utf-8"))
        for label, values in forbidden.items()
        for v in values
        if v
    ]
    findings: list[Finding] = []
    for where, raw in haystacks(engine):
        for label, needle in needles:
            if needle in raw:
                findings.append(Finding(label, needle.decode("utf-8", "replace"), where))
    return findings


# -- a whole deployment -------------------------------------------------------


@dataclass
class Evidence:
    """Known values, by the kind they are evidence of."""

    values: dict[str, set[bytes]] = field(default_factory=dict)

    def add(self, kind: str, items: Iterable[str | bytes]) -> None:
        bucket = self.values.setdefault(kind, set())
        for item in items:
            if item:
                bucket.add(item if isinstance(item, bytes) else item.encode("utf-8"))


def _encodings(raw: bytes) -> list[bytes]:
    """How a binary value may sit in a store: raw, hex, base64 and base64url."""
    return [
        raw,
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def kinds_in(haystack: list[tuple[str, bytes]], evidence: Evidence) -> dict[str, int]:
    """Kind -> how many places (column values, raw files) hold one, for one store."""
    counts: dict[str, int] = {}
    for _, raw in haystack:
        for kind, needles in evidence.values.items():
            if any(needle in raw for needle in needles):
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def audit_deployment(root: Path, sample: int = 500) -> dict[str, dict[str, int]]:
    """Store name -> kind -> places found, for every store of the deployment at ``root``."""
    from comm_server.config import CommConfig
    from comm_server.store import CommStore
    from hub_server.config import HubConfig
    from id_issuer.config import IdIssuerConfig
    from id_issuer.issuer import IdIssuer
    from legacy_stubs.registry.store import RegistryStore
    from numbering.config import NumberingConfig
    from ops.deploy import Layout, registry_engine
    from registry_binding.config import RegistryBindingConfig
    from registry_binding.store import BindingStore
    from renkei import db
    from renkei.keystore import KeyStore, load_master_key
    from witness.config import WitnessConfig

    layout = Layout(root)
    agencies = sorted(p.name for p in (root / "agencies").iterdir() if p.is_dir())
    engines: dict[str, Engine] = {}
    hub = HubConfig.load(layout.hub_config)
    engines["hub"] = db.create_engine(hub.database_url, schema=hub.database_schema)
    for agency in agencies:
        comm = CommConfig.load(layout.comm_config(agency))
        engines[f"agency:{agency}"] = db.create_engine(
            comm.database_url, schema=comm.database_schema
        )
    issuer_config = IdIssuerConfig.load(layout.id_issuer_config)
    engines["id-issuer"] = db.create_engine(
        issuer_config.database_url, schema=issuer_config.database_schema
    )
    numbering = NumberingConfig.load(layout.numbering_config)
    engines["numbering"] = db.create_engine(
        numbering.database_url, schema=numbering.database_schema
    )
    if layout.witness_config.exists():
        witness = WitnessConfig.load(layout.witness_config)
        engines["witness"] = db.create_engine(witness.database_url, schema=witness.database_schema)
    engines["registry"] = registry_engine(layout)
    binding = RegistryBindingConfig.load(layout.registry_config)
    engines["registry-binding"] = db.create_engine(
        binding.database_url, schema=binding.database_schema
    )

    portal_config = root / "portal" / "portal.toml"  # where the deployment puts it (issue 15)
    if portal_config.exists():
        from portal.config import PortalConfig

        portal = PortalConfig.load(portal_config)
        engines["portal"] = db.create_engine(portal.database_url, schema=portal.database_schema)

    evidence = Evidence()
    registry = RegistryStore(engines["registry"])
    residents = registry.sample(sample)
    evidence.add(RESIDENT_CODE, (r.resident_code for r in residents))
    evidence.add(
        FOUR_FACTS,
        (v for r in residents for v in (r.name.kanji, r.name.kana, r.address.text)),
    )
    with engines["numbering"].connect() as conn:
        evidence.add(
            NUMBER,
            conn.execute(sa.text("select number from numbers limit :n"), {"n": sample}).scalars(),
        )
    issuer = IdIssuer.from_store(
        KeyStore(engines["id-issuer"], load_master_key(issuer_config.master_key)),
        issuer_config.hub_sealing_public_key,
    ).issuer
    evidence.add(
        ID_CODE,
        (
            enc
            for r in residents
            for version in range(1, issuer.newest + 1)
            for enc in _encodings(issuer.issue(r.resident_code, version))
        ),
    )
    for agency, handles in BindingStore(engines["registry-binding"]).handles().items():
        evidence.add(f"{HANDLE} ({agency})", handles)
    own_codes: dict[str, set[bytes]] = {}
    for agency in agencies:
        store = CommStore(engines[f"agency:{agency}"])
        own_codes[agency] = {c.encode() for c in store.all_link_codes()}
        evidence.add(f"{LINK_CODE} ({agency})", own_codes[agency])
        records = layout.legacy_records(agency)
        if records.exists():
            from comm_server.legacy.jsonl_client import canonical_json
            from legacy_stubs.jsonl_records.store import RecordStore

            evidence.add(
                PAYLOAD, (canonical_json(r) for r in RecordStore.from_file(records).records())
            )
    if "portal" in engines:
        from portal.store import persons

        with engines["portal"].connect() as conn:
            codes = conn.execute(sa.select(persons.c.link_code)).scalars()
            evidence.add(f"{LINK_CODE} (portal)", [c.encode() for c in codes])
    report: dict[str, dict[str, int]] = {}
    for name, engine in engines.items():
        report[name] = kinds_in(haystacks(engine), evidence)
        engine.dispose()
    if layout.oversight_dir.is_dir():
        report["oversight"] = kinds_in(file_haystacks(layout.oversight_dir), evidence)
    return report


def breaches(report: Mapping[str, Mapping[str, int]]) -> dict[str, set[str]]:
    """Store -> kinds it holds that ``SEPARATION`` does not allow it."""
    out: dict[str, set[str]] = {}
    for store, kinds in report.items():
        kind = "agency" if store.startswith("agency:") else store
        allowed: set[str] = set()
        anyone: set[str] = set()
        for k in SEPARATION[kind]:
            if k.endswith(f" {OWN}"):
                allowed.add(f"{k.removesuffix(OWN)}({store.removeprefix('agency:')})")
            elif k.endswith(f" {EVERY_AGENCY}"):
                anyone.add(k.removesuffix(EVERY_AGENCY))
            else:
                allowed.add(k)
        bad = {k for k in kinds if k not in allowed and not any(k.startswith(p) for p in anyone)}
        if bad:
            out[store] = bad
    return out


def render(report: Mapping[str, Mapping[str, int]]) -> Table:
    """The audit as a table: a row per kind of identifier, a column per store.

    Kinds go down the side because there are many (a link code and a handle
    per agency) while the stores are few, so it fits a terminal.
    """
    link_kinds = sorted({k for kinds in report.values() for k in kinds if k.startswith(LINK_CODE)})
    handle_kinds = sorted({k for kinds in report.values() for k in kinds if k.startswith(HANDLE)})
    rows = [NUMBER, RESIDENT_CODE, ID_CODE, *link_kinds, *handle_kinds, FOUR_FACTS, PAYLOAD]
    bad = breaches(report)
    stores = list(report)
    table = Table(title="cells holding each kind of identifier, by store (agencies by id)")
    table.add_column("kind", no_wrap=True)
    for store in stores:
        table.add_column(store.removeprefix("agency:"), justify="right", overflow="fold")
    for kind in rows:
        table.add_row(kind, *(str(report[s][kind]) if kind in report[s] else "-" for s in stores))
    table.add_row(
        "verdict",
        *("BREACH: " + ", ".join(sorted(bad[s])) if s in bad else "ok" for s in stores),
    )
    return table


# -- configs: does any party's configuration open another party's store? --------
#
# The stores' audit above looks at what each store holds; this looks at what
# each party's configuration and credentials reach. For every party's config
# file it collects every database (URL and schema), master key and private key
# file it names, under any key, and reports a breach when one belongs to
# another party: the same SQLite file or PostgreSQL URL and schema, the same
# master key (file, environment variable or PKCS#11 key) or private key file.

DATABASE = "database"
MASTER_KEY = "master key"
PRIVATE_KEY = "private key"


@dataclass(frozen=True)
class Reference:
    """One thing a party's config opens: ``kind``, normalised ``target``, and where it says so."""

    party: str
    kind: str
    target: str
    where: str
    # A party's own store or key by its config's own section (not a stray key).
    primary: bool = False


@dataclass
class ConfigAudit:
    configs: dict[str, Path]
    references: list[Reference]
    # party -> one line per reference to another party's store or key
    breaches: dict[str, list[str]] = field(default_factory=dict)
    # party -> facts worth knowing that are not breaches (a shared PostgreSQL login)
    notes: dict[str, list[str]] = field(default_factory=dict)


# The section of each party's config that names its own store and master key.
_OWN_SECTION = {
    "hub": ("hub",),
    "agency": ("comm",),
    "id-issuer": ("id_issuer",),
    "numbering": ("numbering",),
    "witness": ("witness",),
    # registry.toml: the register, the binding party's own store, its resident source.
    "registry": ("registry", "binding", "resident_source"),
}


def party_configs(root: Path) -> dict[str, Path]:
    """Party -> its config file, for every party of the deployment at ``root``."""
    from ops.deploy import Layout

    layout = Layout(root)
    configs = {
        "hub": layout.hub_config,
        "id-issuer": layout.id_issuer_config,
        "numbering": layout.numbering_config,
        "registry": layout.registry_config,
        "witness": layout.witness_config,
    }
    agencies = root / "agencies"
    for agency in (
        sorted(p.name for p in agencies.iterdir() if p.is_dir()) if agencies.is_dir() else []
    ):
        configs[f"agency:{agency}"] = layout.comm_config(agency)
    return {party: path for party, path in configs.items() if path.exists()}


def _database(url: str, schema: object, base: Path) -> str | None:
    """A store as one string: ``sqlite:<absolute file>`` or the URL (no password) and schema."""
    url = url.replace("{config_dir}", str(base))
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return f"unparsed URL {url}"
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None  # in memory: nobody else can open it
        path = Path(parsed.database)
        return f"sqlite:{(path if path.is_absolute() else base / path).resolve()}"
    where = parsed.set(password=None, drivername=parsed.get_backend_name())
    rendered = where.render_as_string(hide_password=False)
    return f"{rendered} schema {schema if isinstance(schema, str) and schema else '(default)'}"


def _login(target: str) -> str | None:
    """The PostgreSQL server, database and role of a store (its schema left out)."""
    return None if target.startswith("sqlite:") else target.rsplit(" schema ", 1)[0]


def _master_key(spec: str, base: Path) -> str:
    kind, _, rest = spec.partition(":")
    if kind == "file":
        path = Path(rest)
        return f"file:{(path if path.is_absolute() else base / path).resolve()}"
    return spec  # env:NAME, pkcs11:...: the same spec is the same key


def references(party: str, path: Path) -> list[Reference]:
    """Every database, master key and private key file ``path`` names, under any key.

    The raw TOML is read, not the party's loader: a key the loader would
    refuse or ignore (``registry_database_url`` in numbering.toml) is what an
    operator holding the file could still use.
    """
    from renkei.config_util import load_toml

    base = path.parent
    own = _OWN_SECTION["agency" if party.startswith("agency:") else party]
    found: list[Reference] = []

    def walk(table: Mapping[str, object], name: str) -> None:
        section = name.split(".", 1)[0]
        for key, value in table.items():
            where = f"{path.name}: [{name}] {key}" if name else f"{path.name}: {key}"
            if isinstance(value, Mapping):
                walk(value, f"{name}.{key}" if name else key)
            elif not isinstance(value, str):
                continue
            elif key.endswith("database_url"):
                schema = table.get(key.removesuffix("url") + "schema")
                target = _database(value, schema, base)
                if target is not None:
                    primary = key == "database_url" and section in own
                    found.append(Reference(party, DATABASE, target, where, primary))
            elif key.endswith("master_key"):
                target = _master_key(value, base)
                found.append(Reference(party, MASTER_KEY, target, where, section in own))
            elif (section == "tls" and key == "key") or value.endswith(".key"):
                file = Path(value)
                target = str((file if file.is_absolute() else base / file).resolve())
                found.append(Reference(party, PRIVATE_KEY, target, where, section == "tls"))

    walk(load_toml(path), "")
    if party == "registry":
        found += _registry_defaults(path, found)
    return found


def _registry_defaults(path: Path, found: list[Reference]) -> list[Reference]:
    """The binding party's store when registry.toml leaves it to the default."""
    from registry_binding.config import RegistryBindingConfig
    from renkei.config_util import ConfigError

    try:
        config = RegistryBindingConfig.load(path)
    except ConfigError:
        return []
    target = _database(config.database_url, config.database_schema, path.parent)
    if target is None or any(r.target == target for r in found):
        return []
    return [Reference("registry", DATABASE, target, f"{path.name}: [binding] (default)", True)]


def _owners_by_place(root: Path, configs: Mapping[str, Path]) -> dict[str, str]:
    """Private key files and SQLite files the deployment's layout gives each party,
    and each CA's key to that CA (no party's config may name one)."""
    from ops.deploy import ID_ISSUER, NUMBERING, REGISTRY, WITNESS, Layout
    from ops.pki import CA_FOLDERS

    pki = Layout(root).pki
    keys = {"hub": pki.hub().key, "id-issuer": pki.service(ID_ISSUER).key}
    keys["numbering"] = pki.service(NUMBERING).key
    keys["registry"] = pki.service(REGISTRY).key
    keys["witness"] = pki.service(WITNESS).key
    for party in configs:
        if party.startswith("agency:"):
            keys[party] = pki.agency(party.removeprefix("agency:")).key
    for kind in CA_FOLDERS:
        keys[f"ca:{kind}"] = pki.ca(kind).key
    return {str(key.resolve()): party for party, key in keys.items()}


def _folder_owner(target: str, configs: Mapping[str, Path]) -> str | None:
    """The party whose config folder holds a SQLite file or key file, if any."""
    raw = target.removeprefix("sqlite:").removeprefix("file:")
    if not raw.startswith("/"):
        return None
    file = Path(raw)
    for party, config in configs.items():
        if file.is_relative_to(config.parent.resolve()):
            return party
    return None


def audit_configs(root: Path) -> ConfigAudit:
    """What every party's config opens, and which of it belongs to another party."""
    configs = party_configs(root)
    refs = [r for party, path in configs.items() for r in references(party, path)]
    by_place = _owners_by_place(root, configs)
    result = ConfigAudit(configs, refs)
    for ref in refs:
        owner = by_place.get(ref.target) or _folder_owner(ref.target, configs)
        owners = (
            {owner}
            if owner is not None
            else {r.party for r in refs if r.target == ref.target and r.primary}
        )
        others = sorted({r.party for r in refs if r.target == ref.target} - {ref.party})
        if owners and ref.party not in owners:
            result.breaches.setdefault(ref.party, []).append(
                f"{ref.where} opens {' and '.join(sorted(owners))}'s {ref.kind} ({ref.target})"
            )
        elif len(owners) > 1:  # two configs each call it their own: which is wrong is not known
            also = " and ".join(sorted(owners - {ref.party}))
            result.breaches.setdefault(ref.party, []).append(
                f"{ref.where}: the same {ref.kind} is {also}'s own too ({ref.target})"
            )
        elif others and not owners:  # shared, and nobody's own by layout or section
            result.breaches.setdefault(ref.party, []).append(
                f"{ref.where}: the same {ref.kind} as {', '.join(others)} ({ref.target})"
            )
    for ref in refs:
        login = _login(ref.target) if ref.kind == DATABASE else None
        if login is None:
            continue
        sharing = sorted(
            {
                r.party
                for r in refs
                if r.kind == DATABASE and r.party != ref.party and _login(r.target) == login
            }
        )
        note = (
            f"shares a PostgreSQL login with {', '.join(sharing)}: schemas keep the stores "
            "apart by name only (give each party its own role)"
        )
        if sharing and note not in result.notes.get(ref.party, []):
            result.notes.setdefault(ref.party, []).append(note)
    return result


def render_configs(audit: ConfigAudit) -> Table:
    """A row per party: what its config opens and the verdict."""
    table = Table(title="what each party's configuration opens (stores, master keys, private keys)")
    table.add_column("party", no_wrap=True)
    table.add_column("config", overflow="fold")
    table.add_column("opens", overflow="fold")
    table.add_column("verdict", overflow="fold")
    for party, path in audit.configs.items():
        opened = [f"{r.kind}: {r.target}" for r in audit.references if r.party == party]
        bad = audit.breaches.get(party, [])
        verdict = ("BREACH: " + "; ".join(bad)) if bad else "ok"
        if party in audit.notes:
            verdict += " (note: " + "; ".join(audit.notes[party]) + ")"
        table.add_row(party, str(path), "\n".join(opened), verdict)
    return table
