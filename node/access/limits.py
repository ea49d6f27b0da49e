"""Request rate limits: a token bucket per caller (credential, client address or peer), in memory;
failed authentications are charged to their client address, by the size of the body they made the
node read. A signed body over ``FAILURE_UNIT`` is paid for before it is read (given back when its
signature verifies), and at most ``LARGE_BODY_READS`` of them are read and checked at once, all
addresses together, so concurrent forgeries cannot outrun the budget or fill memory.

Each map of buckets is bounded: past ``max_callers`` the least recently seen caller's bucket is
dropped (it starts full again if that caller comes back), so a flood of new addresses costs a
fixed amount of memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from node.errors import RateLimited
from node.settings import AccessSettings

FAILURE_UNIT = 64 * 1024  # bytes of a failed request's body that cost one request of its address
LARGE_BODY_READS = 4  # signed bodies over FAILURE_UNIT read and checked at once, before their signature verifies


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

    def take(self, caller: str, now: float | None = None, cost: float = 1.0) -> float:
        """Spend ``cost`` requests (at most a full bucket): 0 when allowed, else the seconds to wait."""
        bucket = self._refilled(caller, time.monotonic() if now is None else now)
        cost = min(cost, float(self.burst))
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate_per_s

    def wait(self, caller: str, cost: float = 1.0, now: float | None = None) -> float:
        """The seconds before ``caller`` could spend ``cost`` requests (0: now); nothing is spent."""
        bucket = self._buckets.get(caller)
        if bucket is None:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
        return max(0.0, (min(cost, float(self.burst)) - tokens) / self.rate_per_s)

    def give(self, caller: str, cost: float) -> None:
        """Give back ``cost`` requests spent by ``take`` (at most a full bucket)."""
        bucket = self._buckets.get(caller)
        if bucket is not None:  # else dropped since: it starts full again
            bucket.tokens = min(float(self.burst), bucket.tokens + cost)

    def _refilled(self, caller: str, now: float) -> _Bucket:
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self._max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
            bucket.at = now
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class CallerLimits:
    """The kinds of caller a node limits: credentials, anonymous client addresses, peers; and the
    failed authentications of each client address (a bucket apart, the size of the anonymous one, so
    that anonymous reads never hold back a peer's signed requests from the same address)."""

    credentials: RateLimiter
    anonymous: RateLimiter
    peers: RateLimiter
    failures: RateLimiter
    max_body_bytes: int = 4 * 1024 * 1024
    large_reads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LARGE_BODY_READS))

    @classmethod
    def from_settings(cls, access: AccessSettings, max_body_bytes: int = 4 * 1024 * 1024) -> CallerLimits:
        return cls(
            RateLimiter(access.rate_per_s, access.burst),
            RateLimiter(access.anonymous_rate_per_s, access.anonymous_burst),
            RateLimiter(access.peer_rate_per_s, access.peer_burst),
            RateLimiter(access.anonymous_rate_per_s, access.anonymous_burst),
            max_body_bytes,
        )

    def failure_cost(self, content_length: int | None, has_body: bool) -> int:
        """What a failed authentication costs its address: one request per started ``FAILURE_UNIT`` of
        its body (a body of unknown length counts as the largest allowed), so a flood of large forged
        bodies is held to a few a second."""
        size = content_length if content_length is not None else (self.max_body_bytes if has_body else 0)
        return 1 + size // FAILURE_UNIT

    def failed(self, address: str, content_length: int | None, has_body: bool) -> None:
        """Charge a failed authentication to ``address``; RateLimited when it is over its budget."""
        wait = self.failures.take(address, cost=self.failure_cost(content_length, has_body))
        if wait > 0:
            raise RateLimited(f"this client address failed authentication too often; retry in {wait:.1f} s", wait)

    def before_body(self, address: str, content_length: int | None, has_body: bool) -> int:
        """Before a signed request's body is read and checked: a body over ``FAILURE_UNIT`` (or of
        unknown length) has its failure charged to ``address`` now, RateLimited when it cannot pay, so
        pushes arriving at once cannot all be read on one budget. Answers the cost charged, for
        ``refund`` once the signature verifies (0: a small body, charged only if it fails)."""
        cost = self.failure_cost(content_length, has_body)
        if cost <= 1:
            return 0
        wait = self.failures.take(address, cost=cost)
        if wait > 0:
            raise RateLimited(f"this client address failed authentication too often; retry in {wait:.1f} s", wait)
        return cost

    def refund(self, address: str, cost: int) -> None:
        """Give back what ``before_body`` charged: the request was not a failure (or is charged again
        by ``failed``)."""
        self.failures.give(address, cost)
