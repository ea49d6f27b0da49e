"""The client side of node-to-node requests: signed, bounded, retried with backoff.

Retries (tenacity: exponential backoff with jitter, capped) apply only to PeerUnavailable: a peer
that did not answer. A peer that answers with an error or with data that does not validate raises
PeerFailed at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import orjson
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from node.errors import PeerFailed, PeerUnavailable
from node.ledger.clock import wall_ms
from node.settings import SyncSettings
from protocol.models import Heads, Page
from protocol.requests import sign_request
from protocol.signing import KeyPair

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 96 * 1024 * 1024  # a full page of maximal entries, with room


class PeerClient:
    """Talks to one peer on behalf of this node."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, keys: KeyPair, own_ledger_id: str, settings: SyncSettings
    ) -> None:
        self.url = url.rstrip("/")
        self._session = session
        self._keys = keys
        self._own = own_ledger_id
        self._settings = settings
        self.retries = 0  # retries made since creation (for status and metrics)

    async def heads(self) -> Heads:
        return _parse(Heads, await self._call("GET", "/ledger/sync/heads"))

    async def pull(self, ledger_id: str, after: int, limit: int) -> Page:
        query = {"ledger": ledger_id, "after": after, "limit": limit}
        page = _parse(Page, await self._call("GET", "/ledger/sync/pull", query=query))
        if page.ledger_id != ledger_id:
            raise PeerFailed(f"{self.url}: asked for ledger {ledger_id}, got {page.ledger_id}")
        return page

    async def push(self, page: dict[str, Any]) -> dict[str, Any]:
        answer = await self._call("POST", "/ledger/sync/push", body=orjson.dumps(page))
        if not isinstance(answer, dict):
            raise PeerFailed(f"{self.url}: push answer is not an object")
        return answer

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """Server-sent head events from the peer, until the connection ends."""
        path = "/ledger/sync/stream"
        headers = sign_request(self._keys, self._own, "GET", path, b"", wall_ms())
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._settings.timeout_s)
        try:
            async with self._session.get(self.url + path, headers=headers, timeout=timeout) as response:
                if response.status != 200:
                    raise PeerFailed(f"{self.url}: stream answered HTTP {response.status}")
                yield {"connected": True}  # whatever was committed while we were not listening is missed
                async for line in response.content:
                    if line.startswith(b"data: "):
                        yield orjson.loads(line[6:])
        except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            raise PeerUnavailable(f"{self.url}: stream ended ({exc})") from exc

    async def _call(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: bytes = b"") -> Any:
        target = path + ("?" + urlencode(query) if query else "")
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.retries + 1),
            wait=wait_exponential_jitter(multiplier=0.1, max=self._settings.backoff_max_s),
            retry=retry_if_exception_type(PeerUnavailable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.retries += 1
                return await self._once(method, target, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, target: str, body: bytes) -> Any:
        headers = sign_request(self._keys, self._own, method, target, body, wall_ms())
        headers["Accept-Encoding"] = "gzip"
        if body:
            headers["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        try:
            async with self._session.request(
                method, self.url + target, data=body or None, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise PeerFailed(f"{self.url}: answer larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                raw = b"".join(chunks)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PeerUnavailable(f"{self.url}: {type(exc).__name__} {exc}".strip()) from exc
        if status in (502, 503, 504):
            raise PeerUnavailable(f"{self.url}: HTTP {status}")
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise PeerFailed(
                f"{self.url}: answer to {method} {target.split('?')[0]} is not JSON ({raw[:60]!r})"
            ) from exc
        if status >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            raise PeerFailed(f"{self.url}: HTTP {status}: {detail or 'error'}")
        return data


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        raise PeerFailed(f"malformed answer: {where}: {error['msg']}") from exc
