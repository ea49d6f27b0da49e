"""The node's side of the registry: register, heartbeat, discover, deregister, with failover.

Registry URLs are tried in order; a registry that does not answer is skipped for the next one
(tenacity retries each with exponential backoff and jitter first). A heartbeat answered 404 means
the registry lost the record (restart with data loss, or a sweep): the caller registers again.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from node.errors import PeerFailed, PeerUnavailable
from node.ledger.clock import wall_ms
from protocol.records import NodeRecord
from protocol.requests import sign_request
from protocol.signing import KeyPair

log = logging.getLogger(__name__)


class NotRegistered(Exception):
    """The registry holds no record of this node (any more)."""


class RegistryClient:
    def __init__(
        self, session: aiohttp.ClientSession, urls: list[str], keys: KeyPair, ledger_id: str, timeout_s: float = 5.0,
        enrolment_token: str | None = None,
    ) -> None:  # fmt: skip
        self.urls = [u.rstrip("/") for u in urls]
        self._session = session
        self._keys = keys
        self._ledger_id = ledger_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.active: str | None = None  # the registry that answered last
        self._enrolment = {"Authorization": f"Bearer {enrolment_token}"} if enrolment_token else {}

    async def register(self, record: NodeRecord) -> None:
        """Register (the first time with the enrolment token the registry's operator issued)."""
        await self._each("POST", "/registry/nodes", orjson.dumps(record.model_dump()), extra=self._enrolment)

    async def heartbeat(self) -> None:
        status, _ = await self._each("POST", f"/registry/nodes/{self._ledger_id}/heartbeat", b"", signed=True)
        if status == 404:
            raise NotRegistered(self._ledger_id)

    async def deregister(self) -> None:
        await self._each("DELETE", f"/registry/nodes/{self._ledger_id}", b"", signed=True)

    async def discover(self, limit: int = 500, **filters: str) -> list[NodeRecord]:
        """Every online node's record (paged), skipping records that do not parse."""
        found: list[NodeRecord] = []
        after: str | None = None
        while True:
            query = "&".join(f"{k}={v}" for k, v in {"status": "online", **filters, "limit": str(limit)}.items())
            _, body = await self._each("GET", "/registry/nodes?" + query + (f"&after={after}" if after else ""), b"")
            for node in body.get("nodes", []) if isinstance(body, dict) else []:
                try:
                    found.append(NodeRecord.model_validate(node["record"]))
                except (ValidationError, KeyError, TypeError):
                    log.warning("registry returned a malformed record")
            after = body.get("next_after") if isinstance(body, dict) else None
            if not after:
                return found

    async def _each(
        self, method: str, path: str, body: bytes, signed: bool = False, extra: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Try the active registry first, then the others in order; PeerUnavailable if none answers."""
        order = sorted(self.urls, key=lambda u: u != self.active)
        last: Exception | None = None
        for url in order:
            try:
                result = await self._retrying(url, method, path, body, signed, extra or {})
            except PeerUnavailable as exc:
                last = exc
                continue
            self.active = url
            return result
        raise PeerUnavailable(f"no registry answered ({last})")

    async def _retrying(
        self, url: str, method: str, path: str, body: bytes, signed: bool, extra: dict[str, str]
    ) -> tuple[int, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(3), wait=wait_exponential_jitter(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type(PeerUnavailable), reraise=True,
        )  # fmt: skip
        async for attempt in retrying:
            with attempt:
                return await self._once(url, method, path, body, signed, extra)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self, url: str, method: str, path: str, body: bytes, signed: bool, extra: dict[str, str]
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", **extra} if body else dict(extra)
        if signed:
            headers.update(sign_request(self._keys, self._ledger_id, method, path, body, wall_ms()))
        try:
            async with self._session.request(
                method, url + path, data=body or None, headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PeerUnavailable(f"{url}: {type(exc).__name__}") from exc
        if status in (429, 502, 503, 504):
            raise PeerUnavailable(f"{url}: HTTP {status}")
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise PeerFailed(f"registry {url}: answer is not JSON") from exc
        if status >= 400 and status != 404:
            detail = data.get("detail") if isinstance(data, dict) else None
            raise PeerFailed(f"registry {url}: HTTP {status}: {detail}")
        return status, data
