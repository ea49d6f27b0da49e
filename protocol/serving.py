"""Serving HTTP (aiohttp) with bounded connections: what the node and the registry both listen with.

A connection costs a file descriptor for as long as it is open, whatever it sends. So:

* a connection that has not sent a complete request head ``header_timeout_s`` after it opened (or
  after its last answer) is closed: aiohttp's keep-alive timer, which covers a head that trickles in
  one byte at a time, shortened from aiohttp's default of an hour;
* a request body must arrive within ``body_timeout_s`` (``read_body``; 408 beyond);
* an error answered to a request with a body over ``LARGE_BODY_BYTES`` closes the connection: a
  body refused before it was read is not read to be discarded (aiohttp's lingering close), and one
  read is not kept with the connection's last request while it waits for the next (aiohttp keeps
  it), so a flood of refused large bodies is neither received in full nor held;
* one client address holds at most ``max_per_address`` connections; a connection over it is closed
  as it is accepted, before a byte of it is read;
* all addresses together hold at most ``max_connections`` (never more than the open-file limit
  leaves room for). When they are all held, a new connection takes the place of the one that has
  waited longest for a request head or body (since it opened or since its last answer): honest
  clients send their heads and bodies at once, a connection trickling them, announcing a body it
  does not send, or sitting idle does not. A request counts as busy only once its body is in
  (``read_body``). Only when every held connection is busy is the new one closed as accepted.

Refusals and evictions are counted in metrics and logged at most once per ``LOG_EVERY_S``, so a flood
of connections cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web, web_protocol
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field

FD_RESERVE = 256  # descriptors kept for the database, outbound connections and logs
LOG_EVERY_S = 60.0
LARGE_BODY_BYTES = 64 * 1024  # an error answer to a request with a larger body closes the connection
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)  # set by GuardedRunner; read by read_body


class ServerLimits(BaseModel):
    """How many connections the HTTP server holds and how long it waits for a request."""

    header_timeout_s: float = Field(
        20.0, gt=0, le=3600,
        description="a connection that has not sent a complete request head this long after it opened or after "
        "its last answer is closed (idle keep-alive connections too; longer than the 15 s clients keep theirs)",
    )  # fmt: skip
    body_timeout_s: float = Field(30.0, gt=0, le=3600, description="longest wait for a whole request body (408)")
    max_per_address: int = Field(
        256, ge=1, le=1_000_000,
        description="connections one client address may hold; more are closed as accepted, unread "
        "(every local node, test and bench client shares 127.0.0.1)",
    )  # fmt: skip
    max_connections: int = Field(
        4096, ge=1, le=1_000_000,
        description=f"connections held in all (at most the open-file limit less {FD_RESERVE}); a new one then "
        "takes the place of the one longest waiting for a request head, or is closed as accepted, unread, when "
        "every held one is busy with a request",
    )  # fmt: skip


def fd_budget(wanted: int) -> int:
    """``wanted`` connections, or fewer when the process's open-file limit leaves less room."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


class ConnectionGuard:
    """Admits a new connection or closes it at once: per-address and total caps, counted and logged;
    at the total cap, the connection longest waiting for a request head is closed to make room."""

    def __init__(self, limits: ServerLimits, log: logging.Logger, metrics: CollectorRegistry, prefix: str) -> None:
        self.max_per_address = limits.max_per_address
        self.max_connections = fd_budget(limits.max_connections)
        self._log = log
        self._held: dict[web_protocol.RequestHandler, str] = {}
        self._waiting: OrderedDict[web_protocol.RequestHandler, None] = OrderedDict()  # longest waiting first
        self._per_address: Tally[str] = Tally()
        self._unlogged: Tally[str] = Tally()
        self._next_log = 0.0
        self._refused = Counter(
            f"{prefix}_connections_refused",
            "Connections closed as accepted: over server.max_per_address, or server.max_connections with "
            "every held connection busy with a request",
            ["reason"],
            registry=metrics,
        )
        self._evicted = Counter(
            f"{prefix}_connections_evicted",
            "Connections waiting for a request head closed to make room for a new one (server.max_connections)",
            registry=metrics,
        )
        gauge = Gauge(f"{prefix}_connections_open", "Client connections held", registry=metrics)
        gauge.set_function(lambda: len(self._held))

    def install(self, server: web.Server) -> None:
        """Let ``server`` hold only the connections this guard admits."""
        made, lost, handle = server.connection_made, server.connection_lost, server.request_handler

        def connection_made(handler: web_protocol.RequestHandler, transport: asyncio.Transport) -> None:
            if self.admit(handler, transport):
                made(handler, transport)

        def connection_lost(handler: web_protocol.RequestHandler, exc: BaseException | None = None) -> None:
            self.release(handler)
            lost(handler, exc)

        async def request_handler(request: web.BaseRequest) -> web.StreamResponse:
            busy = request.protocol
            if not request.body_exists:
                self._waiting.pop(busy, None)  # its head has come: busy until answered
            # with a body: still waiting (evictable) until read_body has it all (see ``body_in``)
            try:
                response = await handle(request)
                if response.status >= 400 and large_body(request):
                    await close_after(request, response)
                return response
            finally:
                if busy in self._held:  # waiting for its next head from now on
                    self._waiting[busy] = None

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]
        server.request_handler = request_handler

    def body_in(self, handler: web_protocol.RequestHandler) -> None:
        """``handler``'s request body has come in whole: busy with that request until it is answered."""
        self._waiting.pop(handler, None)

    def admit(self, handler: web_protocol.RequestHandler, transport: asyncio.Transport) -> bool:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "local"
        if self._per_address[address] >= self.max_per_address:
            return self._refuse(transport, "per-address")
        if len(self._held) >= self.max_connections and not self._evict():
            return self._refuse(transport, "total")
        self._held[handler] = address
        self._waiting[handler] = None
        self._per_address[address] += 1
        return True

    def _evict(self) -> bool:
        """Close the connection longest waiting for a request head; False when every one is busy."""
        if not self._waiting:
            return False
        oldest, _ = self._waiting.popitem(last=False)
        self.release(oldest)
        if oldest.transport is not None:
            oldest.transport.abort()  # its connection_lost comes later and finds it released
        self._evicted.inc()
        self._tell("evicted")
        return True

    def release(self, handler: web_protocol.RequestHandler) -> None:
        self._waiting.pop(handler, None)
        address = self._held.pop(handler, None)
        if address is not None:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    @property
    def open(self) -> int:
        return len(self._held)

    def _refuse(self, transport: asyncio.Transport, reason: str) -> bool:
        # dropped before a byte is read (its reader is not polled yet), once aiohttp has started the
        # connection's task: closed here, the task would find the connection gone and log a traceback
        asyncio.get_running_loop().call_soon(transport.abort)
        self._refused.labels(reason).inc()
        self._tell(reason)
        return False

    def _tell(self, reason: str) -> None:
        """Log what was closed, at most once per LOG_EVERY_S (counted in between)."""
        self._unlogged[reason] += 1
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + LOG_EVERY_S
            counts = ", ".join(f"{n} {why}" for why, n in sorted(self._unlogged.items()))
            self._unlogged.clear()
            self._log.warning(
                "closing connections (%s; server.max_per_address=%d, server.max_connections=%d, %d open);"
                " logged again at most once per %.0f s",
                counts, self.max_per_address, self.max_connections, len(self._held), LOG_EVERY_S,
            )  # fmt: skip


GUARD = web.AppKey("connection_guard", ConnectionGuard)  # set by GuardedRunner; told when a body is in


def large_body(request: web.BaseRequest) -> bool:
    """Whether ``request`` has a body over LARGE_BODY_BYTES (or of unknown length)."""
    return request.body_exists and (request.content_length is None or request.content_length > LARGE_BODY_BYTES)


async def close_after(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Send ``response`` now and close the connection after it, reading no more of the request's body
    (what is left unread makes the kernel reset the connection after the answer)."""
    response.force_close()  # says "Connection: close"
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away: aiohttp's own finishing of the answer ignores it too, unlogged
    request.protocol.force_close()


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server closes slow connections (``header_timeout_s``) and admits connections
    through a ConnectionGuard; its app's handlers read bodies with ``read_body`` (``body_timeout_s``)."""

    def __init__(self, app: web.Application, limits: ServerLimits, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.header_timeout_s, **kwargs)
        app[BODY_TIMEOUT] = limits.body_timeout_s
        app[GUARD] = guard
        self.guard = guard

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        self.guard.install(server)
        return server


@asynccontextmanager
async def body_slot(request: web.Request, gate: asyncio.Semaphore) -> AsyncIterator[None]:
    """Hold ``gate`` (a bound on bodies read at once), waited for within the app's ``body_timeout_s``;
    HTTPRequestTimeout (408) beyond."""
    timeout = request.app.get(BODY_TIMEOUT, ServerLimits().body_timeout_s)
    try:
        async with asyncio.timeout(timeout):
            await gate.acquire()
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason=f"request body not taken within {timeout:g} s") from None
    try:
        yield
    finally:
        gate.release()


async def read_body(request: web.Request) -> bytes:
    """The request body, received within the app's ``body_timeout_s``; HTTPRequestTimeout (408) beyond,
    HTTPBadRequest when the client went away before sending it all (an answer nobody reads, not an
    error to log)."""
    timeout = request.app.get(BODY_TIMEOUT, ServerLimits().body_timeout_s)
    try:
        async with asyncio.timeout(timeout):
            body = await request.read()
        guard = request.app.get(GUARD)
        if guard is not None:
            guard.body_in(request.protocol)
        return body
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason=f"request body not received within {timeout:g} s") from None
    except ConnectionResetError:
        raise web.HTTPBadRequest(reason="connection lost before the request body was received") from None
