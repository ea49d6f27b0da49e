"""The node's one outbound HTTP client: every request the node makes goes through it.

It owns two connection pools: one for requests (at most ``net.max_per_peer`` connections to one
origin, ``net.max_connections`` in all) and one for long-lived head streams, so streams that stall
cannot take the connections requests need. Every URL passes the URL policy (``node.net.policy``);
every answer is read through the capped, gzip-aware reader (``node.net.reader``) and parsed as
JSON; requests time out on connect, on every read and overall; streams are dead after
``net.stream_idle_s`` of silence. Failures map to two errors: PeerUnavailable (no answer, a timeout,
HTTP 429/502/503/504: worth retrying) and PeerFailed (any other answer that cannot be used). Their
messages name the failure (an HTTP status, a timeout, "answer larger than N bytes", "not JSON",
"malformed answer at <field>", "nested too deep") and never carry the answer's bytes, a member
name or a remote ``detail``; a problem ``type`` code that looks like one is kept. Every failure to
read or parse an answer is one of the two (both NodeError), so a loop that catches NodeError goes
on past any answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from node.errors import NotKnownThere, PeerFailed, PeerUnavailable, RefusedThere, UrlRefused
from node.metrics import Metrics
from node.net.policy import AddressRefused, PolicyResolver, UrlPolicy
from node.net.reader import read_capped
from node.settings import NetSettings
from protocol import jsontext
from protocol.errors import DuplicateMember, LimitExceeded, ProtocolError

RETRY_STATUSES = (429, 502, 503, 504)
# an honest answer holds at most ANSWER_BUDGET_BRACKETS, or one entry (payload and meta <= 64 KiB)
MAX_BRACKETS = 100_000
_PROBLEM_CODE = re.compile(r"^(?:urn:ledger:problem:)?([a-z0-9][a-z0-9-]{0,63})$")


@dataclass(frozen=True, slots=True)
class Answer:
    """A response that was read: its status and its JSON body (None when empty)."""

    status: int
    data: Any
    etag: str | None = None


class Outbound:
    """``async with Outbound(settings.net) as net: await net.request("GET", url)``; one per node."""

    def __init__(self, settings: NetSettings, timeout_s: float = 10.0, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self._metrics = metrics
        self.policy = UrlPolicy(settings.allow_private)
        self._timeout_s = timeout_s
        self._requests: aiohttp.ClientSession | None = None
        self._streams: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Outbound:
        def connector(limit: int, per_host: int) -> aiohttp.TCPConnector:
            return aiohttp.TCPConnector(limit=limit, limit_per_host=per_host, resolver=PolicyResolver(self.policy))

        conf = self.settings
        self._requests = aiohttp.ClientSession(
            connector=connector(conf.max_connections, conf.max_per_peer), auto_decompress=False
        )
        # one stream per peer; their number is bounded by the peers, their life by the idle timeout
        self._streams = aiohttp.ClientSession(connector=connector(0, 2), auto_decompress=False)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for session in (self._requests, self._streams):
            if session is not None:
                await session.close()

    def operator(self, url: str) -> None:
        """Mark ``url``'s origin as configured by the operator (its private addresses are allowed)."""
        self.policy.mark_operator(url)

    async def request(
        self,
        method: str,
        endpoint: str,
        target: str = "",
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
        accept: tuple[int, ...] = (),
        lan: bool = False,
    ) -> Answer:
        """Send one request and read its answer (capped, inflated, parsed as JSON).

        ``endpoint`` is the node's (or registry's) URL, which the policy checks; ``target`` the path
        and query added to it. HTTP statuses >= 400 raise (see the module docstring) unless listed
        in ``accept``. ``lan``: an mDNS lookup.
        """
        assert self._requests is not None, "use Outbound as an async context manager"
        self.policy.check(endpoint, lan=lan)
        base = endpoint.rstrip("/")
        url = base + target
        sent = {"Accept-Encoding": "gzip", **(headers or {})}
        if body:
            sent.setdefault("Content-Type", "application/json")
        total = timeout_s if timeout_s is not None else self._timeout_s
        timeout = aiohttp.ClientTimeout(
            total=total, sock_connect=self.settings.connect_timeout_s, sock_read=self.settings.read_timeout_s
        )
        try:
            async with self._requests.request(
                method, url, data=body or None, headers=sent, timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                etag = response.headers.get("ETag")
                raw = await read_capped(response, self.settings.max_response_bytes)
                head = sum(len(k) + len(v) + 4 for k, v in response.raw_headers)
                self._count(len(method) + len(url) + _headers_size(sent) + len(body), head + len(raw))
        except TimeoutError as exc:
            raise PeerUnavailable(f"{base}: no answer within the timeout") from exc
        except aiohttp.ClientError as exc:
            raise _connection_error(base, exc) from exc
        except HttpProcessingError as exc:  # its message quotes the bytes it choked on
            raise PeerFailed(f"{base}: malformed HTTP answer") from exc
        if status in RETRY_STATUSES:
            raise PeerUnavailable(f"{base}: HTTP {status}")
        if status == 401 and status not in accept:  # signed requests: the peer has not pinned this node
            raise NotKnownThere(f"{base}: HTTP {status}{_problem_code(raw)}")
        if status == 403 and status not in accept and _problem_code(raw) == " (peer-refused)":
            raise RefusedThere(f"{base}: HTTP {status}{_problem_code(raw)}")
        if status >= 400 and status not in accept:
            raise PeerFailed(f"{base}: HTTP {status}{_problem_code(raw)}")
        if 300 <= status < 400 and status not in accept:
            raise PeerFailed(f"{base}: HTTP {status} (redirects are not followed)")
        return Answer(status, _json(base, raw), etag if etag and len(etag) <= 64 else None)

    def _count(self, sent: int, received: int, *, request: bool = True) -> None:
        """Outbound traffic in the node's metrics: requests made, bytes sent (request line, the
        headers this node sets, body) and read (answer headers and body after inflation, stream
        lines); about the bytes on the wire (answers that came gzipped count inflated)."""
        if self._metrics is None:
            return
        if request:
            self._metrics.outbound_requests.inc()
        if sent:
            self._metrics.outbound_bytes.labels("sent").inc(sent)
        self._metrics.outbound_bytes.labels("received").inc(received)

    async def stream(self, endpoint: str, target: str, headers: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events of a node's head stream: ``{"connected": True}`` first, then each event
        (a JSON object) until the stream ends; PeerUnavailable when it cannot be opened or stays
        silent longer than ``net.stream_idle_s``, PeerFailed for an answer that is not a stream of
        small JSON events."""
        assert self._streams is not None, "use Outbound as an async context manager"
        self.policy.check(endpoint)
        url = endpoint.rstrip("/")
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.connect_timeout_s, sock_read=self.settings.stream_idle_s
        )
        try:
            async with self._streams.get(
                url + target, headers={"Accept-Encoding": "identity", **headers}, timeout=timeout, allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise PeerFailed(f"{url}: stream answered HTTP {response.status}")
                if response.headers.get("Content-Encoding", "identity") not in ("identity", ""):
                    raise PeerFailed(f"{url}: stream in a content encoding")
                yield {"connected": True}
                while True:
                    line = await response.content.readuntil(b"\n")
                    if not line:
                        break
                    self._count(0, len(line), request=False)
                    if line.startswith(b"data: "):
                        event = _json(url, line[6:])
                        if not isinstance(event, dict):
                            raise PeerFailed(f"{url}: stream event is not an object")
                        yield event
        except TimeoutError as exc:
            raise PeerUnavailable(f"{url}: stream silent for {self.settings.stream_idle_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise _connection_error(url, exc) from exc
        except (ValueError, LineTooLong) as exc:  # a line longer than aiohttp's buffer
            raise PeerFailed(f"{url}: stream line too long") from exc
        except HttpProcessingError as exc:  # its message quotes the bytes it choked on
            raise PeerFailed(f"{url}: malformed HTTP answer") from exc


def _headers_size(headers: dict[str, str]) -> int:
    return sum(len(k) + len(v) + 4 for k, v in headers.items())


def _json(url: str, raw: bytes) -> Any:
    """The answer parsed, if parsing it costs little enough: every ``[`` or ``{`` byte may open a
    container, and millions of tiny containers take seconds to build."""
    if not raw:
        return None
    if raw.count(b"[") + raw.count(b"{") > MAX_BRACKETS:
        raise PeerFailed(f"{url}: answer has more than {MAX_BRACKETS} brackets")
    try:
        return jsontext.loads(raw)  # duplicate member names refused (docs/protocol.md section 2)
    except jsontext.JSONDecodeError as exc:
        raise PeerFailed(f"{url}: answer is not JSON") from exc
    except DuplicateMember as exc:  # its message quotes the member's name
        raise PeerFailed(f"{url}: answer names a member twice") from exc
    except (LimitExceeded, RecursionError) as exc:  # too deep to check for duplicates (over ~900 levels)
        raise PeerFailed(f"{url}: answer nested too deep") from exc
    except ProtocolError as exc:  # any other refusal of the text: every failure to parse is PeerFailed
        raise PeerFailed(f"{url}: answer refused ({exc.code})") from exc


def _problem_code(raw: bytes) -> str:
    """`` (code)`` of a problem answer whose ``type`` looks like one of ours; never its detail."""
    try:
        data = _json("", raw)
    except PeerFailed:
        return ""
    kind = data.get("type") if isinstance(data, dict) else None
    match = _PROBLEM_CODE.match(kind) if isinstance(kind, str) else None
    return f" ({match.group(1)})" if match else ""


def _connection_error(url: str, exc: aiohttp.ClientError) -> PeerFailed | PeerUnavailable:
    """The error for a request that got no usable answer: refused by policy, or unavailable."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, AddressRefused):
            return UrlRefused(f"URL refused: {cause}")
        cause = getattr(cause, "os_error", None) or cause.__cause__
    if isinstance(exc, aiohttp.ClientPayloadError):
        return PeerUnavailable(f"{url}: answer cut off")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return PeerUnavailable(f"{url}: connection closed")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return PeerUnavailable(f"{url}: cannot connect")
    if isinstance(exc, aiohttp.InvalidURL):
        return UrlRefused("URL refused: not a valid URL")
    return PeerUnavailable(f"{url}: {type(exc).__name__}")
