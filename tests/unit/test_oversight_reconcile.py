"""reconcile: clean traffic has no finding; each seeded inconsistency is found, and only it."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest
from support.oversight_traffic import CHIYODA, MHLW, NENKIN, YOKOHAMA, Traffic

from oversight import reconcile as rc
from oversight.model import PROVIDER, REQUESTER, AgencyRow, HubEntry
from oversight.reconcile import Finding, reconcile
from renkei.tlog import entry as tlog_entry

SKEW = timedelta(minutes=5)


@pytest.fixture
def traffic() -> Traffic:
    return Traffic().clean(days=3)


def _run(t: Traffic) -> list[Finding]:
    return reconcile(t.hub, t.shares, max_skew=SKEW).findings


def _ok_exchange(t: Traffic) -> tuple[int, int, int]:
    """(serial, index of its requester row, of its provider row) of an OK exchange."""
    t.exchange(NENKIN, YOKOHAMA, "staff-1", "term-1", t.office_time(t.hub[0].logged_at.date()), [5])
    serial = t.serial
    req = next(i for i, r in enumerate(t.shares[NENKIN]) if r.serial == serial)
    prov = next(i for i, r in enumerate(t.shares[YOKOHAMA]) if r.serial == serial)
    return serial, req, prov


def test_clean_traffic_has_no_findings(traffic: Traffic) -> None:
    report = reconcile(traffic.hub, traffic.shares, max_skew=SKEW)
    assert report.clean, report.findings[:5]
    assert report.exchanges == traffic.serial
    assert report.rows == sum(len(rows) for rows in traffic.shares.values())


def test_denied_exchange_expects_no_provider_row(traffic: Traffic) -> None:
    traffic.exchange(
        MHLW,
        NENKIN,
        "staff-1",
        "term-1",
        traffic.office_time(traffic.hub[0].logged_at.date()),
        [1, 2],
        outcome="DENIED",
        reason="EXCHANGE_NOT_PERMITTED",
    )
    assert _run(traffic) == []


def test_deleted_requester_row(traffic: Traffic) -> None:
    serial, req, _ = _ok_exchange(traffic)
    del traffic.shares[NENKIN][req]
    assert _run(traffic) == [Finding(rc.MISSING_REQUESTER_ROW, serial, NENKIN)]


def test_deleted_provider_row(traffic: Traffic) -> None:
    serial, _, prov = _ok_exchange(traffic)
    del traffic.shares[YOKOHAMA][prov]
    assert _run(traffic) == [Finding(rc.MISSING_PROVIDER_ROW, serial, YOKOHAMA)]


def test_unread_agency_is_not_expected(traffic: Traffic) -> None:
    del traffic.shares[YOKOHAMA]
    assert _run(traffic) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("info_kind", "tax_status"),
        ("legal_basis_item", "別表第二 99"),
        ("counterpart_agency_id", CHIYODA),
        ("outcome", "NOT_FOUND"),
    ],
)
def test_edited_field(traffic: Traffic, field: str, value: str) -> None:
    serial, req, _ = _ok_exchange(traffic)
    rows = traffic.shares[NENKIN]
    ours = getattr(rows[req], field)
    rows[req] = replace(rows[req], **{field: value})
    name = {"counterpart_agency_id": "provider"}.get(field, field)
    assert _run(traffic) == [Finding(rc.FIELD_MISMATCH, serial, NENKIN, name, ours, value)]


def test_time_skew(traffic: Traffic) -> None:
    serial, _, prov = _ok_exchange(traffic)
    rows = traffic.shares[YOKOHAMA]
    rows[prov] = replace(rows[prov], logged_at=rows[prov].logged_at + timedelta(minutes=6))
    (found,) = _run(traffic)
    assert (found.kind, found.serial, found.agency, found.field) == (
        rc.TIME_SKEW,
        serial,
        YOKOHAMA,
        "logged_at",
    )


def test_skew_within_bound_is_fine(traffic: Traffic) -> None:
    _, _, prov = _ok_exchange(traffic)
    rows = traffic.shares[YOKOHAMA]
    rows[prov] = replace(rows[prov], logged_at=rows[prov].logged_at + timedelta(minutes=4))
    assert _run(traffic) == []


def test_content_hash_mismatch(traffic: Traffic) -> None:
    serial, req, prov = _ok_exchange(traffic)
    rows = traffic.shares[YOKOHAMA]
    other = hashlib.sha256(b"something else").digest()
    rows[prov] = replace(rows[prov], content_sha256=other)
    assert _run(traffic) == [
        Finding(
            rc.CONTENT_MISMATCH,
            serial,
            YOKOHAMA,
            "content",
            traffic.shares[NENKIN][req].content_sha256.hex(),
            other.hex(),
        )
    ]


def test_extra_row_without_hub_entry(traffic: Traffic) -> None:
    row = traffic.shares[CHIYODA][0]
    traffic.shares[CHIYODA].append(replace(row, id=10**6, serial=10**6))
    assert _run(traffic) == [
        Finding(rc.ROW_WITHOUT_HUB_ENTRY, 10**6, CHIYODA, "role", "", row.role)
    ]


def test_provider_row_for_a_denied_exchange(traffic: Traffic) -> None:
    traffic.exchange(
        MHLW,
        NENKIN,
        "staff-1",
        "term-1",
        traffic.office_time(traffic.hub[0].logged_at.date()),
        [1],
        outcome="DENIED",
        reason="EXCHANGE_NOT_PERMITTED",
    )
    req = traffic.shares[MHLW][-1]
    traffic.shares[NENKIN].append(
        replace(
            req, id=10**6, role=PROVIDER, agency_id=NENKIN, counterpart_agency_id=MHLW, outcome="OK"
        )
    )
    assert [f.kind for f in _run(traffic)] == [rc.UNEXPECTED_PROVIDER_ROW]


def test_a_deleted_hub_entry_leaves_both_rows_without_one(traffic: Traffic) -> None:
    serial, _, _ = _ok_exchange(traffic)
    traffic.hub = [e for e in traffic.hub if e.serial != serial]
    assert {(f.kind, f.agency) for f in _run(traffic)} == {
        (rc.ROW_WITHOUT_HUB_ENTRY, NENKIN),
        (rc.ROW_WITHOUT_HUB_ENTRY, YOKOHAMA),
    }


def test_answer_later_rows_and_fetch_entries() -> None:
    """First half ANSWER_PENDING, then the fetch: compared on the side's last row."""
    t = Traffic()
    at = t.office_time(Traffic().clean(days=1).hub[0].logged_at.date())
    (serial,) = t.exchange(NENKIN, YOKOHAMA, "staff-1", "term-1", at, [3])
    req_rows = t.shares[NENKIN]
    first = replace(req_rows[-1], outcome="ANSWER_PENDING", content_sha256=b"")
    t.shares[NENKIN] = [
        *req_rows[:-1],
        first,
        replace(req_rows[-1], id=t.row_id + 1, logged_at=at + timedelta(minutes=30)),
    ]
    out = next(e for e in t.hub if e.serial == serial and e.kind == tlog_entry.OUTCOME)
    t.hub = [replace(e, outcome="ANSWER_PENDING") if e is out else e for e in t.hub]
    t.hub.append(replace(out, leaf_index=len(t.hub), kind=tlog_entry.FETCH, outcome="OK"))
    assert _run(t) == []


def test_rows_outside_the_window_are_left_alone(traffic: Traffic) -> None:
    first_day = traffic.hub[0].logged_at
    start = first_day + timedelta(days=1)
    _serial, req, _ = _ok_exchange(traffic)  # on the first day: outside the window
    del traffic.shares[NENKIN][req]
    report = reconcile(traffic.hub, traffic.shares, max_skew=SKEW, start=start)
    assert report.clean
    assert 0 < report.exchanges < traffic.serial


def test_local_refusals_are_counted_not_found(traffic: Traffic) -> None:
    row = traffic.shares[NENKIN][0]
    traffic.shares[NENKIN].append(replace(row, id=10**6, serial=0, outcome="PERMISSION_DENIED"))
    report = reconcile(traffic.hub, traffic.shares, max_skew=SKEW)
    assert report.clean
    assert report.local_refusals == 1


def test_report_json_counts(traffic: Traffic) -> None:
    serial, req, _ = _ok_exchange(traffic)
    del traffic.shares[NENKIN][req]
    doc = reconcile(traffic.hub, traffic.shares, max_skew=SKEW).to_json()
    assert doc["counts"] == {rc.MISSING_REQUESTER_ROW: 1}
    assert doc["findings"][0]["serial"] == serial


def test_model_round_trips() -> None:
    t = Traffic().clean(days=1)
    row = t.shares[YOKOHAMA][0]
    assert AgencyRow.from_json(row.to_json()) == row
    assert isinstance(t.hub[0], HubEntry)
    assert row.role in (REQUESTER, PROVIDER)
