"""Signed node-to-node HTTP requests (protocol v1).

A request carries four headers: ``X-Ledger-Id`` (the sender's ledger id), ``X-Ledger-Timestamp``
(ms), ``X-Ledger-Nonce`` (16 random bytes, hex) and ``X-Ledger-Signature``: the sender's Ed25519
signature in the ``ledger/request/v1`` context over the canonical encoding of
``{"ledger_id", "method", "path", "body_sha256", "timestamp", "nonce"}``, where ``path`` is the
path with its query string exactly as sent. A receiver checks the signature under the key it has
pinned for ``ledger_id``, refuses timestamps outside its window and nonces it has already seen.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from protocol.canonical import canonical
from protocol.errors import RequestRefused
from protocol.signing import REQUEST, KeyPair, verify

LEDGER_ID = "X-Ledger-Id"
TIMESTAMP = "X-Ledger-Timestamp"
NONCE = "X-Ledger-Nonce"
SIGNATURE = "X-Ledger-Signature"


def request_bytes(ledger_id: str, method: str, path: str, body: bytes, timestamp: int, nonce: str) -> bytes:
    """The canonical bytes a request signature covers."""
    return canonical(
        {
            "ledger_id": ledger_id,
            "method": method.upper(),
            "path": path,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "timestamp": timestamp,
            "nonce": nonce,
        }
    )


def sign_request(keys: KeyPair, ledger_id: str, method: str, path: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The four headers of a signed request."""
    nonce = secrets.token_hex(16)
    sig = keys.sign(REQUEST, request_bytes(ledger_id, method, path, body, timestamp, nonce))
    return {LEDGER_ID: ledger_id, TIMESTAMP: str(timestamp), NONCE: nonce, SIGNATURE: sig.hex()}


def verify_request(
    public_key: bytes, ledger_id: str, method: str, path: str, body: bytes, timestamp: int, nonce: str, sig: bytes
) -> None:
    """Raise BadSignature unless the request was signed by ``public_key``."""
    verify(public_key, REQUEST, request_bytes(ledger_id, method, path, body, timestamp, nonce), sig)


class ReplayGuard:
    """Accepts each (sender, nonce) once, and only with a timestamp within ``window_s`` of now.

    Check a request only after its signature verified, so forged requests cannot use up nonces.
    """

    MAX_REMEMBERED = 1_000_000

    def __init__(self, window_s: float) -> None:
        self._window_ms = int(window_s * 1000)
        self._seen: dict[tuple[str, str], int] = {}  # -> the time it may be forgotten (ms)

    def check(self, sender: str, nonce: str, timestamp: int, now_ms: int | None = None) -> None:
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        if abs(now - timestamp) > self._window_ms:
            raise RequestRefused("request timestamp is outside the accepted window (stale or clock skew)")
        if len(self._seen) >= self.MAX_REMEMBERED // 2:
            self._seen = {key: expiry for key, expiry in self._seen.items() if expiry > now}
            if len(self._seen) >= self.MAX_REMEMBERED:
                raise RequestRefused("too many signed requests in the window; try again later")
        key = (sender, nonce)
        if key in self._seen:
            raise RequestRefused("request was already seen (replay)")
        self._seen[key] = timestamp + self._window_ms
