"""A hybrid logical clock in milliseconds: wall time, but never behind anything already seen.

Timestamps of a ledger's own entries come from here, so they never go backwards even when the wall
clock does, and last-write-wins respects causality.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    """``now()`` is max(wall clock, the latest timestamp observed)."""

    def __init__(self, latest: int = 0, wall: Callable[[], int] = wall_ms) -> None:
        self._latest = latest
        self._wall = wall

    def now(self) -> int:
        self._latest = max(self._latest, self._wall())
        return self._latest

    def observe(self, timestamp: int) -> None:
        """Move forward to a timestamp seen on an entry (callers bound how far in the future it is)."""
        self._latest = max(self._latest, timestamp)
