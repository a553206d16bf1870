"""anomalies: none on clean office-hours traffic; each seeded anomaly found, and only it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from support.oversight_traffic import CHIYODA, MHLW, NENKIN, YOKOHAMA, Traffic

from oversight import anomalies as an
from oversight.anomalies import Anomaly, find_anomalies, working
from oversight.config import Thresholds, WorkingHours

RULES = Thresholds()
HOURS = WorkingHours()


def _find(t: Traffic, rules: Thresholds = RULES) -> list[Anomaly]:
    return find_anomalies(t.shares, t.hub, thresholds=rules, hours=HOURS)


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_clean_traffic_raises_none(seed: int) -> None:
    assert _find(Traffic(seed=seed).clean()) == []


def test_more_staff_and_days_still_clean() -> None:
    assert _find(Traffic(seed=3).clean(days=10, staff=8, per_day=12)) == []


@pytest.mark.parametrize(
    ("seed", "kinds", "agency", "who"),
    [
        (Traffic.seed_heavy_staff, {an.HEAVY_STAFF, an.HEAVY_TERMINAL}, NENKIN, "staff-9"),
        (Traffic.seed_off_hours, {an.OFF_HOURS}, CHIYODA, "staff-2"),
        (Traffic.seed_repeated_lookups, {an.REPEATED_LOOKUPS}, YOKOHAMA, "staff-3"),
        (Traffic.seed_denial_burst, {an.DENIAL_BURST}, MHLW, "staff-1"),
        (Traffic.seed_outside_jurisdiction, {an.OUTSIDE_JURISDICTION}, YOKOHAMA, "auto"),
    ],
)
def test_each_seeded_anomaly_is_found(
    seed: Callable[[Traffic], list[int]], kinds: set[str], agency: str, who: str
) -> None:
    t = Traffic().clean()
    serials = seed(t)
    found = _find(t)
    assert {a.kind for a in found} == kinds
    for a in found:
        assert a.agency == agency
        assert who in (a.staff, a.terminal) or a.kind == an.HEAVY_TERMINAL
        assert set(a.serials) <= set(serials)
        assert a.ja
        assert a.en
    assert set(serials) == {s for a in found for s in a.serials}


def test_all_seeded_together() -> None:
    t = Traffic().clean()
    for seed in (
        t.seed_heavy_staff,
        t.seed_off_hours,
        t.seed_repeated_lookups,
        t.seed_denial_burst,
        t.seed_outside_jurisdiction,
    ):
        seed()
    assert {a.kind for a in _find(t)} == set(an.KINDS)


def test_a_denied_bulk_request_is_one_request() -> None:
    t = Traffic().clean()
    at = datetime(2027, 1, 7, 10, 0, tzinfo=an.JST)
    t.exchange(
        MHLW,
        NENKIN,
        "staff-1",
        "term-1",
        at,
        list(range(50)),
        outcome="DENIED",
        reason="EXCHANGE_NOT_PERMITTED",
    )
    assert _find(t) == []


def test_repeats_spread_beyond_the_window_are_fine() -> None:
    t = Traffic().clean()
    for d in range(5):  # once a day, five days
        at = datetime(2027, 1, 4 + d, 10, 0, tzinfo=an.JST)
        t.exchange(YOKOHAMA, MHLW, "staff-3", "term-3", at, [4242])
    assert _find(t) == []


def test_an_answer_fetched_again_and_again_is_one_lookup() -> None:
    # An answer-later exchange: its first row, then a row per fetch under the same serial
    # until the answer is ready (a demo run's insurer made five): one lookup, not five.
    at = datetime(2027, 1, 5, 10, 0, tzinfo=an.JST)
    t = Traffic().clean()
    t.exchange(YOKOHAMA, MHLW, "staff-3", "term-3", at, [4242])
    first = next(r for r in reversed(t.shares[YOKOHAMA]) if r.role == "requester")
    t.shares[YOKOHAMA] += [
        replace(first, id=first.id + 1000 + n, logged_at=first.logged_at + timedelta(seconds=n))
        for n in range(1, 5)
    ]
    assert _find(t) == []
    # The same five rows as five exchanges of their own are five lookups.
    five = Traffic().clean()
    for n in range(5):
        five.exchange(YOKOHAMA, MHLW, "staff-3", "term-3", at + timedelta(seconds=n), [4242])
    assert {a.kind for a in _find(five)} == {an.REPEATED_LOOKUPS}


def test_thresholds_are_configurable() -> None:
    t = Traffic().clean()
    t.seed_repeated_lookups(times=3)
    assert _find(t) == []
    assert {a.kind for a in _find(t, Thresholds(repeat_count=3))} == {an.REPEATED_LOOKUPS}


def test_hub_denials_of_an_agency_not_read() -> None:
    t = Traffic().clean()
    t.seed_denial_burst()
    del t.shares[MHLW]
    (found,) = _find(t)
    assert (found.kind, found.agency, found.staff) == (an.DENIAL_BURST, MHLW, "")


def test_working_hours() -> None:
    jst = an.JST
    assert working(datetime(2027, 1, 4, 8, 30, tzinfo=jst), HOURS)
    assert not working(datetime(2027, 1, 4, 8, 29, tzinfo=jst), HOURS)
    assert not working(datetime(2027, 1, 4, 18, 0, tzinfo=jst), HOURS)
    assert not working(datetime(2027, 1, 9, 12, 0, tzinfo=jst), HOURS)  # Saturday
    # 00:30 UTC is 09:30 in Japan.
    assert working(datetime(2027, 1, 4, 0, 30, tzinfo=UTC), HOURS)
    holiday = WorkingHours(holidays=frozenset({date(2027, 1, 4)}))
    assert not working(datetime(2027, 1, 4, 10, 0, tzinfo=jst), holiday)
    late = WorkingHours(start=time(7, 0), end=time(22, 0))
    assert working(datetime(2027, 1, 4, 21, 0, tzinfo=jst) - timedelta(minutes=1), late)
