"""Request rate limits: a token bucket per caller (credential, client address or peer), in memory.

Each map of buckets is bounded: past ``max_callers`` the least recently seen caller's bucket is
dropped (it starts full again if that caller comes back), so a flood of new addresses costs a
fixed amount of memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from node.settings import AccessSettings


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``take(caller)`` spends one request; it answers 0 when allowed, else the seconds to wait."""

    def __init__(self, rate_per_s: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max_callers = max_callers
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self._max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class CallerLimits:
    """The three kinds of caller a node limits: credentials, anonymous client addresses, peers."""

    credentials: RateLimiter
    anonymous: RateLimiter
    peers: RateLimiter

    @classmethod
    def from_settings(cls, access: AccessSettings) -> CallerLimits:
        return cls(
            RateLimiter(access.rate_per_s, access.burst),
            RateLimiter(access.anonymous_rate_per_s, access.anonymous_burst),
            RateLimiter(access.peer_rate_per_s, access.peer_burst),
        )
