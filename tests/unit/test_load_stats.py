"""renkei load's statistics against known inputs: percentiles, merging, correction, tallies."""

from __future__ import annotations

import json
import random

import grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.load.stats import (
    DENIED,
    OK,
    Expectation,
    Outcome,
    Results,
    encode,
    new_histogram,
    outcome_of,
    summary_ms,
)
from renkei.errors import InvalidArgument, PermissionDenied

PERCENTILES = (0, 10, 25, 50, 75, 90, 99, 99.9, 100)


def values_of(histogram: object) -> list[tuple[int, int]]:
    """(value, count) of every recorded bucket, lowest first."""
    return [
        (i.value_iterated_to, i.count_at_value_iterated_to)
        for i in histogram.get_recorded_iterator()
    ]  # type: ignore[attr-defined]


def test_percentiles_of_one_to_a_thousand_microseconds() -> None:
    histogram = new_histogram()
    for us in range(1, 1001):  # exact: below 2048 every value has its own bucket
        histogram.record_value(us)

    assert summary_ms(histogram) == {
        "p50_ms": 0.5,
        "p90_ms": 0.9,
        "p99_ms": 0.99,
        "p99.9_ms": 0.999,
        "max_ms": 1.0,
    }


def test_an_empty_histogram_reports_zeros() -> None:
    assert set(summary_ms(new_histogram()).values()) == {0.0}


def _record_all(results: Results, latencies: list[float], start: float) -> None:
    for n, latency in enumerate(latencies):
        klass = ("lawful", "unlawful", "malformed")[n % 3]
        outcome = Outcome(OK) if klass == "lawful" else Outcome("PERMISSION_DENIED", "R")
        sent = start + n * 0.01
        results.record(klass, sent, sent, sent + latency, outcome, expected=n % 7 != 0)


@settings(max_examples=20, deadline=None)
@given(
    latencies=st.lists(st.floats(min_value=1e-6, max_value=4.0), min_size=1, max_size=100),
    workers=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_merging_workers_through_the_wire_equals_one_histogram_of_everything(
    latencies: list[float], workers: int, seed: int
) -> None:
    start = 1000.0
    whole = Results(start)
    _record_all(whole, latencies, start)
    # The same calls, dealt at random to workers, each shipped as a worker ships it.
    rng = random.Random(seed)
    parts = [Results(start) for _ in range(workers)]
    for n, latency in enumerate(latencies):
        klass = ("lawful", "unlawful", "malformed")[n % 3]
        outcome = Outcome(OK) if klass == "lawful" else Outcome("PERMISSION_DENIED", "R")
        sent = start + n * 0.01
        rng.choice(parts).record(klass, sent, sent, sent + latency, outcome, expected=n % 7 != 0)
    merged = Results(start)
    for part in parts:
        merged.merge(Results.from_wire(json.loads(json.dumps(part.to_wire()))))

    # Equal encodings: equal counts in every bucket (iterating them in Python is slow).
    for klass, histogram in whole.histograms.items():
        assert encode(merged.histograms[klass]) == encode(histogram)
    assert encode(merged.overall()) == encode(whole.overall())
    for p in PERCENTILES:
        assert merged.overall().get_value_at_percentile(
            p
        ) == whole.overall().get_value_at_percentile(p)
    assert merged.overall().get_max_value() == whole.overall().get_max_value()
    assert merged.tally == whole.tally
    assert merged.last_done == whole.last_done
    assert sorted(merged.seconds) == sorted(whole.seconds)
    for index, second in whole.seconds.items():
        assert merged.seconds[index].completed == second.completed
        assert merged.seconds[index].unexpected == second.unexpected
        assert encode(merged.seconds[index].histogram) == encode(second.histogram)


def test_closed_loop_correction_back_fills_a_stall_as_hdrhistogram_does() -> None:
    # Expected interval 100 us; four answers in 10 us and one that stalled for 950 us
    # (below 2048 us every value has its own bucket, so the values are exact).
    results = Results(0.0, expected_interval_us=100)
    for n, latency in enumerate([0.00001, 0.00001, 0.00095, 0.00001, 0.00001]):
        results.record("lawful", n * 0.1, n * 0.1, n * 0.1 + latency, Outcome(OK), True)

    # By hand: 950 us stands for the requests that would have gone out every 100 us
    # during it, waiting 950, 850, ..., 150, 50 us; the 10 us answers are recorded once.
    assert values_of(results.histograms["lawful"]) == [
        (10, 4),
        *((us, 1) for us in (50, 150, 250, 350, 450, 550, 650, 750, 850, 950)),
    ]
    # The requests themselves are still five; the series is not corrected.
    assert results.completed == 5
    assert sum(s.completed for s in results.seconds.values()) == 5


def test_without_an_expected_interval_nothing_is_back_filled() -> None:
    results = Results(0.0)
    results.record("lawful", 0.0, 0.0, 0.00095, Outcome(OK), True)
    assert values_of(results.histograms["lawful"]) == [(950, 1)]


class FakeRpcError(grpc.RpcError):
    def __init__(self, status: grpc.Status | None, code: grpc.StatusCode, details: str) -> None:
        self._status, self._code, self._details = status, code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, bytes | str], ...]:
        return tuple(self._status.trailing_metadata) if self._status else ()


def _refusal(err: PermissionDenied | InvalidArgument) -> FakeRpcError:
    status = err.to_status()
    return FakeRpcError(status, status.code, status.details)


def test_outcome_reads_code_and_error_info_reason_from_the_status_details_trailer() -> None:
    refused = _refusal(PermissionDenied("PROVIDER_NOT_IN_ITEM", "the item does not name it"))
    assert outcome_of(refused) == Outcome("PERMISSION_DENIED", "PROVIDER_NOT_IN_ITEM")


def test_outcome_of_a_bare_status_has_a_code_and_no_reason() -> None:
    bare = FakeRpcError(None, grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert outcome_of(bare) == Outcome("UNAVAILABLE", "")


def test_outcome_keeps_the_reason_when_a_proxy_rewrote_the_message() -> None:
    status = InvalidArgument("INVALID_FIELD", "item: is required").to_status()
    rewritten = FakeRpcError(status, status.code, "something else")
    assert outcome_of(rewritten) == Outcome("INVALID_ARGUMENT", "INVALID_FIELD")


def test_outcome_of_garbage_details_has_no_reason() -> None:
    err = FakeRpcError(None, grpc.StatusCode.INTERNAL, "x")
    err.trailing_metadata = lambda: (("grpc-status-details-bin", b"\xff\xff not a status"),)  # type: ignore[method-assign]
    assert outcome_of(err) == Outcome("INTERNAL", "")


def test_expectations() -> None:
    lawful = Expectation()
    by_reason = Expectation(None, "NO_ITEM_FOR_REQUESTER")
    by_code = Expectation("PERMISSION_DENIED", None)
    both = Expectation("PERMISSION_DENIED", "NO_ITEM_FOR_REQUESTER")
    denied = Outcome(DENIED, "NO_ITEM_FOR_REQUESTER")
    refused = Outcome("PERMISSION_DENIED", "NO_ITEM_FOR_REQUESTER")

    assert lawful.matches(Outcome(OK))
    assert not lawful.matches(refused)
    assert by_reason.matches(denied)
    assert by_reason.matches(refused)
    assert not by_reason.matches(Outcome(OK))
    assert by_code.matches(Outcome("PERMISSION_DENIED", "OTHER"))
    assert not by_code.matches(denied)
    assert both.matches(refused)
    assert not both.matches(denied)
    assert not both.matches(Outcome("PERMISSION_DENIED", "OTHER"))


def test_errors_are_tallied_by_code_and_reason_expected_apart_from_unexpected() -> None:
    results = Results(0.0)
    calls = [
        ("lawful", Outcome(OK), True),
        ("lawful", Outcome(OK), True),
        ("unlawful", Outcome("PERMISSION_DENIED", "NO_ITEM_FOR_REQUESTER"), True),
        ("unlawful", Outcome("PERMISSION_DENIED", "NO_ITEM_FOR_REQUESTER"), True),
        ("unlawful", Outcome("PERMISSION_DENIED", "NO_ITEM_FOR_REQUESTER"), True),
        ("malformed", Outcome("INVALID_ARGUMENT", "INVALID_FIELD"), True),
        ("lawful", Outcome("UNAVAILABLE", ""), False),
        ("lawful", Outcome("UNAVAILABLE", ""), False),
        ("lawful", Outcome("PERMISSION_DENIED", "NO_ITEM_FOR_REQUESTER"), False),
    ]
    for n, (klass, outcome, expected) in enumerate(calls):
        results.record(klass, n, n, n + 0.001, outcome, expected)

    assert results.completed == 9
    assert results.expected_errors == 4
    assert results.unexpected == 3
    assert results.errors_by_status() == [
        {
            "code": "PERMISSION_DENIED",
            "reason": "NO_ITEM_FOR_REQUESTER",
            "expected": True,
            "count": 3,
        },
        {"code": "UNAVAILABLE", "reason": "", "expected": False, "count": 2},
        {"code": "INVALID_ARGUMENT", "reason": "INVALID_FIELD", "expected": True, "count": 1},
        {
            "code": "PERMISSION_DENIED",
            "reason": "NO_ITEM_FOR_REQUESTER",
            "expected": False,
            "count": 1,
        },
    ]
