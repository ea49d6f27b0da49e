"""Authentication of node-to-node requests: a signature by an admitted peer's pinned key, fresh, never
replayed. A ledger pinned without being admitted (replicated on a peer's word) is data, not a caller."""

from __future__ import annotations

import asyncio

from aiohttp import web

from node.api.context import DISCOVERY, LEDGER, LIMITS, PEERS, REPLAY
from node.errors import NodeError, PeerRefused, RequestRejected
from protocol.errors import BadSignature, ProtocolError
from protocol.requests import LEDGER_ID, NONCE, SIGNATURE, TIMESTAMP, verify_request
from protocol.serving import body_slot, read_body

SENDER = web.RequestKey("signed_sender", str)


async def signed_sender(request: web.Request) -> str:
    """The ledger id of the node that signed ``request``; RequestRejected unless it checks out.
    Checked once per request (the access middleware does it first; handlers get the same answer)."""
    if SENDER in request:
        return request[SENDER]
    try:
        sender = request.headers[LEDGER_ID]
        timestamp = int(request.headers[TIMESTAMP])
        nonce = request.headers[NONCE]
        sig = bytes.fromhex(request.headers[SIGNATURE])
    except (KeyError, ValueError) as exc:
        raise RequestRejected("node-to-node requests must be signed (X-Ledger-* headers)") from exc
    if len(nonce) != 32:
        raise RequestRejected("nonce must be 16 bytes in hex")
    limits, address = request.app[LIMITS], request.remote or "unknown"
    prepaid = limits.before_body(address, request.content_length, request.body_exists)  # 429 before any lookup
    try:
        await _check(request, sender, timestamp, nonce, sig, prepaid)
    except (NodeError, ProtocolError):
        limits.refund(address, prepaid)  # a failure is charged by the caller (auth), once
        raise
    limits.refund(address, prepaid)
    request[SENDER] = sender
    return sender


async def _check(request: web.Request, sender: str, timestamp: int, nonce: str, sig: bytes, large: int) -> None:
    """RequestRejected (PeerRefused, RequestRefused) unless an admitted ``sender`` signed ``request``;
    ``large``: its body's failure was paid for, it is read under the bound on such bodies."""
    if request.app[DISCOVERY].refused(sender):  # told apart from "not yet": the caller stops waiting
        raise PeerRefused(f"this node's operator refused {sender} as a peer")
    held = await request.app[LEDGER].held(sender)
    if held is None:
        raise RequestRejected(f"{sender} is not known here (no pinned key)")
    if sender != request.app[LEDGER].ledger_id and not request.app[PEERS].is_peer(sender):  # own key: the node
        raise RequestRejected(f"{sender} is not a peer of this node (not admitted)")
    signed = (held.public_key, sender, request.method, request.raw_path)
    if large:  # a few at once, across all addresses, hashed off the event loop
        async with body_slot(request, request.app[LIMITS].large_reads):
            body = await read_body(request)
            verified = await asyncio.to_thread(_verifies, *signed, body, timestamp, nonce, sig)
    else:
        verified = _verifies(*signed, await read_body(request), timestamp, nonce, sig)
    if not verified:
        raise RequestRejected("request signature does not verify")
    request.app[REPLAY].check(sender, nonce, timestamp)  # only after the signature: no nonce burning


def _verifies(
    key: bytes, sender: str, method: str, path: str, body: bytes, timestamp: int, nonce: str, sig: bytes
) -> bool:
    try:
        verify_request(key, sender, method, path, body, timestamp, nonce, sig)
    except BadSignature:
        return False
    return True
