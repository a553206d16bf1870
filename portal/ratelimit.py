"""Token buckets for sign-in: one per client address and one shared by everyone."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from portal.config import RateLimits

# Buckets kept for this many distinct clients; the least recently seen go first.
MAX_CLIENTS = 100_000


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class TokenBuckets:
    """``take(client)``: 0.0 if allowed, else the seconds until a token is back."""

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._clients: OrderedDict[str, _Bucket] = OrderedDict()
        self._overall = _Bucket(float(limits.overall_burst), clock())

    @staticmethod
    def _refill(bucket: _Bucket, rate: float, burst: int, now: float) -> None:
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now

    def take(self, client: str) -> float:
        now = self._clock()
        per_client = self._limits.per_client_per_minute / 60.0
        overall = self._limits.overall_per_minute / 60.0
        bucket = self._clients.pop(client, None) or _Bucket(
            float(self._limits.per_client_burst), now
        )
        self._clients[client] = bucket
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        self._refill(bucket, per_client, self._limits.per_client_burst, now)
        self._refill(self._overall, overall, self._limits.overall_burst, now)
        if bucket.tokens < 1.0:
            return (1.0 - bucket.tokens) / per_client
        if self._overall.tokens < 1.0:
            return (1.0 - self._overall.tokens) / overall
        bucket.tokens -= 1.0
        self._overall.tokens -= 1.0
        return 0.0
