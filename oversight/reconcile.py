"""Reconcile the shares of the log by serial (R24): the hub's (1)-(6) against each agency's rows.

Every exchange the hub logged leaves a row at its requester; the provider has
one too when the hub asked it, that is when the hub's exchange entry began
PENDING (a request the hub refused at once, DENIED by its policy or a link
code it could not read, was never relayed: the requester alone logged it,
comm_server/requester and hub_server/linkage.py). A bulk exchange is one hub
serial per person, so one row per person on each side. Answer-later leaves
more than one row per side under a serial (the first half, then the fetch):
times are compared on a side's first row, outcomes on its last, content on
the last row that carries any.

Findings, each naming the serial and the agency concerned:

- ``MISSING_REQUESTER_ROW`` / ``MISSING_PROVIDER_ROW``: a hub exchange whose
  row is not in that agency's share (a provider row is not expected when the
  hub's outcome is a transport failure, where the provider may never have
  seen the call; one present is still compared);
- ``UNEXPECTED_PROVIDER_ROW``: a provider row for an exchange the hub never relayed;
- ``ROW_WITHOUT_HUB_ENTRY``: an agency row naming a serial the hub never logged;
- ``FIELD_MISMATCH``: info kind, legal basis item, requester, provider or outcome differ
  (``ours`` the hub's value, ``theirs`` the agency's);
- ``TIME_SKEW``: the row's time is more than ``max_skew`` from the hub's;
- ``CONTENT_MISMATCH``: (11) the content as the requester and the provider logged it
  hash differently (``ours`` the requester's SHA-256, ``theirs`` the provider's).

Agencies whose share was not read are not expected to have rows. Plain dicts
keyed by serial, one pass over each input: a million exchanges in seconds.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from oversight.model import PROVIDER, REQUESTER, AgencyRow, HubEntry
from renkei.tlog.entry import EXCHANGE, PURGE

MISSING_REQUESTER_ROW = "MISSING_REQUESTER_ROW"
MISSING_PROVIDER_ROW = "MISSING_PROVIDER_ROW"
UNEXPECTED_PROVIDER_ROW = "UNEXPECTED_PROVIDER_ROW"
ROW_WITHOUT_HUB_ENTRY = "ROW_WITHOUT_HUB_ENTRY"
FIELD_MISMATCH = "FIELD_MISMATCH"
TIME_SKEW = "TIME_SKEW"
CONTENT_MISMATCH = "CONTENT_MISMATCH"
# Set by the reader, not here: an entry the hub served that its checkpoint does not commit to.
HUB_ENTRY_UNVERIFIED = "HUB_ENTRY_UNVERIFIED"
KINDS = (
    MISSING_REQUESTER_ROW,
    MISSING_PROVIDER_ROW,
    UNEXPECTED_PROVIDER_ROW,
    ROW_WITHOUT_HUB_ENTRY,
    FIELD_MISMATCH,
    TIME_SKEW,
    CONTENT_MISMATCH,
    HUB_ENTRY_UNVERIFIED,
)

PENDING = "PENDING"  # hub_server.log_store: an exchange entry relayed to its provider
# The hub logs a policy refusal DENIED; the requester logs the status it was answered.
_AGENCY_OUTCOME = {"DENIED": "PERMISSION_DENIED"}
# Outcomes of a call that failed on the way: who logged what is a matter of timing.
TRANSPORT_FAILURES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "INTERNAL", "INTERRUPTED", "UNKNOWN"}
)
EMPTY_SHA256 = hashlib.sha256(b"").digest()


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    serial: int
    agency: str
    field: str = ""
    ours: str = ""
    theirs: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "serial": self.serial,
            "agency": self.agency,
            "field": self.field,
            "ours": self.ours,
            "theirs": self.theirs,
        }


@dataclass
class ReconcileReport:
    exchanges: int = 0  # hub exchanges reconciled (in the window)
    hub_entries: int = 0  # every hub entry read
    rows: int = 0  # agency rows read
    local_refusals: int = 0  # rows without a serial: refused before the hub
    purges: int = 0
    agencies: tuple[str, ...] = ()
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.kind for f in self.findings))

    def to_json(self) -> dict[str, Any]:
        return {
            "exchanges": self.exchanges,
            "hub_entries": self.hub_entries,
            "rows": self.rows,
            "local_refusals": self.local_refusals,
            "purges": self.purges,
            "agencies": list(self.agencies),
            "counts": self.counts(),
            "findings": [f.to_json() for f in self.findings],
        }


class _Side:
    """One side's rows under one serial: first by time, last by id, last with content."""

    __slots__ = ("agency", "content", "first", "last")

    def __init__(self, row: AgencyRow) -> None:
        self.agency = row.agency_id  # the share it was read from (reconcile sees to it)
        self.first = row
        self.last = row
        self.content = row if _carries(row) else None

    def add(self, row: AgencyRow) -> None:
        if row.logged_at < self.first.logged_at:
            self.first = row
        if row.id >= self.last.id:
            self.last = row
            if _carries(row):
                self.content = row
        elif self.content is None and _carries(row):
            self.content = row


def _carries(row: AgencyRow) -> bool:
    digest = row.content_sha256
    return bool(digest) and digest != EMPTY_SHA256


def reconcile(
    hub: Iterable[HubEntry],
    shares: Mapping[str, Iterable[AgencyRow]],
    *,
    max_skew: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ReconcileReport:
    """Every disagreement between the hub's entries and the agencies' shares.

    ``shares`` maps each agency whose share was read to its rows. ``start`` and
    ``end`` bound the hub exchanges reconciled (by the hub's time); rows about
    exchanges outside them are left alone, so read the shares with a margin.

    The common case (one row per side, everything agreeing) is a handful of
    comparisons per exchange and no object made; anything else goes the long way.
    """
    report = ReconcileReport(agencies=tuple(sorted(shares)))
    findings = report.findings
    exchanges: dict[int, HubEntry] = {}
    outcomes: dict[int, str] = {}  # the latest outcome or fetch entry's, by serial
    n = purges = 0
    for e in hub:
        n += 1
        kind = e.kind
        if kind == EXCHANGE:
            exchanges[e.serial] = e
        elif kind == PURGE:
            purges += 1
        else:
            outcomes[e.serial] = e.outcome
    report.hub_entries, report.purges = n, purges

    requesters: dict[int, AgencyRow] = {}
    providers: dict[int, AgencyRow] = {}
    more: dict[tuple[int, str], _Side] = {}  # a side with more than one row (answer-later)
    strays: list[_Side] = []  # a second agency claiming the same side of a serial
    rows = local = 0
    for agency, share in shares.items():
        for row in share:
            rows += 1
            serial = row.serial
            if not serial:
                local += 1
                continue
            if row.agency_id != agency:  # a server answering rows of another agency
                findings.append(
                    Finding(FIELD_MISMATCH, serial, agency, "agency_id", agency, row.agency_id)
                )
                row = replace(row, agency_id=agency)
            role = row.role
            first = (requesters if role == REQUESTER else providers).setdefault(serial, row)
            if first is row:
                continue
            if first.agency_id == agency:
                side = more.get((serial, role))
                if side is None:
                    side = more[(serial, role)] = _Side(first)
                side.add(row)
            else:
                strays.append(_Side(row))
    report.rows, report.local_refusals = rows, local

    read = shares.keys()
    skew_lo, skew_hi = -max_skew, max_skew
    counted = 0
    for serial, e in exchanges.items():
        at = e.logged_at
        if (start is not None and at < start) or (end is not None and at >= end):
            continue
        counted += 1
        outcome = outcomes.get(serial, e.outcome)
        ours = _AGENCY_OUTCOME.get(outcome, outcome)
        uncertain = outcome in TRANSPORT_FAILURES
        req = requesters.pop(serial, None)
        prov = providers.pop(serial, None)
        req_side = more.get((serial, REQUESTER)) if more and req is not None else None
        prov_side = more.get((serial, PROVIDER)) if more and prov is not None else None
        if req is None:
            if e.requester in read:
                findings.append(Finding(MISSING_REQUESTER_ROW, serial, e.requester))
        elif (
            req_side is not None
            or req.agency_id != e.requester
            or req.counterpart_agency_id != e.provider
            or req.info_kind != e.info_kind
            or req.legal_basis_item != e.legal_basis_item
            or not skew_lo <= req.logged_at - at <= skew_hi
            or (req.outcome != ours and not uncertain and req.outcome not in TRANSPORT_FAILURES)
        ):
            _compare(e, outcome, req_side or _Side(req), REQUESTER, max_skew, findings)
        relayed = e.outcome == PENDING
        if prov is None:
            if relayed and e.provider in read and not uncertain:
                findings.append(Finding(MISSING_PROVIDER_ROW, serial, e.provider))
        elif not relayed:
            last = prov_side.last if prov_side is not None else prov
            findings.append(
                Finding(
                    UNEXPECTED_PROVIDER_ROW,
                    serial,
                    prov.agency_id,
                    "outcome",
                    e.outcome,
                    last.outcome,
                )
            )
        elif (
            prov_side is not None
            or prov.agency_id != e.provider
            or prov.counterpart_agency_id != e.requester
            or prov.info_kind != e.info_kind
            or prov.legal_basis_item != e.legal_basis_item
            or not skew_lo <= prov.logged_at - at <= skew_hi
            or (prov.outcome != ours and not uncertain and prov.outcome not in TRANSPORT_FAILURES)
        ):
            _compare(e, outcome, prov_side or _Side(prov), PROVIDER, max_skew, findings)
        if req is None or prov is None:
            continue
        req_content: AgencyRow | None = req
        prov_content: AgencyRow | None = prov
        if req_side is None and prov_side is None:
            if req.content_sha256 == prov.content_sha256:
                continue  # the common case: one row each, the same content
        else:
            req_content = req_side.content if req_side is not None else req
            prov_content = prov_side.content if prov_side is not None else prov
        if (
            req_content is None
            or prov_content is None
            or not _carries(req_content)
            or not _carries(prov_content)
            or req_content.content_sha256 == prov_content.content_sha256
        ):
            continue
        findings.append(
            Finding(
                CONTENT_MISMATCH,
                serial,
                prov.agency_id,
                "content",
                req_content.content_sha256.hex(),
                prov_content.content_sha256.hex(),
            )
        )
    report.exchanges = counted

    for sides in (requesters, providers):
        for serial, row in sides.items():
            if serial not in exchanges:
                findings.append(_without_entry(_Side(row)))
    for side in strays:
        x = exchanges.get(side.first.serial)
        if x is None:
            findings.append(_without_entry(side))
        else:
            outcome = outcomes.get(x.serial, x.outcome)
            _compare(x, outcome, side, side.first.role, max_skew, findings)
    findings.sort(key=lambda f: (f.serial, f.agency, f.kind, f.field))
    return report


def _without_entry(side: _Side) -> Finding:
    row = side.first
    return Finding(ROW_WITHOUT_HUB_ENTRY, row.serial, side.agency, "role", "", row.role)


def _compare(
    e: HubEntry,
    outcome: str,
    side: _Side,
    role: str,
    max_skew: timedelta,
    out: list[Finding],
) -> None:
    serial, agency, first, last = e.serial, side.agency, side.first, side.last
    if role == REQUESTER:
        own, counterpart = "requester", "provider"
        hub_own, hub_counterpart = e.requester, e.provider
    else:
        own, counterpart = "provider", "requester"
        hub_own, hub_counterpart = e.provider, e.requester
    if agency != hub_own:
        out.append(Finding(FIELD_MISMATCH, serial, agency, own, hub_own, agency))
    if last.counterpart_agency_id != hub_counterpart:
        out.append(
            Finding(
                FIELD_MISMATCH,
                serial,
                agency,
                counterpart,
                hub_counterpart,
                last.counterpart_agency_id,
            )
        )
    if last.info_kind != e.info_kind:
        out.append(
            Finding(FIELD_MISMATCH, serial, agency, "info_kind", e.info_kind, last.info_kind)
        )
    if last.legal_basis_item != e.legal_basis_item:
        out.append(
            Finding(
                FIELD_MISMATCH,
                serial,
                agency,
                "legal_basis_item",
                e.legal_basis_item,
                last.legal_basis_item,
            )
        )
    skew = first.logged_at - e.logged_at
    if skew > max_skew or -skew > max_skew:
        out.append(
            Finding(
                TIME_SKEW,
                serial,
                agency,
                "logged_at",
                e.logged_at.isoformat(),
                first.logged_at.isoformat(),
            )
        )
    theirs = last.outcome
    if theirs not in TRANSPORT_FAILURES and outcome not in TRANSPORT_FAILURES:
        ours = _AGENCY_OUTCOME.get(outcome, outcome)
        if ours != theirs:
            out.append(Finding(FIELD_MISMATCH, serial, agency, "outcome", outcome, theirs))
