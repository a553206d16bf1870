"""Anomalies in the agencies' rows (and the hub's entries): what the oversight body looks into.

Rules (thresholds in oversight.config.Thresholds, docs/oversight.md):

- ``HEAVY_STAFF`` / ``HEAVY_TERMINAL``: a staff member or terminal with far more
  requests than its peers (the others of the same agency and side):
  more than max(ratio x median, median + k x MAD), and at least a minimum;
- ``OFF_HOURS``: requests outside working hours, Japan time;
- ``REPEATED_LOOKUPS``: one staff member asking about the same person (the
  agency's pseudonym) again and again within a window;
- ``DENIAL_BURST``: many denied requests from one requester within a window
  (a staff member from the agency's rows; an agency whose share was not read
  from the hub's entries);
- ``OUTSIDE_JURISDICTION``: a municipality (a 6-digit local government code)
  answering about persons whose municipality, as it knows it, is another.

Requests, not rows, are counted: the rows of one bulk request (one per person,
the same time, staff and terminal) are one request, so a lawful batch job is
not a burst of lookups. Each anomaly names the agency, the staff member or
terminal, the serials and why, in Japanese and in English.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from oversight.config import Thresholds, WorkingHours
from oversight.model import PROVIDER, REQUESTER, AgencyRow, HubEntry
from renkei import localgov
from renkei.tlog import entry as tlog_entry

JST = timezone(timedelta(hours=9), "JST")

HEAVY_STAFF = "HEAVY_STAFF"
HEAVY_TERMINAL = "HEAVY_TERMINAL"
OFF_HOURS = "OFF_HOURS"
REPEATED_LOOKUPS = "REPEATED_LOOKUPS"
DENIAL_BURST = "DENIAL_BURST"
OUTSIDE_JURISDICTION = "OUTSIDE_JURISDICTION"
KINDS = (
    HEAVY_STAFF,
    HEAVY_TERMINAL,
    OFF_HOURS,
    REPEATED_LOOKUPS,
    DENIAL_BURST,
    OUTSIDE_JURISDICTION,
)
DENIED_OUTCOMES = frozenset({"PERMISSION_DENIED", "DENIED"})


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    agency: str
    staff: str
    terminal: str
    serials: tuple[int, ...]
    count: int  # requests (or rows, for OUTSIDE_JURISDICTION) it is about
    ja: str
    en: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "agency": self.agency,
            "staff": self.staff,
            "terminal": self.terminal,
            "serials": list(self.serials),
            "count": self.count,
            "ja": self.ja,
            "en": self.en,
        }


@dataclass(slots=True)
class _Request:
    """The rows of one request at one side: one per person."""

    agency: str
    role: str
    staff: str
    terminal: str
    at: datetime
    serials: list[int] = field(default_factory=list)
    persons: set[str] = field(default_factory=set)
    denied: bool = True  # every row denied


def requests(shares: Mapping[str, Iterable[AgencyRow]]) -> list[_Request]:
    """The agencies' rows grouped into requests, in time order.

    A request is the rows one side wrote at once (one per person). A later row of the
    same side under a serial already seen (an answer-later fetch, asked again until the
    answer is ready) belongs to that serial's request: it is no new lookup.
    """
    found: dict[tuple[str, str, str, str, datetime, str, str, str], _Request] = {}
    by_serial: dict[tuple[str, str, int], _Request] = {}
    for agency, rows in shares.items():
        for r in rows:
            seen = by_serial.get((agency, r.role, r.serial)) if r.serial else None
            if seen is not None:
                if r.outcome not in DENIED_OUTCOMES:
                    seen.denied = False
                continue
            key = (
                agency,
                r.role,
                r.staff_id,
                r.terminal_id,
                r.logged_at,
                r.counterpart_agency_id,
                r.info_kind,
                r.legal_basis_item,
            )
            req = found.get(key)
            if req is None:
                req = found[key] = _Request(agency, r.role, r.staff_id, r.terminal_id, r.logged_at)
            if r.serial:
                req.serials.append(r.serial)
                by_serial[(agency, r.role, r.serial)] = req
            if r.person:
                req.persons.add(r.person)
            if r.outcome not in DENIED_OUTCOMES:
                req.denied = False
    return sorted(found.values(), key=lambda q: q.at)


def find_anomalies(
    shares: Mapping[str, Iterable[AgencyRow]],
    hub: Iterable[HubEntry] = (),
    *,
    thresholds: Thresholds,
    hours: WorkingHours,
) -> list[Anomaly]:
    """Every anomaly in the rows (and, for agencies not read, the hub's denials)."""
    rows = {agency: list(r) for agency, r in shares.items()}
    reqs = requests(rows)
    found: list[Anomaly] = []
    found += _heavy(reqs, thresholds)
    if thresholds.off_hours:
        found += _off_hours(reqs, hours)
    found += _repeated(reqs, thresholds)
    found += _denial_bursts(reqs, thresholds)
    found += _hub_denial_bursts(hub, set(rows), thresholds)
    found += _outside_jurisdiction(rows)
    return found


def _heavy(reqs: Sequence[_Request], t: Thresholds) -> list[Anomaly]:
    out: list[Anomaly] = []
    for kind, attr in ((HEAVY_STAFF, "staff"), (HEAVY_TERMINAL, "terminal")):
        groups: dict[tuple[str, str], dict[str, list[_Request]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for q in reqs:
            who = getattr(q, attr)
            if who:
                groups[(q.agency, q.role)][who].append(q)
        for (agency, role), members in sorted(groups.items()):
            if len(members) - 1 < t.volume_min_peers:
                continue
            counts = {who: len(qs) for who, qs in members.items()}
            for who, count in sorted(counts.items()):
                if count < t.volume_min_count:
                    continue
                peers = [c for w, c in counts.items() if w != who]
                median = statistics.median(peers)
                mad = statistics.median(abs(c - median) for c in peers)
                bound = max(t.volume_ratio * median, median + t.volume_mad_k * mad)
                if count <= bound:
                    continue
                side_ja = "照会" if role == REQUESTER else "提供"
                label_ja = "職員" if attr == "staff" else "端末"
                label_en = "staff member" if attr == "staff" else "terminal"
                counter = "人" if attr == "staff" else "台"
                out.append(
                    Anomaly(
                        kind,
                        agency,
                        who if attr == "staff" else "",
                        who if attr == "terminal" else "",
                        tuple(s for q in members[who] for s in q.serials),
                        count,
                        f"{label_ja} {who} の{side_ja}件数 {count} 件は、同じ機関の他の"
                        f" {len(peers)} {counter}の中央値 {median:g} 件を大きく上回ります"
                        f"（基準 {bound:g} 件）。",
                        f"{label_en} {who} made {count} {role} requests, far above the median"
                        f" {median:g} of its {len(peers)} peers (bound {bound:g}).",
                    )
                )
    return out


def working(at: datetime, hours: WorkingHours) -> bool:
    local = at.astimezone(JST)
    if local.isoweekday() not in hours.weekdays or local.date() in hours.holidays:
        return False
    return hours.start <= local.time() < hours.end


def _off_hours(reqs: Sequence[_Request], hours: WorkingHours) -> list[Anomaly]:
    groups: dict[tuple[str, str, str], list[_Request]] = defaultdict(list)
    for q in reqs:
        if q.role == REQUESTER and not working(q.at, hours):
            groups[(q.agency, q.staff, q.at.astimezone(JST).date().isoformat())].append(q)
    out = []
    span = f"{hours.start:%H:%M}-{hours.end:%H:%M}"
    for (agency, staff, day), qs in sorted(groups.items()):
        times = ", ".join(sorted({q.at.astimezone(JST).strftime("%H:%M") for q in qs})[:5])
        terminals = sorted({q.terminal for q in qs})
        out.append(
            Anomaly(
                OFF_HOURS,
                agency,
                staff,
                ", ".join(terminals),
                tuple(s for q in qs for s in q.serials),
                len(qs),
                f"職員 {staff} は {day}（日本時間 {times}）に勤務時間（{span}、平日）外の"
                f"照会を {len(qs)} 件行いました。",
                f"staff member {staff} made {len(qs)} requests on {day} at {times} JST,"
                f" outside working hours ({span} on working days).",
            )
        )
    return out


def _windows(qs: Sequence[_Request], count: int, window: timedelta) -> list[list[_Request]]:
    """Runs of ``qs`` (in time order) where ``count`` fall within ``window``, merged."""
    runs: list[list[_Request]] = []
    lo = 0
    current: list[_Request] = []
    last_hi = -1
    for hi in range(len(qs)):
        while qs[hi].at - qs[lo].at > window:
            lo += 1
        if hi - lo + 1 >= count:
            if current and lo <= last_hi:
                current.extend(qs[last_hi + 1 : hi + 1])
            else:
                current = list(qs[lo : hi + 1])
                runs.append(current)
            last_hi = hi
    return runs


def _repeated(reqs: Sequence[_Request], t: Thresholds) -> list[Anomaly]:
    groups: dict[tuple[str, str, str], list[_Request]] = defaultdict(list)
    for q in reqs:
        if q.role == REQUESTER and q.staff:
            for person in q.persons:
                groups[(q.agency, q.staff, person)].append(q)
    out = []
    hours = t.repeat_window.total_seconds() / 3600
    for (agency, staff, person), qs in sorted(groups.items()):
        for run in _windows(qs, t.repeat_count, t.repeat_window):
            out.append(
                Anomaly(
                    REPEATED_LOOKUPS,
                    agency,
                    staff,
                    ", ".join(sorted({q.terminal for q in run})),
                    tuple(s for q in run for s in q.serials),
                    len(run),
                    f"職員 {staff} は同じ人（仮名 {person[:12]}…）について {hours:g} 時間以内に"
                    f" {len(run)} 回照会しました。",
                    f"staff member {staff} looked up the same person (pseudonym"
                    f" {person[:12]}...) {len(run)} times within {hours:g} hours.",
                )
            )
    return out


def _denial_bursts(reqs: Sequence[_Request], t: Thresholds) -> list[Anomaly]:
    groups: dict[tuple[str, str], list[_Request]] = defaultdict(list)
    for q in reqs:
        if q.role == REQUESTER and q.denied:
            groups[(q.agency, q.staff)].append(q)
    out = []
    minutes = t.denial_window.total_seconds() / 60
    for (agency, staff), qs in sorted(groups.items()):
        for run in _windows(qs, t.denial_count, t.denial_window):
            out.append(
                Anomaly(
                    DENIAL_BURST,
                    agency,
                    staff,
                    ", ".join(sorted({q.terminal for q in run})),
                    tuple(s for q in run for s in q.serials),
                    len(run),
                    f"職員 {staff} の照会が {minutes:g} 分以内に {len(run)} 回拒否されました。",
                    f"{len(run)} requests of staff member {staff} were denied within"
                    f" {minutes:g} minutes.",
                )
            )
    return out


def _hub_denial_bursts(hub: Iterable[HubEntry], read: set[str], t: Thresholds) -> list[Anomaly]:
    """Denial bursts of requesters whose own share was not read, from the hub's entries."""
    groups: dict[str, dict[datetime, _Request]] = defaultdict(dict)
    for e in hub:
        if e.kind == tlog_entry.EXCHANGE and e.outcome == "DENIED" and e.requester not in read:
            by_time = groups[e.requester]
            q = by_time.get(e.logged_at)
            if q is None:
                q = by_time[e.logged_at] = _Request(e.requester, REQUESTER, "", "", e.logged_at)
            q.serials.append(e.serial)
    out = []
    minutes = t.denial_window.total_seconds() / 60
    for agency, by_time in sorted(groups.items()):
        qs = sorted(by_time.values(), key=lambda q: q.at)
        for run in _windows(qs, t.denial_count, t.denial_window):
            out.append(
                Anomaly(
                    DENIAL_BURST,
                    agency,
                    "",
                    "",
                    tuple(s for q in run for s in q.serials),
                    len(run),
                    f"機関 {agency} の照会が {minutes:g} 分以内に {len(run)} 回拒否されました"
                    "（情報提供ネットワークシステムの記録による）。",
                    f"{len(run)} requests of agency {agency} were denied within {minutes:g}"
                    " minutes (from the hub's log).",
                )
            )
    return out


def _outside_jurisdiction(shares: Mapping[str, Sequence[AgencyRow]]) -> list[Anomaly]:
    out = []
    for agency, rows in sorted(shares.items()):
        if not (len(agency) == 6 and agency.isdigit() and localgov.is_valid_code(agency)):
            continue
        foreign = [
            r
            for r in rows
            if r.role == PROVIDER and r.person_municipality and r.person_municipality != agency
        ]
        if not foreign:
            continue
        places = sorted({r.person_municipality for r in foreign})
        shown = ", ".join(places[:5])
        out.append(
            Anomaly(
                OUTSIDE_JURISDICTION,
                agency,
                ", ".join(sorted({r.staff_id for r in foreign if r.staff_id})),
                ", ".join(sorted({r.terminal_id for r in foreign if r.terminal_id})),
                tuple(r.serial for r in foreign),
                len(foreign),
                f"地方公共団体 {agency} が、住所地が他の団体（{shown}）の人について"
                f" {len(foreign)} 件の情報を提供しました。",
                f"municipality {agency} answered {len(foreign)} times about persons whose"
                f" municipality is another ({shown}).",
            )
        )
    return out
