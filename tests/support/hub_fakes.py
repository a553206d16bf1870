"""In-memory fakes of the hub's ports (hub_server/ports.py), and a hub built on them.

No database, no socket, no sleep: each fake keeps what it was given in plain
lists and dicts, and ``journal`` records the order of log writes and provider
calls, so a test can say "the PENDING rows were durable before the provider
was asked". The directory, policy and link-code codec are the real, in-memory
ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from hub_server.directory import Agency, Directory
from hub_server.exchange import CollectCall, ItemError, ProvideCall, Provided
from hub_server.id_issuer_client import IdKeyState
from hub_server.linkage import Hub
from hub_server.log_store import PENDING, LogEntry, LogRow
from hub_server.policy import Item, Provision, TablePolicy
from hub_server.ports import HubLog
from renkei import codes
from renkei.tlog.entry import Receipt

CITY = "city"
PENSION = "nenkin"
TAX = "tax-office"
PENSION_INFO = "年金給付関係情報"
ITEM = "二十七"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        """The hub's timer: seconds on this clock, moving only when it does."""
        return (self.now - NOW).total_seconds()


@dataclass
class Journal:
    """What happened, in order: ("begin", serials), ("finish", serials), ("provide", serials)."""

    events: list[tuple[str, list[int]]] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


class FakeHubLog:
    """The hub's log as a dict of rows; a write is 'durable' once its call returns.

    It keeps ports.HubLog's promises as the real one does: ``fail_next``
    fails the next write (nothing written; a failed outcome is kept in
    ``unfinished`` until ``recover``); ``stall`` ("begin" or "finish") makes that
    write hang until its caller is cancelled, after which the begun rows are
    closed CANCELLED/NOT_RELAYED and outcomes written all the same; ``slow``
    seconds pass on the clock during each write. ``timeouts`` has what each
    write was given.
    """

    def __init__(self, journal: Journal, clock: FakeClock) -> None:
        self._journal = journal
        self._clock = clock
        self._rows: dict[int, LogRow] = {}
        self._fetches: dict[int, list[tuple[datetime, str, str]]] = {}
        self.aliases: list[tuple[str, str]] = []
        self.fail_next: Exception | None = None
        self.stall: str | None = None
        self.stalled = asyncio.Event()
        self.slow = 0.0
        self.timeouts: list[tuple[str, float]] = []
        self.unfinished: list[tuple[int, str, str]] = []
        self.unrecorded_fetches: list[tuple[int, str, str]] = []

    async def begin_many(
        self, rows: list[tuple[LogEntry, str, str]], timeout: float = 2.0
    ) -> list[Receipt]:
        self.timeouts.append(("begin", timeout))
        self._clock.advance(self.slow)
        self._fail()
        serials = []
        for entry, outcome, reason in rows:
            serial = len(self._rows) + 1
            done = None if outcome == PENDING else self._clock()
            self._rows[serial] = LogRow(serial, entry, outcome, reason, done)
            serials.append(serial)
        self._journal.events.append(("begin", serials))
        if self.stall == "begin":
            try:
                await self._hang()
            except asyncio.CancelledError:
                self._apply([(s, "CANCELLED", "NOT_RELAYED") for s in serials])
                raise
        return [Receipt(s) for s in serials]  # the fake keeps no tree: receipts without entries

    async def finish_many(
        self, outcomes: list[tuple[int, str, str]], timeout: float = 2.0
    ) -> list[Receipt]:
        self.timeouts.append(("finish", timeout))
        self._clock.advance(self.slow)
        if self.fail_next is not None:
            self.unfinished += outcomes
        self._fail()
        if self.stall == "finish":
            try:
                await self._hang()
            finally:
                self._apply(outcomes)
        self._apply(outcomes)
        self._journal.events.append(("finish", [s for s, _, _ in outcomes]))
        return [Receipt(s) for s, _, _ in outcomes]

    def recover(self) -> None:
        """The database is back: the kept outcomes and fetches are written."""
        self._apply(self.unfinished)
        self.unfinished = []
        for serial, outcome, reason in self.unrecorded_fetches:
            self._fetches.setdefault(serial, []).append((self._clock(), outcome, reason))
        self.unrecorded_fetches = []

    def _apply(self, outcomes: list[tuple[int, str, str]]) -> None:
        for serial, outcome, reason in outcomes:
            row = self._rows[serial]
            if row.outcome == PENDING:  # a completed row is never rewritten
                self._rows[serial] = LogRow(serial, row.entry, outcome, reason, self._clock())

    async def _hang(self) -> None:
        self.stall = None
        self.stalled.set()
        await asyncio.get_running_loop().create_future()  # until the caller is cancelled

    async def add_aliases(self, pairs: list[tuple[str, str]]) -> None:
        self.aliases += pairs

    async def row(self, serial: int, timeout: float = 2.0) -> LogRow | None:
        self.timeouts.append(("row", timeout))
        self._clock.advance(self.slow)
        self._fail()
        return self._rows.get(serial)

    async def fetches(self, serial: int, timeout: float = 2.0) -> list[tuple[datetime, str, str]]:
        self.timeouts.append(("fetches", timeout))
        self._clock.advance(self.slow)
        self._fail()
        return list(self._fetches.get(serial, []))

    async def record_fetch(
        self, serial: int, outcome: str, reason: str, timeout: float = 2.0, *, keep: bool = False
    ) -> Receipt | None:
        self.timeouts.append(("fetch", timeout))
        self._clock.advance(self.slow)
        try:
            self._fail()
        except Exception:
            if not keep:
                raise
            self.unrecorded_fetches.append((serial, outcome, reason))
            return None
        self._fetches.setdefault(serial, []).append((self._clock(), outcome, reason))
        return Receipt(serial)

    def rows(self) -> list[LogRow]:
        return [self._rows[s] for s in sorted(self._rows)]

    def outcomes(self) -> list[tuple[str, str]]:
        return [(r.outcome, r.reason) for r in self.rows()]

    def _fail(self) -> None:
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err


# What the fake provider does with one call: its answer, or an exception to raise.
Script = Callable[[ProvideCall], Provided | BaseException]


def answer_all(call: ProvideCall) -> Provided:
    return Provided({i.serial: None for i in call.items}, b"sealed-answers")


@dataclass
class Asked:
    call: ProvideCall
    timeout: float
    # The outcome of each of the call's rows at the moment the provider was asked.
    rows_then: list[str]


class FakeGateway:
    """A provider that follows ``script``; records every call and the rows as they stood."""

    def __init__(self, journal: Journal, rows: Callable[[], list[LogRow]]) -> None:
        self._journal = journal
        self._rows = rows
        self.script: Script = answer_all
        self.asked: list[Asked] = []
        self.collect_script: Callable[[CollectCall], bytes | BaseException] = lambda c: b"late"
        self.collected: list[tuple[CollectCall, float]] = []

    async def provide(self, provider: Agency, call: ProvideCall, timeout: float) -> Provided:
        serials = [i.serial for i in call.items]
        self._journal.events.append(("provide", serials))
        by_serial = {r.serial: r.outcome for r in self._rows()}
        self.asked.append(Asked(call, timeout, [by_serial[s] for s in serials]))
        got = self.script(call)
        if isinstance(got, BaseException):
            raise got
        return got

    async def collect(
        self, provider: Agency, call: CollectCall, timeout: float
    ) -> tuple[bytes, bytes]:
        """(the scripted answer, a stand-in for the provider's signature, relayed as is)."""
        self.collected.append((call, timeout))
        got = self.collect_script(call)
        if isinstance(got, BaseException):
            raise got
        return got, b"signature of " + got


class FakeIdIssuer:
    """Re-issues ID codes under the issuer's current version; ``complete`` promotes it."""

    def __init__(self, state: IdKeyState, issuer: codes.IdCodeIssuer) -> None:
        self.state = state
        self.issuer = issuer
        self.completed: list[int] = []

    async def status(self) -> IdKeyState:
        return self.state

    async def reissue(self, id_codes: list[bytes]) -> tuple[list[tuple[bytes, str]], int]:
        return [(self.issuer.reissue(c), "") for c in id_codes], self.issuer.newest

    async def complete(self, version: int) -> None:
        self.completed.append(version)
        self.state = IdKeyState(version, version)


class FakeKeyAdmin:
    def __init__(self, keyring: dict[str, codes.AgencyKeys], clock: FakeClock) -> None:
        self._keyring = keyring
        self._clock = clock
        self.completions: dict[int, set[str]] = {}

    async def make_current(self, agency_id: str, version: int) -> datetime | None:
        keys = self._keyring[agency_id]
        if keys.current == version:
            return None
        until = self._clock() + timedelta(days=30)
        keys.accept_until[keys.current] = until
        keys.current = version
        return until

    async def codec(self) -> codes.LinkCodec:
        return codes.LinkCodec(self._keyring, self._clock)

    async def record_completion(self, agency_id: str, id_key_version: int) -> set[str]:
        done = self.completions.setdefault(id_key_version, set())
        done.add(agency_id)
        return set(done)


def _agency(agency_id: str, classes: str) -> Agency:
    key = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    return Agency(agency_id, agency_id, frozenset({classes}), f"{agency_id}.invalid:443", key)


POLICY = TablePolicy(
    [
        Item(
            ITEM,
            "年金の支給に関する事務",
            frozenset({"municipality"}),
            (Provision(frozenset({"pension_body"}), frozenset({PENSION_INFO})),),
        )
    ]
)


@dataclass
class HubRig:
    """A Hub on fakes, with what a test needs to drive and inspect it."""

    hub: Hub
    log: FakeHubLog
    gateway: FakeGateway
    journal: Journal
    clock: FakeClock
    id_issuer: FakeIdIssuer
    id_codes: codes.IdCodeIssuer
    keyring: dict[str, codes.AgencyKeys]

    @property
    def city(self) -> Agency:
        return self.hub.directory.get(CITY)

    def person(self, n: int) -> bytes:
        return self.id_codes.issue(f"{n:011d}")

    def link_code(self, n: int, agency: str = CITY) -> str:
        return self.hub.codec.encode(agency, self.person(n))

    def person_key(self, n: int) -> str:
        return self.hub.person_key(self.person(n))


def hub_rig(
    real_log: tuple[HubLog, Callable[[], list[LogRow]]] | None = None, **hub_options: float
) -> HubRig:
    """A hub on the fakes, or on ``real_log`` (a log and what reads its rows)."""
    clock = FakeClock()
    journal = Journal()
    log = FakeHubLog(journal, clock)
    gateway = FakeGateway(journal, log.rows if real_log is None else real_log[1])
    directory = Directory(
        [_agency(CITY, "municipality"), _agency(PENSION, "pension_body"), _agency(TAX, "tax")]
    )
    keyring = {a.agency_id: codes.AgencyKeys(1, {1: codes.new_key()}) for a in directory}
    # Version 2 of the ID key exists for rotations; codes are issued under 1.
    id_codes = codes.IdCodeIssuer({1: codes.new_key(), 2: codes.new_key()}, 1)
    id_issuer = FakeIdIssuer(IdKeyState(), id_codes)
    hub = Hub(
        directory=directory,
        policy=POLICY,
        codec=codes.LinkCodec(keyring, clock),
        log=log if real_log is None else real_log[0],
        gateway=gateway,
        key_admin=FakeKeyAdmin(keyring, clock),
        id_issuer=id_issuer,
        log_index_key=os.urandom(32),
        sealing_key=x25519.X25519PrivateKey.generate(),
        id_issuer_key=ed25519.Ed25519PrivateKey.generate().public_key(),
        clock=clock,
        timer=clock.monotonic,
        **hub_options,
    )
    return HubRig(hub, log, gateway, journal, clock, id_issuer, id_codes, keyring)


def item_error(code: str, reason: str) -> ItemError:
    return ItemError(code, reason, f"{reason.lower()} (scripted)")
