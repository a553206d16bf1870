"""What one run measured: latency histograms, outcome tallies and a per-second series.

Latencies are whole microseconds in HdrHistogram (1 us to 1 h, 3 significant
digits). Each worker process records into its own ``Results``; the parent
merges them through HdrHistogram's compressed encoding, which loses nothing,
so merged percentiles equal those of one histogram fed every value.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from hdrh.histogram import HdrHistogram

from renkei.errors import error_info

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
CLASSES = ("lawful", "unlawful", "malformed")
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
OK = "OK"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Not a gRPC status: an Approve answer whose decision is DENIED (a denial is an answer there).
DENIED = "DENIED"


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def to_us(seconds: float) -> int:
    """Seconds to whole microseconds, clamped into the histogram's range."""
    return min(HIGHEST_US, max(LOWEST_US, round(seconds * 1_000_000)))


def encode(histogram: HdrHistogram) -> str:
    return bytes(histogram.encode()).decode("ascii")


def decode(text: str) -> HdrHistogram:
    histogram: HdrHistogram = HdrHistogram.decode(text.encode("ascii"))
    return histogram


def add(into: HdrHistogram, other: HdrHistogram) -> None:
    """``into += other``; an empty ``other`` is skipped, as adding one resets the minimum to 0."""
    if other.get_total_count():
        into.add(other)


def summary_ms(histogram: HdrHistogram) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max in milliseconds (zeros for an empty histogram)."""
    out = {f"p{p:g}_ms": histogram.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    out["max_ms"] = histogram.get_max_value() / 1000 if histogram.get_total_count() else 0.0
    return out


# -- outcomes ------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one call ended: ``OK``, ``DENIED`` or a gRPC status name, and the ErrorInfo reason."""

    code: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code == OK


def outcome_of(err: grpc.RpcError) -> Outcome:
    """The status code and, when the status details carry one, the ErrorInfo reason.

    The details travel in the ``grpc-status-details-bin`` trailer as a
    google.rpc.Status; a status without it (a transport failure, a deadline
    hit on the way) has no reason. The trailer is read as it is, even when its
    code or message differ from the call's (grpc_status.from_call refuses those).
    """
    code: grpc.StatusCode = getattr(err, "code", lambda: grpc.StatusCode.UNKNOWN)()
    trailers = getattr(err, "trailing_metadata", lambda: None)() or ()
    reason = ""
    for key, value in trailers:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                info = error_info(status_pb2.Status.FromString(value))
            except DecodeError:
                info = None
            reason = info.reason if info is not None else ""
            break
    return Outcome(code.name, reason)


@dataclass(frozen=True)
class Expectation:
    """What a request is meant to get; ``None`` matches anything."""

    code: str | None = OK
    reason: str | None = None

    def matches(self, outcome: Outcome) -> bool:
        if self.code is not None and outcome.code != self.code:
            return False
        if self.reason is not None and outcome.reason != self.reason:
            return False
        return self.code is not None or not outcome.ok  # a reason alone never expects OK

    def label(self) -> str:
        return "/".join(p for p in (self.code or "*", self.reason or "") if p)


# -- results -------------------------------------------------------------------


@dataclass
class Second:
    """One second of the measured window (by completion time)."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    completed: int = 0
    unexpected: int = 0


@dataclass
class Results:
    """One worker's measurements, or several merged."""

    measure_start: float
    # Closed loop only: back-fill as HdrHistogram's record_corrected_value does.
    expected_interval_us: int = 0
    histograms: dict[str, HdrHistogram] = field(
        default_factory=lambda: {c: new_histogram() for c in CLASSES}
    )
    # Send to answer, leaving out the wait behind schedule (open loop); for comparison only.
    service: HdrHistogram = field(default_factory=new_histogram)
    # (class, code, reason, expected) -> count
    tally: Counter[tuple[str, str, str, bool]] = field(default_factory=Counter)
    seconds: dict[int, Second] = field(default_factory=dict)
    warmup: int = 0
    last_done: float = 0.0

    def record(
        self,
        klass: str,
        intended: float,
        sent: float,
        done: float,
        outcome: Outcome,
        expected: bool,
    ) -> None:
        """A measured call: latency from its intended send time (the schedule's, open loop)."""
        latency = to_us(done - intended)
        if self.expected_interval_us > 0:
            self.histograms[klass].record_corrected_value(latency, self.expected_interval_us)
        else:
            self.histograms[klass].record_value(latency)
        self.service.record_value(to_us(done - sent))
        self.tally[(klass, outcome.code, outcome.reason, expected)] += 1
        second = self.seconds.setdefault(max(0, math.floor(done - self.measure_start)), Second())
        second.histogram.record_value(latency)
        second.completed += 1
        second.unexpected += 0 if expected else 1
        self.last_done = max(self.last_done, done)

    # -- totals --

    @property
    def completed(self) -> int:
        return sum(self.tally.values())

    @property
    def unexpected(self) -> int:
        return sum(n for (_, _, _, exp), n in self.tally.items() if not exp)

    @property
    def expected_errors(self) -> int:
        return sum(n for (_, code, _, exp), n in self.tally.items() if exp and code != OK)

    def overall(self) -> HdrHistogram:
        merged = new_histogram()
        for histogram in self.histograms.values():
            add(merged, histogram)
        return merged

    def measured_seconds(self) -> float:
        return max(0.0, self.last_done - self.measure_start)

    def errors_by_status(self) -> list[dict[str, Any]]:
        """Every non-OK outcome: code, reason, how many, and whether the scenario expected it."""
        rows: Counter[tuple[str, str, bool]] = Counter()
        for (_, code, reason, exp), n in self.tally.items():
            if code != OK:
                rows[(code, reason, exp)] += n
        return [
            {"code": code, "reason": reason, "expected": exp, "count": n}
            for (code, reason, exp), n in sorted(rows.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    # -- across processes --

    def merge(self, other: Results) -> None:
        for klass, histogram in other.histograms.items():
            add(self.histograms[klass], histogram)
        add(self.service, other.service)
        self.tally.update(other.tally)
        for index, second in other.seconds.items():
            mine = self.seconds.setdefault(index, Second())
            add(mine.histogram, second.histogram)
            mine.completed += second.completed
            mine.unexpected += second.unexpected
        self.warmup += other.warmup
        self.last_done = max(self.last_done, other.last_done)

    def to_wire(self) -> dict[str, Any]:
        """Plain data (histograms in HdrHistogram's encoding) for a multiprocessing queue."""
        return {
            "measure_start": self.measure_start,
            "expected_interval_us": self.expected_interval_us,
            "histograms": {k: encode(h) for k, h in self.histograms.items()},
            "service": encode(self.service),
            "tally": [[*key, n] for key, n in self.tally.items()],
            "seconds": [
                [i, encode(s.histogram), s.completed, s.unexpected]
                for i, s in sorted(self.seconds.items())
            ],
            "warmup": self.warmup,
            "last_done": self.last_done,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Results:
        results = cls(float(data["measure_start"]), int(data["expected_interval_us"]))
        results.histograms = {k: decode(v) for k, v in data["histograms"].items()}
        results.service = decode(data["service"])
        results.tally = Counter(
            {(str(k), str(c), str(r), bool(e)): int(n) for k, c, r, e, n in data["tally"]}
        )
        results.seconds = {
            int(i): Second(decode(h), int(c), int(u)) for i, h, c, u in data["seconds"]
        }
        results.warmup = int(data["warmup"])
        results.last_done = float(data["last_done"])
        return results
