"""Refusal of stale and replayed signed requests: a timestamp window and a memory of nonces."""

from __future__ import annotations

import time

from node.errors import RequestRejected

MAX_REMEMBERED = 1_000_000


class ReplayGuard:
    """Accepts each (sender, nonce) once, and only with a timestamp within ``window_s`` of now."""

    def __init__(self, window_s: float) -> None:
        self._window_ms = int(window_s * 1000)
        self._seen: dict[tuple[str, str], int] = {}  # -> expiry (ms)

    def check(self, sender: str, nonce: str, timestamp: int, now_ms: int | None = None) -> None:
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        if abs(now - timestamp) > self._window_ms:
            raise RequestRejected("request timestamp is outside the accepted window (stale or clock skew)")
        if len(self._seen) >= MAX_REMEMBERED // 2:
            self._seen = {key: expiry for key, expiry in self._seen.items() if expiry > now}
            if len(self._seen) >= MAX_REMEMBERED:
                raise RequestRejected("too many signed requests in the window; try again later")
        key = (sender, nonce)
        if key in self._seen:
            raise RequestRejected("request was already seen (replay)")
        # a nonce must be remembered as long as its timestamp is acceptable
        self._seen[key] = timestamp + self._window_ms
