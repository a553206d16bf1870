"""Made-up traffic for the oversight body's tests: the hub's entries and every agency's rows.

``clean()`` makes what a small deployment does in a few working days: four
agencies, a handful of staff each at their own terminal, office hours in
Japan, single and bulk queries, a few lawful refusals; it reconciles clean and
raises no anomaly. The ``seed_*`` methods add one anomaly each, and tests
break the shares by hand (dataclasses.replace on a row) for reconcile.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

from oversight.model import PROVIDER, REQUESTER, AgencyRow, HubEntry
from renkei.tlog import entry as tlog_entry

JST = timezone(timedelta(hours=9), "JST")
YOKOHAMA = "141003"  # a municipality: its id is its local government code
CHIYODA = "131016"
NENKIN = "nenkin"
MHLW = "mhlw"
AGENCIES = (YOKOHAMA, CHIYODA, NENKIN, MHLW)
FIRST_DAY = date(2027, 1, 4)  # a Monday
KINDS = {  # provider -> (info kind, legal basis item)
    YOKOHAMA: ("resident_tax", "別表第二 27"),
    CHIYODA: ("resident_tax", "別表第二 27"),
    NENKIN: ("pension_status", "別表第二 48"),
    MHLW: ("insurance_status", "別表第二 3"),
}


def pseudonym(agency: str, person: int) -> str:
    return hashlib.sha256(f"{agency}:{person}".encode()).hexdigest()


@dataclass
class Traffic:
    seed: int = 7
    hub: list[HubEntry] = field(default_factory=list)
    shares: dict[str, list[AgencyRow]] = field(default_factory=lambda: {a: [] for a in AGENCIES})
    serial: int = 0
    row_id: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- building blocks ------------------------------------------------------------------

    def exchange(
        self,
        requester: str,
        provider: str,
        staff: str,
        terminal: str,
        at: datetime,
        persons: list[int],
        *,
        outcome: str = "OK",
        reason: str = "",
        municipality: str | None = None,
    ) -> list[int]:
        """One request of ``persons``: the hub's entries and both sides' rows; its serials.

        ``outcome`` DENIED: refused by the hub's policy, never relayed (no provider row).
        """
        kind, item = KINDS[provider]
        serials = []
        for person in persons:
            self.serial += 1
            serial = self.serial
            serials.append(serial)
            hub_at = at + timedelta(milliseconds=40)
            denied = outcome == "DENIED"
            self._entry(
                tlog_entry.EXCHANGE,
                serial,
                hub_at,
                requester,
                provider,
                kind,
                item,
                outcome="DENIED" if denied else "PENDING",
                reason=reason if denied else "",
                person=pseudonym("hub", person),
            )
            content = b"" if outcome != "OK" else f"{serial}:{person}:record".encode()
            digest = hashlib.sha256(content).digest()
            self._row(
                requester,
                serial,
                REQUESTER,
                at,
                provider,
                kind,
                item,
                pseudonym(requester, person),
                staff,
                terminal,
                digest,
                "PERMISSION_DENIED" if denied else outcome,
                reason,
                "",
            )
            if denied:
                continue
            self._row(
                provider,
                serial,
                PROVIDER,
                at + timedelta(milliseconds=90),
                requester,
                kind,
                item,
                pseudonym(provider, person),
                "auto",
                "server",
                digest,
                outcome,
                reason,
                provider if municipality is None and provider.isdigit() else municipality or "",
            )
            self._entry(
                tlog_entry.OUTCOME,
                serial,
                at + timedelta(milliseconds=150),
                requester,
                provider,
                outcome=outcome,
                reason=reason,
            )
        return serials

    def _entry(
        self,
        kind: str,
        serial: int,
        at: datetime,
        requester: str,
        provider: str,
        info_kind: str = "",
        item: str = "",
        *,
        outcome: str,
        reason: str,
        person: str = "",
    ) -> None:
        self.hub.append(
            HubEntry(
                len(self.hub),
                kind,
                serial,
                at.astimezone(UTC),
                requester,
                provider,
                item,
                info_kind,
                "v1" if kind == tlog_entry.EXCHANGE else "",
                person,
                outcome,
                reason,
            )
        )

    def _row(
        self,
        agency: str,
        serial: int,
        role: str,
        at: datetime,
        counterpart: str,
        kind: str,
        item: str,
        person: str,
        staff: str,
        terminal: str,
        digest: bytes,
        outcome: str,
        reason: str,
        municipality: str,
    ) -> None:
        self.row_id += 1
        self.shares.setdefault(agency, []).append(
            AgencyRow(
                self.row_id,
                serial,
                role,
                at.astimezone(UTC),
                agency,
                counterpart,
                kind,
                item,
                person,
                staff,
                terminal,
                digest,
                "審査のため" if role == REQUESTER else "",
                outcome,
                reason,
                municipality,
            )
        )

    def office_time(self, day: date) -> datetime:
        """A time in office hours (09:00-17:30 JST) of ``day``."""
        minutes = self.rng.randrange(9 * 60, 17 * 60 + 30)
        seconds = self.rng.randrange(60)
        return datetime(day.year, day.month, day.day, tzinfo=JST) + timedelta(
            minutes=minutes, seconds=seconds, microseconds=self.rng.randrange(1_000_000)
        )

    # -- clean traffic --------------------------------------------------------------------

    def clean(self, days: int = 5, staff: int = 4, per_day: int = 8) -> Traffic:
        """``days`` working days from FIRST_DAY of ordinary traffic."""
        day, done = FIRST_DAY, 0
        while done < days:
            if day.isoweekday() <= 5:
                self._day(day, staff, per_day)
                done += 1
            day += timedelta(days=1)
        return self

    def _day(self, day: date, staff: int, per_day: int) -> None:
        planned = []
        for requester in AGENCIES:
            for s in range(1, staff + 1):
                for _ in range(per_day + self.rng.randrange(-2, 3)):
                    planned.append((self.office_time(day), requester, s))
        for at, requester, s in sorted(planned):
            provider = self.rng.choice([a for a in AGENCIES if a != requester])
            n = 3 if self.rng.random() < 0.1 else 1
            persons = [self.rng.randrange(1000) for _ in range(n)]
            roll = self.rng.random()
            outcome, reason = "OK", ""
            if roll < 0.02:
                outcome, reason = "DENIED", "EXCHANGE_NOT_PERMITTED"
            elif roll < 0.05:
                outcome, reason = "NOT_FOUND", "PERSON_NOT_FOUND"
            self.exchange(
                requester,
                provider,
                f"staff-{s}",
                f"term-{s}",
                at,
                persons,
                outcome=outcome,
                reason=reason,
            )

    # -- seeded anomalies -----------------------------------------------------------------

    def seed_heavy_staff(self, agency: str = NENKIN, staff: str = "staff-9") -> list[int]:
        """One staff member at its own terminal doing ten times a peer's day, every day."""
        serials = []
        for d in range(5):
            day = FIRST_DAY + timedelta(days=d)
            for _ in range(80):
                serials += self.exchange(
                    agency,
                    YOKOHAMA,
                    staff,
                    "term-9",
                    self.office_time(day),
                    [self.rng.randrange(1000)],
                )
        return serials

    def seed_off_hours(self, agency: str = CHIYODA, staff: str = "staff-2") -> list[int]:
        """Two requests late at night and one on a Saturday."""
        night = datetime(2027, 1, 5, 23, 10, tzinfo=JST)
        saturday = datetime(2027, 1, 9, 11, 0, tzinfo=JST)
        serials = []
        for at in (night, night + timedelta(minutes=7), saturday):
            serials += self.exchange(
                agency, NENKIN, staff, "term-2", at, [self.rng.randrange(1000)]
            )
        return serials

    def seed_repeated_lookups(
        self, agency: str = YOKOHAMA, staff: str = "staff-3", person: int = 4242, times: int = 6
    ) -> list[int]:
        """The same person, asked about ``times`` times in an afternoon."""
        at = datetime(2027, 1, 6, 13, 0, tzinfo=JST)
        serials = []
        for i in range(times):
            serials += self.exchange(
                agency, MHLW, staff, "term-3", at + timedelta(minutes=20 * i), [person]
            )
        return serials

    def seed_denial_burst(
        self, agency: str = MHLW, staff: str = "staff-1", times: int = 6
    ) -> list[int]:
        """Refused ``times`` times in five minutes."""
        at = datetime(2027, 1, 7, 10, 0, tzinfo=JST)
        serials = []
        for i in range(times):
            serials += self.exchange(
                agency,
                NENKIN,
                staff,
                "term-1",
                at + timedelta(seconds=50 * i),
                [self.rng.randrange(1000)],
                outcome="DENIED",
                reason="EXCHANGE_NOT_PERMITTED",
            )
        return serials

    def seed_outside_jurisdiction(
        self, provider: str = YOKOHAMA, elsewhere: str = CHIYODA
    ) -> list[int]:
        """A municipality answering about a person who lives in another one."""
        at = datetime(2027, 1, 8, 14, 0, tzinfo=JST)
        return self.exchange(
            NENKIN, provider, "staff-4", "term-4", at, [17], municipality=elsewhere
        )
